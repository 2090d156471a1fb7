"""Exact content fingerprints (xxh3-128) of notebook values, cheap enough per cell.

Numeric buffers are hashed in place through memoryviews (no copies); strings go
through their Arrow buffers (offsets + data), never ``hash_pandas_object``, which
is slow on strings and blind to column names and integer widths. Everything is
type-tagged and length-prefixed so different values cannot collide by layout.
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
from dataclasses import dataclass
from typing import Any, Callable

import xxhash

from nbgov.lineage.record import Fingerprint

DEFAULT_MAX_BYTES = 4 * 1024**3  # beyond this a buffer is "huge": weak fingerprint
DEFAULT_MAX_DEPTH = 8
DEFAULT_MAX_ITEMS = 200_000  # python-level elements visited per fingerprint


class _Weak(Exception):
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
class _Budget:
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
            budget = _Budget(self.max_items, self.max_bytes)
            self._feed(h, obj, 0, budget)
            fp = Fingerprint(kind, h.hexdigest(), False, summarize(obj))
            self._remember(obj, fp)
            return fp
        except _Weak as weak:
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
        try:
            arrays, meta = _probe_parts(obj)
        except Exception:
            return None
        if arrays is None or sum(a.nbytes for a in arrays) < PROBE_MIN_BYTES:
            return None
        h = xxhash.xxh3_128()
        _tag(h, "probe", meta)
        for arr in arrays:
            _sample(h, arr)
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
    def _feed(self, h: Any, obj: Any, depth: int, budget: _Budget) -> None:
        if depth > self.max_depth:
            raise _Weak(f"nested deeper than {self.max_depth}")
        budget.items -= 1
        if budget.items < 0:
            raise _Weak(f"more than {self.max_items:,} elements")
        t = type(obj)
        if obj is None or t is bool:
            _tag(h, "const", repr(obj))
            return
        if t is int:
            _tag(h, "int", str(obj))
            return
        if t is float:
            _tag(h, "float", struct.pack("<d", obj).hex())
            return
        if t is complex:
            _tag(h, "complex", struct.pack("<dd", obj.real, obj.imag).hex())
            return
        if t is str:
            _bytes(h, "str", obj.encode("utf-8", "surrogatepass"), budget)
            return
        if t in (bytes, bytearray):
            _bytes(h, t.__name__, obj, budget)
            return
        if t is memoryview:
            _bytes(h, "memoryview", obj.cast("B") if obj.c_contiguous else obj.tobytes(), budget)
            return
        if t in (list, tuple):
            _tag(h, t.__name__, str(len(obj)))
            for item in obj:
                self._feed(h, item, depth + 1, budget)
            return
        if t is dict:
            _tag(h, "dict", str(len(obj)))
            for key, value in obj.items():
                self._feed(h, key, depth + 1, budget)
                self._feed(h, value, depth + 1, budget)
            return
        if t in (set, frozenset):
            parts = sorted(self._sub_digest(item, depth + 1, budget) for item in obj)
            _tag(h, t.__name__, str(len(parts)))
            for part in parts:
                h.update(part)
            return
        handler = _handler_for(obj)
        if handler is not None:
            handler(self, h, obj, depth, budget)
            return
        if _is_scalar_like(obj):
            _tag(h, type_name(obj), repr(obj))
            return
        self._feed_object(h, obj, depth, budget)

    def _sub_digest(self, obj: Any, depth: int, budget: _Budget) -> bytes:
        sub = xxhash.xxh3_128()
        self._feed(sub, obj, depth, budget)
        return sub.digest()

    def _feed_object(self, h: Any, obj: Any, depth: int, budget: _Budget) -> None:
        """Plain objects: their type and instance state, if they have any we can read."""
        if callable(obj) and hasattr(obj, "__code__"):
            code = obj.__code__
            _tag(h, "function", f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}")
            _bytes(h, "co_code", code.co_code, budget)
            self._feed(h, tuple(c for c in code.co_consts if _is_plain_const(c)), depth + 1, budget)
            self._feed(h, code.co_names, depth + 1, budget)
            defaults = getattr(obj, "__defaults__", None)
            if defaults:
                self._feed(h, defaults, depth + 1, budget)
            return
        if isinstance(obj, type):
            _tag(h, "class", f"{obj.__module__}.{obj.__qualname__}")
            return
        if isinstance(obj, (list, tuple, dict, set, frozenset)):  # subclasses of containers
            base = next(b for b in type(obj).__mro__ if b in (list, tuple, dict, set, frozenset))
            _tag(h, "subclass", type_name(obj))
            self._feed(h, base(obj), depth + 1, budget)
            state = getattr(obj, "__dict__", None)
            if isinstance(state, dict) and state:
                self._feed(h, dict(state), depth + 1, budget)
            return
        if isinstance(obj, collections.deque):
            _tag(h, "deque", str(obj.maxlen))
            self._feed(h, list(obj), depth + 1, budget)
            return
        if isinstance(obj, array.array):
            _bytes(h, f"array.{obj.typecode}", memoryview(obj).cast("B"), budget)
            return
        native = _native_base(type(obj))
        if native is not None:
            raise _Weak(f"state held natively by {native}")
        state = getattr(obj, "__dict__", None)
        slots = _slot_values(obj)
        if state is None and slots is None:
            raise _Weak("no readable state")
        _tag(h, "object", type_name(obj))
        if state is not None:
            if not isinstance(state, dict):
                raise _Weak("no readable state")
            self._feed(h, dict(state), depth + 1, budget)
        if slots is not None:
            self._feed(h, slots, depth + 1, budget)


# -- helpers ------------------------------------------------------------------

PROBE_MIN_BYTES = 1024 * 1024
_PROBE_WINDOWS = 64
_PROBE_WINDOW_BYTES = 64


def _probe_parts(obj: Any) -> tuple[list[Any] | None, str]:
    np = sys.modules.get("numpy")
    pd = sys.modules.get("pandas")
    if np is None:
        return None, ""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or not obj.flags.c_contiguous:
            return None, ""
        return [obj], f"ndarray|{obj.dtype.str}|{obj.shape}|{obj.__array_interface__['data'][0]}"
    if pd is not None and isinstance(obj, pd.DataFrame):
        if not isinstance(obj.index, pd.RangeIndex):
            return None, ""
        arrays = []
        for values in _frame_columns(obj):
            if not isinstance(values, np.ndarray) or values.dtype.hasobject or not values.flags.c_contiguous:
                return None, ""
            arrays.append(values)
        meta = "|".join(
            [f"frame{obj.shape}", repr(list(obj.columns)), repr(obj.index)]
            + [f"{a.dtype.str}@{a.__array_interface__['data'][0]}" for a in arrays]
        )
        return arrays, meta
    return None, ""


def _sample(h: Any, arr: Any) -> None:
    flat = memoryview(arr.reshape(-1).view("uint8"))
    n = len(flat)
    if n <= _PROBE_WINDOWS * _PROBE_WINDOW_BYTES:
        h.update(flat)
        return
    step = (n - _PROBE_WINDOW_BYTES) // (_PROBE_WINDOWS - 1)
    for i in range(_PROBE_WINDOWS):
        start = i * step
        h.update(flat[start : start + _PROBE_WINDOW_BYTES])


def _tag(h: Any, tag: str, text: str) -> None:
    data = f"{tag}\x00{text}\x00".encode("utf-8", "surrogatepass")
    h.update(struct.pack("<Q", len(data)))
    h.update(data)


def _bytes(h: Any, tag: str, data: Any, budget: _Budget) -> None:
    n = memoryview(data).nbytes
    budget.bytes_left -= n
    if budget.bytes_left < 0:
        raise _Weak("too large to hash")
    _tag(h, tag, str(n))
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

_Handler = Callable[[Fingerprinter, Any, Any, int, _Budget], None]


def _handler_for(obj: Any) -> _Handler | None:
    module = type(obj).__module__
    root = module.split(".", 1)[0]
    if root == "numpy":
        np = sys.modules["numpy"]
        if isinstance(obj, np.ndarray):
            return _feed_numpy
        if isinstance(obj, np.generic):
            return _feed_numpy_scalar
        return None
    if root == "pandas":
        pd = sys.modules["pandas"]
        if isinstance(obj, pd.DataFrame):
            return _feed_pandas_frame
        if isinstance(obj, pd.Series):
            return _feed_pandas_series
        if isinstance(obj, pd.Index):
            return _feed_pandas_index
        return _feed_repr_scalar  # Timestamp, Timedelta, NA, Period, ...
    if root == "polars":
        pl = sys.modules["polars"]
        if isinstance(obj, pl.DataFrame):
            return _feed_polars_frame
        if isinstance(obj, pl.Series):
            return _feed_polars_series
        if isinstance(obj, pl.LazyFrame):
            return _feed_polars_lazy
        return None
    if root == "pyarrow":
        pa = sys.modules["pyarrow"]
        if isinstance(obj, (pa.Table, pa.RecordBatch)):
            return _feed_arrow_table
        if isinstance(obj, (pa.Array, pa.ChunkedArray)):
            return _feed_arrow_array
        if isinstance(obj, pa.Scalar):
            return _feed_repr_scalar
        return None
    if hasattr(obj, "SerializeToString") and hasattr(obj, "ListFields"):
        return _feed_protobuf  # onnx.ModelProto and other protobuf messages
    if root == "sklearn" or (hasattr(obj, "get_params") and hasattr(obj, "fit")):
        return _feed_estimator
    return None


def _feed_repr_scalar(fp: Fingerprinter, h: Any, obj: Any, depth: int, budget: _Budget) -> None:
    _tag(h, type_name(obj), repr(obj))


def _feed_numpy_scalar(fp: Fingerprinter, h: Any, obj: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "numpy.scalar", obj.dtype.str)
    if obj.dtype.hasobject:
        fp._feed(h, obj.item(), depth + 1, budget)
    else:
        h.update(obj.tobytes())


def _feed_numpy(fp: Fingerprinter, h: Any, arr: Any, depth: int, budget: _Budget) -> None:
    np = sys.modules["numpy"]
    _tag(h, "ndarray", f"{arr.dtype.str}|{arr.dtype.descr if arr.dtype.fields else ''}|{arr.shape}")
    if arr.dtype.hasobject:
        flat = arr.ravel(order="C")
        if flat.size > budget.items:
            raise _Weak(f"object array of {flat.size:,} elements")
        for item in flat:
            fp._feed(h, item, depth + 1, budget)
        return
    if not arr.flags.c_contiguous:
        if arr.nbytes > budget.bytes_left:
            raise _Weak("too large to hash")
        arr = np.ascontiguousarray(arr)  # strided views: one copy, content-equal arrays hash equal
    _bytes(h, "data", arr.reshape(-1).view(np.uint8), budget)
    fp.hashed_bytes += arr.nbytes


def _feed_protobuf(fp: Fingerprinter, h: Any, msg: Any, depth: int, budget: _Budget) -> None:
    data = msg.SerializeToString(deterministic=True)
    _bytes(h, type_name(msg), data, budget)
    fp.hashed_bytes += len(data)


def _feed_estimator(fp: Fingerprinter, h: Any, est: Any, depth: int, budget: _Budget) -> None:
    """Estimators: hyper-parameters plus learned state (public attributes ending in '_')."""
    _tag(h, "estimator", type_name(est))
    params = est.get_params(deep=False)
    fp._feed(h, {k: params[k] for k in sorted(params)}, depth + 1, budget)
    learned = {}
    for name, value in sorted(vars(est).items()):
        if name.endswith("_") and not name.startswith("_"):
            learned[name] = value
    fp._feed(h, learned, depth + 1, budget)


# pandas ---------------------------------------------------------------------


def _feed_pandas_frame(fp: Fingerprinter, h: Any, df: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "pandas.DataFrame", f"{df.shape}")
    _feed_pandas_index(fp, h, df.columns, depth, budget)
    _feed_pandas_index(fp, h, df.index, depth, budget)
    for values in _frame_columns(df):
        _feed_pandas_array(fp, h, values, depth, budget)


def _frame_columns(df: Any) -> list[Any]:
    """Each column's values (ndarray row of a 2-D block, or the ExtensionArray), in order.

    Reads the block manager directly: ``df.iloc[:, i]`` builds a Series per column,
    which costs more than hashing 10 MB. Falls back to iloc if pandas internals move.
    """
    try:
        mgr = df._mgr
        blocks, blknos, blklocs = mgr.blocks, mgr.blknos, mgr.blklocs
        out = []
        for i in range(df.shape[1]):
            values = blocks[blknos[i]].values
            out.append(values[blklocs[i]] if getattr(values, "ndim", 1) == 2 else values)
        return out
    except Exception:
        return [df.iloc[:, i].array for i in range(df.shape[1])]


def _feed_pandas_series(fp: Fingerprinter, h: Any, s: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "pandas.Series", f"{len(s)}")
    fp._feed(h, s.name, depth + 1, budget)
    _feed_pandas_index(fp, h, s.index, depth, budget)
    _feed_pandas_array(fp, h, s.array, depth, budget)


def _feed_pandas_index(fp: Fingerprinter, h: Any, idx: Any, depth: int, budget: _Budget) -> None:
    pd = sys.modules["pandas"]
    if isinstance(idx, pd.RangeIndex):
        _tag(h, "RangeIndex", f"{idx.start}:{idx.stop}:{idx.step}")
        fp._feed(h, idx.name, depth + 1, budget)
        return
    if isinstance(idx, pd.MultiIndex):
        _tag(h, "MultiIndex", f"{idx.nlevels}|{len(idx)}")
        fp._feed(h, list(idx.names), depth + 1, budget)
        for level in range(idx.nlevels):
            _feed_pandas_array(fp, h, idx.get_level_values(level).array, depth, budget)
        return
    _tag(h, "Index", f"{len(idx)}")
    fp._feed(h, idx.name, depth + 1, budget)
    _feed_pandas_array(fp, h, idx.array, depth, budget)


def _feed_pandas_array(fp: Fingerprinter, h: Any, arr: Any, depth: int, budget: _Budget) -> None:
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = arr.dtype
    _tag(h, "column", str(dtype))
    if isinstance(arr, np.ndarray):
        if dtype.hasobject:
            _feed_object_column(fp, h, arr, depth, budget)
        else:
            _feed_numpy(fp, h, arr, depth, budget)
        return
    if isinstance(dtype, pd.CategoricalDtype):
        _tag(h, "ordered", str(dtype.ordered))
        _feed_pandas_array(fp, h, dtype.categories.array, depth, budget)
        _feed_numpy(fp, h, np.asarray(arr.codes), depth, budget)
        return
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        _feed_numpy(fp, h, np.asarray(arr), depth, budget)  # NumpyExtensionArray: a view
        return
    ndarray = getattr(arr, "_ndarray", None)  # datetime/timedelta (tz-aware too): int64 view
    if ndarray is not None and isinstance(ndarray, np.ndarray) and not ndarray.dtype.hasobject:
        _feed_numpy(fp, h, ndarray, depth, budget)
        return
    if hasattr(arr, "__arrow_array__"):
        try:
            pa_arr = arr.__arrow_array__()
        except Exception:
            pa_arr = None
        if pa_arr is not None:
            _feed_arrow_values(fp, h, pa_arr, budget)
            return
    values = np.asarray(arr, dtype=object)
    _feed_object_column(fp, h, values, depth, budget)


def _feed_object_column(fp: Fingerprinter, h: Any, values: Any, depth: int, budget: _Budget) -> None:
    """Object columns: through Arrow when they hold strings/bytes, else element by element."""
    pa = _import_pyarrow()
    if pa is not None:
        try:
            pa_arr = pa.array(values, from_pandas=True)
        except Exception:
            pa_arr = None
        if pa_arr is not None and not pa.types.is_null(pa_arr.type) or (
            pa_arr is not None and len(values) and all(v is None for v in values[:1])
        ):
            _feed_arrow_values(fp, h, pa_arr, budget)
            return
    _feed_numpy(fp, h, values, depth, budget)


def _import_pyarrow() -> Any:
    try:
        import pyarrow

        return pyarrow
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None


# polars ---------------------------------------------------------------------


def _feed_polars_frame(fp: Fingerprinter, h: Any, df: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "polars.DataFrame", f"{df.shape}")
    for name, dtype in df.schema.items():
        _tag(h, "col", f"{name}\x00{dtype}")
    for series in df.get_columns():
        _feed_arrow_values(fp, h, series.to_arrow(), budget)


def _feed_polars_series(fp: Fingerprinter, h: Any, s: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "polars.Series", f"{s.name}\x00{s.dtype}\x00{len(s)}")
    _feed_arrow_values(fp, h, s.to_arrow(), budget)


def _feed_polars_lazy(fp: Fingerprinter, h: Any, lf: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "polars.LazyFrame", lf.explain(optimized=False))  # a query plan, not data


# pyarrow --------------------------------------------------------------------


def _feed_arrow_table(fp: Fingerprinter, h: Any, table: Any, depth: int, budget: _Budget) -> None:
    _tag(h, "arrow.table", f"{table.num_rows}|{table.num_columns}")
    for field in table.schema:
        _tag(h, "field", f"{field.name}\x00{field.type}\x00{field.nullable}")
    for column in table.columns:
        _feed_arrow_values(fp, h, column, budget)


def _feed_arrow_array(fp: Fingerprinter, h: Any, arr: Any, depth: int, budget: _Budget) -> None:
    _feed_arrow_values(fp, h, arr, budget)


def _feed_arrow_values(fp: Fingerprinter, h: Any, arr: Any, budget: _Budget) -> None:
    """One Arrow column, independent of chunking: nulls, lengths and data as separate streams."""
    pa = sys.modules["pyarrow"]
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    _tag(h, "arrow", f"{arr.type}|{len(arr)}|{arr.null_count}")
    nulls = xxhash.xxh3_128()
    lengths = xxhash.xxh3_128()
    data = xxhash.xxh3_128()
    any_nulls = arr.null_count > 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if any_nulls:  # every chunk's mask, so chunking does not change the stream
            mask = chunk.is_null().to_numpy(zero_copy_only=False)
            nulls.update(mask.view("uint8"))
        _feed_arrow_chunk(fp, lengths, data, chunk, budget)
    h.update(nulls.digest())
    h.update(lengths.digest())
    h.update(data.digest())


def _feed_arrow_chunk(fp: Fingerprinter, lengths: Any, data: Any, chunk: Any, budget: _Budget) -> None:
    pa = sys.modules["pyarrow"]
    np = sys.modules["numpy"]
    t = chunk.type
    if pa.types.is_dictionary(t):
        _feed_arrow_chunk(fp, lengths, data, chunk.dictionary.take(chunk.indices), budget)
        return
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        chunk = chunk.cast(pa.large_string() if pa.types.is_string_view(t) else pa.large_binary())
        t = chunk.type
    n, off = len(chunk), chunk.offset
    if pa.types.is_string(t) or pa.types.is_binary(t) or pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        bufs = chunk.buffers()
        wide = pa.types.is_large_string(t) or pa.types.is_large_binary(t)
        offsets = np.frombuffer(bufs[1], dtype=np.int64 if wide else np.int32, count=n + 1, offset=off * (8 if wide else 4))
        start, end = int(offsets[0]), int(offsets[-1])
        lengths.update(np.diff(offsets).astype(np.int64, copy=False).view(np.uint8))
        if bufs[2] is not None and end > start:
            view = memoryview(bufs[2])[start:end]
            budget.bytes_left -= end - start
            if budget.bytes_left < 0:
                raise _Weak("too large to hash")
            data.update(view)
            fp.hashed_bytes += end - start
        return
    width = _fixed_width(t)
    if width is not None and len(chunk.buffers()) == 2:
        buf = chunk.buffers()[1]
        view = memoryview(buf)[off * width : (off + n) * width]
        budget.bytes_left -= n * width
        if budget.bytes_left < 0:
            raise _Weak("too large to hash")
        data.update(view)
        fp.hashed_bytes += n * width
        return
    if pa.types.is_boolean(t):
        data.update(chunk.to_numpy(zero_copy_only=False).view(np.uint8))
        return
    # nested and exotic types: Arrow IPC of the (sliced) chunk is exact, if a copy
    sink = pa.BufferOutputStream()
    batch = pa.RecordBatch.from_arrays([chunk], ["v"])
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    payload = sink.getvalue()
    budget.bytes_left -= payload.size
    if budget.bytes_left < 0:
        raise _Weak("too large to hash")
    data.update(memoryview(payload))


def _fixed_width(t: Any) -> int | None:
    try:
        bits = t.bit_width
    except ValueError:
        return None
    if not isinstance(bits, int) or bits % 8:
        return None
    return bits // 8


def fingerprint(obj: Any) -> Fingerprint:
    """One-off fingerprint without a cache (the recorder keeps a Fingerprinter)."""
    return Fingerprinter().fingerprint(obj)


def hash_bytes(data: Any) -> str:
    """xxh3_128 hex of a bytes-like object (code, file contents)."""
    return xxhash.xxh3_128_hexdigest(data)


