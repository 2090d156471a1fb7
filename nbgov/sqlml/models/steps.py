"""Elementwise featurizer steps, with onnxruntime's exact arithmetic.

A scikit-learn pipeline converted by skl2onnx transforms each feature column
with a few elementwise operators (Scaler, Mul/Add/Sub/Div by a constant,
Imputer, Binarizer, Cast).  Each is one frozen step here that can compute what
onnxruntime computes, bit for bit (numpy's float32 arithmetic is IEEE single
precision, as onnxruntime's kernels are), and say whether it is monotone —
which is what lets the optimizer carry a tree's test back through it to the raw
column (see ``optimizer/fold.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT_TYPES: dict[str, Any] = {"float": np.float32, "double": np.float64}


@dataclass(frozen=True)
class Arith:
    """``x op constant`` (``constant op x`` when ``constant_first``), rounded in ``dtype``."""

    op: str  # "+", "-", "*", "/"
    constant: float
    dtype: str = "float"
    constant_first: bool = False
    origin: str = "Scaler"  # the ONNX operator it came from (Scaler, Mul, Add, ...)

    def apply(self, values: np.ndarray) -> np.ndarray:
        kind = FLOAT_TYPES[self.dtype]
        x = values.astype(kind, copy=False)
        c = kind(self.constant)
        left, right = (c, x) if self.constant_first else (x, c)
        with np.errstate(all="ignore"):
            if self.op == "+":
                return np.add(left, right, dtype=kind)
            if self.op == "-":
                return np.subtract(left, right, dtype=kind)
            if self.op == "*":
                return np.multiply(left, right, dtype=kind)
            return np.divide(left, right, dtype=kind)

    @property
    def direction(self) -> int | None:
        """+1 non-decreasing, -1 non-increasing on every non-NaN value (±inf included), else None.

        Only finite, non-zero constants qualify: ``inf * 0`` or ``inf - inf`` would turn a
        number into NaN, and ``c / x`` is not monotone across zero.
        """
        c = float(self.constant)
        if not math.isfinite(c):
            return None
        if self.op == "+":
            return 1
        if self.op == "-":
            return -1 if self.constant_first else 1
        if c == 0.0 or (self.op == "/" and self.constant_first):
            return None
        return 1 if c > 0 else -1


@dataclass(frozen=True)
class CastTo:
    """ONNX Cast to ``elem_type`` (round to nearest for floats)."""

    elem_type: str

    def apply(self, values: np.ndarray) -> np.ndarray:
        kind = FLOAT_TYPES.get(self.elem_type)
        if kind is None:
            raise ValueError(f"cast to {self.elem_type} is not an elementwise float step")
        with np.errstate(all="ignore"):
            return values.astype(kind)

    @property
    def direction(self) -> int | None:
        return 1 if self.elem_type in FLOAT_TYPES else None


@dataclass(frozen=True)
class Impute:
    """ONNX Imputer: ``missing`` (NaN, or a number) becomes ``value``; others pass unchanged."""

    missing: float
    value: float
    dtype: str = "float"

    def apply(self, values: np.ndarray) -> np.ndarray:
        kind = FLOAT_TYPES[self.dtype]
        x = values.astype(kind, copy=False)
        hit = np.isnan(x) if math.isnan(self.missing) else x == kind(self.missing)
        return np.where(hit, kind(self.value), x)

    @property
    def direction(self) -> int | None:
        # Replacing NaN leaves every number where it was; replacing a number may not.
        return 1 if math.isnan(self.missing) else None


@dataclass(frozen=True)
class Binarize:
    """ONNX Binarizer: 1 where ``x > threshold``, else 0; onnxruntime refuses NaN inputs."""

    threshold: float
    dtype: str = "float"

    def apply(self, values: np.ndarray) -> np.ndarray:
        kind = FLOAT_TYPES[self.dtype]
        x = values.astype(kind, copy=False)
        # onnxruntime compares in the input type against the float attribute widened to it
        return (x > kind(np.float32(self.threshold))).astype(kind)

    @property
    def direction(self) -> int | None:
        return 1


Step = Arith | CastTo | Impute | Binarize


def origin(step: Step) -> str:
    """The ONNX operator a step came from, for EXPLAIN notes."""
    if isinstance(step, Arith):
        return step.origin
    return {CastTo: "Cast", Impute: "Imputer", Binarize: "Binarizer"}[type(step)]


def apply_steps(steps: tuple[Step, ...], values: np.ndarray) -> np.ndarray:
    """What onnxruntime computes from ``values`` through ``steps`` (NaN into a Binarizer aside)."""
    out = values
    for step in steps:
        out = step.apply(out)
    return out


def direction(steps: tuple[Step, ...]) -> int | None:
    """+1 / -1 when the composed steps are monotone on numbers, None otherwise."""
    sign = 1
    for step in steps:
        d = step.direction
        if d is None:
            return None
        sign *= d
    return sign


def fails_on_nan(steps: tuple[Step, ...]) -> bool:
    """onnxruntime raises on NaN here (a Binarizer reached by NaN, not imputed before it)."""
    x = np.array([np.nan], dtype=np.float64)
    for step in steps:
        if isinstance(step, Binarize) and bool(np.isnan(x).any()):
            return True
        x = step.apply(x)
    return False
