"""The version probe of a LightGBM model: what tells, before a cell, that the model hashed
after an earlier one is still the same, without LightGBM writing its whole text again
(``model_to_string``: most of what recording adds to a scoring cell). A scikit-learn
estimator of LightGBM's (``LGBMClassifier``, ...) is probed as its Python state and the
probe of the ``Booster`` it holds.

As an array's probe (``columnar``), identities and a sample: the native model's handle
(its address), the iteration count and number of trees LightGBM reports, the first leaf's
value of up to ``SAMPLED_TREES`` evenly spaced trees (LightGBM's own C functions, which
only read), and the digest of the Booster's Python state (its parameters, best iteration,
pandas categories: what its fingerprint reads besides the native model). A cell that
changes the model is seen by the cell's own analysis (a method that is not read-only,
another name for it) and hashes it after; the probe is for what no cell did, as a thread
training it further. What it cannot see, as an array's probe cannot see a write between its
samples, is a thread changing one leaf (``set_leaf_output``) of a tree or leaf it does not
sample.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable
from typing import Any

import xxhash

from nbgov.lineage.fingerprint import static

SAMPLED_TREES = 64
NOT_A_MODEL = object()  # ``probe``'s answer for anything but LightGBM's own model classes
_NOT_STATE = ("_handle", "train_set", "valid_sets")  # what the fingerprint reads otherwise, or not at all
_ESTIMATORS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")  # lightgbm.sklearn's, holding a Booster


def probe(obj: Any, digest: Callable[[Any], str]) -> Any:
    """The probe of a LightGBM ``Booster`` or scikit-learn estimator of LightGBM's (exact
    classes: a notebook's subclass could change the model any time), None where it cannot
    be read (not fitted, no native model, another library layout), so that the model is
    hashed; ``NOT_A_MODEL`` for anything else. ``digest``: the fingerprinter's content hash."""
    booster = static.library_class("lightgbm.basic", "Booster")
    if booster is None:
        return NOT_A_MODEL
    tp = type(obj)
    if tp is booster:
        return _booster_probe(obj, digest)
    if static.module_of(tp) != "lightgbm.sklearn" or static.qualname_of(tp) not in _ESTIMATORS \
            or static.library_class("lightgbm.sklearn", static.qualname_of(tp)) is not tp:
        return NOT_A_MODEL
    state = _state(obj)
    inner = state.get("_Booster") if state is not None else None
    if state is None or type(inner) is not booster:
        return None
    native = _booster_probe(inner, digest)
    rest = digest({key: value for key, value in state.items() if key != "_Booster"})
    if native is None or rest == "weak":
        return None
    return xxhash.xxh3_128_hexdigest(f"lightgbm.sklearn|{static.qualname_of(tp)}|{rest}|{native}".encode())


def _state(obj: Any) -> dict[str, Any] | None:
    read, _ = static.dict_reader(type(obj))
    state = read(obj) if read is not None else None
    return state if type(state) is dict else None


def _booster_probe(booster: Any, digest: Callable[[Any], str]) -> str | None:
    """The probe of an instance of LightGBM's own ``Booster`` class."""
    state = _state(booster)
    if state is None:
        return None
    handle = state.get("_handle")
    library = (static.loaded_module("lightgbm.basic") or {}).get("_LIB")
    if type(handle) is not ctypes.c_void_p or not handle.value or type(library) is not ctypes.CDLL:
        return None
    python_state = digest({key: value for key, value in state.items() if key not in _NOT_STATE})
    if python_state == "weak":
        return None
    iteration, trees = ctypes.c_int(0), ctypes.c_int(0)
    if library.LGBM_BoosterGetCurrentIteration(handle, ctypes.byref(iteration)) \
            or library.LGBM_BoosterNumberOfTotalModel(handle, ctypes.byref(trees)):
        return None
    leaves = []
    leaf = ctypes.c_double(0.0)
    for tree in _sampled(trees.value):
        if library.LGBM_BoosterGetLeafValue(handle, ctypes.c_int(tree), ctypes.c_int(0), ctypes.byref(leaf)):
            return None
        leaves.append(leaf.value)
    head = f"lightgbm|{handle.value}|{iteration.value}|{trees.value}|{python_state}|".encode()
    return xxhash.xxh3_128_hexdigest(head + struct.pack(f"<{len(leaves)}d", *leaves))


def _sampled(trees: int) -> list[int]:
    """Up to ``SAMPLED_TREES`` tree indices, evenly spaced, the first and last included."""
    if trees <= SAMPLED_TREES:
        return list(range(trees))
    return [i * (trees - 1) // (SAMPLED_TREES - 1) for i in range(SAMPLED_TREES)]
