"""Reads of IPython's output history (``y = _``, ``__``, ``___``, ``_3``, ``Out[3]``,
``Out.get(3)``, ``_oh[3]``) as inputs: the value read, and the execution that displayed it.

IPython keeps what execution ``n`` displayed in ``Out[n]`` (the dict ``_oh`` also names) and
in ``_n``, and moves ``_``, ``__`` and ``___`` along to the latest three results. So a read
is exact when the cell names a result by a constant number, or names ``_``/``__``/``___``
while they are still IPython's (the newest entries of ``Out``, the same objects): the input
is ``Out[n]`` (``record.result_name``), its source the record of execution ``n``. What cannot
be told exactly (``Out[i]`` with a computed index, the whole ``Out``, a ``_`` the user bound
to something else, a ``__`` that is no longer the second newest entry) keeps the note that
the record lacks that input.

Two halves: ``uses`` reads the cell's AST once per distinct code (cached with the analysis,
and only for a cell whose loads name the history); ``read`` runs before such a cell, looks
the values up by identity in IPython's own dict (its exact int keys only: no key the user put
there is hashed or compared) and fingerprints them. No user object is kept.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from nbgov.lineage.record import Fingerprint, result_name

# the names IPython gives earlier results: `_`, `__`, `___`, `_3`, `Out`, `_oh`
HISTORY_NAME = re.compile(r"_{1,3}|_\d+|Out|_oh")
_NUMBERED = re.compile(r"_(\d+)")
_DICTS = ("Out", "_oh")


@dataclass(frozen=True)
class HistoryRef:
    """One exact reference: ``back`` 1-3 for ``_``/``__``/``___``, else ``count`` (``_3``,
    ``Out[3]``); ``spelled`` as the code wrote it, for notes."""

    spelled: str
    back: int = 0
    count: int = 0
    through: str = ""  # the dict it indexes ("Out", "_oh"); "" for a name (`_`, `_3`)


@dataclass(frozen=True)
class HistoryUses:
    """How one cell's code reads the output history: references that may resolve exactly,
    and spellings that cannot (a computed index, the whole dict)."""

    refs: tuple[HistoryRef, ...] = ()
    unresolved: tuple[str, ...] = ()


def uses(tree: ast.AST, loads: set[str]) -> HistoryUses | None:
    """The history reads of a cell whose module-level loads are ``loads``; None when it names
    none (most cells: one pass over its loads, once per distinct code)."""
    named = sorted(name for name in loads if (name[:1] == "_" or name == "Out") and HISTORY_NAME.fullmatch(name))
    if not named:
        return None
    refs: list[HistoryRef] = []
    unresolved: list[str] = []
    for name in named:
        if name in _DICTS:
            continue
        numbered = _NUMBERED.fullmatch(name)
        refs.append(HistoryRef(name, count=int(numbered.group(1))) if numbered else HistoryRef(name, back=len(name)))
    dicts = [name for name in named if name in _DICTS]
    if dicts:
        found, loose = _indexed(tree, frozenset(dicts))
        refs += found
        unresolved += loose
    return HistoryUses(tuple(dict.fromkeys(refs)), tuple(dict.fromkeys(unresolved)))


def _indexed(tree: ast.AST, dicts: frozenset[str]) -> tuple[list[HistoryRef], list[str]]:
    """``Out[3]``, ``Out.get(3)`` (a constant number) are exact; any other load of the dict
    (``Out[i]``, ``len(Out)``, ``Out.values()``) is not."""
    exact: list[HistoryRef] = []
    loose: list[str] = []
    parents: dict[int, ast.AST] = {}
    names: list[ast.Name] = []
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[id(child)] = node
            if isinstance(child, ast.Name) and child.id in dicts and isinstance(child.ctx, ast.Load):
                names.append(child)
    for name in names:
        parent = parents.get(id(name))
        number: ast.expr | None = None
        how = ""
        if isinstance(parent, ast.Subscript) and parent.value is name and isinstance(parent.ctx, ast.Load):
            number, how = parent.slice, "[{}]"
        elif isinstance(parent, ast.Attribute) and parent.attr == "get":
            call = parents.get(id(parent))
            if isinstance(call, ast.Call) and call.func is parent and call.args:
                number, how = call.args[0], ".get({})"
        count = _count(number)
        if count is None:
            loose.append(name.id)
        else:
            exact.append(HistoryRef(name.id + how.format(count), count=count, through=name.id))
    return exact, loose


def _count(node: ast.expr | None) -> int | None:
    if isinstance(node, ast.Constant) and type(node.value) is int and node.value >= 0:
        return node.value
    return None


@dataclass(frozen=True)
class DisplayedRead:
    """A value the cell read from the output history: what execution ``count`` displayed."""

    count: int
    fingerprint: Fingerprint

    @property
    def name(self) -> str:
        return result_name(self.count)


@dataclass(frozen=True)
class HistoryReads:
    """What ``read`` found: exact reads, and the spellings it could not resolve."""

    reads: tuple[DisplayedRead, ...] = ()
    unresolved: tuple[str, ...] = ()


class Fingerprints(Protocol):
    """``namespace.Hashing``: a fingerprint of a value the recorder does not remember."""

    def value(self, name: str, value: Any) -> Fingerprint: ...


_MISSING = object()


def read(found: HistoryUses, ns: Mapping[str, Any], hashing: Fingerprints) -> HistoryReads:
    """Before the cell runs: each reference's value, if it is exactly one of IPython's
    results, fingerprinted once per result. A reference to nothing (``_7`` never displayed)
    reads nothing: the cell will fail or get None, as IPython answers it."""
    history = ns.get("_oh")
    if type(history) is not dict:  # no output cache (cache_size 0), or not IPython's
        return HistoryReads(unresolved=tuple(dict.fromkeys([r.spelled for r in found.refs] + [*found.unresolved])))
    newest = _newest(history) if any(r.back for r in found.refs) else []
    wanted = {r.count for r in found.refs if not r.back}
    values = _entries(history, wanted) if wanted else {}
    counts: dict[int, Any] = {}
    unresolved = list(found.unresolved)
    for ref in found.refs:
        hit = _resolve(ref, ns, history, newest, values)
        if hit is None:
            unresolved.append(ref.spelled)
        elif hit[0] >= 0:
            counts.setdefault(hit[0], hit[1])
    reads = tuple(DisplayedRead(count, hashing.value(result_name(count), value))
                  for count, value in sorted(counts.items()))
    return HistoryReads(reads, tuple(dict.fromkeys(unresolved)))


def _resolve(ref: HistoryRef, ns: Mapping[str, Any], history: dict[Any, Any],
             newest: list[tuple[int, Any]], values: dict[int, Any]) -> tuple[int, Any] | None:
    """(count, value) of an exact reference; (-1, None) for one that reads nothing; None when
    it cannot be told which result it reads."""
    if ref.back:
        value = ns.get(ref.spelled, _MISSING)
        if len(newest) < ref.back or value is not newest[ref.back - 1][1]:
            return None  # the user's own `_`, or no longer the `back`-th newest result
        return newest[ref.back - 1]
    if ref.through:
        if ns.get(ref.through) is not history:
            return None  # `Out` bound to something else
        return (ref.count, values[ref.count]) if ref.count in values else (-1, None)
    value = ns.get(ref.spelled, _MISSING)
    if value is _MISSING:
        return -1, None
    if ref.count in values and values[ref.count] is value:
        return ref.count, value
    return None  # `_3` bound by the user, or a result IPython has culled


def _newest(history: dict[Any, Any]) -> list[tuple[int, Any]]:
    """The three newest results, newest first (IPython adds them in execution order)."""
    out: list[tuple[int, Any]] = []
    for key, value in reversed(history.items()):
        if type(key) is int:
            out.append((key, value))
            if len(out) == 3:
                break
    return out


def _entries(history: dict[Any, Any], wanted: set[int]) -> dict[int, Any]:
    """The results of the wanted executions, found by walking the dict (a key the user put
    there is never hashed or compared)."""
    return {key: value for key, value in history.items() if type(key) is int and key in wanted}


def note(spellings: tuple[str, ...]) -> str | None:
    """The note of a cell reading earlier results the record cannot name exactly."""
    if not spellings:
        return None
    shown = ", ".join(f"`{s}`" for s in spellings)
    return (f"the cell reads earlier results through {shown} (IPython's output history) in a way nbgov cannot "
            "resolve to one displayed result: the record does not name that value, or the execution that "
            "displayed it, as an input")
