"""Sets of values a model input can take on the rows a call sees.

A ``Domain`` is what a query proves about one column: an interval (each end
open or closed), optionally a finite set of allowed values, and whether NaN may
still appear (DuckDB orders NaN above every number, so ``x > 5`` lets NaN
through while ``x < 5`` does not).  Every comparison also proves the value is
not NULL, which matters when a pruned model stops reading a column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_INF = math.inf


@dataclass(frozen=True)
class Domain:
    """Values allowed for one column: ``lo (<|<=) x (<|<=) hi``, ∩ ``values``, maybe NaN."""

    lo: float = -_INF
    hi: float = _INF
    lo_open: bool = False
    hi_open: bool = False
    values: frozenset[float] | None = None
    nan: bool = True

    @staticmethod
    def compare(op: str, value: float) -> Domain:
        """The domain proven by ``x <op> value`` in DuckDB (NaN sorts above all numbers)."""
        if math.isnan(value):
            raise ValueError("NaN bound")
        if op == ">":
            return Domain(lo=value, lo_open=True, nan=True)
        if op == ">=":
            return Domain(lo=value, nan=True)
        if op == "<":
            return Domain(hi=value, hi_open=True, nan=False)
        if op == "<=":
            return Domain(hi=value, nan=False)
        if op == "=":
            return Domain(lo=value, hi=value, values=frozenset([value]), nan=False)
        raise ValueError(f"unsupported comparison {op!r}")

    @staticmethod
    def one_of(values: list[float]) -> Domain:
        """``x IN (v1, v2, ...)``."""
        if any(math.isnan(v) for v in values) or not values:
            raise ValueError("unsupported IN list")
        return Domain(
            lo=min(values), hi=max(values), values=frozenset(values), nan=False
        )

    @staticmethod
    def nan_only() -> Domain:
        """``isnan(x)``: no number, only NaN (which sorts above every number in DuckDB)."""
        return Domain(values=frozenset(), nan=True)

    def intersect(self, other: Domain) -> Domain:
        """Both constraints hold."""
        lo, lo_open = _tighter_lo(self.lo, self.lo_open, other.lo, other.lo_open)
        hi, hi_open = _tighter_hi(self.hi, self.hi_open, other.hi, other.hi_open)
        values: frozenset[float] | None
        if self.values is None:
            values = other.values
        elif other.values is None:
            values = self.values
        else:
            values = self.values & other.values
        dom = Domain(lo, hi, lo_open, hi_open, None, self.nan and other.nan)
        if values is not None:
            values = frozenset(v for v in values if dom.admits_number(v))
            dom = Domain(lo, hi, lo_open, hi_open, values, dom.nan)
        return dom

    def admits_number(self, v: float) -> bool:
        """Whether the (non-NaN) number v satisfies the interval and the value set."""
        if v < self.lo or (self.lo_open and v == self.lo):
            return False
        if v > self.hi or (self.hi_open and v == self.hi):
            return False
        return self.values is None or v in self.values

    @property
    def empty(self) -> bool:
        """No number and no NaN can satisfy it (a contradictory predicate)."""
        if self.nan:
            return False
        if self.values is not None:
            return len(self.values) == 0
        if self.lo > self.hi:
            return True
        return self.lo == self.hi and (self.lo_open or self.hi_open)

    @property
    def unconstrained(self) -> bool:
        """Says nothing about values (only that they are not NULL)."""
        return self.lo == -_INF and self.hi == _INF and self.values is None and self.nan

    def in_model_space(self, elem_type: str) -> ModelDomain:
        """What the model sees after the engine casts the column to ``elem_type``.

        Casting to float32 rounds to nearest, which is monotone but can turn
        ``x > 60`` into ``x32 == 60``: bounds become closed in model space.
        """
        cast = _caster(elem_type)
        values = (
            None
            if self.values is None
            else tuple(sorted({cast(v) for v in self.values}))
        )
        return ModelDomain(
            lo=cast(self.lo), hi=cast(self.hi), values=values, nan=self.nan
        )

    def describe(self, column: str) -> str:
        """Human text, e.g. ``age > 60`` or ``60 <= age <= 70`` or ``plan IN (1, 2)``."""
        if self.values is not None and not self.values and self.nan:
            return f"isnan({column})"
        if self.values is not None and len(self.values) == 1:
            return f"{column} = {_num(next(iter(self.values)))}"
        if self.values is not None:
            return f"{column} IN ({', '.join(_num(v) for v in sorted(self.values))})"
        parts = []
        if self.lo != -_INF and self.hi != _INF:
            left = "<" if self.lo_open else "<="
            right = "<" if self.hi_open else "<="
            return f"{_num(self.lo)} {left} {column} {right} {_num(self.hi)}"
        if self.lo != -_INF:
            parts.append(f"{column} {'>' if self.lo_open else '>='} {_num(self.lo)}")
        if self.hi != _INF:
            parts.append(f"{column} {'<' if self.hi_open else '<='} {_num(self.hi)}")
        elif not self.nan:  # an upper bound already keeps NaN out (it sorts above every number)
            parts.append(f"NOT isnan({column})")
        return " AND ".join(parts) if parts else f"{column} IS NOT NULL"


@dataclass(frozen=True)
class ModelDomain:
    """A closed interval (and maybe a finite set) of values in the model's own float type."""

    lo: float
    hi: float
    values: tuple[float, ...] | None
    nan: bool

    def key(self) -> str:
        """Stable text for cache keys."""
        vals = "" if self.values is None else ",".join(repr(v) for v in self.values)
        return f"[{self.lo!r},{self.hi!r}]{{{vals}}}{'n' if self.nan else ''}"


def _caster(elem_type: str) -> Callable[[float], float]:
    if elem_type == "float":
        return lambda v: float(np.float32(v))
    return float


def _tighter_lo(a: float, a_open: bool, b: float, b_open: bool) -> tuple[float, bool]:
    if a > b:
        return a, a_open
    if b > a:
        return b, b_open
    return a, a_open or b_open


def _tighter_hi(a: float, a_open: bool, b: float, b_open: bool) -> tuple[float, bool]:
    if a < b:
        return a, a_open
    if b < a:
        return b, b_open
    return a, a_open or b_open


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else repr(v)
