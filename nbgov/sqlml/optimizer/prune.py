"""Predicate-based pruning: drop tree branches no row allowed by the query can reach.

Each tree is walked from the root carrying, per feature, the values a row can
still have (the query's constraints narrowed by the tests taken on the path).
A test decided by that domain is replaced by its one reachable child; the
others keep both.  Trees are never removed and leaves keep their weights in
order, so on allowed rows the pruned ensemble adds the same numbers in the same
order as the original: outputs are identical, not merely close.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree
from nbgov.sqlml.optimizer.domains import ModelDomain
from nbgov.sqlml.optimizer.label_rule import keep_label_rule
from nbgov.sqlml.optimizer.to_sql import ort_test

if TYPE_CHECKING:
    from nbgov.sqlml.optimizer.state import PlanState

_FULL = ModelDomain(lo=-math.inf, hi=math.inf, values=None, nan=True)


@dataclass(frozen=True)
class Pruning:
    """What pruning left of the model's forests; ``key`` names it (model + predicates)."""

    key: str
    forests: tuple[Forest, ...]
    nodes_before: int
    nodes_after: int


@dataclass(frozen=True)
class PruneResult:
    """The pruned forest and node counts before/after."""

    forest: Forest
    nodes_before: int
    nodes_after: int


def rule(state: PlanState) -> PlanState:
    """Rule 2: prune every tree ensemble of the model with the query's constraints
    (``state.pruning``); pruned forests are kept per model and predicate."""
    if state.trees is None or state.constraints is None:
        return state
    trees, constraints = state.trees, state.constraints
    domains = {
        j: domain.in_model_space(trees.elem_type)
        for (i, j), domain in constraints.domains.items()
        if i == 0 and not domain.unconstrained
    }
    empty = any(not d.nan and (d.values == () or (d.values is None and d.lo > d.hi)) for d in domains.values())
    if empty:
        domains = {}
    normalized = ";".join(f"{j}:{domains[j].key()}" for j in sorted(domains))
    key = f"{state.call.model.sha256}:pruned:{xxhash.xxh3_128_hexdigest(normalized.encode())}"
    reused = state.memo.has("pruned", key)

    def build() -> Pruning:
        results = [prune_forest(forest, domains) for forest in trees.forests]
        return Pruning(
            key,
            tuple(keep_label_rule(forest, r.forest) for forest, r in zip(trees.forests, results)),
            sum(r.nodes_before for r in results),
            sum(r.nodes_after for r in results),
        )

    pruning = state.memo.get("pruned", key, build)
    before, after = pruning.nodes_before, pruning.nodes_after
    state = replace(state, pruning=pruning).with_stats(nodes_before=before, nodes_after=after, trees=trees.tree_count)
    using = " AND ".join(constraints.text)
    if after < before:
        state = state.note(f"pruned {before - after:,} of {before:,} tree nodes" + (f" using {using}" if using else ""))
        return state.note("pruned model reused from cache") if reused else state
    if empty:
        return state.note("no pruning: the predicate admits no rows")
    if domains:
        return state.note(f"no tree nodes pruned: no test is decided by {using}")
    return state.note(f"no pruning: no usable predicate on the model's inputs ({before:,} tree nodes)")


def prune_forest(forest: Forest, domains: dict[int, ModelDomain]) -> PruneResult:
    """Prune every tree of ``forest`` for rows whose feature f lies in ``domains[f]``."""
    dtype = forest.threshold_dtype
    trees = [_prune_tree(tree, dict(domains), dtype) for tree in forest.trees]
    pruned = replace(forest, trees=trees)
    return PruneResult(pruned, forest.node_count, pruned.node_count)


def _prune_tree(tree: Tree, domains: dict[int, ModelDomain], dtype: type) -> Tree:
    out = Tree()

    def visit(pos: int, doms: dict[int, ModelDomain]) -> int:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            out.nodes.append(Leaf(list(node.weights)))
            return len(out.nodes) - 1
        dom = doms.get(node.feature, _FULL)
        can_true, can_false = reachable(node, dom)
        if can_true != can_false:
            # Decided: the whole subtree on the other side is unreachable.
            child = node.true if can_true else node.false
            return visit(child, _narrowed(doms, node, can_true, dtype))
        if not can_true:  # no row reaches this node at all; keep it intact
            return _copy(pos)
        me = len(out.nodes)
        copy = Branch(
            node.feature, node.threshold, node.mode, node.nan_true, -1, -1, node.members
        )
        out.nodes.append(copy)
        copy.true = visit(node.true, _narrowed(doms, node, True, dtype))
        copy.false = visit(node.false, _narrowed(doms, node, False, dtype))
        return me

    def _copy(pos: int) -> int:
        node = tree.nodes[pos]
        if isinstance(node, Leaf):
            out.nodes.append(Leaf(list(node.weights)))
            return len(out.nodes) - 1
        me = len(out.nodes)
        copy = Branch(
            node.feature, node.threshold, node.mode, node.nan_true, -1, -1, node.members
        )
        out.nodes.append(copy)
        copy.true = _copy(node.true)
        copy.false = _copy(node.false)
        return me

    visit(0, domains)
    return out


def nan_goes_true(node: Branch) -> bool:
    """Where onnxruntime sends NaN: the comparison is false (true for NEQ) unless tracked."""
    return node.nan_true or node.mode == "BRANCH_NEQ"


def reachable(node: Branch, dom: ModelDomain) -> tuple[bool, bool]:
    """Whether some allowed value takes the true branch, and whether some takes the false one
    (a NaN threshold sends every number one way: ``ort_test``)."""
    node = ort_test(node)
    t = node.threshold
    can_true = can_false = False
    if dom.nan:
        if nan_goes_true(node):
            can_true = True
        else:
            can_false = True
    if node.mode == "BRANCH_MEMBER":
        return True, True
    if dom.values is not None:
        for v in dom.values:
            if _test(node.mode, v, t):
                can_true = True
            else:
                can_false = True
        return can_true, can_false
    lo, hi = dom.lo, dom.hi
    if lo > hi:
        return can_true, can_false
    mode = node.mode
    if mode == "BRANCH_LEQ":
        can_true |= lo <= t
        can_false |= hi > t
    elif mode == "BRANCH_LT":
        can_true |= lo < t
        can_false |= hi >= t
    elif mode == "BRANCH_GTE":
        can_true |= hi >= t
        can_false |= lo < t
    elif mode == "BRANCH_GT":
        can_true |= hi > t
        can_false |= lo <= t
    elif mode == "BRANCH_EQ":
        can_true |= lo <= t <= hi
        can_false |= not (lo == hi == t)
    elif mode == "BRANCH_NEQ":
        can_true |= not (lo == hi == t)
        can_false |= lo <= t <= hi
    else:
        return True, True
    return can_true, can_false


def _test(mode: str, v: float, t: float) -> bool:
    if mode == "BRANCH_LEQ":
        return v <= t
    if mode == "BRANCH_LT":
        return v < t
    if mode == "BRANCH_GTE":
        return v >= t
    if mode == "BRANCH_GT":
        return v > t
    if mode == "BRANCH_EQ":
        return v == t
    return v != t


def _narrowed(
    doms: dict[int, ModelDomain], node: Branch, went_true: bool, dtype: type
) -> dict[int, ModelDomain]:
    """Domains after taking one branch of ``node`` (exact: inputs and thresholds share a float type)."""
    node = ort_test(node)
    dom = doms.get(node.feature, _FULL)
    t = node.threshold
    up = float(np.nextafter(dtype(t), dtype(math.inf)))
    down = float(np.nextafter(dtype(t), dtype(-math.inf)))
    lo, hi = dom.lo, dom.hi
    mode = node.mode
    # (lower, upper) the numeric part of the value must satisfy on this branch
    bounds: dict[tuple[str, bool], tuple[float, float]] = {
        ("BRANCH_LEQ", True): (-math.inf, t),
        ("BRANCH_LEQ", False): (up, math.inf),
        ("BRANCH_LT", True): (-math.inf, down),
        ("BRANCH_LT", False): (t, math.inf),
        ("BRANCH_GTE", True): (t, math.inf),
        ("BRANCH_GTE", False): (-math.inf, down),
        ("BRANCH_GT", True): (up, math.inf),
        ("BRANCH_GT", False): (-math.inf, t),
        ("BRANCH_EQ", True): (t, t),
        ("BRANCH_NEQ", False): (t, t),
    }
    lower, upper = bounds.get((mode, went_true), (-math.inf, math.inf))
    lo, hi = max(lo, lower), min(hi, upper)
    values = dom.values
    if values is not None:
        values = tuple(v for v in values if lo <= v <= hi)
    nan = dom.nan and (nan_goes_true(node) == went_true)
    new = dict(doms)
    new[node.feature] = ModelDomain(lo=lo, hi=hi, values=values, nan=nan)
    return new
