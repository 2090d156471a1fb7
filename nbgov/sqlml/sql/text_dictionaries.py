"""Text columns of notebook Arrow tables (pyarrow, polars) handed to DuckDB
dictionary-encoded, from the second statement that reads the same column on.

DuckDB reads an Arrow text column value by value: on 1M rows a filter such as
``plan = 'gold'`` costs about as much as raw onnxruntime scoring the thousands of rows it
keeps. Dictionary-encoded, the column is still VARCHAR to SQL, with the same values and
NULLs, but DuckDB compares its few distinct values instead of every row's: two to three
times faster (``benchmarks/bench_optimizer.py --storage arrow``). Encoding costs a few
scans, so a column is encoded the second time its content is read and then kept by that
content (``column_digest``, exact: an edited column is another column, never served stale).
Columns with many distinct values, and short ones, are handed over as they are. Which
columns are encoded changes how fast a statement runs, never what it returns.

A pandas DataFrame (pandas 3 keeps text in Arrow) is handed over as an Arrow table only
when a text column it encodes is read, and only when every column converts exactly:
Arrow-backed text in place, numbers, booleans and naive datetimes from numpy with NaN and
NaT read as NULL, as DuckDB's own pandas scan reads them. Otherwise DuckDB scans the
frame itself.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nbgov.sqlml.sql.arrow_digest import column_digest

MIN_ROWS = 32_768  # below this DuckDB reads the text as quickly as it would the codes
SAMPLE_ROWS = 8_192  # the first rows, whose distinct values tell whether encoding pays
MAX_DISTINCT_SHARE = 1 / 16  # encode only where the sample repeats its values this much
KEPT_BYTES = 256 << 20  # encoded columns kept, least recently read dropped first
SEEN_DIGESTS = 1_024  # columns read once, remembered by digest


class TextDictionaries:
    """Dictionary-encoded copies of the text columns statements read, by content digest."""

    def __init__(self) -> None:
        self._kept: OrderedDict[str, pa.ChunkedArray] = OrderedDict()
        self._seen: OrderedDict[str, bool] = OrderedDict()  # digest -> whether encoding pays

    def __len__(self) -> int:
        """How many encoded columns are kept."""
        return len(self._kept)

    def table(self, table: pa.Table, columns: frozenset[str] | None) -> pa.Table:
        """``table`` with the repetitive text columns among ``columns`` (lower-cased names a
        statement reads; None: any) dictionary-encoded."""
        if table.num_rows < MIN_ROWS:
            return table
        for index, field in enumerate(table.schema):
            if (columns is None or field.name.lower() in columns) and _arrow_text(field.type):
                found = self._encoded(table.column(index))
                if found is not None:
                    table = table.set_column(index, field.name, found)
        return table

    def frame(self, frame: Any, columns: frozenset[str] | None) -> pa.Table | None:
        """A pandas DataFrame as an Arrow table with the repetitive text columns among
        ``columns`` encoded; None (DuckDB scans the frame itself) when no column is encoded
        or a column does not convert exactly. Text is looked at first: a frame none of
        whose read text is encoded is not converted at all."""
        if len(frame) < MIN_ROWS or not _distinct_text_labels(frame):
            return None
        dtypes = list(frame.dtypes)
        if not all(_convertible(dtype) for dtype in dtypes):
            return None
        encoded: dict[int, pa.ChunkedArray] = {}
        for position, (label, dtype) in enumerate(zip(frame.columns, dtypes)):
            if not isinstance(dtype, np.dtype) and (columns is None or label.lower() in columns):
                found = self._encoded(_pandas_text(frame.iloc[:, position]))
                if found is not None:
                    encoded[position] = found
        if not encoded:
            return None
        return pa.table({label: encoded[position] if position in encoded else _pandas_column(frame.iloc[:, position])
                         for position, label in enumerate(frame.columns)})

    def _encoded(self, text: pa.ChunkedArray) -> pa.ChunkedArray | None:
        """The column dictionary-encoded, or None while that does not (yet) pay."""
        key = column_digest(text)
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept
        pays = self._seen.get(key)
        if pays is None:  # first read: remember whether it would pay, encode on the next
            self._remember(key, _repetitive(text))
            return None
        if not pays:
            return None
        encoded = pc.dictionary_encode(text)
        if sum(len(chunk.dictionary) for chunk in encoded.chunks) > MAX_DISTINCT_SHARE * len(text):
            self._remember(key, False)  # its first rows repeated, the rest do not
            return None
        self._kept[key] = encoded
        while len(self._kept) > 1 and sum(c.nbytes for c in self._kept.values()) > KEPT_BYTES:
            self._kept.popitem(last=False)
        return encoded

    def _remember(self, key: str, pays: bool) -> None:
        self._seen[key] = pays
        self._seen.move_to_end(key)
        while len(self._seen) > SEEN_DIGESTS:
            self._seen.popitem(last=False)


def _arrow_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def _repetitive(text: pa.ChunkedArray) -> bool:
    sample = text.slice(0, SAMPLE_ROWS).combine_chunks()
    distinct = len(pc.dictionary_encode(sample).dictionary)  # (count_distinct has no string view kernel)
    return distinct <= MAX_DISTINCT_SHARE * max(len(sample), 1)


def _distinct_text_labels(frame: Any) -> bool:
    """Column labels DuckDB reads as the same names from Arrow: strings, distinct ignoring case."""
    labels = list(frame.columns)
    return all(type(label) is str for label in labels) and len({label.lower() for label in labels}) == len(labels)


def _convertible(dtype: Any) -> bool:
    """Whether DuckDB's pandas scan of a column of ``dtype`` can be matched from Arrow:
    numpy numbers (not float16), booleans and naive datetimes, and pandas' Arrow-backed text
    (pandas 3's ``str``, ``string[pyarrow]``); not object, categorical, tz-aware or nullable
    dtypes."""
    if isinstance(dtype, np.dtype):
        return dtype.kind in ("b", "i", "u", "M") or (dtype.kind == "f" and dtype.itemsize >= 4)
    import pandas as pd

    return isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"


def _pandas_text(series: Any) -> pa.ChunkedArray:
    """pandas' own Arrow storage of a text column, read in place."""
    text = series.array.__arrow_array__()
    return text if isinstance(text, pa.ChunkedArray) else pa.chunked_array([text])


def _pandas_column(series: Any) -> pa.ChunkedArray:
    """A ``_convertible`` column as Arrow, read as DuckDB's pandas scan reads it: numbers in
    place, except a float column holding NaN, whose NaN become NULL (and NaT NULL)."""
    if not isinstance(series.dtype, np.dtype):
        return _pandas_text(series)
    values = series.to_numpy(copy=False)
    with np.errstate(all="ignore"):  # a sum that overflows is inf, or NaN (then read as with NaN)
        has_nan = values.dtype.kind == "f" and bool(np.isnan(values.sum()))  # a NaN makes the sum NaN
    return pa.chunked_array([pa.array(values, from_pandas=has_nan or values.dtype.kind == "M")])
