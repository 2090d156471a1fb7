"""Fingerprints of columnar data: numpy arrays, pandas and polars frames, Arrow.

Numeric buffers are hashed in place (memoryviews of the arrays, no copies);
strings through their Arrow buffers (offsets + bytes), never
``hash_pandas_object``, which is slow on strings and blind to column names and
integer widths. Arrow columns hash the same whatever their chunking or slicing.
Also the cheap version probe used to avoid rehashing big values between cells.
"""

from __future__ import annotations

import sys
from typing import Any

import xxhash

from nbgov.lineage.fingerprint import (
    Budget,
    Fingerprinter,
    NotExact,
    feed_bytes,
    feed_tag,
)

PROBE_MIN_BYTES = 1024 * 1024
_PROBE_WINDOWS = 64
_PROBE_WINDOW_BYTES = 64


def probe_parts(obj: Any) -> tuple[list[Any] | None, str]:
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
        for values in frame_columns(obj):
            if not isinstance(values, np.ndarray) or values.dtype.hasobject or not values.flags.c_contiguous:
                return None, ""
            arrays.append(values)
        meta = "|".join(
            [f"frame{obj.shape}", repr(list(obj.columns)), repr(obj.index)]
            + [f"{a.dtype.str}@{a.__array_interface__['data'][0]}" for a in arrays]
        )
        return arrays, meta
    return None, ""


def sample(h: Any, arr: Any) -> None:
    flat = memoryview(arr.reshape(-1).view("uint8"))
    n = len(flat)
    if n <= _PROBE_WINDOWS * _PROBE_WINDOW_BYTES:
        h.update(flat)
        return
    step = (n - _PROBE_WINDOW_BYTES) // (_PROBE_WINDOWS - 1)
    for i in range(_PROBE_WINDOWS):
        start = i * step
        h.update(flat[start : start + _PROBE_WINDOW_BYTES])


def feed_numpy(fp: Fingerprinter, h: Any, arr: Any, depth: int, budget: Budget) -> None:
    np = sys.modules["numpy"]
    feed_tag(h, "ndarray", f"{arr.dtype.str}|{arr.dtype.descr if arr.dtype.fields else ''}|{arr.shape}")
    if arr.dtype.hasobject:
        flat = arr.ravel(order="C")
        if flat.size > budget.items:
            raise NotExact(f"object array of {flat.size:,} elements")
        for item in flat:
            fp._feed(h, item, depth + 1, budget)
        return
    if not arr.flags.c_contiguous:
        if arr.nbytes > budget.bytes_left:
            raise NotExact("too large to hash")
        arr = np.ascontiguousarray(arr)  # strided views: one copy, content-equal arrays hash equal
    feed_bytes(h, "data", arr.reshape(-1).view(np.uint8), budget)
    fp.hashed_bytes += arr.nbytes


# pandas ---------------------------------------------------------------------


def feed_pandas_frame(fp: Fingerprinter, h: Any, df: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "pandas.DataFrame", f"{df.shape}")
    feed_pandas_index(fp, h, df.columns, depth, budget)
    feed_pandas_index(fp, h, df.index, depth, budget)
    for values in frame_columns(df):
        feed_pandas_array(fp, h, values, depth, budget)


def frame_columns(df: Any) -> list[Any]:
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


def feed_pandas_series(fp: Fingerprinter, h: Any, s: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "pandas.Series", f"{len(s)}")
    fp._feed(h, s.name, depth + 1, budget)
    feed_pandas_index(fp, h, s.index, depth, budget)
    feed_pandas_array(fp, h, s.array, depth, budget)


def feed_pandas_index(fp: Fingerprinter, h: Any, idx: Any, depth: int, budget: Budget) -> None:
    pd = sys.modules["pandas"]
    if isinstance(idx, pd.RangeIndex):
        feed_tag(h, "RangeIndex", f"{idx.start}:{idx.stop}:{idx.step}")
        fp._feed(h, idx.name, depth + 1, budget)
        return
    if isinstance(idx, pd.MultiIndex):
        feed_tag(h, "MultiIndex", f"{idx.nlevels}|{len(idx)}")
        fp._feed(h, list(idx.names), depth + 1, budget)
        for level in range(idx.nlevels):
            feed_pandas_array(fp, h, idx.get_level_values(level).array, depth, budget)
        return
    feed_tag(h, "Index", f"{len(idx)}")
    fp._feed(h, idx.name, depth + 1, budget)
    feed_pandas_array(fp, h, idx.array, depth, budget)


def feed_pandas_array(fp: Fingerprinter, h: Any, arr: Any, depth: int, budget: Budget) -> None:
    np = sys.modules["numpy"]
    pd = sys.modules["pandas"]
    dtype = arr.dtype
    feed_tag(h, "column", str(dtype))
    if isinstance(arr, np.ndarray):
        if dtype.hasobject:
            feed_object_column(fp, h, arr, depth, budget)
        else:
            feed_numpy(fp, h, arr, depth, budget)
        return
    if isinstance(dtype, pd.CategoricalDtype):
        feed_tag(h, "ordered", str(dtype.ordered))
        feed_pandas_array(fp, h, dtype.categories.array, depth, budget)
        feed_numpy(fp, h, np.asarray(arr.codes), depth, budget)
        return
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        feed_numpy(fp, h, np.asarray(arr), depth, budget)  # NumpyExtensionArray: a view
        return
    ndarray = getattr(arr, "_ndarray", None)  # datetime/timedelta (tz-aware too): int64 view
    if ndarray is not None and isinstance(ndarray, np.ndarray) and not ndarray.dtype.hasobject:
        feed_numpy(fp, h, ndarray, depth, budget)
        return
    if hasattr(arr, "__arrow_array__"):
        try:
            pa_arr = arr.__arrow_array__()
        except Exception:
            pa_arr = None
        if pa_arr is not None:
            feed_arrow_values(fp, h, pa_arr, budget)
            return
    values = np.asarray(arr, dtype=object)
    feed_object_column(fp, h, values, depth, budget)


def feed_object_column(fp: Fingerprinter, h: Any, values: Any, depth: int, budget: Budget) -> None:
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
            feed_arrow_values(fp, h, pa_arr, budget)
            return
    feed_numpy(fp, h, values, depth, budget)


def _import_pyarrow() -> Any:
    try:
        import pyarrow

        return pyarrow
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        return None


# polars ---------------------------------------------------------------------


def feed_polars_frame(fp: Fingerprinter, h: Any, df: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "polars.DataFrame", f"{df.shape}")
    for name, dtype in df.schema.items():
        feed_tag(h, "col", f"{name}\x00{dtype}")
    for series in df.get_columns():
        feed_arrow_values(fp, h, series.to_arrow(), budget)


def feed_polars_series(fp: Fingerprinter, h: Any, s: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "polars.Series", f"{s.name}\x00{s.dtype}\x00{len(s)}")
    feed_arrow_values(fp, h, s.to_arrow(), budget)


def feed_polars_lazy(fp: Fingerprinter, h: Any, lf: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "polars.LazyFrame", lf.explain(optimized=False))  # a query plan, not data


# pyarrow --------------------------------------------------------------------


def feed_arrow_table(fp: Fingerprinter, h: Any, table: Any, depth: int, budget: Budget) -> None:
    feed_tag(h, "arrow.table", f"{table.num_rows}|{table.num_columns}")
    for field in table.schema:
        feed_tag(h, "field", f"{field.name}\x00{field.type}\x00{field.nullable}")
    for column in table.columns:
        feed_arrow_values(fp, h, column, budget)


def feed_arrow_array(fp: Fingerprinter, h: Any, arr: Any, depth: int, budget: Budget) -> None:
    feed_arrow_values(fp, h, arr, budget)


def feed_arrow_values(fp: Fingerprinter, h: Any, arr: Any, budget: Budget) -> None:
    """One Arrow column, independent of chunking: nulls, lengths and data as separate streams."""
    pa = sys.modules["pyarrow"]
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    feed_tag(h, "arrow", f"{arr.type}|{len(arr)}|{arr.null_count}")
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
        feed_arrow_chunk(fp, lengths, data, chunk, budget)
    h.update(nulls.digest())
    h.update(lengths.digest())
    h.update(data.digest())


def feed_arrow_chunk(fp: Fingerprinter, lengths: Any, data: Any, chunk: Any, budget: Budget) -> None:
    pa = sys.modules["pyarrow"]
    np = sys.modules["numpy"]
    t = chunk.type
    if pa.types.is_dictionary(t):
        feed_arrow_chunk(fp, lengths, data, chunk.dictionary.take(chunk.indices), budget)
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
                raise NotExact("too large to hash")
            data.update(view)
            fp.hashed_bytes += end - start
        return
    width = _fixed_width(t)
    if width is not None and len(chunk.buffers()) == 2:
        buf = chunk.buffers()[1]
        view = memoryview(buf)[off * width : (off + n) * width]
        budget.bytes_left -= n * width
        if budget.bytes_left < 0:
            raise NotExact("too large to hash")
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
        raise NotExact("too large to hash")
    data.update(memoryview(payload))


def _fixed_width(t: Any) -> int | None:
    try:
        bits = t.bit_width
    except ValueError:
        return None
    if not isinstance(bits, int) or bits % 8:
        return None
    return bits // 8
