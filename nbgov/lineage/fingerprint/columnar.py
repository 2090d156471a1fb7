"""Columnar data: numpy arrays, pandas, polars and Arrow, hashed from their buffers.

Numeric buffers are hashed in place (memoryviews, no copies, block digests above
one MiB); strings through their Arrow buffers (offsets + bytes), never
``hash_pandas_object``, which is slow on strings and blind to column names and
integer widths. Arrow columns hash the same whatever their chunking or slicing.
Object columns are never handed to a native converter (``pa.array`` crashes on a
self-referential list): plain scalars go through the columnar scalar encoding,
anything else through the walk, which is cycle- and depth-safe.

Handlers here run only on objects whose class was verified to be the library's
own (see ``kinds``), so calling the library's methods on them is library code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import xxhash

from nbgov.lineage.fingerprint import memmap, static
from nbgov.lineage.fingerprint.encode import BLOCK, SCALAR_RUN, enc_str, scalar_run
from nbgov.lineage.fingerprint.static import dict_reader, inherits, library_class, loaded_module
from nbgov.lineage.fingerprint.walk import NotExact, Walk

PROBE_MIN_BYTES = 1024 * 1024
PROBE_WINDOWS = 64
PROBE_WINDOW_BYTES = 64
# where, not what: a memmap's file, a masked array's note that its mask is shared
_SUBCLASS_BOOKKEEPING = frozenset({"_mmap", "filename", "offset", "mode", "_sharedmask"})


def _numpy() -> dict[str, Any]:
    namespace = loaded_module("numpy")
    if namespace is None:
        raise NotExact("numpy was replaced in sys.modules after the array was made")
    return namespace


# numpy ------------------------------------------------------------------------


def numpy_array(walk: Walk, arr: Any) -> None:
    dtype = arr.dtype
    header = b"A" + dtype_tag(walk, dtype) + ("%r;" % (arr.shape,)).encode()
    ndarray = library_class("numpy", "ndarray")
    extra = None
    original = arr  # what back-references name (a view made here is new each time)
    if type(arr) is not ndarray:
        extra = _subclass_state(arr)
        header += _subclass_tag(type(arr))
        # the subclass's own reshape/view/tobytes/tolist are not the data (a masked array's
        # fill its masked slots, and its view reshapes the mask): read numpy's plain view
        arr = ndarray.view(arr, ndarray)
    if dtype.hasobject:
        if not walk.enter(original):
            return
        walk.emit(header)
        children = object_items(walk, arr)
        if extra:
            walk.emit(b"D%x;" % len(extra))
            children += [x for pair in extra for x in pair]
        walk.push_all(children)
        return
    walk.reached(buffer_owner(arr))
    walk.emit(header)
    if walk.secrets and dtype.kind in "SU":
        _refuse_fixed_width_secrets(walk, arr)
    data = data_bytes(walk, dtype)
    if data is not None:  # padding holds whatever the allocator left: not content
        walk.afford(arr.nbytes)
        arr = _without_padding(arr, data, walk)
    nbytes = arr.nbytes
    if nbytes <= _SMALL:  # a copy costs less than the views and flags it would take
        walk.spend(nbytes)
        walk.emit(b"a%x;" % nbytes + arr.tobytes())
    elif arr.flags.c_contiguous:
        where = memmap.region(arr) if arr.nbytes > BLOCK else None
        if where is not None:
            memmap.hash_region(walk, arr, where)
        else:
            walk.buffer(b"a", memoryview(arr.reshape(-1).view("u1")))
            if data is not None:
                walk.flush()  # hashed now: the walk's scratch it was copied into is reused
    else:
        _strided(walk, arr)
    if extra:
        walk.emit(b"D%x;" % len(extra))
        walk.push_items(extra)


_DTYPE_TAGS = 256
_SMALL = 65536


def _refuse_fixed_width_secrets(walk: Walk, arr: Any) -> None:
    """numpy's fixed-width strings searched for secrets in their own encoding: ``bytes_``
    as the bytes are, ``str_`` as UCS-4 in the array's byte order (a secret that is not
    text cannot be in a ``str_``). A UCS-4 secret is looked for without the zero bytes
    at its outer end: searching for zeros, which every character of such an array holds,
    took seven times as long; the rest still matches only the secret (or, refused too,
    its text with a last character that shares its low byte)."""
    secrets: list[tuple[bytes, str]] = []
    if arr.dtype.kind == "S":
        secrets = list(walk.secrets)
    else:
        big = arr.dtype.str.startswith(">")
        for text, reason in walk.secrets:
            try:
                encoded = text.decode("utf-8", "surrogatepass").encode("utf-32-be" if big else "utf-32-le",
                                                                       "surrogatepass")
            except UnicodeError:
                continue
            secrets.append((encoded.lstrip(b"\0") if big else encoded.rstrip(b"\0"), reason))
    contiguous = _numpy()["ascontiguousarray"](arr)
    walk.refuse_secrets_in(memoryview(contiguous.reshape(-1).view("u1")), secrets)


def dtype_tag(walk: Walk, dtype: Any) -> bytes:
    """The encoded type of an array: byte order, kind, size, unit, and field layout."""
    if dtype.fields is not None:
        _check_titles(dtype)  # before hashing the dtype: its hash hashes the titles
    tags = walk.kinds.dtype_tags
    tag = tags.get(dtype)
    if tag is None:
        tag = enc_str(f"{dtype.str}|{_fields_text(dtype) if dtype.fields else ''}")
        if len(tags) >= _DTYPE_TAGS:
            tags.clear()
        tags[dtype] = tag
    return tag


def _fields_text(dtype: Any) -> str:
    """A structured dtype's fields: ``descr`` (names, titles, formats, padding), or, where
    numpy has none (overlapping or out-of-order fields), each field's name, title, offset
    and type, and the item size."""
    try:
        return str(dtype.descr)
    except ValueError:
        pass
    parts = []
    for name in dtype.names:  # in order (``fields`` also holds each title as a key)
        spec = dtype.fields[name]
        parts.append(f"{name!r}:{spec[2:]!r}@{spec[1]}={_field_type(spec[0])}")
    return f"fields{dtype.itemsize}[" + ",".join(parts) + "]"


def _check_titles(dtype: Any) -> None:
    """A field title may be any object, and numpy's hash and repr of the dtype call its
    ``__hash__`` and ``__repr__``: only text titles are read (NotExact otherwise)."""
    for spec in dtype.fields.values():
        if len(spec) > 2 and type(spec[2]) is not str and type(spec[2]) is not bytes:
            raise NotExact("a structured dtype with a field title that is not text")
        inner = spec[0]
        while inner.subdtype is not None:
            inner = inner.subdtype[0]
        if inner.fields is not None:
            _check_titles(inner)


def _field_type(dtype: Any) -> str:
    if dtype.fields:
        return _fields_text(dtype)
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return f"({_field_type(base)}){shape}"
    return str(dtype.str)


def data_bytes(walk: Walk, dtype: Any) -> Any | None:
    """Which bytes of one item hold data (a bool array), or None when all do. The rest is
    padding: a structured dtype's gaps, the unused bytes of an x87 long double. Its bytes
    are whatever memory held (a tree unpickled by joblib, a product of long doubles), so
    hashing them gives equal arrays other fingerprints in every process."""
    if dtype.fields is None and dtype.subdtype is None and dtype.kind not in "fc":
        return None
    if dtype.fields is not None:
        _check_titles(dtype)  # the cache hashes the dtype, which hashes its titles
    cache = walk.kinds.padding
    if dtype not in cache:
        if len(cache) >= _DTYPE_TAGS:
            cache.clear()
        mask = _item_data(dtype)
        cache[dtype] = None if mask is None or mask.all() else mask
    return cache[dtype]


def _item_data(dtype: Any) -> Any | None:
    """The data bytes of one item of ``dtype`` (None: every byte), fields and subarrays
    read recursively, overlapping fields joined."""
    np = _numpy()
    if dtype.fields is not None:
        mask = np["zeros"](dtype.itemsize, dtype=bool)
        for name in dtype.names:
            field, offset = dtype.fields[name][:2]
            inner = _item_data(field)
            end = offset + field.itemsize
            mask[offset:end] |= True if inner is None else inner
        return mask
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        inner = _item_data(base)
        count = dtype.itemsize // base.itemsize if base.itemsize else 0
        return None if inner is None else np["tile"](inner, count)
    return _extended_float_data(dtype)


def _extended_float_data(dtype: Any) -> Any | None:
    """An x87 80-bit long double stored in 12 or 16 bytes: its 10 value bytes (the first
    ten in native order, the last ten byte-swapped); a complex one, both halves."""
    np = _numpy()
    longdouble = np["longdouble"]
    if dtype.type not in (longdouble, np["clongdouble"]):
        return None
    info = np["finfo"](longdouble)
    real_size = np["dtype"](longdouble).itemsize
    if info.nmant != 63 or info.nexp != 15 or real_size <= 10:
        return None
    half = np["zeros"](real_size, dtype=bool)
    if dtype.isnative:
        half[:10] = True
    else:
        half[real_size - 10:] = True
    return np["tile"](half, dtype.itemsize // real_size)


def _without_padding(arr: Any, data: Any, walk: Walk) -> Any:
    """The array's data bytes only, item after item in C order, copied into the walk's
    scratch (valid until its next copy). Copied as runs of byte columns: a boolean index of
    the columns gives the same bytes several times slower (a tree's nodes, 57 data bytes of
    64, are most of a fitted forest); into one reused buffer, as fresh memory for each of a
    forest's trees costs the system a page fault per 4 KiB, most of the copy's time."""
    np = _numpy()
    items = np["ascontiguousarray"](arr).reshape(-1).view("u1").reshape(-1, arr.dtype.itemsize)
    runs = _data_runs(data.tolist())
    width = sum(run.stop - run.start for run in runs)
    size = len(items) * width
    if walk.scratch is None or len(walk.scratch) < size:
        walk.scratch = np["empty"](max(size, 2 * len(walk.scratch) if walk.scratch is not None else 0), "u1")
    out = walk.scratch[:size].reshape(len(items), width)
    if len(runs) == 1:
        np["copyto"](out, items[:, runs[0]])
    elif 1 < len(runs) <= _MAX_RUNS:
        np["concatenate"]([items[:, run] for run in runs], axis=1, out=out)
    elif runs:
        np["compress"](data, items, axis=1, out=out)
    return out  # (no runs: all padding, a structured dtype of no fields, only an itemsize)


_MAX_RUNS = 16  # beyond: one boolean index beats many small copies


def _data_runs(keep: list[bool]) -> list[slice]:
    """The runs of data bytes in one item, as column slices, in order."""
    runs: list[slice] = []
    start = None
    for at, kept in enumerate([*keep, False]):
        if kept and start is None:
            start = at
        elif not kept and start is not None:
            runs.append(slice(start, at))
            start = None
    return runs


def _subclass_state(arr: Any) -> list[tuple[str, Any]]:
    """Instance attributes of an ndarray subclass (a masked array's mask and fill value, ...)."""
    read, _ = dict_reader(type(arr))
    if read is None:
        return []
    state = read(arr)
    if type(state) is not dict:
        return []
    items = [(k, v) for k, v in state.items() if k not in _SUBCLASS_BOOKKEEPING]
    masked = library_class("numpy.ma", "MaskedArray")
    if masked is not None and inherits(type(arr), masked) and state.get("_fill_value", 0) is None:
        items = [(k, _default_fill(arr.dtype) if k == "_fill_value" else v) for k, v in items]
    return items


def _default_fill(dtype: Any) -> Any:
    """The fill value numpy.ma sets the first time anything reads ``fill_value`` (printing
    the array does): the same array before and after, so hashed the same."""
    core = loaded_module("numpy.ma.core")
    check = core.get("_check_fill_value") if core is not None else None
    return check(None, dtype) if callable(check) else None


def _subclass_tag(tp: type) -> bytes:
    """The class of an ndarray subclass (a recarray's fields are attributes, a matrix
    multiplies as matrices); a memmap is its bytes, the same as an array's."""
    memmap_class = library_class("numpy", "memmap")
    if memmap_class is not None and inherits(tp, memmap_class):
        return b""
    return b"C" + enc_str(static.label(tp))


def _strided(walk: Walk, arr: Any) -> None:
    """Non-contiguous arrays: C order, copied a bounded chunk at a time."""
    np = _numpy()
    if arr.nbytes <= BLOCK:
        walk.buffer(b"a", memoryview(np["ascontiguousarray"](arr).reshape(-1).view("u1")))
        return
    walk.afford(arr.nbytes)
    sink = _BlockSink()
    flags = ["external_loop", "buffered", "zerosize_ok"]
    for chunk in np["nditer"](arr, flags=flags, order="C", buffersize=max(1, BLOCK // arr.itemsize)):
        sink.feed(memoryview(np["ascontiguousarray"](chunk).view("u1")))
    walk.digest_blocks(b"a", arr.nbytes, sink.finish())


class _BlockSink:
    """Cuts a stream of byte pieces into BLOCK-sized digests (same as encode.block_digests)."""

    def __init__(self) -> None:
        self.digests: list[bytes] = []
        self.pending = bytearray()

    def feed(self, piece: memoryview) -> None:
        self.pending += piece
        while len(self.pending) >= BLOCK:
            self.digests.append(xxhash.xxh3_128_digest(memoryview(self.pending)[:BLOCK]))
            del self.pending[:BLOCK]

    def finish(self) -> bytes:
        if self.pending:
            self.digests.append(xxhash.xxh3_128_digest(self.pending))
        return b"".join(self.digests)


def buffer_owner(arr: Any) -> Any:
    """The object that owns an array's memory (views of one buffer, and the bytearray or
    map it was made on, share it)."""
    return static.buffer_owner(arr)


def numpy_scalar(walk: Walk, value: Any) -> None:
    dtype = value.dtype
    if dtype.hasobject:
        walk.emit(b"g" + enc_str(dtype.str))
        walk.push(value.item())
        return
    raw = value.tobytes()
    data = data_bytes(walk, dtype)
    if data is not None:
        raw = bytes(b for b, keep in zip(raw, data.tolist()) if keep)
    walk.emit(b"g" + enc_str(dtype.str) + raw)


def object_items(walk: Walk, values: Any) -> list[Any]:
    """Python objects of an object array or column: encoded at once when they are plain
    scalars (nothing left to visit), else a count and the objects to visit, in order."""
    items = values.reshape(-1).tolist()
    run = scalar_run(items) if len(items) >= SCALAR_RUN else None
    if run is not None:
        walk.count(len(items))
        walk.emit(run)
        return []
    walk.emit(b"L%x;" % len(items))
    return items


# pandas -----------------------------------------------------------------------


def pandas_frame(walk: Walk, df: Any) -> None:
    walk.reached(df)
    attrs = _attrs(df)
    walk.emit(b"P" + enc_str(f"DataFrame{df.shape}" + ("+attrs" if attrs else "") + _flags_text(df)))
    deferred: list[Any] = []
    pandas_index(walk, df.columns, deferred)
    classes = _frame_classes or _find_frame_classes()
    layout = frame_layout(df, classes) if classes is not None and type(df) is classes[0] else None
    if layout is None:
        pandas_index(walk, df.index, deferred)
        for values in frame_columns(df):
            pandas_array(walk, values, deferred)
    else:
        walk.frame_layouts[id(df)] = layout  # the fingerprinter's probe of the frame reads it too
        _layout_values(walk, layout, deferred)
    if attrs:
        deferred.append(attrs)
    walk.push_all(deferred)


def _layout_values(walk: Walk, layout: FrameLayout, deferred: list[Any]) -> None:
    """The index and columns of a plain frame: the bytes ``pandas_index`` and
    ``pandas_array`` write for them, each block's dtype read once, not once per column."""
    steps = layout.rows
    walk.emit(b"I" + enc_str(f"RangeIndex{steps.start}:{steps.stop}:{steps.step}"))
    deferred.append(layout.index_name)
    heads: dict[int, tuple[bytes, bytes | None]] = {}  # block number -> (column tag, array header or None)
    for number, row in layout.placement:
        values = layout.blocks[number]
        head = heads.get(number)
        if head is None:
            dtype = values.dtype
            plain = data_bytes(walk, dtype) is None
            header = b"A" + dtype_tag(walk, dtype) + ("%r;" % ((values.shape[1],),)).encode() if plain else None
            head = heads[number] = (_column_tag(walk, dtype), header)
            walk.reached(buffer_owner(values))
        column = values[row]
        tag, header = head
        nbytes = column.nbytes
        if header is None or nbytes > BLOCK:  # padding, or a file-mapped region to look for
            walk.emit(tag)
            numpy_array(walk, column)
        elif nbytes <= _SMALL:
            walk.spend(nbytes)
            walk.emit(tag + header + b"a%x;" % nbytes + column.tobytes())
        else:
            walk.emit(tag + header)
            walk.buffer(b"a", memoryview(column.view(_numpy()["uint8"])))


def _attrs(obj: Any) -> dict[Any, Any] | None:
    """``DataFrame.attrs``/``Series.attrs``: metadata pandas carries through operations and
    into ``to_parquet`` files, so part of the content (frames without any hash as before)."""
    read, _ = dict_reader(type(obj))  # the instance dict, not getattr: a subclass may define `_attrs`
    state = read(obj) if read is not None else None
    attrs = state.get("_attrs") if type(state) is dict else None
    if attrs is None:
        return None
    if type(attrs) is not dict:
        raise NotExact("pandas attrs that are not a dict")
    return attrs or None


def _flags_text(obj: Any) -> str:
    """``flags.allows_duplicate_labels``: off, later operations that would duplicate a
    label raise. Only the non-default state is written (frames hash as before)."""
    read, _ = dict_reader(type(obj))
    state = read(obj) if read is not None else None
    flags = state.get("_flags") if type(state) is dict else None
    if flags is None or type(flags) is not library_class("pandas", "Flags"):
        return ""
    read_flags, _ = dict_reader(type(flags))
    flag_state = read_flags(flags) if read_flags is not None else None
    allows = flag_state.get("_allows_duplicate_labels", True) if type(flag_state) is dict else True
    if allows is True:
        return ""
    if allows is False:
        return "+no-duplicate-labels"
    raise NotExact("pandas flags that are not booleans")


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


def pandas_series(walk: Walk, s: Any) -> None:
    walk.reached(s)
    attrs = _attrs(s)
    walk.emit(b"P" + enc_str(f"Series{len(s)}" + ("+attrs" if attrs else "") + _flags_text(s)))
    deferred: list[Any] = [s.name]
    pandas_index(walk, s.index, deferred)
    pandas_array(walk, s.array, deferred)
    if attrs:
        deferred.append(attrs)
    walk.push_all(deferred)


def pandas_index_value(walk: Walk, idx: Any) -> None:
    deferred: list[Any] = []
    pandas_index(walk, idx, deferred)
    walk.push_all(deferred)


def pandas_index(walk: Walk, idx: Any, deferred: list[Any]) -> None:
    pd = loaded_module("pandas") or {}
    if inherits(type(idx), pd["RangeIndex"]):
        walk.emit(b"I" + enc_str(f"RangeIndex{idx.start}:{idx.stop}:{idx.step}"))
        deferred.append(idx.name)
        return
    if inherits(type(idx), pd["MultiIndex"]):
        walk.emit(b"I" + enc_str(f"MultiIndex{idx.nlevels}|{len(idx)}"))
        deferred.append(list(idx.names))
        for level in range(idx.nlevels):
            pandas_array(walk, idx.get_level_values(level).array, deferred)
        _levels_beyond_values(walk, idx, deferred)
        return
    walk.emit(b"I" + enc_str(f"Index{len(idx)}"))
    deferred.append(idx.name)
    pandas_array(walk, idx.array, deferred)
    freq = _index_freq(idx)
    if freq is None:
        return
    simple = _tick_text(freq)
    if simple is not None:
        walk.emit(b"J" + enc_str(simple))
    else:
        walk.emit(b"F")
        deferred.append(freq)


_TICKS = frozenset({"Day", "Hour", "Minute", "Second", "Milli", "Micro", "Nano"})


def _tick_text(freq: Any) -> str | None:
    """The common fixed steps (``D``, ``h``, ``min``, ...) as text: their class, ``n`` and
    ``normalize`` are all they hold, and reading them costs less than walking the offset."""
    tp = type(freq)
    name = static.qualname_of(tp)
    if name not in _TICKS or library_class("pandas.tseries.offsets", name) is not tp:
        return None
    n, normalize = freq.n, freq.normalize
    if type(n) is not int or type(normalize) is not bool:
        return None
    return f"{name}|{n}|{normalize}"


def _levels_beyond_values(walk: Walk, idx: Any, deferred: list[Any]) -> None:
    """A MultiIndex level its values do not determine: one that keeps values no row uses
    (after slicing or filtering) or is not in sorted order. ``levels`` shows them and code
    iterating ``levels`` sees them. Only such levels are written (others hash as before)."""
    np = _numpy()
    for position, (level, codes) in enumerate(zip(idx.levels, idx.codes)):
        size = len(level)
        if size == 0:
            continue
        used = np["zeros"](size + 1, dtype=bool)
        used[codes] = True  # a missing value's code, -1, marks the extra last slot
        try:
            ordered = bool(level.is_monotonic_increasing)
        except TypeError:  # values that do not compare: written out
            ordered = False
        if ordered and bool(used[:size].all()):
            continue
        walk.emit(b"l%x;" % position)
        pandas_array(walk, level.array, deferred)


def _index_freq(idx: Any) -> Any:
    """A DatetimeIndex's or TimedeltaIndex's ``freq``: not in its values, yet ``shift``,
    ``asfreq``, ``resample`` and slicing follow it. Read from the instance state (pandas 3
    keeps it on the index, pandas 2 on the array inside); a PeriodIndex's is in its dtype."""
    if type(idx) is library_class("pandas", "Index"):  # a plain Index: neither kind
        return None
    kinds = [library_class("pandas", "DatetimeIndex"), library_class("pandas", "TimedeltaIndex")]
    if not any(k is not None and inherits(type(idx), k) for k in kinds):
        return None
    holder = idx
    for _ in range(2):
        read, _ = dict_reader(type(holder))
        state = read(holder) if read is not None else None
        if type(state) is not dict:
            return None
        if "_freq" in state:
            return state["_freq"]
        holder = state.get("_data")
    return None


def pandas_extension_array(walk: Walk, arr: Any) -> None:
    deferred: list[Any] = []
    pandas_array(walk, arr, deferred)
    walk.push_all(deferred)


def pandas_array(walk: Walk, arr: Any, deferred: list[Any]) -> None:
    """One column's values; Python objects it holds are appended to ``deferred``."""
    np = _numpy()
    pd = loaded_module("pandas") or {}
    ndarray = np["ndarray"]
    dtype = arr.dtype
    walk.emit(_column_tag(walk, dtype))
    tp = type(arr)
    if (tp is library_class("pandas.arrays", "ArrowStringArray") and type(dtype) is pd["StringDtype"]
            and getattr(arr, "_ndarray", None) is None):
        pa_arr = _arrow_of(arr)  # (where the checks below lead it, without their MRO scans)
        if pa_arr is not None:
            arrow_values(walk, pa_arr)
            return
    if inherits(tp, ndarray):
        if dtype.hasobject:
            deferred += object_items(walk, arr)
        else:
            numpy_array(walk, arr)
        return
    if inherits(type(dtype), pd["CategoricalDtype"]):
        walk.emit(b"o" + enc_str(str(dtype.ordered)))
        pandas_array(walk, dtype.categories.array, deferred)
        numpy_array(walk, np["asarray"](arr.codes))
        return
    if inherits(type(dtype), np["dtype"]) and not dtype.hasobject:
        numpy_array(walk, np["asarray"](arr))  # NumpyExtensionArray: a view
        return
    ndarr = getattr(arr, "_ndarray", None)  # datetime/timedelta (tz-aware too): int64 view
    if ndarr is not None and inherits(type(ndarr), ndarray) and not ndarr.dtype.hasobject:
        numpy_array(walk, ndarr)
        return
    pa_arr = _arrow_of(arr)
    if pa_arr is not None:
        arrow_values(walk, pa_arr)
        return
    deferred += object_items(walk, np["asarray"](arr, dtype=object))


_PLAIN_KINDS = frozenset("biufcmM")


def _column_tag(walk: Walk, dtype: Any) -> bytes:
    """``k`` and a column's dtype as text. numpy's ``str(dtype)`` runs Python code: for its
    plain numeric, boolean and datetime dtypes (no fields, subarray or metadata) the text is
    a function of the class and ``dtype.str``, so it is kept by those."""
    tp = type(dtype)
    if (static.module_of(tp) != "numpy.dtypes" or dtype.kind not in _PLAIN_KINDS or dtype.fields is not None
            or dtype.subdtype is not None or dtype.metadata is not None):
        return b"k" + enc_str(str(dtype))
    tags = walk.kinds.column_tags
    key = (tp, dtype.str)
    tag = tags.get(key)
    if tag is None:
        tag = b"k" + enc_str(str(dtype))
        if len(tags) >= _DTYPE_TAGS:
            tags.clear()
        tags[key] = tag
    return tag


def _arrow_of(arr: Any) -> Any:
    """The Arrow array behind a pandas extension array (Arrow-backed strings, ...), if any."""
    if getattr(arr, "_pa_array", None) is not None:
        return arr._pa_array
    if getattr(type(arr), "__arrow_array__", None) is None:
        return None
    try:
        return arr.__arrow_array__()
    except Exception:
        return None


# polars -----------------------------------------------------------------------


def polars_frame(walk: Walk, df: Any) -> None:
    walk.reached(df)
    walk.emit(b"Q" + enc_str(f"DataFrame{df.shape}"))
    for name, dtype in df.schema.items():
        walk.emit(b"q" + enc_str(f"{name}\x00{dtype}"))
    for series in df.get_columns():
        arrow_values(walk, _polars_arrow(series))


def polars_series(walk: Walk, s: Any) -> None:
    walk.reached(s)
    walk.emit(b"Q" + enc_str(f"Series{s.name}\x00{s.dtype}\x00{len(s)}"))
    arrow_values(walk, _polars_arrow(s))


def _polars_arrow(series: Any) -> Any:
    try:
        return series.to_arrow()
    except Exception as exc:  # Object columns hold Python objects polars will not export
        raise NotExact(f"polars column {series.name!r} of {series.dtype} cannot be exported") from exc


def polars_lazy(walk: Walk, lf: Any) -> None:
    walk.emit(b"Q" + enc_str("LazyFrame") + enc_str(lf.explain(optimized=False)))  # a plan, not data


# pyarrow ----------------------------------------------------------------------


def arrow_table(walk: Walk, table: Any) -> None:
    walk.emit(b"W" + enc_str(f"table|{table.num_rows}|{table.num_columns}"))
    for field in table.schema:
        walk.emit(b"w" + enc_str(f"{field.name}\x00{field.type}\x00{field.nullable}"))
        if field.metadata:
            walk.emit(b"m" + _arrow_metadata(field.metadata))
    if table.schema.metadata:  # e.g. b"pandas": to_pandas() rebuilds the index and dtypes from it
        walk.emit(b"M" + _arrow_metadata(table.schema.metadata))
    for column in table.columns:
        arrow_values(walk, column)


def _arrow_metadata(metadata: Any) -> bytes:
    """Schema or field metadata (bytes -> bytes), in key order: written only when present."""
    pairs = sorted(dict(metadata).items())
    return b"%x;" % len(pairs) + b"".join(b"%x;%s%x;%s" % (len(k), k, len(v), v) for k, v in pairs)


def arrow_array(walk: Walk, arr: Any) -> None:
    arrow_values(walk, arr)


def arrow_values(walk: Walk, arr: Any) -> None:
    """One Arrow column, independent of chunking: nulls, lengths and data as separate streams."""
    pa = loaded_module("pyarrow") or {}
    chunks = arr.chunks if inherits(type(arr), pa["ChunkedArray"]) else [arr]
    walk.emit(b"W" + enc_str(f"{arr.type}|{len(arr)}|{arr.null_count}"))
    streams = _ArrowStreams()
    any_nulls = arr.null_count > 0
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if any_nulls:  # every chunk's mask, so chunking does not change the stream
            streams.nulls.update(chunk.is_null().to_numpy(zero_copy_only=False).view("uint8"))
        _arrow_chunk(walk, streams, chunk)
    walk.emit(streams.nulls.digest() + streams.lengths.digest() + streams.data.digest())


class _ArrowStreams:
    def __init__(self) -> None:
        self.nulls = xxhash.xxh3_128()
        self.lengths = xxhash.xxh3_128()
        self.data = xxhash.xxh3_128()


def _arrow_type_ids(pa: dict[str, Any]) -> dict[str, int]:
    """Arrow's type ids by name: ``pyarrow.types.is_string(t)`` and the like are
    ``t.id == lib.Type_STRING``, so one read of ``t.id`` answers them all."""
    if not _ARROW_TYPE_IDS:
        lib = pa["lib"]
        _ARROW_TYPE_IDS.update({name: getattr(lib, f"Type_{name}") for name in _ARROW_TYPE_NAMES})
    return _ARROW_TYPE_IDS


_ARROW_TYPE_NAMES = ("DICTIONARY", "STRING_VIEW", "BINARY_VIEW", "STRING", "BINARY", "LARGE_STRING", "LARGE_BINARY")
_ARROW_TYPE_IDS: dict[str, int] = {}


def _arrow_chunk(walk: Walk, streams: _ArrowStreams, chunk: Any) -> None:
    pa = loaded_module("pyarrow") or {}
    np = _numpy()
    types = pa["types"]
    ids = _arrow_type_ids(pa)
    t = chunk.type
    kind = t.id
    if kind == ids["DICTIONARY"]:
        _arrow_chunk(walk, streams, chunk.dictionary.take(chunk.indices))
        return
    if kind == ids["STRING_VIEW"] or kind == ids["BINARY_VIEW"]:
        chunk = chunk.cast(pa["large_string"]() if kind == ids["STRING_VIEW"] else pa["large_binary"]())
        t = chunk.type
        kind = t.id
    n, off = len(chunk), chunk.offset
    wide = kind == ids["LARGE_STRING"] or kind == ids["LARGE_BINARY"]
    if wide or kind == ids["STRING"] or kind == ids["BINARY"]:
        bufs = chunk.buffers()
        offsets = np["frombuffer"](
            bufs[1], dtype=np["int64"] if wide else np["int32"], count=n + 1, offset=off * (8 if wide else 4)
        )
        start, end = int(offsets[0]), int(offsets[-1])
        # each value's length (numpy's diff, without its Python-level argument handling)
        streams.lengths.update((offsets[1:] - offsets[:-1]).astype(np["int64"], copy=False).view(np["uint8"]))
        if bufs[2] is not None and end > start:
            walk.spend(end - start)
            text = memoryview(bufs[2])[start:end]
            if walk.secrets:  # a column of strings holding a secret (``secret_values``)
                walk.refuse_secrets_in(text)
            streams.data.update(text)
        return
    width = _fixed_width(t)
    if width is not None and len(chunk.buffers()) == 2:
        buf = chunk.buffers()[1]
        walk.spend(n * width)
        data = memoryview(buf)[off * width : (off + n) * width]
        if chunk.null_count:  # what sits under a null is undefined (leftover memory): read as zeros
            slots = np["frombuffer"](data, np["uint8"]).reshape(n, width).copy()
            slots[chunk.is_null().to_numpy(zero_copy_only=False)] = 0
            data = memoryview(slots.reshape(-1))
        streams.data.update(data)
        return
    if types.is_boolean(t):
        # nulls as False (numpy has no null bool; ``to_numpy`` would give objects): the null
        # mask is its own stream, so what a null covers is told apart from a False
        filled = chunk.fill_null(False) if chunk.null_count else chunk
        streams.data.update(filled.to_numpy(zero_copy_only=False).view(np["uint8"]))
        return
    # nested and exotic types: Arrow IPC of the (sliced) chunk is exact, if a copy
    sink = pa["BufferOutputStream"]()
    batch = pa["RecordBatch"].from_arrays([chunk], ["v"])
    with pa["ipc"].new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    payload = sink.getvalue()
    walk.spend(payload.size)
    streams.data.update(memoryview(payload))


def _fixed_width(t: Any) -> int | None:
    try:
        bits = t.bit_width
    except ValueError:
        return None
    if not isinstance(bits, int) or bits % 8:
        return None
    return bits // 8


# version probe (ValueTracker: reuse a big value's fingerprint between cells) -------


def probe_parts(obj: Any) -> tuple[list[Any] | None, str, list[Any]]:
    """Numeric buffers of a plain array or RangeIndex frame, a text of their identity, and
    the small labels (column names, index name) to fingerprint with them."""
    tp = type(obj)
    if static.module_of(tp).split(".", 1)[0] not in ("numpy", "pandas"):
        return None, "", []
    ndarray = library_class("numpy", "ndarray")
    if tp is ndarray:
        if obj.dtype.hasobject or not obj.flags.c_contiguous:
            return None, "", []
        return [obj], f"ndarray|{obj.dtype.str}|{obj.shape}|{obj.__array_interface__['data'][0]}", []
    frame = library_class("pandas", "DataFrame")
    range_index = library_class("pandas", "RangeIndex")
    if frame is None or tp is not frame or type(obj.index) is not range_index:
        return None, "", []
    arrays = []
    for values in frame_columns(obj):
        if type(values) is not ndarray or values.dtype.hasobject or not values.flags.c_contiguous:
            return None, "", []
        arrays.append(values)
    index = obj.index
    meta = "|".join(
        [f"frame{obj.shape}", f"range{index.start}:{index.stop}:{index.step}"]
        + [f"{a.dtype.str}@{a.__array_interface__['data'][0]}" for a in arrays]
    )
    return arrays, meta, [obj.columns, index.name]


def probe_labels(obj: Any) -> bytes | None:
    """A plain pandas Index of strings (a frame's usual column labels) as bytes: its dtype,
    name and every label, length-prefixed; None for anything else (the walk reads that).
    The same content the walk reads, without its per-buffer work."""
    classes = _label_classes or _find_label_classes()
    if classes is None or type(obj) is not classes[0]:
        return None
    _, string_dtype, object_dtype, arrow_strings, chunked, ndarray, pd = classes
    try:  # what ``name``, ``storage``, ``na_value`` and ``_values`` return, without their frames
        name, dtype, values = obj._name, obj.dtype, obj._data
        if type(dtype) is string_dtype:
            storage, na_value = dtype._storage, dtype._na_value
    except AttributeError:  # pandas internals moved: the public names
        name, dtype, values = obj.name, obj.dtype, obj._values
        if type(dtype) is string_dtype:
            storage, na_value = dtype.storage, dtype.na_value
    if name is not None and type(name) is not str:
        return None
    if type(dtype) is string_dtype:
        if na_value is (pd or {}).get("NA"):
            missing = "NA"
        elif type(na_value) is float and na_value != na_value:
            missing = "nan"
        else:
            return None
        if type(storage) is not str:
            return None
        kind = f"string|{storage}|{missing}"
    elif type(dtype) is object_dtype:
        kind = "object"
    else:
        return None
    if type(values) is arrow_strings:
        data = values._pa_array  # the array's whole content (its dtype is read above)
        labels = data.to_pylist() if type(data) is chunked else obj.tolist()
    elif type(values) is ndarray:
        labels = values.tolist()
    else:
        labels = obj.tolist()
    if type(labels) is not list or not set(map(type, labels)) <= {str}:
        return None
    return b"".join([enc_str(kind), b"N" if name is None else enc_str(name), b"%x;" % len(labels),
                     *map(enc_str, labels)])


# (Index, StringDtype, ObjectDType, ArrowStringArray, ChunkedArray, ndarray, pandas' namespace)
_label_classes: tuple[Any, ...] = ()


def _find_label_classes() -> tuple[Any, ...] | None:
    """What ``probe_labels`` checks, kept once all are imported (one lookup per probe)."""
    global _label_classes
    found = (library_class("pandas", "Index"), library_class("pandas", "StringDtype"),
             library_class("numpy.dtypes", "ObjectDType"), library_class("pandas.arrays", "ArrowStringArray"),
             library_class("pyarrow", "ChunkedArray"), library_class("numpy", "ndarray"), loaded_module("pandas"))
    if all(c is not None for c in found):
        _label_classes = found
    return found if found[0] is not None else None  # (one not imported yet is looked up next time)


_GENERIC = object()  # a frame the block-manager fast path does not cover: read it as before


def probe_plan(obj: Any) -> tuple[str, list[Any], list[tuple[Any, int, int]]] | None:
    """What ``Fingerprinter.probe`` hashes: the identity text, the labels, and the regions to
    sample (an array, byte offset, length) in column order. None when no probe applies: not
    a plain array or RangeIndex frame of numeric columns, or under PROBE_MIN_BYTES."""
    classes = _frame_classes or _find_frame_classes()
    if classes is not None and type(obj) is classes[0]:
        plan = _frame_plan(obj, classes)
        if plan is not _GENERIC:
            return plan
    arrays, meta, labels = probe_parts(obj)
    if arrays is None or sum(a.nbytes for a in arrays) < PROBE_MIN_BYTES:
        return None
    return meta, labels, [(sampled_buffer(a), 0, a.nbytes) for a in arrays]


_frame_classes: tuple[Any, ...] = ()  # (DataFrame, BlockManager, RangeIndex, ndarray) once all are found


def _find_frame_classes() -> tuple[Any, ...] | None:
    """The classes the frame probe checks, kept once all are imported (``library_class``
    keeps found classes too): one lookup per probe, not four."""
    global _frame_classes
    found = (library_class("pandas", "DataFrame"), library_class("pandas.core.internals.managers", "BlockManager"),
             library_class("pandas", "RangeIndex"), library_class("numpy", "ndarray"))
    if any(c is None for c in found):
        return None
    _frame_classes = found
    return found


@dataclass(frozen=True)
class FrameLayout:
    """A DataFrame as its block manager holds it, when that is plain: a RangeIndex, and
    numeric C-contiguous 2-D blocks. Read once for the version probe and for hashing; made
    and dropped within one call (it holds the frame's arrays)."""

    rows: range
    columns: Any  # the column labels (an Index)
    index_name: Any
    blocks: list[Any]  # each block's 2-D values
    placement: list[tuple[int, int]]  # per column, in order: (block number, row in that block)
    nbytes: int


def frame_layout(obj: Any, classes: tuple[Any, ...]) -> FrameLayout | None:
    """The layout of a DataFrame (of ``classes``' exact DataFrame class), read from its
    block manager without a view, a dict and flags per column (each a cold code path right
    after a query); None where it is not plain or cannot tell (pandas internals moved)."""
    _, manager, range_index, ndarray = classes
    try:
        mgr = obj._mgr
        if type(mgr) is not manager:
            return None
        axes = mgr.axes
        if type(axes) is not list or len(axes) != 2:
            return None
        columns, index = axes
        if type(index) is not range_index:
            return None
        steps = index._range
        if type(steps) is not range:
            return None
        blknos, blklocs = mgr._blknos, mgr._blklocs  # what the properties return, when built
        if blknos is None or blklocs is None:
            blknos, blklocs = mgr.blknos, mgr.blklocs
        blknos, blklocs = blknos.tolist(), blklocs.tolist()
        if len(blknos) != len(columns):
            return None
        blocks = []
        nbytes = 0
        for block in mgr.blocks:
            values = block.values
            if type(values) is not ndarray or values.dtype.hasobject or values.ndim != 2 \
                    or not values.flags.c_contiguous:
                return None
            nbytes += values.nbytes
            blocks.append(values)
        return FrameLayout(steps, columns, index._name, blocks, list(zip(blknos, blklocs)), nbytes)
    except (AttributeError, TypeError, ValueError, IndexError):  # pandas internals moved
        return None


def _frame_plan(obj: Any, classes: tuple[Any, ...]) -> Any:
    """``probe_parts`` of a DataFrame read from its layout: the same text and bytes;
    ``_GENERIC`` where the layout cannot tell."""
    layout = frame_layout(obj, classes)
    if layout is None:
        return _GENERIC
    return layout_probe_plan(layout)


def layout_probe_plan(layout: FrameLayout) -> tuple[str, list[Any], list[tuple[Any, int, int]]] | None:
    """What ``Fingerprinter.probe`` hashes for a frame of this layout (None: under
    PROBE_MIN_BYTES): each block's address and dtype once, its rows as regions of its buffer."""
    if layout.nbytes < PROBE_MIN_BYTES:
        return None
    flat = []
    for v in layout.blocks:
        interface = v.__array_interface__  # the address, and dtype.str as "typestr"
        flat.append((sampled_buffer(v), interface["data"][0], v.strides[0], interface["typestr"],
                     v.shape[1] * v.itemsize))
    steps = layout.rows
    meta = [f"frame({len(steps)}, {len(layout.placement)})", f"range{steps.start}:{steps.stop}:{steps.step}"]
    regions = []
    for number, row in layout.placement:
        buffer, address, stride, dtype, size = flat[number]
        meta.append(f"{dtype}@{address + row * stride}")
        regions.append((buffer, row * size, size))
    return "|".join(meta), [layout.columns, layout.index_name], regions


def sampled_buffer(values: Any) -> Any:
    """A C-contiguous array whose buffer ``ndarray(..., buffer=)`` reads: itself where numpy
    exports its buffer (numbers, booleans), else its bytes as a flat uint8 view."""
    if values.dtype.char in _BUFFER_CHARS:
        return values
    return values.reshape(-1).view(_numpy()["uint8"])


_BUFFER_CHARS = frozenset("?bBhHiIlLqQefdgFDG")


def sample_regions(h: Any, regions: list[tuple[Any, int, int]], windows: int = PROBE_WINDOWS) -> None:
    """Hash each region (an array, byte offset, length) in order: whole up to ``windows``
    windows' bytes, else ``windows`` evenly spaced windows of PROBE_WINDOW_BYTES, read
    through one strided view of the buffer (the same bytes as hashing them one by one)."""
    np = _numpy()
    ndarray, uint8 = np["ndarray"], np["uint8"]
    small = windows * PROBE_WINDOW_BYTES
    for flat, offset, size in regions:
        if size <= small:
            h.update(ndarray((size,), uint8, flat, offset))
        else:
            step = (size - PROBE_WINDOW_BYTES) // (windows - 1)
            h.update(ndarray((windows, PROBE_WINDOW_BYTES), uint8, flat, offset, (step, 1)).tobytes())
