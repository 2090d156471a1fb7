"""Content fingerprints of the DuckDB tables a statement created or changed, taken after
it ran, for lineage: xxh3-128 over the table's Arrow data (schema and rows) in a stable
row order, so the same rows give the same hash whatever order they were written in.

Exact or absent, never approximate: a table larger than ``MAX_CELLS``, a view (its rows
are computed when read), a dropped table or one DuckDB cannot sort gets no hash and a
reason instead.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import xxhash

from nbgov.sqlml.activity import TableContent
from nbgov.sqlml.sql.quoting import quote_ident

MAX_CELLS = 1_000_000  # rows x columns hashed after a statement (about 0.25 s here); above: a reason


def table_content(con: duckdb.DuckDBPyConnection, table: str) -> TableContent:
    """The fingerprint of ``table`` (``name`` or ``schema.name``, as the statement wrote it)."""
    parts = table.split(".")
    schema, name = (parts[-2], parts[-1]) if len(parts) > 1 else (None, parts[0])
    kind = _kind(con, schema, name)
    if kind is None:
        return TableContent(table, None, None, "the table no longer exists (dropped or renamed)")
    if kind == "view":
        return TableContent(table, None, None, "a view: its rows are computed when it is read")
    qualified = ".".join(quote_ident(p) for p in parts)
    try:
        rows = int(con.execute(f"SELECT count(*) FROM {qualified}").fetchall()[0][0])
        columns = len(con.execute(f"SELECT * FROM {qualified} LIMIT 0").description or ())
        if rows * columns > MAX_CELLS:
            return TableContent(
                table, rows, None, f"{rows:,} rows x {columns} columns: above the {MAX_CELLS:,}-cell bound for hashing"
            )
        data = con.sql(f"SELECT * FROM {qualified} ORDER BY ALL").to_arrow_table()
    except duckdb.Error as error:
        return TableContent(table, None, None, f"not readable for hashing: {str(error).splitlines()[0][:160]}")
    return TableContent(table, rows, arrow_hash(data))


def arrow_hash(data: pa.Table) -> str:
    """xxh3-128 of the table in Arrow's IPC stream form (one batch, so chunking does not matter)."""
    data = data.combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, data.schema) as writer:
        for batch in data.to_batches(max_chunksize=max(data.num_rows, 1)):
            writer.write_batch(batch)
    return xxhash.xxh3_128_hexdigest(memoryview(sink.getvalue()))


def _kind(con: duckdb.DuckDBPyConnection, schema: str | None, name: str) -> str | None:
    """"table", "view" or None (no such relation) in ``schema`` (default: the current one)."""
    rows = con.execute(
        "SELECT 'table' FROM duckdb_tables() WHERE lower(table_name) = lower($name) "
        "AND lower(schema_name) = lower(coalesce($schema, current_schema())) "
        "UNION ALL SELECT 'view' FROM duckdb_views() WHERE NOT internal AND lower(view_name) = lower($name) "
        "AND lower(schema_name) = lower(coalesce($schema, current_schema()))",
        {"name": name, "schema": schema},
    ).fetchall()
    return str(rows[0][0]) if rows else None
