"""DuckDB's ``strftime(value, format)`` and ``strptime(text, format)`` on Spark.

sqlglot maps the format's codes to one Java pattern for ``DATE_FORMAT``, where some mean
something else (``%j`` as ``DD``: 65, not DuckDB's 065; ``%Z`` as ``z``: 'UTC' for a
TIMESTAMP without a zone, DuckDB's ''), some pass through as text (``%w``, ``%U``,
``%G``...) and the format's own text is read as pattern letters (``'Year %Y'``). Here the
format is read code by code: a code with a Java pattern of the same meaning joins a
``DATE_FORMAT`` pattern (the text between codes quoted in it), the others are Spark
expressions, and the pieces are concatenated. A code with no Spark form, or a format that
is not a text literal, fails in one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import sqlglot.expressions as exp

from nbgov.errors import SqlError

# DuckDB codes whose Java pattern (Spark's DATE_FORMAT, Locale US) writes the same text
_PATTERNS = {
    "Y": "yyyy", "m": "MM", "d": "dd", "H": "HH", "M": "mm", "S": "ss", "f": "SSSSSS", "g": "SSS", "n": "SSSSSSSSS",
    "y": "yy", "b": "MMM", "h": "MMM", "B": "MMMM", "a": "EEE", "A": "EEEE", "p": "a", "I": "hh", "j": "DDD",
    "c": "yyyy-MM-dd HH:mm:ss", "x": "yyyy-MM-dd", "X": "HH:mm:ss", "T": "HH:mm:ss",
    "-d": "d", "-m": "M", "-H": "H", "-I": "h", "-M": "m", "-S": "s", "-j": "D",
}
_LTZ = "timestamp"  # Spark's TYPEOF of a TIMESTAMP with a time zone (DuckDB's TIMESTAMPTZ)


def _call(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _text(value: exp.Expr, width: int = 0) -> exp.Expr:
    """A number as text, zero-padded to ``width``."""
    text = exp.cast(value, exp.DataType.build("string"))
    return _call("LPAD", text, exp.Literal.number(width), exp.Literal.string("0")) if width else text


def _from_sunday(value: exp.Expr) -> exp.Expr:
    """The day of the week, 0 = Sunday (Spark's DAYOFWEEK: 1 = Sunday)."""
    return exp.paren(exp.Sub(this=_call("DAYOFWEEK", value), expression=exp.Literal.number(1)), copy=False)


def _from_monday(value: exp.Expr) -> exp.Expr:
    """The day of the week, 0 = Monday (Spark's own WEEKDAY is taken for DuckDB's, 0 = Sunday)."""
    shifted = exp.paren(exp.Add(this=_call("DAYOFWEEK", value), expression=exp.Literal.number(5)), copy=False)
    return exp.paren(exp.Mod(this=shifted, expression=exp.Literal.number(7)), copy=False)


def _week(value: exp.Expr, weekday: exp.Expr) -> exp.Expr:
    """C's week of the year, 00-53: ``(day of year, from 0, + 7 - weekday from the week's
    first day) / 7``."""
    days = exp.Add(this=_call("DAYOFYEAR", value), expression=exp.Literal.number(6))
    return _text(exp.IntDiv(this=exp.paren(exp.Sub(this=days, expression=weekday), copy=False), expression=exp.Literal.number(7)), 2)


def _zone(value: exp.Expr, code: str, naive: str) -> exp.Expr:
    """``%z`` / ``%Z`` of a value without a zone (DATE, TIMESTAMP): ``naive``, as DuckDB
    writes it, NULL for NULL. Of a TIMESTAMP WITH TIME ZONE, DuckDB writes its own zone,
    which Spark's session zone need not be: refused."""
    refused = _call("RAISE_ERROR", exp.Literal.string(
        f"strftime {code} of a TIMESTAMP WITH TIME ZONE is DuckDB-only on the spark engine (its time zone is Spark's session zone)"))
    tz_aware = exp.EQ(this=_call("TYPEOF", value), expression=exp.Literal.string(_LTZ))
    present = exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null()))
    return exp.Case(ifs=[exp.If(this=tz_aware, true=refused), exp.If(this=present, true=exp.Literal.string(naive))])


# DuckDB codes Spark's patterns write otherwise (or not at all), as expressions of the value
_EXPRESSIONS: dict[str, Callable[[exp.Expr], exp.Expr]] = {
    "w": lambda v: _text(_from_sunday(v)),  # 0 = Sunday
    "u": lambda v: _text(exp.Add(this=_from_monday(v), expression=exp.Literal.number(1))),  # 1 = Monday
    "U": lambda v: _week(v, _from_sunday(v.copy())),  # weeks from the year's first Sunday
    "W": lambda v: _week(v, _from_monday(v.copy())),  # from its first Monday
    "V": lambda v: _text(_call("WEEKOFYEAR", v), 2),  # ISO week
    "G": lambda v: _text(_call("DATE_PART", exp.Literal.string("YEAROFWEEK"), v), 4),  # ISO year
    "-y": lambda v: _text(exp.Mod(this=_call("YEAR", v), expression=exp.Literal.number(100))),
    "z": lambda v: _zone(v, "%z", "+00"),
    "Z": lambda v: _zone(v, "%Z", ""),
}


def formatted_time(node: exp.TimeToStr) -> exp.Expr:
    """DuckDB's ``strftime(value, format)`` as Spark's DATE_FORMAT calls and expressions."""
    value, fmt = node.this, node.args.get("format")
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise SqlError("strftime needs a text literal format on the spark engine")
    pieces: list[exp.Expr] = []
    pattern: list[str] = []
    for code, text in _tokens(fmt.this):
        if code is None or code in _PATTERNS:
            pattern.append(_quoted(text) if code is None else _PATTERNS[code])
            continue
        if pattern:
            pieces.append(_call("DATE_FORMAT", value.copy(), exp.Literal.string("".join(pattern))))
            pattern = []
        pieces.append(_EXPRESSIONS[code](value.copy()))
    if pattern or not pieces:
        pieces.append(_call("DATE_FORMAT", value.copy(), exp.Literal.string("".join(pattern))))
    return pieces[0] if len(pieces) == 1 else _call("CONCAT", *pieces)


# DuckDB codes read by strptime and the Java pattern that reads the same text: numbers with
# one letter, as DuckDB reads them with or without their leading zeros (Spark's parser takes
# "dd" as exactly two digits)
_PARSED = {
    "Y": "yyyy", "m": "M", "d": "d", "H": "H", "M": "m", "S": "s", "f": "SSSSSS", "g": "SSS", "n": "SSSSSSSSS",
    "y": "yy", "b": "MMM", "h": "MMM", "B": "MMMM", "a": "EEE", "A": "EEEE", "p": "a", "I": "h", "j": "D",
    "c": "yyyy-M-d H:m:s", "x": "yyyy-M-d", "X": "H:m:s", "T": "H:m:s",
    "-d": "d", "-m": "M", "-H": "H", "-I": "h", "-M": "m", "-S": "s", "-j": "D",
}


def parsing_pattern(node: exp.StrToTime) -> str:
    """DuckDB's ``strptime(text, format)`` format as the Java pattern Spark's TO_TIMESTAMP
    reads with: the format's own text quoted (sqlglot left ``'Date: %Y'``'s letters as
    pattern letters), ``%j`` as a day of the year of up to three digits (sqlglot's ``DD``
    read 065 as nothing). A code with no Java pattern, a list of formats or a format that is
    not a text literal fails in one line."""
    fmt = node.args.get("format")
    if not (isinstance(fmt, exp.Literal) and fmt.is_string):
        raise SqlError("strptime needs one text literal format on the spark engine")
    pattern = []
    for code, text in _tokens(fmt.this, "strptime"):
        if code is not None and code not in _PARSED:
            raise SqlError(f"strptime code {text} has no Spark form; it is not supported on the spark engine")
        pattern.append(_quoted(text) if code is None else _PARSED[code])
    return "".join(pattern)


def _tokens(fmt: str, function: str = "strftime") -> Iterator[tuple[str | None, str]]:
    """The format's pieces in order: (code, its text) for a ``%`` code, (None, text) for
    the text between codes (``%%`` is text: ``%``)."""
    position, text = 0, ""
    while position < len(fmt):
        char = fmt[position]
        if char != "%":
            text, position = text + char, position + 1
            continue
        width = 3 if fmt[position + 1 : position + 2] == "-" else 2
        code = fmt[position + 1 : position + width]
        if code == "%":
            text, position = text + "%", position + 2
            continue
        if code not in _PATTERNS and code not in _EXPRESSIONS:
            raise SqlError(f"{function} code %{code} has no Spark form; it is not supported on the spark engine")
        if text:
            yield None, text
            text = ""
        yield code, fmt[position : position + width]
        position += width
    if text:
        yield None, text


def _quoted(text: str) -> str:
    """Text in a Java date pattern: quoted, a quote doubled."""
    return "'" + text.replace("'", "''") + "'"
