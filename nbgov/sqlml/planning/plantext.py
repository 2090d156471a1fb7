"""EXPLAIN text that reads at the width it is shown at (a notebook's, ``widths.py``).

DuckDB's boxes grow as wide as their longest expression (an inlined tree's CASE ran to
~400 characters a line) and put a join's inputs side by side; soft-wrapped by the
browser, the boxes fell apart. A plan is drawn instead as an indented tree, as Spark's
``explain`` draws one, each operator's details wrapped under it. An expression too long
for a few lines keeps its outer CASE levels and shows deeper ones as ``CASE … END``,
saying how many were left out, as Spark says "... 5 more fields"; only CASE expressions
of comparisons, casts and constants are left out (a model call inside one stays), and
what is shown is the text as the engine wrote it. Prose (nbgov's notes) is wrapped,
between clauses where it can be.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import SqlglotError
from sqlglot.tokens import Token, TokenType

from nbgov.sqlml.planning.widths import MIN_WIDTH, WIDTH

LONG = 320
"""An expression longer than this (four lines or so) is shortened."""

_NARROWEST = MIN_WIDTH  # text columns kept however deep a plan's tree is indented
_HANG = 16  # continuation lines of a detail align after "Key: " up to this many columns
_ELIDED = "CASE … END"
_NOT_CALLS = frozenset({"CAST", "TRY_CAST", "WHEN", "THEN", "ELSE", "AND", "OR", "NOT", "IN", "IS", "CASE"})


@dataclass(frozen=True)
class PlanNode:
    """One operator of a plan: its name, its row estimate as text (None: the engine gave
    none), its details as (key, items) and its inputs."""

    name: str
    rows: str | None
    details: tuple[tuple[str, tuple[str, ...]], ...]
    children: tuple[PlanNode, ...] = ()


def rows_text(rows: float | None) -> str:
    """An estimate as a reader should take it: below one row is ``<1 row``, not ``~0``."""
    if rows is None:
        return "rows unknown"
    if rows == 0:
        return "~0 rows"
    if rows < 1:
        return "<1 row"
    count = round(rows)
    return "~1 row" if count == 1 else f"~{count:,} rows"


def render_tree(root: PlanNode, width: int = WIDTH, dialect: str = "duckdb") -> str:
    """The plan as an indented tree: an operator, its details, then its inputs below it."""
    lines: list[str] = []

    def visit(node: PlanNode, lead: str, body: str) -> None:
        title = f"{node.name} ({node.rows})" if node.rows else node.name
        lines.extend(_pack([title], width, lead, body + "   "))
        inner = body + ("│  " if node.children else "   ")
        for key, items in node.details:
            lines.extend(detail_lines(key, items, inner, width, dialect))
        for index, child in enumerate(node.children):
            last = index == len(node.children) - 1
            visit(child, body + ("└─ " if last else "├─ "), body + ("   " if last else "│  "))

    visit(root, "", "")
    return "\n".join(lines)


def detail_lines(key: str, items: Sequence[str], prefix: str, width: int, dialect: str) -> list[str]:
    """``key: item, item, ...`` under ``prefix``, continuation lines aligned after the key."""
    head = f"{key}: " if key else ""
    hang = " " * (len(head) if len(head) <= _HANG else 4)
    pieces = [shorten(item, dialect) + ("," if index < len(items) - 1 else "") for index, item in enumerate(items)]
    text_width = max(width - len(prefix), _NARROWEST)
    return [prefix + line for line in _pack(pieces or [""], text_width, head, hang)]


def wrap_line(line: str, width: int = WIDTH) -> list[str]:
    """A line of prose at most ``width`` wide: broken after a clause's ``;`` where it can,
    else between words; continuation lines indented four past the line's own indent."""
    if len(line) <= width:
        return [line]
    body = line.lstrip(" ")
    lead = line[: len(line) - len(body)]
    clauses = body.split("; ")
    pieces = [clause + (";" if index < len(clauses) - 1 else "") for index, clause in enumerate(clauses)]
    return _pack(pieces, width, lead, lead + "    ")


def fit(text: str, width: int = WIDTH) -> str:
    """Every line of ``text`` wrapped to ``width`` (lines that fit are left as they are)."""
    return "\n".join(wrapped for line in text.split("\n") for wrapped in wrap_line(line, width))


def fit_plan(text: str, dialect: str, width: int = WIDTH) -> str:
    """An engine's own plan text (Spark's) at ``width``: long expressions shortened, long
    lines wrapped under their indent."""
    return fit("\n".join(shorten(line, dialect) for line in text.split("\n")), width)


def shorten(text: str, dialect: str, limit: int = LONG) -> str:
    """``text`` with its deepest CASE expressions shown as ``CASE … END`` until it is at
    most ``limit`` long (the outermost CASE levels always kept), and how many were left
    out; text that is short, has no such CASE or does not tokenize is returned as is."""
    if len(text) <= limit:
        return text
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except (SqlglotError, ValueError):
        return text
    spans = _case_spans(tokens)
    if not spans:
        return text
    deepest = max(depth for _, _, depth in spans)
    best = text
    for cut in range(deepest, 0, -1):
        shortened, hidden = _elide(text, tokens, spans, cut)
        if hidden:
            noun = "expression" if hidden == 1 else "expressions"
            best = f"{shortened} [{_ELIDED}: {hidden:,} nested CASE {noun} not shown]"
        if len(best) <= limit:
            break
    return best


def unwrap(text: str, dialect: str = "duckdb") -> str:
    """``text`` without parentheses around all of it (DuckDB's JSON plan writes a filter
    ``(age > 60.0)``, its own boxes ``age > 60.0``)."""
    if not text.startswith("(") or not text.endswith(")"):
        return text
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(text)
    except (SqlglotError, ValueError):
        return text
    depth = 0
    for index, token in enumerate(tokens):
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        if depth == 0:
            return text[1:-1] if index == len(tokens) - 1 else text
    return text


def _case_spans(tokens: list[Token]) -> list[tuple[int, int, int]]:
    """(first token, last token, nesting depth) of every CASE ... END; none if unbalanced."""
    spans: list[tuple[int, int, int]] = []
    open_at: list[int] = []
    for index, token in enumerate(tokens):
        if token.token_type == TokenType.CASE:
            open_at.append(index)
        elif token.token_type == TokenType.END:
            if not open_at:
                return []
            start = open_at.pop()
            spans.append((start, index, len(open_at)))
    return [] if open_at else sorted(spans)


def _elide(text: str, tokens: list[Token], spans: list[tuple[int, int, int]], cut: int) -> tuple[str, int]:
    """``text`` with each outermost CASE at depth ``cut`` or deeper that calls no function
    shown as ``CASE … END``; and how many CASE expressions that hides."""
    pieces: list[str] = []
    position, hidden, covered = 0, 0, -1
    for start, end, depth in spans:
        if start <= covered or depth < cut or not _plain(tokens, start, end):
            continue
        pieces += [text[position : tokens[start].start], _ELIDED]
        position = tokens[end].end + 1
        covered = end
        hidden += sum(1 for s, e, _ in spans if start <= s and e <= end)
    return "".join(pieces) + text[position:], hidden


def _plain(tokens: list[Token], start: int, end: int) -> bool:
    """Whether tokens ``start..end`` call no function but CAST: comparisons, casts and
    constants only, so nothing a reader looks for (a model call) is hidden."""
    for index in range(start, end):
        token, after = tokens[index], tokens[index + 1]
        if after.token_type == TokenType.L_PAREN and token.text.isidentifier() and token.text.upper() not in _NOT_CALLS:
            return False
    return True


def _pack(pieces: Sequence[str], width: int, first: str, rest: str) -> list[str]:
    """``pieces`` joined by spaces into lines at most ``width`` wide, the first line led by
    ``first`` and the others by ``rest``; a line breaks between pieces where it can and
    inside one (between words, a word only if it is itself too long) where it cannot or
    where breaking before the piece would leave its line less than half full."""
    lines: list[str] = []
    line, filled = first, False
    for piece in pieces:
        joined = f"{line} {piece}" if filled else line + piece
        if len(joined) <= width:
            line, filled = joined, True
            continue
        if filled and len(line) - len(rest) >= width // 2:
            lines.append(line)
            line, filled = rest, False
        wrapped = textwrap.wrap(
            piece, width=width, initial_indent=f"{line} " if filled else line, subsequent_indent=rest,
            break_on_hyphens=False, drop_whitespace=True,
        ) or [line]
        lines += wrapped[:-1]
        line, filled = wrapped[-1], True
    lines.append(line)
    return lines
