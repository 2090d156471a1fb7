"""Which engine runs a statement's SQL, as one typed value: EXPLAIN notes name it in prose
("runs in Spark as a filter"), the lineage activity by its key."""

from __future__ import annotations

from enum import Enum


class EngineName(Enum):
    """An engine nbgov runs SQL on; ``value`` is its key (``%%sqlml --engine``, lineage)."""

    DUCKDB = "duckdb"
    SPARK = "spark"

    @property
    def label(self) -> str:
        """The engine as prose names it (EXPLAIN notes): DuckDB, Spark."""
        return _LABELS[self]


_LABELS = {EngineName.DUCKDB: "DuckDB", EngineName.SPARK: "Spark"}
