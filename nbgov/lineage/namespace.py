"""What a cell did to the notebook's names, observed without holding on to the user's objects.

Before a cell: fingerprints of the values the cell may read or change (those its code
names, and the globals of notebook functions it calls) and the identities (``id`` and
type, never the object) of the names it may rebind. After: which names were rebound,
created, changed in place or deleted, with fingerprints of what was written.

The cost follows the names a cell touches, not the size of the namespace: new names
are found through the namespace dict's insertion order (everything after the last key
seen before the cell), deletions through its length. Only a dynamic cell (``exec``,
``globals()``, magics) compares the identities of every name.

Nothing here runs user code: values are told apart by ``type()`` and identity, module
and class attributes are read statically, and fingerprints come from the
``ValueTracker``. An interrupt while hashing marks that fingerprint, and every later
one of the cell, unfinished instead of losing the record.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from nbgov.lineage.analysis import CellNames
from nbgov.lineage.fingerprint import type_name
from nbgov.lineage.record import Fingerprint, Write, WriteSummary
from nbgov.lineage.values import ValueTracker

MAX_NAMED_WRITES = 1000  # beyond this, a cell's new bindings are summarised (WriteSummary)
_INTERNAL = re.compile(r"^(_+|_i+|_i\d+|_\d+|_ih|_oh|_dh|__.*__|In|Out|get_ipython|exit|quit)$")
_MISSING = object()
_SCALARS = (int, float, bool, type(None), str, bytes)
_TYPE_MODULE = type.__dict__["__module__"]

Identity = tuple[int, type]


def weak(kind: str, why: str) -> Fingerprint:
    """A fingerprint that proves nothing, saying why."""
    return Fingerprint(kind, None, True, why)


class Hashing:
    """The fingerprints of one cell. An interrupt (Ctrl-C, the kernel's interrupt) marks the
    fingerprint being taken, and all later ones of the cell, unfinished."""

    def __init__(self, values: ValueTracker) -> None:
        self.values = values
        self.unfinished: list[str] = []

    def _take(self, name: str, value: Any, how: str) -> Fingerprint:
        if self.unfinished:
            return self._mark(name, value)
        try:
            if how == "before":
                return self.values.before(name, value)
            if how == "after":
                return self.values.after(name, value)
            return self.values.fingerprinter.fingerprint(value)
        except KeyboardInterrupt:
            return self._mark(name, value)
        except BaseException as exc:  # noqa: BLE001 - user code reached by hashing may raise SystemExit
            return weak(_kind(value), f"not fingerprinted: {type(exc).__name__} while reading it")

    def _mark(self, name: str, value: Any) -> Fingerprint:
        self.unfinished.append(name)
        return weak(_kind(value), "not fingerprinted: recording was interrupted")

    def before(self, name: str, value: Any) -> Fingerprint:
        return self._take(name, value, "before")

    def after(self, name: str, value: Any) -> Fingerprint:
        return self._take(name, value, "after")

    def value(self, name: str, value: Any) -> Fingerprint:
        return self._take(name, value, "value")


@dataclass
class Snapshot:
    """The namespace as far as one cell can touch it, taken before the cell runs."""

    names: CellNames
    before: dict[str, Fingerprint]  # candidates: values the cell may read or change
    identities: dict[str, Identity]  # names the cell may rebind (all data names if dynamic)
    unchanged: set[str]  # candidates provably only read: no after-fingerprint needed
    called_globals: set[str]  # globals named by the code of notebook functions the cell calls
    marker: Any  # the last key of the namespace before the cell (insertion order)
    size: int


@dataclass
class NamespaceChanges:
    """What the cell did to the names: reads (before-fingerprints), writes, deletes."""

    reads: list[tuple[str, Fingerprint]] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    more_writes: WriteSummary | None = None
    more_written: list[str] = field(default_factory=list)  # the names the summary stands for
    notes: list[str] = field(default_factory=list)
    by_identity: dict[int, Fingerprint] = field(default_factory=dict)  # id(value) -> after-fingerprint


class NamespaceObserver:
    """Keeps the set of names seen at the end of the last cell (strings, not values)."""

    def __init__(self, values: ValueTracker, ns: Mapping[str, Any], hidden: Mapping[str, Any]) -> None:
        self.values = values
        self.hidden = hidden
        self._known: set[str] = set(ns)
        self._end_marker: Any = _last_key(ns)

    # -- before ------------------------------------------------------------
    def before(self, names: CellNames, ns: Mapping[str, Any], hashing: Hashing) -> Snapshot:
        self._catch_up(ns)
        called = self._called_globals(names, ns)
        only_rebound = names.stores - names.loads - names.mutates - names.impure
        candidates = sorted(
            n for n in (names.referenced - only_rebound) | called if n in ns and self.is_data(n, ns[n])
        )
        before = {name: hashing.before(name, ns[name]) for name in candidates}
        if names.dynamic:
            identities = {k: _identity(v) for k, v in ns.items() if not _INTERNAL.match(k)}
        else:
            touched = names.referenced | names.stores | names.deletes | called
            identities = {n: _identity(ns[n]) for n in touched if n in ns}
        try:
            unchanged = self.values.provably_unchanged(names, set(candidates), ns)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - an optimisation only (a stub module may raise anything)
            unchanged = set()
        return Snapshot(names, before, identities, unchanged, called, _last_key(ns), len(ns))

    def _catch_up(self, ns: Mapping[str, Any]) -> None:
        """Names added or removed between cells (widgets, threads): follow them cheaply."""
        if len(ns) == len(self._known):
            return
        added = _keys_after(ns, self._end_marker)
        if added is not None:
            self._known.update(added)
        if added is None or len(ns) != len(self._known):
            self._known = set(ns)

    def _called_globals(self, names: CellNames, ns: Mapping[str, Any]) -> set[str]:
        found: set[str] = set()
        for name in names.loads:
            fn = ns.get(name)
            if type(fn) is types.FunctionType and fn.__globals__ is ns:
                found |= code_globals(fn.__code__)
        return found

    # -- after -------------------------------------------------------------
    def after(self, snap: Snapshot, ns: Mapping[str, Any], hashing: Hashing) -> NamespaceChanges:
        changes = NamespaceChanges()
        names = snap.names
        new_keys = _keys_after(ns, snap.marker)
        if new_keys is None:  # the marker itself was deleted: compare with every name
            new_keys = [k for k in ns if k not in self._known]
        created = {k for k in new_keys if k not in self._known}
        rebound = set(new_keys) | {n for n in names.stores if n in ns}
        for name, identity in snap.identities.items():
            value = ns.get(name, _MISSING)
            if value is not _MISSING and _identity(value) != identity:
                rebound.add(name)
        deleted = {n for n in snap.identities if n not in ns}
        if len(ns) != snap.size + len(created) - len(deleted & self._known):
            deleted = self._known - ns.keys()  # something the code did not show removed names
        self._known |= created
        self._known -= deleted
        self._end_marker = _last_key(ns)

        changes.reads = self._reads(snap)
        rebound_data = sorted(n for n in rebound if self.is_data(n, ns[n]))
        named, more = rebound_data[:MAX_NAMED_WRITES], rebound_data[MAX_NAMED_WRITES:]
        for name in named:
            changes.writes.append(self._write(name, ns[name], False, hashing, changes))
        if more:
            changes.more_writes = summarise_writes(more, ns)
            changes.more_written = more
        mutated = self._mutated(snap, ns, rebound, hashing, changes)
        changes.writes += mutated
        changes.deletes = sorted(n for n in deleted if not _INTERNAL.match(n))
        return changes

    def _reads(self, snap: Snapshot) -> list[tuple[str, Fingerprint]]:
        """Names loaded before being stored (or read by called notebook functions) that existed."""
        wanted = {n for n in snap.names.loads | snap.called_globals if n in snap.before}
        return [(name, snap.before[name]) for name in sorted(wanted)]

    def _mutated(
        self, snap: Snapshot, ns: Mapping[str, Any], rebound: set[str], hashing: Hashing, changes: NamespaceChanges
    ) -> list[Write]:
        """Candidates changed in place (whatever API did it), then names sharing their objects."""
        out: list[Write] = []
        for name, before in snap.before.items():
            if name in rebound or name not in ns or name in snap.unchanged:
                continue
            write = self._write(name, ns[name], True, hashing, changes)
            if before.same_content(write.fingerprint) is False or name in snap.names.mutates:
                out.append(write)
        sharing = getattr(self.values, "sharing", None)  # aliases reached through another name
        if out and callable(sharing):
            done = rebound | {w.name for w in out}
            for other in sorted(set(sharing([w.name for w in out], ns)) - done):
                if other in ns and self.is_data(other, ns[other]):
                    out.append(self._write(other, ns[other], True, hashing, changes))
        return out

    def _write(
        self, name: str, value: Any, mutated: bool, hashing: Hashing, changes: NamespaceChanges
    ) -> Write:
        fp = hashing.after(name, value)
        changes.by_identity[id(value)] = fp
        return Write(name, fp, mutated)

    def is_data(self, name: str, value: Any) -> bool:
        """Notebook data: not IPython's own names, injected builtins, modules or imported code."""
        if _INTERNAL.match(name):
            return False
        kind = type(value)
        if issubclass(kind, types.ModuleType):
            return False
        if kind is types.FunctionType:
            if value.__module__ != "__main__":
                return False  # from x import f: imported code, not notebook data
        elif kind is types.BuiltinFunctionType or issubclass(kind, type):
            if _static_module(value) != "__main__":
                return False
        return self.hidden.get(name, _MISSING) is not value


def summarise_writes(names: list[str], ns: Mapping[str, Any]) -> WriteSummary:
    """One aggregate for many names: exact when every value is a plain scalar or string
    (hashed directly, cheap), weak otherwise (fingerprinting each would cost more than
    the cell)."""
    names_hash = xxhash.xxh3_128()
    content = xxhash.xxh3_128()
    exact = True
    for name in names:
        names_hash.update(name.encode("utf-8", "surrogatepass") + b"\0")
        value = ns.get(name)
        kind = type(value)
        data = _scalar_bytes(value) if exact else None
        if data is None:
            exact = False
        else:
            content.update(kind.__name__.encode() + b":" + len(data).to_bytes(8, "little") + data)
    if exact:
        fp = Fingerprint("names", content.hexdigest(), False, f"{len(names):,} more names")
    else:
        fp = weak("names", f"{len(names):,} more names written; beyond {MAX_NAMED_WRITES:,} names "
                           "only plain scalars are fingerprinted together")
    return WriteSummary(len(names), names_hash.hexdigest(), fp, tuple(names[:10]))


def _scalar_bytes(value: Any) -> bytes | None:
    """The exact bytes of a plain scalar or string (exact builtin types only), else None."""
    kind = type(value)
    if kind is bytes:
        return bytes(value)
    if kind is str:
        return str(value).encode("utf-8", "surrogatepass")
    if kind in _SCALARS:
        return repr(value).encode("ascii")
    return None


def code_globals(code: types.CodeType, depth: int = 0) -> set[str]:
    """Global names a function's code (and its nested code) may read or write."""
    found = set(code.co_names)
    if depth < 3:
        for const in code.co_consts:
            if inspect.iscode(const):
                found |= code_globals(const, depth + 1)
    return found


def _identity(value: Any) -> Identity:
    return id(value), type(value)


def _kind(value: Any) -> str:
    try:
        return type_name(value)
    except Exception:
        return "object"


def _static_module(cls: Any) -> str | None:
    """A class's (or builtin's) defining module, read without running a metaclass property."""
    try:
        if issubclass(type(cls), type):
            module = _TYPE_MODULE.__get__(cls)
        else:
            module = inspect.getattr_static(cls, "__module__", None)
    except Exception:
        return None
    return module if isinstance(module, str) else None


def _last_key(ns: Mapping[str, Any]) -> Any:
    if type(ns) is not dict or not ns:
        return _MISSING
    return next(reversed(ns))


def _keys_after(ns: Mapping[str, Any], marker: Any) -> list[str] | None:
    """Keys inserted after ``marker`` (dicts keep insertion order); None when it is gone."""
    if type(ns) is not dict:
        return None
    if marker is _MISSING:
        return list(ns)
    if marker not in ns:
        return None
    found: list[str] = []
    for key in reversed(ns):
        if key == marker:
            break
        found.append(key)
    return found
