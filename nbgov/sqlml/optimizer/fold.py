"""Carry a tree's test back through monotone featurizer steps to the column itself.

A tree behind a scaler tests ``(x - offset) * scale <= t`` in float32.  The
steps are monotone (rounding is monotone), so on float32 numbers that test is
true exactly on a ray ``x <= b`` (or ``x >= b`` for a negative scale); NaN goes
wherever the steps send it (an Imputer turns it into a number).  ``fold_tests``
finds each ``b`` exactly: a binary search over the float32 numbers in their
order, evaluating the steps with onnxruntime's own arithmetic (numpy float32),
all tests of one column at once.  The folded tree reads the raw column, gives
the same branch for every float32 value, and is what pruning, decision regions
and SQL translation then work on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from nbgov.sqlml.models.steps import Step, apply_steps, direction

_MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")
# float32 numbers in order: key(f) is the int32 bit pattern for f >= 0, its negation below
_KEY_LO = -0x7F800000  # -inf
_KEY_HI = 0x7F800000  # +inf


class NotFoldable(ValueError):
    """The steps are not monotone, or the test's true set is not one ray."""


@dataclass(frozen=True)
class TreeTest:
    """A tree test as onnxruntime runs it: ``x <mode> threshold``, NaN to true iff ``nan_true``."""

    mode: str
    threshold: float
    nan_true: bool


@dataclass(frozen=True)
class Decided:
    """The test has the same outcome for every value (NaN included)."""

    outcome: bool


Folded = TreeTest | Decided


def fold_tests(steps: tuple[Step, ...], tests: list[TreeTest]) -> list[Folded]:
    """Each test on ``steps(x)`` as a test on float32 ``x`` with the same outcome everywhere."""
    if not steps:
        return list(tests)
    if any(t.mode not in _MODES for t in tests):
        raise NotFoldable("set-membership tests cannot be carried through a transform")
    sign = direction(steps)
    if sign is None:
        raise NotFoldable("a transform is not monotone")
    nan_image = apply_steps(steps, np.array([np.nan], dtype=np.float32))[0]
    keys = _true_keys(steps, sign, tests)
    out: list[Folded] = []
    for test, (lo, hi) in zip(tests, keys):
        nan_outcome = _outcome(test, float(nan_image))
        out.append(_as_test(lo, hi, nan_outcome))
    return out


def _outcome(test: TreeTest, value: float) -> bool:
    """onnxruntime's branch for one feature value."""
    if math.isnan(value):
        return test.nan_true or test.mode == "BRANCH_NEQ"
    t = float(np.float32(test.threshold))
    return {
        "BRANCH_LEQ": value <= t,
        "BRANCH_LT": value < t,
        "BRANCH_GTE": value >= t,
        "BRANCH_GT": value > t,
        "BRANCH_EQ": value == t,
        "BRANCH_NEQ": value != t,
    }[test.mode]


def _true_keys(steps: tuple[Step, ...], sign: int, tests: list[TreeTest]) -> list[tuple[int, int]]:
    """Per test, the key range ``[lo, hi]`` of float32 numbers x whose feature passes
    (empty when lo > hi); the feature's true set is an interval, so is its preimage."""
    low = np.array([_feature_interval(t)[0] for t in tests], dtype=np.float32)
    high = np.array([_feature_interval(t)[1] for t in tests], dtype=np.float32)
    if any(t.mode == "BRANCH_NEQ" for t in tests):
        raise NotFoldable("a != test through a transform is two rays")
    if sign > 0:
        lo = _first_key(steps, lambda v: v >= low)
        hi = _first_key(steps, lambda v: v > high) - 1
    else:
        lo = _first_key(steps, lambda v: v <= high)
        hi = _first_key(steps, lambda v: v < low) - 1
    return list(zip(lo.tolist(), hi.tolist()))


def _feature_interval(test: TreeTest) -> tuple[float, float]:
    """The closed float32 interval of feature values for which the test is true."""
    t = np.float32(test.threshold)
    inf = np.float32(np.inf)
    return {
        "BRANCH_LEQ": (-inf, t),
        "BRANCH_LT": (-inf, np.nextafter(t, -inf)),
        "BRANCH_GTE": (t, inf),
        "BRANCH_GT": (np.nextafter(t, inf), inf),
        "BRANCH_EQ": (t, t),
    }[test.mode]


def _first_key(steps: tuple[Step, ...], holds: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Per test, the smallest key whose feature value satisfies ``holds`` (false, then
    true, as the key grows), or _KEY_HI + 1 when none does: one vectorised binary search."""
    size = len(np.atleast_1d(holds(np.zeros(1, dtype=np.float32))))
    lo = np.full(size, _KEY_LO, dtype=np.int64)
    hi = np.full(size, _KEY_HI + 1, dtype=np.int64)
    active = lo < hi
    while bool(active.any()):
        mid = (lo + hi) // 2
        ok = holds(apply_steps(steps, _from_keys(mid)))
        hi = np.where(active & ok, mid, hi)
        lo = np.where(active & ~ok, mid + 1, lo)
        active = lo < hi
    return lo


def _from_keys(keys: np.ndarray) -> np.ndarray:
    magnitude = np.abs(keys).astype(np.int32).view(np.float32)
    return np.where(keys < 0, -magnitude, magnitude).astype(np.float32)


def _as_test(lo: int, hi: int, nan_outcome: bool) -> Folded:
    """The branch that is true exactly on keys [lo, hi] and, for NaN, ``nan_outcome``."""
    inf = math.inf
    if lo > hi:  # no number passes
        return TreeTest("BRANCH_GT", inf, True) if nan_outcome else Decided(False)
    if lo == _KEY_LO and hi == _KEY_HI:  # every number passes
        return Decided(True) if nan_outcome else TreeTest("BRANCH_LEQ", inf, False)
    if lo == _KEY_LO:
        return TreeTest("BRANCH_LEQ", float(_from_keys(np.array([hi]))[0]), nan_outcome)
    if hi == _KEY_HI:
        return TreeTest("BRANCH_GTE", float(_from_keys(np.array([lo]))[0]), nan_outcome)
    raise NotFoldable("the test passes on a bounded interval of the column")
