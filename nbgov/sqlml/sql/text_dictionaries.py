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
"""

from __future__ import annotations

from collections import OrderedDict

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
