"""Exact content digests of Arrow data, read in place: what lets an engine reuse work done
on a notebook frame (a Spark copy of it, a dictionary-encoded text column) while the data
is the same, and never once it changed."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import xxhash


def arrow_digest(table: pa.Table) -> str:
    """xxh3-128 of the table's schema and of every buffer of every chunk (with its offset
    and length), read in place: equal digests mean equal data."""
    digest = xxhash.xxh3_128()
    digest.update(table.schema.serialize())
    for column in table.columns:
        for chunk in column.chunks:
            _digest_array(digest, chunk)
    return digest.hexdigest()


def column_digest(column: pa.ChunkedArray) -> str:
    """``arrow_digest`` of one column: its type, and every buffer of every chunk."""
    digest = xxhash.xxh3_128()
    digest.update(str(column.type).encode())
    for chunk in column.chunks:
        _digest_array(digest, chunk)
    return digest.hexdigest()


def _digest_array(digest: Any, array: pa.Array) -> None:
    digest.update(f"{len(array)}:{array.offset}:{array.null_count};".encode())
    for buffer in array.buffers():
        digest.update(b"-" if buffer is None else memoryview(buffer))
        digest.update(b"|")
