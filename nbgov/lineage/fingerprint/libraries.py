"""Library classes whose instance dict holds more than their content: their own readers.

A matplotlib figure keeps its canvas and renderer (compiled, unreadable) and a
registry of callbacks (functions that reach the canvas) next to its artists.
Artists say what their content is in ``__getstate__``, which copies the dict and
drops those caches without changing anything; ``CallbackRegistry.__getstate__``
advances a counter, so it is read here instead: its fields, and which callback
ids are registered for which signal (not the callbacks themselves). A transform
keeps its parents in a dict keyed by ``id(parent)``, a memory address that differs
in every process: its parents are read in the order they registered, without the
keys, so an equal figure drawn in another kernel hashes equal.

An onnxruntime ``InferenceSession`` keeps the compiled session natively, but its
Python wrapper holds what the session was made from: the model's bytes (or path)
and the providers. That is its content; caches of the loaded model's metadata and
the native session are left out. Session options given by the user are native
objects, so such a session is weak, saying why. The ``NodeArg`` a session lists
as input or output is native too; its name, type and shape are read through
onnxruntime's own compiled getters (found statically on the class, never through
the instance).

A LightGBM ``Booster`` keeps its trees in the native library behind a ctypes handle;
its content is what LightGBM pickles: the instance dict without the training data,
the handle replaced by the model's text from LightGBM's own ``model_to_string`` (found
on the library's class, never through the instance; its native call made once per read,
``_model_text``), so a model trained in another kernel with the same data and seed
hashes equal, and one whose trees differ does not.
"""

from __future__ import annotations

import ctypes
import types
from collections.abc import Callable
from typing import Any

from nbgov.lineage.fingerprint import static
from nbgov.lineage.fingerprint.encode import enc_str
from nbgov.lineage.fingerprint.objects import Handler
from nbgov.lineage.fingerprint.walk import NotExact, Walk


def state_handler(tp: type, read: Callable[[Any], Any]) -> Handler:
    """Instances hashed as the type's name and the dict ``read`` returns for them."""
    name = enc_str(static.label(tp))

    def handle(walk: Walk, obj: Any) -> None:
        if not walk.enter(obj):
            return
        state = read(obj)
        if type(state) is not dict:
            raise NotExact(f"{static.label(tp)}: unexpected state from its library")
        walk.emit(b"O" + name + b"g%x;" % len(state))
        walk.push_items(dict.items(state))

    return handle


def own_getstate(tp: type) -> Handler:
    found = static.lookup(tp, "__getstate__")
    if found is None or found[0] is object:
        return state_handler(tp, _instance_dict(tp))
    return state_handler(tp, found[1])


def callback_registry(tp: type) -> Handler:
    read_dict = _instance_dict(tp)

    def read(registry: Any) -> dict[str, Any]:
        state = dict(read_dict(registry))
        callbacks = state.pop("callbacks", {})
        state.pop("_func_cid_map", None)
        state.pop("_cid_gen", None)
        state["callbacks"] = {signal: sorted(ids) for signal, ids in callbacks.items()}
        return state

    return state_handler(tp, read)


def transform_node(tp: type) -> Handler:
    """A matplotlib transform: its dict, with ``_parents`` (id -> weak reference) as the
    list of the parents, since ids are addresses and would make every replay differ."""
    read_dict = _instance_dict(tp)

    def read(node: Any) -> dict[str, Any]:
        state = dict(read_dict(node))
        parents = state.get("_parents")
        if type(parents) is not dict:
            raise NotExact(f"{static.label(tp)}: unexpected parents from its library")
        state["_parents"] = list(dict.values(parents))
        return state

    return state_handler(tp, read)


# what an InferenceSession was made from (onnxruntime's own attributes, set in __init__)
_SESSION_SOURCE = ("_model_bytes", "_model_path", "_providers", "_provider_options",
                   "_enable_fallback", "_read_config_from_model", "_from_model_package")  # fmt: skip


def inference_session(tp: type) -> Handler:
    read_dict = _instance_dict(tp)

    def read(session: Any) -> dict[str, Any]:
        state = read_dict(session)
        if type(state) is not dict or "_sess" not in state:
            raise NotExact(f"{static.label(tp)}: not a session onnxruntime made")
        if state.get("_sess_options_initial") is not None:
            raise NotExact(f"{static.label(tp)} made with SessionOptions: they are held natively")
        return {name: state.get(name) for name in _SESSION_SOURCE}

    return state_handler(tp, read)


# what a NodeArg describes, each read by onnxruntime's compiled property getter
_NODE_ARG_FIELDS = ("name", "type", "shape")


def node_arg(tp: type) -> Handler:
    getters = []
    for field in _NODE_ARG_FIELDS:
        found = static.lookup(tp, field)
        if found is None or type(found[1]) is not property or found[1].fget is None:
            raise NotExact(f"{static.label(tp)}: no {field} getter from its library")
        getters.append((field, found[1].fget))

    def read(arg: Any) -> dict[str, Any]:
        return {field: getter(arg) for field, getter in getters}

    return state_handler(tp, read)


def lightgbm_booster(tp: type) -> Handler:
    read_dict = _instance_dict(tp)
    found = static.lookup(tp, "model_to_string")
    if found is None or type(found[1]) is not types.FunctionType or static.module_of(found[0]) != "lightgbm.basic":
        raise NotExact(f"{static.label(tp)}: no model_to_string from its library")
    model_text = _model_text(found[1])

    def read(booster: Any) -> dict[str, Any]:
        state = dict(read_dict(booster))
        state.pop("train_set", None)  # the data it was trained on: LightGBM's own pickle leaves it out too
        state.pop("valid_sets", None)
        if state.get("_handle") is not None:
            state["_handle"] = model_text(booster, state)
        return state

    return state_handler(tp, read)


def _model_text(to_string: Callable[..., str]) -> Callable[[Any, dict[str, Any]], str]:
    """``model_to_string(num_iteration=-1)``, written by LightGBM once per read.

    LightGBM's own asks for the text with a 1 MiB buffer and, when the model's text is
    longer (a few hundred trees), writes all of it again into a buffer of the size the
    first call reported: most of the time a big model's fingerprint takes. A model is read
    in every cell that uses it, so the size found is kept per model (by its native handle;
    only a hint) and asked for at once: the same native call and arguments, and the text
    LightGBM's function appends (the pandas categories), so the same text. Where that
    module is not the one this was written against, LightGBM's own function."""
    basic = static.loaded_module("lightgbm.basic") or {}
    library, categories = basic.get("_LIB"), basic.get("_dump_pandas_categorical")
    save = getattr(library, "LGBM_BoosterSaveModelToString", None) if type(library) is ctypes.CDLL else None
    if save is None or type(categories) is not types.FunctionType or basic.get("_C_API_FEATURE_IMPORTANCE_SPLIT") != 0:
        return lambda booster, state: to_string(booster, num_iteration=-1)
    sizes: dict[int, int] = {}  # a native handle's address -> the size its text had, and a margin

    def text(booster: Any, state: dict[str, Any]) -> str:
        handle = state["_handle"]
        if type(handle) is not ctypes.c_void_p or not handle.value:
            return to_string(booster, num_iteration=-1)
        size = sizes.get(handle.value, 1 << 20)
        written = ctypes.c_int64(0)
        while True:
            buffer = ctypes.create_string_buffer(size)
            failed = save(handle, ctypes.c_int(0), ctypes.c_int(-1), ctypes.c_int(0), ctypes.c_int64(size),
                          ctypes.byref(written), ctypes.c_char_p(ctypes.addressof(buffer)))
            if failed:
                return to_string(booster, num_iteration=-1)  # (which raises LightGBM's own error)
            if written.value <= size:
                break
            size = written.value
        if len(sizes) >= 1024:
            sizes.clear()
        sizes[handle.value] = written.value + written.value // 16
        return buffer.value.decode("utf-8") + categories(state.get("pandas_categorical"))

    return text


def _instance_dict(tp: type) -> Callable[[Any], Any]:
    read, _ = static.dict_reader(tp)
    if read is None:
        raise NotExact(f"{static.label(tp)} has no readable state")
    return read


# (module, qualname, handler factory): verified library classes only (see kinds)
STATE_READERS: tuple[tuple[str, str, Callable[[type], Handler]], ...] = (
    ("matplotlib.artist", "Artist", own_getstate),
    ("matplotlib.cbook", "CallbackRegistry", callback_registry),
    ("matplotlib.transforms", "TransformNode", transform_node),
    ("onnxruntime", "InferenceSession", inference_session),
    ("onnxruntime.capi.onnxruntime_pybind11_state", "NodeArg", node_arg),
    ("lightgbm.basic", "Booster", lightgbm_booster),
)


# What scikit-learn's searches (GridSearchCV, RandomizedSearchCV, the halving ones) keep
# of the wall clock: seconds each fit and score took, and the refit.
SEARCH_TIMINGS = frozenset({"mean_fit_time", "std_fit_time", "mean_score_time", "std_score_time"})
SEARCH_TIMING_ATTRIBUTE = "refit_time_"


def search_without_timings(obj: Any) -> dict[str, Any] | None:
    """A fitted scikit-learn search's state without the timings it measured (a new dict
    over the same values, read through CPython's own getter), or None for anything else:
    the rest of the search, its cv_results_ included, is as deterministic as its fits."""
    tp = type(obj)
    base = static.library_class("sklearn.model_selection._search", "BaseSearchCV")
    if base is None or not static.verified(tp) or not static.inherits(tp, base):
        return None
    read, hidden = static.dict_reader(tp)
    state = read(obj) if read is not None and not hidden else None
    if type(state) is not dict or SEARCH_TIMING_ATTRIBUTE not in state:
        return None  # not fitted: no timings to leave out
    out: dict[str, Any] = {key: value for key, value in state.items() if key != SEARCH_TIMING_ATTRIBUTE}
    results = state.get("cv_results_")
    if type(results) is dict:
        out["cv_results_"] = {key: value for key, value in results.items() if key not in SEARCH_TIMINGS}
    return out


# What scikit-learn's cross_validate returns: a plain dict of these keys (the scores are
# "test_score", or "test_<scorer>" per scorer, each with "train_<scorer>" when asked for).
CROSS_VALIDATE_TIMINGS = ("fit_time", "score_time")
CROSS_VALIDATE_EXTRAS = frozenset({"estimator", "indices"})


def cross_validate_without_timings(obj: Any) -> dict[str, Any] | None:
    """The dict scikit-learn's cross_validate returns, without its fit_time and score_time
    (wall-clock seconds per fold, different in every run), or None for any other value: a
    dict with any key cross_validate does not make is a user's own, compared in full."""
    ndarray = static.library_class("numpy", "ndarray")
    if type(obj) is not dict or ndarray is None:
        return None
    items = list(dict.items(obj))  # CPython's own: an exact dict, its keys checked exact str first
    if not all(type(key) is str for key, _ in items):
        return None
    state = dict(items)
    timings: list[Any] = [state.get(key) for key in CROSS_VALIDATE_TIMINGS]
    if not all(type(t) is ndarray and t.ndim == 1 and t.dtype.kind == "f" for t in timings):
        return None  # numpy's own float arrays, one second count per fold
    folds = timings[0].shape
    if timings[1].shape != folds:
        return None
    tests = {key[5:] for key in state if key.startswith("test_") and len(key) > 5}
    trains = {key[6:] for key in state if key.startswith("train_") and len(key) > 6}
    scores = {f"test_{name}" for name in tests} | {f"train_{name}" for name in trains}
    if not tests or (trains and trains != tests):
        return None  # no score, or train scores that are not one per test score
    if set(state) - scores - CROSS_VALIDATE_EXTRAS != set(CROSS_VALIDATE_TIMINGS):
        return None
    if not all(type(state[key]) is ndarray and state[key].shape == folds for key in scores):
        return None
    if "estimator" in state and (type(state["estimator"]) is not list or (len(state["estimator"]),) != folds):
        return None
    if "indices" in state:
        split = state["indices"]
        keys = list(dict.keys(split)) if type(split) is dict else []
        if not (len(keys) == 2 and all(type(key) is str for key in keys) and set(keys) == {"train", "test"}):
            return None
    return {key: value for key, value in items if key not in CROSS_VALIDATE_TIMINGS}
