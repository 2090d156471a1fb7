"""The executor interface: what an engine implements to run ``Prepared`` statements.

An executor answers compile's questions (``Relations``: parse a statement, describe a
relation's columns — no data read), makes notebook frames visible by name, runs a
``Prepared`` (its steps in order, then the final SQL, generated in the engine's own
dialect from the tree) and gives the engine's plans for EXPLAIN. The DuckDB executor is
one implementation; the steps name model plans (ONNX bytes + bound columns), never
engine objects, so another engine runs the same ``Prepared``.

Errors are ``NbgovError``: a user mistake shown as one line (``ModelBindingError`` when a
value cannot reach a model input, ``SqlError`` for the engine's own message).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from nbgov.sqlml.activity import TableContent, TableIdentity
from nbgov.sqlml.planning.explain import EnginePlans
from nbgov.sqlml.planning.prepared import Prepared, Query
from nbgov.sqlml.planning.relations import Relations
from nbgov.sqlml.sql.frames import FrameNames

if TYPE_CHECKING:
    import onnxruntime as ort
    import pandas as pd

# progress(label, rows_done, rows_total): rows_total is None while the relation is still read
Progress = Callable[[str, int, int | None], None]


@dataclass(frozen=True)
class Outcome:
    """What running a ``Prepared`` gave: the result (None for statements without rows), a
    one-line summary, what running found (rows scored, decision regions), the content
    of the tables the statement wrote and, where the engine can tell, the identity of
    the tables it read."""

    frame: pd.DataFrame | None
    summary: str
    notes: tuple[str, ...]
    written: tuple[TableContent, ...]
    read: tuple[TableIdentity, ...] = ()


class Executor(Relations, Protocol):
    def exposing(self, frames: Mapping[str, Any], names: FrameNames) -> AbstractContextManager[tuple[str, ...]]:
        """Make the notebook objects among ``names`` (DataFrames, Arrow tables...) visible by
        name while the context lasts; yields the names made visible (the engine's own
        tables and views win). A name read that is a notebook variable but not a table
        is a ``SqlmlError`` saying what it is."""
        ...

    def run(self, prepared: Prepared, params: Mapping[str, Any], progress: Progress | None = None) -> Outcome:
        """Run the steps in order, then the final SQL with ``params`` bound by name."""
        ...

    def catalog_version(self) -> int | None:
        """A number that changes whenever a statement may have changed what a name reads
        (a table, view, type, setting); None when the engine cannot tell."""
        ...

    def catalog_bound(self, query: Query) -> bool:
        """Whether ``query``'s columns depend only on the catalog: it reads only the engine's
        tables and views, with no parameter, file or table function (so a cached plan need
        not ask again while ``catalog_version`` stays the same)."""
        ...

    def plans(self, prepared: Prepared, params: Mapping[str, Any], width: int) -> EnginePlans:
        """The engine's plans, without scoring or reading any row, laid out ``width`` wide."""
        ...

    def adopt_session(self, cache_key: str, session: ort.InferenceSession) -> None:
        """A session the catalog's checks opened on the bytes the plan ``cache_key``
        scores, to score with instead of opening another; an engine scoring elsewhere
        drops it."""
        ...

    def close(self) -> None: ...
