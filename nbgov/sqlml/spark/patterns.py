"""DuckDB's LIKE / ILIKE patterns on Spark.

DuckDB's LIKE has no escape character unless ``ESCAPE`` names one: a backslash in the
pattern is an ordinary character. Spark's default escape is the backslash, so the same
text meant something else there, silently (``s LIKE '%\\_%'`` matched any text with an
``_``, not a backslash followed by one character) or failed (``'C:\\temp%'``:
ESC_IN_THE_MIDDLE). Without an ``ESCAPE``, a pattern with a backslash is given Spark's
escape out of its way: a literal one an ``ESCAPE`` character it lacks, any other (a
column, a ``$name``, an expression) its backslashes doubled, which Spark's default
escape reads as one ordinary backslash each. A pattern the user gave an ``ESCAPE`` keeps
it (an empty one, DuckDB's "no escape character", is treated as none given).

DuckDB's GLOB (Spark has none) is a regular expression matching the whole text
(``glob_regex``): ``*`` any characters, ``?`` one, ``\\`` makes the next one ordinary (at
the end: nothing matches), ``[...]`` one of a set of characters and ranges, ``[!...]`` one
outside it, its first character ``]`` and a ``-`` before the closing ``]`` ordinary, a
reversed range empty, a backslash ordinary there, and a set never closed matches nothing.
Read from DuckDB 2.0's answers: the same on 160,000 random texts and patterns.
"""

from __future__ import annotations

from itertools import count

import sqlglot.expressions as exp

_SPECIAL = frozenset("%_\\'")  # LIKE's wildcards, Spark's default escape, the quote
_ORDINARY = "nbgov_ordinary_backslash"  # meta key: a pattern already kept off Spark's escape


def given_escape(node: exp.Like | exp.ILike) -> bool:
    """Whether the user wrote an ``ESCAPE`` for ``node`` (a non-empty one: DuckDB's
    ``ESCAPE ''`` means no escape character)."""
    parent = node.parent
    return isinstance(parent, exp.Escape) and parent.this is node and not empty_escape(parent)


def empty_escape(node: exp.Escape) -> bool:
    """Whether ``node`` is DuckDB's ``ESCAPE ''`` (no escape character; Spark refuses it)."""
    escape = node.expression
    return isinstance(escape, exp.Literal) and escape.is_string and escape.this == ""


def ordinary_backslash(node: exp.Like | exp.ILike) -> exp.Expr | None:
    """``node`` (no ESCAPE given) written so that Spark reads its backslashes as DuckDB
    does, as ordinary characters; None when it needs nothing (no backslash can be in the
    pattern, or it was rewritten already)."""
    pattern = node.expression
    if node.meta.get(_ORDINARY) or isinstance(pattern, (exp.Any, exp.All, exp.Null)):
        return None
    if isinstance(pattern, exp.Literal):
        if not pattern.is_string or "\\" not in pattern.this:
            return None
        like = node.copy()
        like.meta[_ORDINARY] = True
        return exp.Escape(this=like, expression=exp.Literal.string(absent_character(pattern.this)))
    doubled = exp.Anonymous(
        this="REPLACE", expressions=[pattern.copy(), exp.Literal.string("\\"), exp.Literal.string("\\\\")]
    )
    like = node.copy()
    like.set("expression", doubled)
    like.meta[_ORDINARY] = True
    return like


def escaped_ordinary(node: exp.Like | exp.ILike) -> exp.Expr | None:
    """``node`` (its ESCAPE given) with a literal pattern's escape characters dropped where
    they precede an ordinary character: DuckDB's escape makes any character after it
    ordinary, Spark's only ``%``, ``_`` and itself (it refused ``'$a'``: ESC_IN_THE_MIDDLE);
    without one the character is as ordinary. None when nothing changes."""
    pattern, escape = node.expression, node.parent.expression if isinstance(node.parent, exp.Escape) else None
    if node.meta.get(_ORDINARY) or not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return None
    if not (isinstance(escape, exp.Literal) and escape.is_string and len(escape.this) == 1):
        return None
    text, mark = pattern.this, escape.this
    kept: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == mark and i + 1 < len(text):
            following = text[i + 1]
            kept.append(text[i : i + 2] if following in ("%", "_", mark) else following)
            i += 2
        else:
            kept.append(text[i])
            i += 1
    if "".join(kept) == text:
        return None
    like = node.copy()
    like.set("expression", exp.Literal.string("".join(kept)))
    like.meta[_ORDINARY] = True
    return like


def absent_character(pattern: str) -> str:
    """The first character from ``!`` on that ``pattern`` lacks, even lower-cased (ILIKE
    lower-cases it), and that cannot stand for another: not a wildcard, backslash or
    quote, not a letter or digit, without case, not half of a UTF-16 pair."""
    lowered = pattern.lower()
    return next(
        c
        for c in map(chr, count(0x21))
        if c not in pattern and c not in lowered and c not in _SPECIAL and not c.isalnum()
        and c.lower() == c.upper() == c and not 0xD800 <= ord(c) <= 0xDFFF
    )


_NEVER = "(?!)"  # matches nothing


def glob_regex(pattern: str) -> str:
    """A Java regular expression, with DOTALL, matching exactly the texts DuckDB's ``GLOB
    pattern`` matches when it must match the whole text (``\\A(?:...)\\z``)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\":
            if i + 1 == n:
                return _NEVER
            i += 1
            out.append(_ordinary(pattern[i]))
        elif c == "[":
            bracket = _bracket(pattern, i + 1)
            if bracket is None:
                return _NEVER
            written, i = bracket
            out.append(written)
            continue
        else:
            out.append(_ordinary(c))
        i += 1
    return "".join(out)


def _bracket(pattern: str, start: int) -> tuple[str, int] | None:
    """The character class of the set opening before ``start`` and where the pattern goes
    on after it; None when it is never closed."""
    j, n = start, len(pattern)
    invert = j < n and pattern[j] == "!"
    if invert:
        j += 1
    first = j
    items: list[str] = []
    while j < n:
        c = pattern[j]
        if c == "]" and j > first:
            kept = [item for item in items if item]
            if not kept:  # only reversed ranges: no character is in it
                return ("[\\s\\S]" if invert else "[^\\s\\S]"), j + 1
            return "[" + ("^" if invert else "") + "".join(kept) + "]", j + 1
        if j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
            low, high = c, pattern[j + 2]
            items.append(f"{_ordinary(low)}-{_ordinary(high)}" if low <= high else "")
            j += 3
        else:
            items.append(_ordinary(c))
            j += 1
    return None


def _ordinary(c: str) -> str:
    """``c`` as itself in a regular expression or a character class (ASCII punctuation
    escaped; Java refuses a backslash before a letter)."""
    return "\\" + c if c.isascii() and not c.isalnum() else c
