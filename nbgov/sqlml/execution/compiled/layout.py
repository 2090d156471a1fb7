"""Trees flattened into the arrays the generated kernel walks.

Each tree's nodes are laid out breadth first with the two children of a branch side
by side (true child at ``base``, false child at ``base + 1``), so one step is
``node = base + !condition`` with no branch for the CPU to mispredict. A leaf loops
on itself (its condition is always false, its ``base`` is its own index minus one),
so every row can take exactly ``depth`` steps in a tree: rows then advance in lock
step, several at a time, and the loop has no data-dependent exit.

Node tests keep onnxruntime's modes (see ``ensemble.py``); when every branch of the
model uses one mode the kernel compares with that mode alone.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from nbgov.sqlml.execution.compiled.ensemble import Aggregate, Ensemble
from nbgov.sqlml.models.forest import Branch, Leaf, Tree

# Operation codes shared with the generated C (codegen.py).
OPS = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ", "BRANCH_MEMBER")
NEQ = OPS.index("BRANCH_NEQ")
LEQ = OPS.index("BRANCH_LEQ")


@dataclass(frozen=True)
class Layout:
    """Flat arrays over all trees; node indices inside a tree are relative to its offset."""

    value_dtype: type  # np.float32 or np.float64
    thresholds: np.ndarray
    bases: np.ndarray  # uint32, tree-relative index of the true child (the false one follows)
    features: np.ndarray  # uint32
    ops: np.ndarray  # uint8, index into OPS
    nan_true: np.ndarray  # uint8: NaN goes to the true child
    leaves: np.ndarray  # uint8: the node is a leaf
    tree_offsets: np.ndarray  # int64, first node of each tree
    depths: np.ndarray  # int32, steps from the root to the deepest leaf
    leaf_values: np.ndarray  # single output: the leaf's first weight (0 on branches)
    entry_offsets: np.ndarray  # uint32 per node: first (class, weight) entry of a leaf
    entry_counts: np.ndarray  # uint32 per node
    entry_classes: np.ndarray  # uint32
    entry_values: np.ndarray
    member_offsets: np.ndarray  # uint32 per node (BRANCH_MEMBER)
    member_counts: np.ndarray
    members: np.ndarray  # int32
    uniform_op: int | None  # the one mode of every branch, if there is one
    tree_classes: np.ndarray | None  # multi-output: the one class each tree's leaves all write, if so
    static_scored: tuple[bool, ...] | None  # multi-output: classes scored for every row (None: per row)

    @property
    def node_count(self) -> int:
        return len(self.thresholds)

    @property
    def max_tree_nodes(self) -> int:
        ends = np.append(self.tree_offsets[1:], self.node_count)
        return int((ends - self.tree_offsets).max()) if len(self.tree_offsets) else 0

    @property
    def uses_nan_tracks(self) -> bool:
        return bool(self.nan_true.any())

    @property
    def uses_members(self) -> bool:
        return bool(len(self.members)) or self.uniform_op == OPS.index("BRANCH_MEMBER")


def lay_out(ensemble: Ensemble) -> Layout:
    """Flatten ``ensemble`` (pure: no compilation, no I/O)."""
    value_dtype = np.float64 if ensemble.value_type == "double" else np.float32
    modes = {n.mode for t in ensemble.forest.trees for n in t.nodes if isinstance(n, Branch)}
    uniform = OPS.index(modes.pop()) if len(modes) == 1 else None
    leaf_op = uniform if uniform is not None and uniform != OPS.index("BRANCH_MEMBER") else LEQ
    columns = _Columns()
    offsets: list[int] = []
    depths: list[int] = []
    for tree in ensemble.forest.trees:
        offsets.append(len(columns.thresholds))
        depths.append(tree_depth(tree))
        order = _breadth_first(tree)
        positions = {index: position for position, index in enumerate(order)}
        for position, index in enumerate(order):
            columns.add(tree.nodes[index], position, positions, leaf_op)
    multi = not ensemble.single_output
    return Layout(
        value_dtype=value_dtype,
        thresholds=np.array(columns.thresholds, dtype=value_dtype),
        bases=np.array(columns.bases, dtype=np.uint32),
        features=np.array(columns.features, dtype=np.uint32),
        ops=np.array(columns.ops, dtype=np.uint8),
        nan_true=np.array(columns.nan_true, dtype=np.uint8),
        leaves=np.array(columns.leaves, dtype=np.uint8),
        tree_offsets=np.array(offsets, dtype=np.int64),
        depths=np.array(depths, dtype=np.int32),
        leaf_values=np.array(columns.leaf_values, dtype=value_dtype),
        entry_offsets=np.array(columns.entry_offsets, dtype=np.uint32),
        entry_counts=np.array(columns.entry_counts, dtype=np.uint32),
        entry_classes=np.array(columns.entry_classes, dtype=np.uint32),
        entry_values=np.array(columns.entry_values, dtype=value_dtype),
        member_offsets=np.array(columns.member_offsets, dtype=np.uint32),
        member_counts=np.array(columns.member_counts, dtype=np.uint32),
        members=np.array(columns.members, dtype=np.int32),
        uniform_op=uniform,
        tree_classes=_tree_classes(ensemble.forest.trees) if multi else None,
        static_scored=_static_scored(ensemble) if multi else None,
    )


def _breadth_first(tree: Tree) -> list[int]:
    """Node indices in layout order: each branch's true and false child adjacent."""
    order = [0]
    queue = deque([0])
    while queue:
        node = tree.nodes[queue.popleft()]
        if isinstance(node, Branch):
            order.extend((node.true, node.false))
            queue.extend((node.true, node.false))
    return order


@dataclass
class _Columns:
    """The node fields as they are appended, one entry per node in layout order."""

    thresholds: list[float] = field(default_factory=list)
    bases: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    ops: list[int] = field(default_factory=list)
    nan_true: list[int] = field(default_factory=list)
    leaves: list[int] = field(default_factory=list)
    leaf_values: list[float] = field(default_factory=list)
    entry_offsets: list[int] = field(default_factory=list)
    entry_counts: list[int] = field(default_factory=list)
    entry_classes: list[int] = field(default_factory=list)
    entry_values: list[float] = field(default_factory=list)
    member_offsets: list[int] = field(default_factory=list)
    member_counts: list[int] = field(default_factory=list)
    members: list[int] = field(default_factory=list)

    def add(self, node: Branch | Leaf, position: int, positions: dict[int, int], leaf_op: int) -> None:
        self.entry_offsets.append(len(self.entry_classes))
        self.member_offsets.append(len(self.members))
        if isinstance(node, Branch):
            self.thresholds.append(node.threshold)
            self.features.append(node.feature)
            self.ops.append(OPS.index(node.mode))
            self.nan_true.append(int(node.nan_true))
            self.leaves.append(0)
            self.bases.append(positions[node.true])
            self.leaf_values.append(0.0)
            self.entry_counts.append(0)
            self.member_counts.append(len(node.members))
            self.members.extend(int(m) for m in node.members)
            return
        # Never true (a NaN threshold; BRANCH_NEQ is the one mode true on NaN), so the
        # false child -- itself -- is taken: base + 1 == position. A root leaf never steps.
        self.thresholds.append(float("nan"))
        self.features.append(0)
        self.ops.append(leaf_op)
        self.nan_true.append(0)
        self.leaves.append(1)
        self.bases.append(position if leaf_op == NEQ else max(position - 1, 0))
        self.leaf_values.append(node.weights[0][1])
        self.entry_counts.append(len(node.weights))
        self.entry_classes.extend(target for target, _ in node.weights)
        self.entry_values.extend(weight for _, weight in node.weights)
        self.member_counts.append(0)


def tree_depth(tree: Tree) -> int:
    """Steps from the root to the deepest leaf."""
    depth = {0: 0}
    deepest = 0
    for index in _breadth_first(tree):
        node = tree.nodes[index]
        if isinstance(node, Branch):
            for child in (node.true, node.false):
                depth[child] = depth[index] + 1
                deepest = max(deepest, depth[child])
    return deepest


def _leaves(tree: Tree) -> list[Leaf]:
    return [n for n in tree.nodes if isinstance(n, Leaf)]


def _tree_classes(trees: list[Tree]) -> np.ndarray | None:
    """Per tree, the class every leaf writes one weight for (gradient boosting's shape)."""
    classes: list[int] = []
    for tree in trees:
        targets = {tuple(t for t, _ in leaf.weights) for leaf in _leaves(tree)}
        if len(targets) != 1:
            return None
        (only,) = targets
        if len(only) != 1:
            return None
        classes.append(only[0])
    return np.array(classes, dtype=np.uint32)


def _static_scored(ensemble: Ensemble) -> tuple[bool, ...] | None:
    """Which classes have a score after all trees, when that is the same for every row:
    true when each tree's leaves all write the same set of classes. MIN and MAX need
    the per-row flags while trees run, so they always track them."""
    if ensemble.aggregate in (Aggregate.MIN, Aggregate.MAX):
        return None
    scored = [False] * ensemble.n_outputs
    for tree in ensemble.forest.trees:
        sets = {frozenset(t for t, _ in leaf.weights) for leaf in _leaves(tree)}
        if len(sets) != 1:
            return None
        for target in sets.pop():
            scored[target] = True
    return tuple(scored)
