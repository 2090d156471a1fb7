"""Fingerprints of the values a cell touches, taken before and after it runs.

Exactness first: a value is hashed before and after every cell that mentions it,
so in-place changes are seen whatever API made them. Two savings keep big values
cheap without giving that up where it matters:

- before a cell, a big array/frame whose fingerprint was taken after the previous
  cell is reused when its version probe (buffer addresses + sampled bytes) is
  unchanged — nothing in between ran as a cell;
- after a cell, a big numpy/pandas value the cell used only as an operand
  (``out = big + 1``, ``len(big)``) is not rehashed, unless another name the cell
  uses may share its memory or the cell runs code that could reach it.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Mapping
from typing import Any

from nbgov.lineage.analysis import CellNames
from nbgov.lineage.fingerprint import Fingerprinter
from nbgov.lineage.fingerprint_data import frame_columns
from nbgov.lineage.record import Fingerprint

_SCALARS = (int, float, complex, str, bytes, bool, type(None))


class ValueTracker:
    """Owns the fingerprinter and the after-cell fingerprints of big values."""

    def __init__(self, fingerprinter: Fingerprinter | None = None) -> None:
        self.fingerprinter = fingerprinter or Fingerprinter()
        self.reuse_between_cells = True  # False: always hash before a cell
        self.skip_pure_reads = True  # False: always hash after a cell
        # name -> (weak ref to the value, its fingerprint after the last cell, its probe)
        self._after: dict[str, tuple[weakref.ref[Any], Fingerprint, str]] = {}

    def before(self, name: str, value: Any) -> Fingerprint:
        """Fingerprint before a cell; reuses the last after-fingerprint if the probe agrees."""
        known = self._after.get(name)
        if known is not None and self.reuse_between_cells and known[0]() is value:
            if self.fingerprinter.probe(value) == known[2]:
                return known[1]
        return self.fingerprinter.fingerprint(value)

    def after(self, name: str, value: Any) -> Fingerprint:
        """Fingerprint after a cell, remembered (with a probe) for the next cell."""
        fp = self.fingerprinter.fingerprint(value)
        self._after.pop(name, None)
        if not self.reuse_between_cells or fp.hash is None:
            return fp
        probe = self.fingerprinter.probe(value)
        if probe is None:
            return fp
        try:
            ref = weakref.ref(value)
        except TypeError:
            return fp
        self._after[name] = (ref, fp, probe)
        return fp

    def provably_unchanged(self, names: CellNames, candidates: set[str], ns: Mapping[str, Any]) -> set[str]:
        """Candidates the cell can only read: big arrays/frames used purely as operands.

        Empty when anything in the cell could reach them another way: exec/magics,
        another name used in the cell that may share memory or hold them.
        """
        if names.dynamic or not self.skip_pure_reads:
            return set()
        buffers: dict[str, list[Any]] = {}
        for name in candidates:
            if names.pure_only(name):
                found = numeric_buffers(ns[name])
                if found is not None:
                    buffers[name] = found
        pure = set(buffers)
        if not pure:
            return set()
        for other in candidates - pure:
            if other in names.stores and other not in names.loads and other not in names.mutates:
                continue  # only rebound: its old value is not used
            value = ns[other]
            if isinstance(value, _SCALARS):
                continue
            theirs = numeric_buffers(value)
            if theirs is None:
                return set()  # a container, object or function might reach them: hash for real
            for name in list(pure):
                if any(_may_share(a, b) for a in buffers[name] for b in theirs):
                    pure.discard(name)
        return pure


def numeric_buffers(value: Any) -> list[Any] | None:
    """The numpy buffers of a numpy array or pandas frame/series with numpy columns, else None."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if isinstance(value, np.ndarray):
        return None if value.dtype.hasobject else [value]
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    if isinstance(value, pd.Series):
        columns = [value.array]
    elif isinstance(value, pd.DataFrame):
        columns = frame_columns(value)
    else:
        return None
    out = []
    for col in columns:
        arr = col if isinstance(col, np.ndarray) else getattr(col, "_ndarray", None)
        if not isinstance(arr, np.ndarray) or arr.dtype.hasobject:
            return None
        out.append(arr)
    return out


def _may_share(a: Any, b: Any) -> bool:
    np = sys.modules["numpy"]
    return bool(np.may_share_memory(a, b))
