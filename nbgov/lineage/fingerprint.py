"""Exact content fingerprints (xxh3-128) of notebook values, cheap enough per cell.

This module hashes Python values (scalars, strings, containers, objects,
estimators, ONNX models) and dispatches columnar data to ``fingerprint_data``.
Everything is type-tagged and length-prefixed so different values cannot collide
by layout.
Values that cannot be hashed exactly (a socket, a generator, a list of ten
million objects) get a *weak* fingerprint, typed and summarised: the recorder
never raises because of a value it met.
"""

from __future__ import annotations

import array
import collections
import struct
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xxhash

from nbgov.lineage.record import Fingerprint

DEFAULT_MAX_BYTES = 4 * 1024**3  # beyond this a buffer is "huge": weak fingerprint
DEFAULT_MAX_DEPTH = 8
DEFAULT_MAX_ITEMS = 200_000  # python-level elements visited per fingerprint


class NotExact(Exception):
    """Raised inside hashing when a part cannot be hashed exactly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def type_name(obj: Any) -> str:
    t = type(obj)
    module = t.__module__
    root = module.split(".", 1)[0]
    if module == "builtins":
        return t.__qualname__
    if root in {"pandas", "polars", "numpy", "pyarrow", "onnx", "sklearn", "torch"}:
        return f"{root}.{t.__qualname__}"
    return f"{module}.{t.__qualname__}"


@dataclass
class Budget:
    items: int
    bytes_left: int


class Fingerprinter:
    """Hashes values; caches results for immutable objects so they are hashed once.

    State (the cache) lives on the instance, owned by one recorder.
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_depth: int = DEFAULT_MAX_DEPTH,
        max_items: int = DEFAULT_MAX_ITEMS,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.max_items = max_items
        # id -> (object kept alive so the id is not reused, fingerprint)
        self._immutable_cache: dict[int, tuple[Any, Fingerprint]] = {}
        # id -> (weak reference proving the id still names that object, fingerprint)
        self._arrow_cache: dict[int, tuple[weakref.ref[Any], Fingerprint]] = {}
        self.hashed_bytes = 0  # for benchmarks and tests: work actually done

    # -- public ------------------------------------------------------------
    def fingerprint(self, obj: Any) -> Fingerprint:
        """Fingerprint ``obj``; never raises."""
        kind = "?"
        try:
            kind = type_name(obj)
            cached = self._cached(obj)
            if cached is not None:
                return cached
            h = xxhash.xxh3_128()
            budget = Budget(self.max_items, self.max_bytes)
            self._feed(h, obj, 0, budget)
            fp = Fingerprint(kind, h.hexdigest(), False, summarize(obj))
            self._remember(obj, fp)
            return fp
        except NotExact as weak:
            return Fingerprint(kind, None, True, _short(f"{summarize(obj)}; {weak.reason}"))
        except RecursionError:
            return Fingerprint(kind, None, True, "too deeply nested")
        except Exception as exc:  # a value whose own methods fail: still no exception
            return Fingerprint(kind, None, True, _short(f"unhashable: {type(exc).__name__}"))

    def probe(self, obj: Any) -> str | None:
        """A cheap version probe of a large numeric array or frame, None when not applicable.

        Hashes identity of the buffers (address, shape, dtype, names) and a sample of
        their bytes: used to skip re-hashing a big value between two cells when
        nothing visibly changed. Values under PROBE_MIN_BYTES are always hashed fully.
        """
        from nbgov.lineage import fingerprint_data as data

        try:
            arrays, meta = data.probe_parts(obj)
        except Exception:
            return None
        if arrays is None or sum(a.nbytes for a in arrays) < data.PROBE_MIN_BYTES:
            return None
        h = xxhash.xxh3_128()
        feed_tag(h, "probe", meta)
        for arr in arrays:
            data.sample(h, arr)
        return h.hexdigest()

    def clear(self) -> None:
        self._immutable_cache.clear()
        self._arrow_cache.clear()

    # -- caching -----------------------------------------------------------
    def _cached(self, obj: Any) -> Fingerprint | None:
        hit = self._immutable_cache.get(id(obj))
        if hit is not None and hit[0] is obj:
            return hit[1]
        if _is_arrow(obj):
            entry = self._arrow_cache.get(id(obj))
            if entry is not None and entry[0]() is obj:
                return entry[1]
        return None

    def _remember(self, obj: Any, fp: Fingerprint) -> None:
        if isinstance(obj, (str, bytes)) and len(obj) >= 4096 or _is_frozen_numpy(obj):
            if len(self._immutable_cache) > 4096:
                self._immutable_cache.clear()
            self._immutable_cache[id(obj)] = (obj, fp)
        elif _is_arrow(obj):  # pyarrow arrays/tables are immutable
            try:
                ref = weakref.ref(obj)
            except TypeError:
                return
            if len(self._arrow_cache) > 4096:
                self._arrow_cache = {k: v for k, v in self._arrow_cache.items() if v[0]() is not None}
            self._arrow_cache[id(obj)] = (ref, fp)

    # -- hashing -----------------------------------------------------------
    def _feed(self, h: Any, obj: Any, depth: int, budget: Budget) -> None:
        if depth > self.max_depth:
            raise NotExact(f"nested deeper than {self.max_depth}")
        budget.items -= 1
        if budget.items < 0:
            raise NotExact(f"more than {self.max_items:,} elements")
        t = type(obj)
        if obj is None or t is bool:
            feed_tag(h, "const", repr(obj))
            return
        if t is int:
            feed_tag(h, "int", str(obj))
            return
        if t is float:
            feed_tag(h, "float", struct.pack("<d", obj).hex())
            return
        if t is complex:
            feed_tag(h, "complex", struct.pack("<dd", obj.real, obj.imag).hex())
            return
        if t is str:
            feed_bytes(h, "str", obj.encode("utf-8", "surrogatepass"), budget)
            return
        if t in (bytes, bytearray):
            feed_bytes(h, t.__name__, obj, budget)
            return
        if t is memoryview:
            feed_bytes(h, "memoryview", obj.cast("B") if obj.c_contiguous else obj.tobytes(), budget)
            return
        if t in (list, tuple):
            feed_tag(h, t.__name__, str(len(obj)))
            for item in obj:
                self._feed(h, item, depth + 1, budget)
            return
        if t is dict:
            feed_tag(h, "dict", str(len(obj)))
            for key, value in obj.items():
                self._feed(h, key, depth + 1, budget)
                self._feed(h, value, depth + 1, budget)
            return
        if t in (set, frozenset):
            parts = sorted(self._sub_digest(item, depth + 1, budget) for item in obj)
            feed_tag(h, t.__name__, str(len(parts)))
            for part in parts:
                h.update(part)
            return
        handler = _handler_for(obj)
        if handler is not None:
            handler(self, h, obj, depth, budget)
            return
        if _is_scalar_like(obj):
            feed_tag(h, type_name(obj), repr(obj))
            return
        self._feed_object(h, obj, depth, budget)

    def _sub_digest(self, obj: Any, depth: int, budget: Budget) -> bytes:
        sub = xxhash.xxh3_128()
        self._feed(sub, obj, depth, budget)
        return sub.digest()

    def _feed_object(self, h: Any, obj: Any, depth: int, budget: Budget) -> None:
        """Plain objects: their type and instance state, if they have any we can read."""
        if callable(obj) and hasattr(obj, "__code__"):
            code = obj.__code__
            feed_tag(h, "function", f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
            feed_bytes(h, "co_code", code.co_code, budget)
            self._feed(h, tuple(c for c in code.co_consts if _is_plain_const(c)), depth + 1, budget)
            self._feed(h, code.co_names, depth + 1, budget)
            defaults = getattr(obj, "__defaults__", None)
            if defaults:
                self._feed(h, defaults, depth + 1, budget)
            return
        if isinstance(obj, type):
            feed_tag(h, "class", f"{obj.__module__}.{obj.__qualname__}")
            return
        if isinstance(obj, (list, tuple, dict, set, frozenset)):  # subclasses of containers
            base = next(b for b in type(obj).__mro__ if b in (list, tuple, dict, set, frozenset))
            feed_tag(h, "subclass", type_name(obj))
            self._feed(h, base(obj), depth + 1, budget)
            state = getattr(obj, "__dict__", None)
            if isinstance(state, dict) and state:
                self._feed(h, dict(state), depth + 1, budget)
            return
        if isinstance(obj, collections.deque):
            feed_tag(h, "deque", str(obj.maxlen))
            self._feed(h, list(obj), depth + 1, budget)
            return
        if isinstance(obj, array.array):
            feed_bytes(h, f"array.{obj.typecode}", memoryview(obj).cast("B"), budget)
            return
        native = _native_base(type(obj))
        if native is not None:
            raise NotExact(f"state held natively by {native}")
        state = getattr(obj, "__dict__", None)
        slots = _slot_values(obj)
        if state is None and slots is None:
            raise NotExact("no readable state")
        feed_tag(h, "object", type_name(obj))
        if state is not None:
            if not isinstance(state, dict):
                raise NotExact("no readable state")
            self._feed(h, dict(state), depth + 1, budget)
        if slots is not None:
            self._feed(h, slots, depth + 1, budget)


# -- helpers ------------------------------------------------------------------

def feed_tag(h: Any, tag: str, text: str) -> None:
    data = f"{tag}\x00{text}\x00".encode("utf-8", "surrogatepass")
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def feed_bytes(h: Any, tag: str, data: Any, budget: Budget) -> None:
    n = memoryview(data).nbytes
    budget.bytes_left -= n
    if budget.bytes_left < 0:
        raise NotExact("too large to hash")
    feed_tag(h, tag, str(n))
    h.update(data)


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_plain_const(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, float, complex, bool, type(None), tuple, frozenset))


def _is_scalar_like(obj: Any) -> bool:
    import datetime
    import decimal
    import fractions
    import pathlib
    import uuid

    return isinstance(
        obj,
        (
            datetime.date,
            datetime.time,
            datetime.timedelta,
            decimal.Decimal,
            fractions.Fraction,
            pathlib.PurePath,
            uuid.UUID,
            range,
            slice,
        ),
    ) or (type(obj).__module__ == "enum" or hasattr(type(obj), "_member_map_"))


_HEAPTYPE = 1 << 9


def _native_base(cls: type) -> str | None:
    """A C-implemented base class (other than object) keeps state Python cannot read."""
    for klass in cls.__mro__:
        if klass is object:
            continue
        if not klass.__flags__ & _HEAPTYPE:
            return klass.__qualname__
    return None


def _slot_values(obj: Any) -> tuple[Any, ...] | None:
    names: list[str] = []
    for klass in type(obj).__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        names.extend(s for s in slots if s not in ("__dict__", "__weakref__"))
    if not names:
        return None
    return tuple((n, getattr(obj, n, "<unset>")) for n in names)


def _is_arrow(obj: Any) -> bool:
    return type(obj).__module__.startswith("pyarrow")


def _is_frozen_numpy(obj: Any) -> bool:
    np = sys.modules.get("numpy")
    if np is None or not isinstance(obj, np.ndarray) or obj.dtype.hasobject:
        return False
    base: Any = obj
    while isinstance(base, np.ndarray):  # read-only all the way down: nobody can write it
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or isinstance(base, bytes)


def summarize(obj: Any) -> str:
    """A short human description: shape for arrays and frames, length for containers."""
    try:
        shape = getattr(obj, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
            return "×".join(str(d) for d in shape) if shape else "scalar"
        if isinstance(obj, (str, bytes, bytearray)):
            return f"{len(obj):,} {'chars' if isinstance(obj, str) else 'bytes'}"
        if isinstance(obj, (list, tuple, dict, set, frozenset)):
            return f"{len(obj):,} items"
        if isinstance(obj, (int, float, bool, complex)) or obj is None:
            return _short(repr(obj), 40)
        num_rows = getattr(obj, "num_rows", None)
        if isinstance(num_rows, int):
            return f"{num_rows:,} rows"
        return type_name(obj)
    except Exception:
        return type_name(obj)


# -- library handlers (imported lazily: only when such a value is met) ----------

_Handler = Callable[[Fingerprinter, Any, Any, int, Budget], None]


def _handler_for(obj: Any) -> _Handler | None:
    from nbgov.lineage import fingerprint_data as data

    module = type(obj).__module__
    root = module.split(".", 1)[0]
    if root == "numpy":
        np = sys.modules["numpy"]
        if isinstance(obj, np.ndarray):
            return data.feed_numpy
        if isinstance(obj, np.generic):
            return _feed_numpy_scalar
        return None
    if root == "pandas":
        pd = sys.modules["pandas"]
        if isinstance(obj, pd.DataFrame):
            return data.feed_pandas_frame
        if isinstance(obj, pd.Series):
            return data.feed_pandas_series
        if isinstance(obj, pd.Index):
            return data.feed_pandas_index
        return _feed_repr_scalar  # Timestamp, Timedelta, NA, Period, ...
    if root == "polars":
        pl = sys.modules["polars"]
        if isinstance(obj, pl.DataFrame):
            return data.feed_polars_frame
        if isinstance(obj, pl.Series):
            return data.feed_polars_series
        if isinstance(obj, pl.LazyFrame):
            return data.feed_polars_lazy
        return None
    if root == "pyarrow":
        pa = sys.modules["pyarrow"]
        if isinstance(obj, (pa.Table, pa.RecordBatch)):
            return data.feed_arrow_table
        if isinstance(obj, (pa.Array, pa.ChunkedArray)):
            return data.feed_arrow_array
        if isinstance(obj, pa.Scalar):
            return _feed_repr_scalar
        return None
    if hasattr(obj, "SerializeToString") and hasattr(obj, "ListFields"):
        return _feed_protobuf  # onnx.ModelProto and other protobuf messages
    if root == "sklearn" or (hasattr(obj, "get_params") and hasattr(obj, "fit")):
        return _feed_estimator
    return None


def _feed_repr_scalar(fp: Fingerprinter, h: Any, obj: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, type_name(obj), repr(obj))


def _feed_numpy_scalar(fp: Fingerprinter, h: Any, obj: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "numpy.scalar", obj.dtype.str)
    if obj.dtype.hasobject:
        fp._feed(h, obj.item(), depth + 1, budget)
    else:
        h.update(obj.tobytes())


def _feed_protobuf(fp: Fingerprinter, h: Any, msg: Any, depth: int, budget: Budget) -> None:
    data = msg.SerializeToString(deterministic=True)
    feed_bytes(h, type_name(msg), data, budget)
    fp.hashed_bytes += len(data)


def _feed_estimator(fp: Fingerprinter, h: Any, est: Any, depth: int, budget: Budget) -> None:
    """Estimators: hyper-parameters plus learned state (public attributes ending in '_')."""
    feed_tag(h, "estimator", type_name(est))
    params = est.get_params(deep=False)
    fp._feed(h, {k: params[k] for k in sorted(params)}, depth + 1, budget)
    learned = {}
    for name, value in sorted(vars(est).items()):
        if name.endswith("_") and not name.startswith("_"):
            learned[name] = value
    fp._feed(h, learned, depth + 1, budget)


def fingerprint(obj: Any) -> Fingerprint:
    """One-off fingerprint without a cache (the recorder keeps a Fingerprinter)."""
    return Fingerprinter().fingerprint(obj)


def hash_bytes(data: Any) -> str:
    """xxh3_128 hex of a bytes-like object (code, file contents)."""
    return xxhash.xxh3_128_hexdigest(data)


