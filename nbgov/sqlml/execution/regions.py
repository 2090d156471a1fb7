"""Score each decision region once: rows of a tree-ensemble model that take the same
path through every tree get the same output, so only one row per region is scored.

A tree only asks, per feature, on which side of its thresholds a value lies (or
whether it equals a set member). Cutting each feature at the distinct thresholds
of the (pruned) model — ``below t1``, ``= t1``, ``between t1 and t2``, ``= t2``, ...,
and NaN apart — gives regions whose rows reach the same leaves of every tree, which
onnxruntime then adds in the same order: the output of the region's first row *is*
every row's output, bit for bit. After pruning, few thresholds remain, so a query
over 20k rows typically has a few hundred regions.

Only for models whose one ``[N, k]`` float input is read by tree-ensemble nodes alone
(what skl2onnx emits for forests and boosted trees): then nothing else in the graph
can see the difference between two rows of a region.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np
import onnx
import pandas as pd

from nbgov.sqlml.models.forest import Branch
from nbgov.sqlml.models.treegraph import analyze

MIN_ROWS = 1_024  # below this, scoring every row is as quick as grouping them
MAX_SHARE = 0.5  # group only when it removes at least every other row
_MAX_KEY = 2**62
_PROBE_ROWS = 2_048  # nearly all distinct here: the batch is not worth grouping
_FEW_CUTS = 8  # up to this many cuts, comparing is quicker than a binary search


@dataclass(frozen=True)
class Regions:
    """Per feature of ``input_name``, the sorted distinct cut points of every tree."""

    input_name: str
    cuts: tuple[np.ndarray, ...]

    def key(self, matrix: np.ndarray) -> np.ndarray:
        """One int64 region number per row."""
        rows = len(matrix)
        key = np.zeros(rows, dtype=np.int64)
        size = 1
        columns = np.ascontiguousarray(matrix.T)
        for values, cuts in zip(columns, self.cuts):
            if not len(cuts):
                continue  # no tree tests this feature: one region
            count = 2 * len(cuts) + 2  # below/at each cut, above the last, NaN
            common = np.result_type(values.dtype, cuts.dtype)  # compare as the runtime does, never narrower
            values, points = values.astype(common, copy=False), cuts.astype(common, copy=False)
            # 2 * (cuts below the value) + (1 if the value is a cut): NaN compares false everywhere
            if len(points) <= _FEW_CUTS:
                region = np.zeros(rows, dtype=np.int16)
                for point in points:
                    region += values > point
                    region += values >= point
            else:
                region = np.searchsorted(points, values, "left") + np.searchsorted(points, values, "right")
            nan = np.isnan(values)
            if nan.any():
                region[nan] = count - 1
            key += region * np.int64(size)
            size *= count
        return key

    def shared(self, matrix: np.ndarray) -> bool:
        """Whether the first rows share regions (else nearly every row is a region of its own,
        as with a continuous feature the trees cut finely, and grouping would not pay)."""
        probe = matrix[:_PROBE_ROWS]
        return len(pd.unique(self.key(probe))) <= 0.9 * len(probe)

    def group(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(region index of each row, first row of each region), or None when grouping
        would not pay off — told from the first rows first, so that a model whose rows
        are nearly all in regions of their own pays for a small probe only."""
        rows = len(matrix)
        if rows < MIN_ROWS or matrix.ndim != 2 or matrix.shape[1] != len(self.cuts):
            return None
        if rows >= 2 * _PROBE_ROWS and not self.shared(matrix):
            return None
        codes, uniques = pd.factorize(self.key(matrix))
        if len(uniques) > MAX_SHARE * rows:
            return None
        # factorize numbers regions in order of appearance: a region's first row is
        # where the running maximum of the codes steps up
        first = np.flatnonzero(np.diff(np.maximum.accumulate(codes), prepend=-1) > 0)
        return codes, first


def regions_of(payload: bytes) -> Regions | None:
    """The regions of a model whose float input feeds tree ensembles only, else None."""
    try:
        graph = analyze(onnx.load_model_from_string(payload))
    except Exception:  # an unreadable or unusual graph: simply score every row
        return None
    if graph is None or graph.elem_type != "float":
        return None
    points: list[set[float]] = [set() for _ in range(graph.n_features)]
    dtypes = {forest.threshold_dtype for forest in graph.forests}
    for forest in graph.forests:
        for tree in forest.trees:
            for node in tree.nodes:
                if isinstance(node, Branch):
                    if not 0 <= node.feature < graph.n_features:
                        return None
                    points[node.feature].update([node.threshold, *node.members])
    dtype = np.float64 if np.float64 in dtypes else np.float32
    cuts = tuple(np.array(sorted(p), dtype=dtype) for p in points)
    if any(np.isnan(c).any() for c in cuts):
        return None
    if math.prod(2 * len(c) + 2 for c in cuts) > _MAX_KEY:
        return None  # too many regions to number them in an int64 (an unpruned big forest)
    return Regions(graph.input_name, cuts)


@dataclass
class ScoreStats:
    """Rows seen and rows actually scored, summed over the batches of one job."""

    rows: int = 0
    scored: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, rows: int, scored: int) -> None:
        with self._lock:
            self.rows += rows
            self.scored += scored
