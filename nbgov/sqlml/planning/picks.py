"""Which model outputs a query reads, so that batched scoring computes and returns only
those: ``predict(m, ...).probabilities[2]`` needs one float per row, not a STRUCT of a
label and a LIST. The same for ``ML.PREDICT``'s ``predicted_<output>`` columns.
"""

from __future__ import annotations

from collections.abc import Sequence
import sqlglot.expressions as exp

from nbgov.sqlml.models.onnxtypes import width
from nbgov.sqlml.planning.fields import constant_index
from nbgov.sqlml.plan import TensorSpec
from nbgov.sqlml.planning.prepared import Pick


def output_access(node: exp.Expression, outputs: Sequence[TensorSpec]) -> tuple[exp.Expression, Pick]:
    """What of ``predict(...)`` (``node``) the query reads: ``.field`` of a several-output
    STRUCT, then ``[k]`` of a list output. Returns the outermost node read and the pick
    (its column name left empty); the whole value when nothing narrower is read."""
    spec: TensorSpec | None = outputs[0] if len(outputs) == 1 else None
    parent = node.parent
    if spec is None:
        if not (isinstance(parent, exp.Dot) and parent.this is node and isinstance(parent.expression, exp.Identifier)):
            return node, Pick("")
        field = parent.expression.name.lower()
        spec = next((o for o in outputs if o.name.lower() == field), None)
        if spec is None:  # DuckDB names the missing field
            return node, Pick("")
        node = parent
    read = _element(node, spec)
    if read is not None:
        return read[0], Pick("", spec.name, read[1])
    return node, Pick("", spec.name)


def _element(node: exp.Expression, spec: TensorSpec) -> tuple[exp.Bracket, int] | None:
    """``node[k]`` of a list output: the bracket and the 0-based k (None: not such a read)."""
    parent, cols = node.parent, width(spec)
    if not isinstance(parent, exp.Bracket) or parent.this is not node or cols is None or cols < 2:
        return None
    index = constant_index(parent)
    return (parent, index) if index is not None and 0 <= index < cols else None


def relation_picks(
    tree: exp.Expression, table: str, outputs: Sequence[TensorSpec], prefix: str
) -> tuple[list[Pick], list[tuple[exp.Expression, str]]] | None:
    """The ``predicted_<output>`` columns (or their elements) the query ``tree`` reads of
    the ML.PREDICT relation named ``table``, with the nodes to replace by helper columns.

    Only where every read is provably of that relation: it is read once, by a SELECT
    with no join, subquery, ``*`` or alias named like a predicted column. None: all.
    """
    tables = [t for t in tree.find_all(exp.Table) if t.name == table]
    if len(tables) != 1 or not isinstance(tables[0].parent, exp.From):
        return None
    select = tables[0].parent.parent
    if not isinstance(select, exp.Select) or select.args.get("joins") or select.args.get("laterals"):
        return None
    named = {f"predicted_{o.name}".lower(): o for o in outputs}
    body = [n for n in select.walk() if n is not select and n is not tables[0]]
    if any(isinstance(n, (exp.Select, exp.Subquery, exp.Columns)) for n in body):
        return None
    if any(isinstance(n, exp.Star) and not isinstance(n.parent, exp.Count) for n in body):
        return None
    if any(e.alias and e.alias.lower() in named for e in select.expressions):
        return None
    reads: dict[str, list[exp.Expression]] = {}
    for column in (n for n in body if isinstance(n, exp.Column)):
        if column.table and column.table.lower() != tables[0].alias_or_name.lower():
            return None
        if column.name.lower() in named:
            reads.setdefault(column.name.lower(), []).append(column)
    picks: list[Pick] = []
    replaced: list[tuple[exp.Expression, str]] = []
    for name, spec in named.items():
        elements = [_element(use, spec) for use in reads.get(name, [])]
        if any(e is None for e in elements):
            picks.append(Pick(f"predicted_{spec.name}", spec.name))
            continue
        columns: dict[int, str] = {}
        for read in elements:
            assert read is not None
            bracket, element = read
            if element not in columns:
                columns[element] = f"{prefix}{len(picks)}_{element}"
                picks.append(Pick(columns[element], spec.name, element))
            replaced.append((bracket, columns[element]))
    return (picks, replaced) if picks else None  # nothing read: score as usual (and report errors)
