"""DuckDB's plans for EXPLAIN, from ``EXPLAIN (FORMAT json)``, drawn at a notebook's width
(``planning.plantext``) with row estimates said as honestly as DuckDB knows them.

DuckDB's estimate is a whole number: ``~0 rows`` above inputs of hundreds of rows meant
an estimate below one, and is said ``<1 row``. A table scored before the query is
planned with an empty stand-in (nothing is scored by EXPLAIN), so DuckDB's ``~0`` there
and above it were no estimate at all: the stand-in's scan says which rows it reads and
the estimate of the relation they are scored from, and an operator whose ``~0`` comes
from it says ``rows unknown``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nbgov.sqlml.planning.plantext import WIDTH, PlanNode, render_tree, rows_text, unwrap

_ESTIMATE = "Estimated Cardinality"


@dataclass(frozen=True)
class StandIn:
    """An empty table standing in for rows scored before the query: what scores them (a
    step's label), its columns (lower case) and the estimate of the relation scored."""

    label: str
    columns: frozenset[str]
    rows: float | None


@dataclass(frozen=True)
class DrawnPlan:
    """A plan's text, and its root's estimate (None: unknown) for a stand-in of its rows."""

    text: str
    rows: float | None


def draw(explained: Sequence[tuple[str, str]], stand_ins: Sequence[StandIn], width: int = WIDTH) -> DrawnPlan:
    """The rows of ``EXPLAIN (FORMAT json)`` (kind, JSON) as one text ``width`` wide; a
    setting such as ``explain_output = 'all'`` gives several plans, each headed by its kind."""
    parts: list[str] = []
    rows: float | None = None
    for kind, document in explained:
        trees: list[str] = []
        for root in json.loads(document):
            node, rows = _node(root, stand_ins)
            trees.append(render_tree(node, width))
        text = "\n".join(trees)
        parts.append(f"{kind}:\n{text}" if len(explained) > 1 else text)
    return DrawnPlan("\n".join(parts), rows)


def _node(raw: dict[str, Any], stand_ins: Sequence[StandIn]) -> tuple[PlanNode, float | None]:
    """A JSON operator as a ``PlanNode``, and its estimate as its parent reads it."""
    drawn = [_node(child, stand_ins) for child in raw.get("children") or ()]
    info: dict[str, Any] = raw.get("extra_info") or {}
    name = str(raw.get("name", "?")).replace("_", " ").title()
    details = tuple((str(key), tuple(map(unwrap, _items(value)))) for key, value in info.items() if key != _ESTIMATE)
    estimate = _count(info.get(_ESTIMATE))
    stand_in = _stand_in(info, stand_ins) if not drawn and estimate == 0 else None
    if stand_in is not None:  # DuckDB planned what reads it with no rows: its parents' estimates are none
        reads = ("Reads", (f"the rows {stand_in.label} scored before this query (its plan follows)",))
        return PlanNode(name, rows_text(stand_in.rows), (reads, *details)), None
    rows, text = _honest(estimate, [rows for _, rows in drawn], empty=str(raw.get("name")) == "EMPTY_RESULT")
    return PlanNode(name, text, details, tuple(node for node, _ in drawn)), rows


def _honest(estimate: int | None, inputs: list[float | None], *, empty: bool) -> tuple[float | None, str | None]:
    """(estimate for the parent, text shown) of an operator DuckDB estimates at
    ``estimate`` rows over inputs estimated at ``inputs`` (None: unknown)."""
    if estimate is None:
        return (0.0 if empty else None), None
    if estimate > 0 or not inputs or any(rows == 0 for rows in inputs):
        return float(estimate), rows_text(estimate)
    if any(rows is None for rows in inputs):
        return None, rows_text(None)  # DuckDB's 0 comes from an input it could not estimate
    return 0.5, rows_text(0.5)  # rows in, a whole-number estimate of 0 out: below one


def _stand_in(info: dict[str, Any], stand_ins: Sequence[StandIn]) -> StandIn | None:
    """The stand-in an empty scan reads: one whose columns hold every column it reads.
    Stand-ins alike in columns but not in label or estimate are named together."""
    read = {name.lower() for name in _items(info.get("Projections", ()))}
    found = [s for s in stand_ins if read <= s.columns]
    if not found:
        return None
    labels = list(dict.fromkeys(s.label for s in found))
    estimates = {s.rows for s in found}
    rows = estimates.pop() if len(estimates) == 1 else None
    return StandIn(" or ".join(labels), found[0].columns, rows)


def _items(value: Any) -> tuple[str, ...]:
    """A detail's value as items: DuckDB gives a string, a list, or lines in a string."""
    values = value if isinstance(value, list) else [value]
    return tuple(line for item in values for line in str(item).split("\n") if line.strip())


def _count(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None
