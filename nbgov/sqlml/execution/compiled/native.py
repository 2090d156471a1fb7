"""A built kernel, loaded with ctypes.

ctypes releases the GIL for the length of each call, so slices of one batch run on
several threads at once. Inputs are read in place: a C-contiguous matrix of the
model's value type, or one contiguous column per feature (Arrow buffers); outputs
are written into arrays the caller allocated, shaped as onnxruntime's.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nbgov.sqlml.execution.compiled.codegen import ABI_VERSION

_P = ctypes.c_void_p
_I64 = ctypes.c_int64


class KernelMismatch(Exception):
    """The library is not the kernel that was asked for."""


class NativeKernel:
    """One loaded library: ``score_rows`` / ``score_columns`` over rows [0, n)."""

    def __init__(self, path: Path, key: str, n_features: int, n_outputs: int, value_dtype: type, output_dtype: type) -> None:
        library = ctypes.CDLL(str(path))
        library.nbgov_abi.restype = ctypes.c_int
        library.nbgov_key.restype = ctypes.c_char_p
        library.nbgov_shape.argtypes = [_P]
        shape = np.zeros(4, dtype=np.int64)
        library.nbgov_shape(shape.ctypes.data)
        found_key = (library.nbgov_key() or b"").decode()
        if library.nbgov_abi() != ABI_VERSION or found_key != key or tuple(shape[:2]) != (n_features, n_outputs):
            raise KernelMismatch(f"{path.name} is not the kernel for key {key[:12]}")
        library.nbgov_score_rows.argtypes = [_P, _I64, _I64, _P, _P, _P]
        library.nbgov_score_rows.restype = None
        library.nbgov_score_columns.argtypes = [_P, _I64, _P, _P, _P]
        library.nbgov_score_columns.restype = None
        library.nbgov_profile.argtypes = [_P, _I64, _I64, _P]
        library.nbgov_profile.restype = None
        self._library = library  # kept alive as long as the kernel: never unloaded while in use
        self.path = path
        self.n_features = n_features
        self.n_outputs = n_outputs
        self.value_dtype = np.dtype(value_dtype)
        self.output_dtype = np.dtype(output_dtype)
        self.tree_count = int(shape[2])
        self.max_depth = int(shape[3])

    def score_rows(
        self, matrix: np.ndarray, scores: np.ndarray, labels: np.ndarray | None, steps: np.ndarray | None = None
    ) -> None:
        """Score every row of ``matrix`` ([n, n_features], rows contiguous) into ``scores``
        ([n, n_outputs]) and ``labels`` ([n] int64, classifiers). ``steps``: per tree, how
        far rows walk in lock step (None: to the deepest leaf); results never depend on it."""
        self._check_out(len(matrix), scores, labels)
        stride = self._stride(matrix)
        self._library.nbgov_score_rows(
            matrix.ctypes.data, len(matrix), stride, scores.ctypes.data, _address(labels), self._steps(steps)
        )

    def profile(self, matrix: np.ndarray) -> np.ndarray:
        """[trees, max_depth + 1] counts: how many rows of ``matrix`` reach a leaf after d steps."""
        histogram = np.zeros((self.tree_count, self.max_depth + 1), dtype=np.int64)
        self._library.nbgov_profile(matrix.ctypes.data, len(matrix), self._stride(matrix), histogram.ctypes.data)
        return histogram

    def score_columns(
        self, columns: Sequence[np.ndarray], scores: np.ndarray, labels: np.ndarray | None, steps: np.ndarray | None = None
    ) -> None:
        """Score rows given as one contiguous array per feature (read in place)."""
        rows = len(columns[0]) if columns else 0
        self._check_out(rows, scores, labels)
        if len(columns) != self.n_features or any(
            c.dtype != self.value_dtype or c.ndim != 1 or len(c) != rows or not c.flags.c_contiguous for c in columns
        ):
            raise ValueError(f"expected {self.n_features} contiguous {self.value_dtype} columns of {rows} rows")
        pointers = (ctypes.c_void_p * len(columns))(*[c.ctypes.data for c in columns])
        self._library.nbgov_score_columns(pointers, rows, scores.ctypes.data, _address(labels), self._steps(steps))

    def _stride(self, matrix: np.ndarray) -> int:
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features or matrix.dtype != self.value_dtype:
            raise ValueError(f"expected a [n, {self.n_features}] {self.value_dtype} matrix")
        if matrix.strides[1] != matrix.itemsize or matrix.strides[0] % matrix.itemsize:
            raise ValueError("matrix rows must be contiguous")
        return matrix.strides[0] // matrix.itemsize if len(matrix) > 1 else self.n_features

    def _steps(self, steps: np.ndarray | None) -> int | None:
        if steps is None:
            return None
        if steps.shape != (self.tree_count,) or steps.dtype != np.int32 or not steps.flags.c_contiguous:
            raise ValueError(f"steps must be a contiguous [{self.tree_count}] int32 array")
        return int(steps.ctypes.data)

    def _check_out(self, rows: int, scores: np.ndarray, labels: np.ndarray | None) -> None:
        if scores.shape != (rows, self.n_outputs) or scores.dtype != self.output_dtype or not scores.flags.c_contiguous:
            raise ValueError(f"scores must be a contiguous [{rows}, {self.n_outputs}] {self.output_dtype} array")
        if labels is not None and (labels.shape != (rows,) or labels.dtype != np.int64 or not labels.flags.c_contiguous):
            raise ValueError(f"labels must be a contiguous [{rows}] int64 array")


def _address(array: np.ndarray | None) -> int | None:
    return None if array is None else int(array.ctypes.data)
