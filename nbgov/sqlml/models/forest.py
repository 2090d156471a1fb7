"""Tree ensembles read out of ONNX nodes into plain Python trees, and written back.

Both encodings skl2onnx and other converters emit are understood: the classic
``ai.onnx.ml`` TreeEnsembleRegressor / TreeEnsembleClassifier (flat node
arrays keyed by tree and node id) and the opset-5 ``TreeEnsemble`` (node and
leaf index arrays).  Rules (pruning, projection, SQL translation) work on the
plain form and never on attribute arrays, so they do not care which one a
model uses.  Everything but the tree structure (post transform, base values,
class labels, aggregate function) is copied through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

TREE_OPS = ("TreeEnsembleRegressor", "TreeEnsembleClassifier", "TreeEnsemble")
_V5_MODES = (
    "BRANCH_LEQ",
    "BRANCH_LT",
    "BRANCH_GTE",
    "BRANCH_GT",
    "BRANCH_EQ",
    "BRANCH_NEQ",
    "BRANCH_MEMBER",
)


@dataclass
class Branch:
    """A test ``x[feature] <mode> threshold``; ``nan_true`` sends NaN to the true child."""

    feature: int
    threshold: float
    mode: str
    nan_true: bool
    true: int  # index into Tree.nodes
    false: int
    members: tuple[float, ...] = ()  # BRANCH_MEMBER only


@dataclass
class Leaf:
    """Contributions of one leaf: (target or class id, weight), in the model's order."""

    weights: list[tuple[int, float]]


@dataclass
class Tree:
    """One tree; ``nodes[0]`` is the root."""

    nodes: list[Branch | Leaf] = field(default_factory=list)


@dataclass
class Forest:
    """The trees of one ensemble node plus how to write them back."""

    op_type: str
    trees: list[Tree]
    threshold_dtype: (
        type  # np.float32 or np.float64: how thresholds are stored / compared
    )
    weight_tensor: bool  # weights stored as a tensor attribute (double models)

    @property
    def node_count(self) -> int:
        return sum(len(t.nodes) for t in self.trees)

    def used_features(self) -> set[int]:
        return {n.feature for t in self.trees for n in t.nodes if isinstance(n, Branch)}


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _floats(attrs: dict[str, object], name: str) -> tuple[list[float], bool]:
    """A float list attribute, or its ``*_as_tensor`` twin (then True)."""
    if f"{name}_as_tensor" in attrs:
        tensor = attrs[f"{name}_as_tensor"]
        assert isinstance(tensor, onnx.TensorProto)
        return [float(v) for v in numpy_helper.to_array(tensor).ravel()], True
    values = attrs.get(name) or []
    assert isinstance(values, list)
    return [float(v) for v in values], False


def read_forest(node: onnx.NodeProto) -> Forest:
    """Parse one tree-ensemble node."""
    if node.op_type == "TreeEnsemble":
        return _read_v5(node)
    return _read_classic(node)


def _read_classic(node: onnx.NodeProto) -> Forest:
    a = _attrs(node)
    prefix = "class" if node.op_type == "TreeEnsembleClassifier" else "target"
    tree_ids = list(a["nodes_treeids"])  # type: ignore[call-overload]
    node_ids = list(a["nodes_nodeids"])  # type: ignore[call-overload]
    features = list(a["nodes_featureids"])  # type: ignore[call-overload]
    modes = [m.decode() if isinstance(m, bytes) else str(m) for m in a["nodes_modes"]]  # type: ignore[attr-defined]
    values, as_tensor = _floats(a, "nodes_values")
    trues = list(a.get("nodes_truenodeids") or [])  # type: ignore[call-overload]
    falses = list(a.get("nodes_falsenodeids") or [])  # type: ignore[call-overload]
    missing = list(a.get("nodes_missing_value_tracks_true") or [0] * len(tree_ids))  # type: ignore[call-overload]
    weights, w_tensor = _floats(a, f"{prefix}_weights")
    w_trees = list(a[f"{prefix}_treeids"])  # type: ignore[call-overload]
    w_nodes = list(a[f"{prefix}_nodeids"])  # type: ignore[call-overload]
    w_ids = list(a[f"{prefix}_ids"])  # type: ignore[call-overload]

    order: list[int] = []  # tree ids in order of first appearance
    rows: dict[tuple[int, int], int] = {}
    for i, (t, n) in enumerate(zip(tree_ids, node_ids)):
        if t not in order and (t, n) not in rows:
            order.append(t)
        rows[(t, n)] = i
    leaf_weights: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for t, n, target, w in zip(w_trees, w_nodes, w_ids, weights):
        leaf_weights.setdefault((t, n), []).append((int(target), w))

    referenced = {
        (tree_ids[i], c)
        for i in range(len(tree_ids))
        if modes[i] != "LEAF"
        for c in (trues[i], falses[i])
    }
    trees: list[Tree] = []
    for t in order:
        roots = [n for (tt, n) in rows if tt == t and (tt, n) not in referenced]
        tree = Tree()
        index: dict[int, int] = {}

        def visit(
            nid: int, t: int = t, tree: Tree = tree, index: dict[int, int] = index
        ) -> int:
            pos = len(tree.nodes)
            index[nid] = pos
            i = rows[(t, nid)]
            if modes[i] == "LEAF":
                tree.nodes.append(Leaf(leaf_weights.get((t, nid), [])))
                return pos
            branch = Branch(features[i], values[i], modes[i], bool(missing[i]), -1, -1)
            tree.nodes.append(branch)
            branch.true = visit(trues[i])
            branch.false = visit(falses[i])
            return pos

        visit(min(roots) if roots else 0)
        trees.append(tree)
    dtype = np.float64 if as_tensor else np.float32
    return Forest(node.op_type, trees, dtype, w_tensor)


def _read_v5(node: onnx.NodeProto) -> Forest:
    a = _attrs(node)
    splits_t = a["nodes_splits"]
    assert isinstance(splits_t, onnx.TensorProto)
    splits_arr = numpy_helper.to_array(splits_t)
    splits = [float(v) for v in splits_arr]
    modes_t = a["nodes_modes"]
    assert isinstance(modes_t, onnx.TensorProto)
    modes = [_V5_MODES[int(m)] for m in numpy_helper.to_array(modes_t)]
    features = list(a["nodes_featureids"])  # type: ignore[call-overload]
    trues = list(a["nodes_truenodeids"])  # type: ignore[call-overload]
    falses = list(a["nodes_falsenodeids"])  # type: ignore[call-overload]
    true_leaf = list(a["nodes_trueleafs"])  # type: ignore[call-overload]
    false_leaf = list(a["nodes_falseleafs"])  # type: ignore[call-overload]
    missing = list(a.get("nodes_missing_value_tracks_true") or [0] * len(features))  # type: ignore[call-overload]
    roots = list(a["tree_roots"])  # type: ignore[call-overload]
    leaf_ids = list(a["leaf_targetids"])  # type: ignore[call-overload]
    lw = a["leaf_weights"]
    assert isinstance(lw, onnx.TensorProto)
    leaf_w = [float(v) for v in numpy_helper.to_array(lw)]
    members: list[list[float]] = [[] for _ in features]
    if "membership_values" in a:
        mv = a["membership_values"]
        assert isinstance(mv, onnx.TensorProto)
        k = 0
        for i, mode in enumerate(modes):
            if mode == "BRANCH_MEMBER":
                vals = numpy_helper.to_array(mv)
                while k < len(vals) and not np.isnan(vals[k]):
                    members[i].append(float(vals[k]))
                    k += 1
                k += 1
    trees: list[Tree] = []
    for root in roots:
        tree = Tree()

        def visit(idx: int, is_leaf: bool, tree: Tree = tree) -> int:
            pos = len(tree.nodes)
            if is_leaf:
                tree.nodes.append(Leaf([(int(leaf_ids[idx]), leaf_w[idx])]))
                return pos
            branch = Branch(
                features[idx],
                splits[idx],
                modes[idx],
                bool(missing[idx]),
                -1,
                -1,
                tuple(members[idx]),
            )
            tree.nodes.append(branch)
            branch.true = visit(trues[idx], bool(true_leaf[idx]))
            branch.false = visit(falses[idx], bool(false_leaf[idx]))
            return pos

        # A tree that is a single leaf is encoded as a node whose both children are that leaf.
        visit(root, False)
        trees.append(tree)
    dtype = np.float64 if splits_arr.dtype == np.float64 else np.float32
    return Forest("TreeEnsemble", trees, dtype, True)


def write_forest(
    original: onnx.NodeProto, forest: Forest, feature_map: dict[int, int] | None = None
) -> onnx.NodeProto:
    """A copy of ``original`` with the trees of ``forest`` (features renumbered by ``feature_map``)."""
    remap = feature_map or {}
    if original.op_type == "TreeEnsemble":
        attrs = _write_v5(forest, remap)
        structural = {
            "nodes_featureids",
            "nodes_splits",
            "nodes_modes",
            "nodes_truenodeids",
            "nodes_trueleafs",
            "nodes_falsenodeids",
            "nodes_falseleafs",
            "nodes_missing_value_tracks_true",
            "nodes_hitrates",
            "tree_roots",
            "leaf_targetids",
            "leaf_weights",
            "membership_values",
        }
    else:
        prefix = "class" if original.op_type == "TreeEnsembleClassifier" else "target"
        attrs = _write_classic(forest, remap, prefix)
        structural = {
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_values_as_tensor",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "nodes_hitrates",
            "nodes_hitrates_as_tensor",
            f"{prefix}_treeids",
            f"{prefix}_nodeids",
            f"{prefix}_ids",
            f"{prefix}_weights",
            f"{prefix}_weights_as_tensor",
        }
    new = onnx.NodeProto()
    new.CopyFrom(original)
    del new.attribute[:]
    for attr in original.attribute:
        if attr.name not in structural:
            new.attribute.append(attr)
    for name, value in attrs.items():
        new.attribute.append(helper.make_attribute(name, value))
    return new


def _write_classic(
    forest: Forest, remap: dict[int, int], prefix: str
) -> dict[str, object]:
    out: dict[str, list[object]] = {
        k: []
        for k in (
            "nodes_treeids",
            "nodes_nodeids",
            "nodes_featureids",
            "nodes_modes",
            "nodes_values",
            "nodes_truenodeids",
            "nodes_falsenodeids",
            "nodes_missing_value_tracks_true",
            "w_tree",
            "w_node",
            "w_id",
            "w_weight",
        )
    }
    for t, tree in enumerate(forest.trees):
        for nid, node in enumerate(tree.nodes):
            out["nodes_treeids"].append(t)
            out["nodes_nodeids"].append(nid)
            if isinstance(node, Leaf):
                out["nodes_featureids"].append(0)
                out["nodes_modes"].append("LEAF")
                out["nodes_values"].append(0.0)
                out["nodes_truenodeids"].append(0)
                out["nodes_falsenodeids"].append(0)
                out["nodes_missing_value_tracks_true"].append(0)
                for target, w in node.weights:
                    out["w_tree"].append(t)
                    out["w_node"].append(nid)
                    out["w_id"].append(target)
                    out["w_weight"].append(w)
            else:
                out["nodes_featureids"].append(remap.get(node.feature, node.feature))
                out["nodes_modes"].append(node.mode)
                out["nodes_values"].append(node.threshold)
                out["nodes_truenodeids"].append(node.true)
                out["nodes_falsenodeids"].append(node.false)
                out["nodes_missing_value_tracks_true"].append(int(node.nan_true))
    attrs: dict[str, object] = {k: v for k, v in out.items() if not k.startswith("w_")}
    if forest.threshold_dtype is np.float64:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(
            np.array(attrs.pop("nodes_values"), dtype=np.float64)
        )
    attrs[f"{prefix}_treeids"] = out["w_tree"]
    attrs[f"{prefix}_nodeids"] = out["w_node"]
    attrs[f"{prefix}_ids"] = out["w_id"]
    if forest.weight_tensor:
        attrs[f"{prefix}_weights_as_tensor"] = numpy_helper.from_array(
            np.array(out["w_weight"], dtype=np.float64)
        )
    else:
        attrs[f"{prefix}_weights"] = out["w_weight"]
    return attrs


def _write_v5(forest: Forest, remap: dict[int, int]) -> dict[str, object]:
    feats: list[int] = []
    splits: list[float] = []
    modes: list[int] = []
    tnode: list[int] = []
    tleaf: list[int] = []
    fnode: list[int] = []
    fleaf: list[int] = []
    missing: list[int] = []
    members: list[float] = []
    roots: list[int] = []
    leaf_ids: list[int] = []
    leaf_w: list[float] = []

    def emit_leaf(leaf: Leaf) -> int:
        ((target, w),) = leaf.weights
        leaf_ids.append(target)
        leaf_w.append(w)
        return len(leaf_ids) - 1

    def emit(tree: Tree, pos: int) -> int:
        node = tree.nodes[pos]
        assert isinstance(node, Branch)
        idx = len(feats)
        feats.append(remap.get(node.feature, node.feature))
        splits.append(node.threshold)
        modes.append(_V5_MODES.index(node.mode))
        missing.append(int(node.nan_true))
        if node.mode == "BRANCH_MEMBER":
            members.extend(list(node.members) + [float("nan")])
        for child, node_list, leaf_list in (
            (node.true, tnode, tleaf),
            (node.false, fnode, fleaf),
        ):
            node_list.append(-1)
            leaf_list.append(0)
        for child, node_list, leaf_list in (
            (node.true, tnode, tleaf),
            (node.false, fnode, fleaf),
        ):
            target = tree.nodes[child]
            if isinstance(target, Leaf):
                node_list[idx] = emit_leaf(target)
                leaf_list[idx] = 1
            else:
                node_list[idx] = emit(tree, child)
        return idx

    for tree in forest.trees:
        root = tree.nodes[0]
        if isinstance(root, Leaf):
            # Encode a one-leaf tree as an always-true test whose both children are the leaf.
            leaf = emit_leaf(root)
            roots.append(len(feats))
            feats.append(0)
            splits.append(0.0)
            modes.append(0)
            missing.append(0)
            tnode.append(leaf)
            tleaf.append(1)
            fnode.append(leaf)
            fleaf.append(1)
        else:
            roots.append(emit(tree, 0))
    dtype = forest.threshold_dtype
    attrs: dict[str, object] = {
        "nodes_featureids": feats,
        "nodes_splits": numpy_helper.from_array(np.array(splits, dtype=dtype)),
        "nodes_modes": numpy_helper.from_array(np.array(modes, dtype=np.uint8)),
        "nodes_truenodeids": tnode,
        "nodes_trueleafs": tleaf,
        "nodes_falsenodeids": fnode,
        "nodes_falseleafs": fleaf,
        "nodes_missing_value_tracks_true": missing,
        "tree_roots": roots,
        "leaf_targetids": leaf_ids,
        "leaf_weights": numpy_helper.from_array(np.array(leaf_w, dtype=dtype)),
    }
    if members:
        attrs["membership_values"] = numpy_helper.from_array(
            np.array(members, dtype=dtype)
        )
    return attrs
