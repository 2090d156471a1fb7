"""Keep onnxruntime's label rule when pruning a binary tree classifier.

For a TreeEnsembleClassifier whose leaves score one class (skl2onnx's binary
gradient boosting and random forests), onnxruntime picks the label with
``score > 0.5`` when every leaf weight of the node is positive and ``score > 0``
otherwise — a property of the node's attributes, not of the row.  Pruning can
remove every negative leaf, which silently moves the threshold: a row scoring
0.3 would change label.  ``keep_label_rule`` puts one unreachable negative leaf
back (behind the test ``x < -inf``, false for every value, NaN included), so the
pruned node keeps the original rule and every output stays identical.
"""

from __future__ import annotations

import math
from dataclasses import replace

from nbgov.sqlml.models.forest import Branch, Forest, Leaf, Tree


def has_negative_weight(forest: Forest) -> bool:
    return any(w < 0 for tree in forest.trees for node in tree.nodes if isinstance(node, Leaf) for _, w in node.weights)


def keep_label_rule(original: Forest, pruned: Forest) -> Forest:
    """``pruned``, with an unreachable negative leaf when pruning removed the last one."""
    if pruned.op_type != "TreeEnsembleClassifier" or not pruned.trees:
        return pruned
    if not has_negative_weight(original) or has_negative_weight(pruned):
        return pruned
    target = next(t for tree in original.trees for n in tree.nodes if isinstance(n, Leaf) for t, w in n.weights if w < 0)
    first = pruned.trees[0]
    shifted = [_shift(node, 2) for node in first.nodes]
    guard = Branch(0, -math.inf, "BRANCH_LT", False, 1, 2)
    tree = Tree([guard, Leaf([(target, -1.0)]), *shifted])
    return replace(pruned, trees=[tree, *pruned.trees[1:]])


def _shift(node: Branch | Leaf, by: int) -> Branch | Leaf:
    if isinstance(node, Leaf):
        return Leaf(list(node.weights))
    return replace(node, true=node.true + by, false=node.false + by)
