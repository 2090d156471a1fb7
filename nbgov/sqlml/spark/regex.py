"""DuckDB's ``regexp_replace`` on Spark.

DuckDB replaces the first match unless the options say ``'g'``, reads ``\\1`` in the
replacement as a group and ``$`` as itself; Spark's ``regexp_replace`` replaces every
match and reads the replacement as Java does (``$1`` a group, ``\\`` an escape). So the
replacement text is rewritten for Java, and a first-match replace matches the pattern and
then the rest of the text, which is put back (``$<n+1>``, after the pattern's own groups).
"""

from __future__ import annotations

import sqlglot.expressions as exp

from nbgov.errors import SqlError

_OPTIONS = frozenset("gic")  # global, case-insensitive, case-sensitive (the last of i/c wins)


def regexp_replace(node: exp.RegexpReplace) -> exp.Expr:
    """``node`` (DuckDB's meaning) as Spark's REGEXP_REPLACE call."""
    pattern, replacement = node.expression, node.args.get("replacement")
    options = _options(node.args.get("modifiers"))
    if replacement is None:
        raise SqlError("regexp_replace needs a replacement; expected regexp_replace(text, pattern, replacement[, options])")
    if isinstance(replacement, exp.Literal) and replacement.is_string:
        replacement = exp.Literal.string(java_replacement(replacement.name))
    if "g" not in options:
        if not (isinstance(pattern, exp.Literal) and pattern.is_string):
            raise SqlError(
                "regexp_replace of the first match needs a text literal pattern on the spark engine; "
                "pass the option 'g' to replace every match"
            )
        rest = f"${capturing_groups(pattern.name) + 1}"
        pattern = exp.Literal.string(f"(?:{pattern.name})((?s:.*))\\z")
        replacement = exp.Concat(expressions=[replacement, exp.Literal.string(rest)], safe=True)
    if _case_insensitive(options):
        pattern = exp.Concat(expressions=[exp.Literal.string("(?i)"), pattern], safe=True)
    return exp.Anonymous(this="REGEXP_REPLACE", expressions=[node.this, pattern, replacement])


def full_match(text: exp.Expr, pattern: exp.Expr) -> exp.Expr:
    """DuckDB's ``SIMILAR TO`` / ``regexp_full_match``: whether the pattern matches the whole
    text, RE2's ``.`` matching any character but a newline. Spark's RLIKE finds the pattern
    anywhere and Java's ``.`` also refuses ``\\r``: the pattern is anchored at both ends
    (``\\A``, ``\\z``: ``$`` would also match before a final newline) with UNIX_LINES (``(?d)``)."""
    head, tail = "(?d)\\A(?:", ")\\z"
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        anchored: exp.Expr = exp.Literal.string(f"{head}{pattern.this}{tail}")
    else:
        anchored = exp.Concat(expressions=[exp.Literal.string(head), pattern, exp.Literal.string(tail)], safe=True)
    return exp.RegexpLike(this=text, expression=anchored)


def _options(modifiers: exp.Expr | None) -> str:
    if modifiers is None:
        return ""
    text = modifiers.name if isinstance(modifiers, exp.Literal) and modifiers.is_string else None
    if text is None or not set(text) <= _OPTIONS:
        raise SqlError(
            "regexp_replace options other than 'g', 'i' and 'c' (as a text literal) are DuckDB-only on the spark engine"
        )
    return text


def _case_insensitive(options: str) -> bool:
    flags = [c for c in options if c in "ic"]
    return bool(flags) and flags[-1] == "i"


def java_replacement(rewrite: str) -> str:
    """A DuckDB (RE2) replacement as Java's: ``\\N`` -> ``$N``, a ``$`` or a backslash as itself."""
    out: list[str] = []
    i = 0
    while i < len(rewrite):
        c = rewrite[i]
        if c == "\\" and i + 1 < len(rewrite):
            following = rewrite[i + 1]
            out.append(f"${following}" if following.isdigit() else "\\\\" if following == "\\" else following)
            i += 2
            continue
        out.append("\\$" if c == "$" else "\\\\" if c == "\\" else c)
        i += 1
    return "".join(out)


def capturing_groups(pattern: str) -> int:
    """How many capturing groups a regular expression has (escapes, ``\\Q...\\E``, character
    classes and ``(?...)`` groups other than named ones do not count)."""
    count, i, in_class = 0, 0, False
    while i < len(pattern):
        if pattern.startswith("\\Q", i):
            end = pattern.find("\\E", i + 2)
            i = len(pattern) if end < 0 else end + 2
            continue
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            first = i + 2 if pattern.startswith("[^", i) else i + 1
            if pattern.startswith("]", first):  # a ']' first in a class is the character
                i = first
        elif c == "(" and _captures(pattern, i):
            count += 1
        i += 1
    return count


def _captures(pattern: str, at: int) -> bool:
    if not pattern.startswith("(?", at):
        return True
    if pattern.startswith("(?P<", at):
        return True
    return pattern.startswith("(?<", at) and pattern[at + 3 : at + 4] not in ("=", "!", "")
