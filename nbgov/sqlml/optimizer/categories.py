"""Sets of strings a column can hold on the rows a call sees (``plan = 'gold'``,
``plan IN ('gold', 'silver')``, ``plan <> 'basic'``, ``plan NOT IN (...)``).

What a string predicate proves is only as exact as the comparison DuckDB made:
under a case- or accent-insensitive collation ``plan = 'gold'`` also admits
``'GOLD'``, which a OneHotEncoder does not know.  So a ``Categories`` is made
only from comparisons the caller knows are byte-exact (no COLLATE in the
statement, no default collation, no collated column), and the encoders'
domains derived from it are exact in the same sense as numeric ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot.expressions as exp


@dataclass(frozen=True)
class Categories:
    """Strings allowed for one column: within ``allowed`` (None: any) and not in ``excluded``.
    Like every comparison, it also proves the value is not NULL."""

    allowed: frozenset[str] | None = None
    excluded: frozenset[str] = frozenset()

    @staticmethod
    def equal(value: str) -> Categories:
        return Categories(allowed=frozenset([value]))

    @staticmethod
    def one_of(values: list[str]) -> Categories:
        return Categories(allowed=frozenset(values))

    @staticmethod
    def none_of(values: list[str]) -> Categories:
        return Categories(excluded=frozenset(values))

    def intersect(self, other: Categories) -> Categories:
        """Both constraints hold."""
        if self.allowed is None:
            allowed = other.allowed
        elif other.allowed is None:
            allowed = self.allowed
        else:
            allowed = self.allowed & other.allowed
        excluded = self.excluded | other.excluded
        if allowed is not None:
            return Categories(allowed=allowed - excluded)
        return Categories(excluded=excluded)

    @property
    def unconstrained(self) -> bool:
        return self.allowed is None and not self.excluded

    def admits(self, value: str) -> bool:
        if value in self.excluded:
            return False
        return self.allowed is None or value in self.allowed

    def only_within(self, known: tuple[str, ...]) -> bool:
        """Every admitted string is one of ``known`` (so an encoder never meets an unknown)."""
        return self.allowed is not None and self.allowed <= set(known)

    def describe(self, column: str) -> str:
        """``plan = 'gold'``, ``plan IN ('a', 'b')``, ``plan NOT IN ('c')``."""
        if self.allowed is not None:
            if len(self.allowed) == 1:
                return f"{column} = {_quote(next(iter(self.allowed)))}"
            return f"{column} IN ({', '.join(_quote(v) for v in sorted(self.allowed))})"
        if len(self.excluded) == 1:
            return f"{column} <> {_quote(next(iter(self.excluded)))}"
        if self.excluded:
            return f"{column} NOT IN ({', '.join(_quote(v) for v in sorted(self.excluded))})"
        return f"{column} IS NOT NULL"


def _quote(value: str) -> str:
    return exp.Literal.string(value).sql(dialect="duckdb")
