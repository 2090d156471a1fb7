"""What a cell did to the notebook's names, observed without holding on to the user's objects.

Before a cell: fingerprints of the values the cell may read or change (those its code
names, and the globals of notebook functions it calls) and the identities (``id``,
never the object) of the names it may rebind. After: which names were rebound,
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

import dis
import functools
import inspect
import os
import re
import types
import weakref
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from itertools import compress, filterfalse, repeat
from operator import ne
from typing import Any

import xxhash

from nbgov.lineage.analysis import CellNames
from nbgov.lineage.fingerprint import INTERRUPTED, static
from nbgov.lineage.record import Fingerprint, Write, WriteSummary
from nbgov.lineage.values import ValueTracker

MAX_NAMED_WRITES = 250  # beyond this, a cell's new bindings are summarised (WriteSummary)
_INTERNAL = re.compile(r"^(_+|_i+|_i\d+|_\d+|_ih|_oh|_dh|__.*__|In|Out|get_ipython|exit|quit)$")
_MISSING = object()
_UNKNOWN = object()  # the namespace's last key is no name
_TYPE_MODULE = type.__dict__["__module__"]

# A name's identity: object's own pointer hash (its address, rotated: one value per live
# object, as ``id``), never the type's __hash__. ``id()`` raises an audit event, so with
# nbgov's file hook installed each call runs Python code: a dynamic cell compares every name.
_identity = object.__hash__
identity = _identity  # the key of ``NamespaceChanges.by_identity``

_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit"})
# exact types (repr is theirs), by identity: hashing or comparing a notebook class would run its metaclass
_SCALAR_KINDS = frozenset(map(_identity, (int, float, bool, type(None), str, bytes)))


def weak(kind: str, why: str, summary: str = "") -> Fingerprint:
    """A fingerprint that proves nothing, saying why."""
    return Fingerprint(kind, None, True, summary, reason=why)


class Hashing:
    """The fingerprints of one cell. An interrupt (Ctrl-C, the kernel's interrupt) marks the
    fingerprint being taken, and all later ones of the cell, unfinished."""

    def __init__(self, values: ValueTracker) -> None:
        self.values = values
        self.unfinished: list[str] = []
        self.failures: list[str] = []  # fingerprints that failed (the fingerprinter should never raise)

    def before(self, name: str, value: Any) -> Fingerprint:
        return self._take(name, value, self.values.before)

    def after(self, name: str, value: Any) -> Fingerprint:
        return self._take(name, value, self.values.after)

    def value(self, name: str, value: Any) -> Fingerprint:
        return self._take(name, value, self._plain)

    def _take(self, name: str, value: Any, read: Callable[[str, Any], Fingerprint]) -> Fingerprint:
        if self.unfinished:
            return self._mark(name, value)
        try:
            fp = read(name, value)
        except BaseException as exc:  # noqa: BLE001 - see _failed
            return self._failed(name, value, exc)
        if fp.reason == INTERRUPTED:
            self.unfinished.append(name)
        return fp

    def _plain(self, name: str, value: Any) -> Fingerprint:
        """Not remembered for the next cell (the displayed result)."""
        return self.values.fingerprint(value)

    def _failed(self, name: str, value: Any, exc: BaseException) -> Fingerprint:
        """An interrupt marks the value unfinished (the fingerprinter guards itself; this is
        the last line); anything else (user code reached by hashing may raise SystemExit)
        is a failure, noted."""
        if isinstance(exc, KeyboardInterrupt):
            return self._mark(name, value)
        self.failures.append(f"fingerprint of {name} failed: {type(exc).__name__}: {exc}")
        return weak(_kind(value), f"not fingerprinted: {type(exc).__name__} while reading it")

    def _mark(self, name: str, value: Any) -> Fingerprint:
        self.unfinished.append(name)
        return weak(_kind(value), INTERRUPTED)


@dataclass
class Snapshot:
    """The namespace as far as one cell can touch it, taken before the cell runs."""

    names: CellNames
    before: dict[str, Fingerprint]  # candidates: values the cell may read or change
    identities: dict[str, int]  # identities (_identity) of the names the cell may rebind
    # a dynamic cell: every name but IPython's own (_i3, Out, ...), and their values' identities
    every_name: tuple[list[str], list[int]] | None
    unchanged: set[str]  # candidates provably only read: no after-fingerprint needed
    called_globals: set[str]  # globals named by the code of notebook functions and classes the cell uses
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
    by_identity: dict[int, Fingerprint] = field(default_factory=dict)  # identity(value) -> after-fingerprint
    # (name, why) of values nbgov cannot read that the cell used (a method call, an argument):
    # whether it changed them is not known, so the record says so
    unknown_changes: list[tuple[str, str]] = field(default_factory=list)


class NamespaceObserver:
    """Keeps the set of names seen at the end of the last cell (strings, not values)."""

    def __init__(self, values: ValueTracker, ns: Mapping[str, Any], hidden: Mapping[str, Any]) -> None:
        self.values = values
        self.hidden = hidden
        # _identity(type) -> (weak reference to the type, True, False or _BY_VALUE): by identity, since hashing
        # a class runs its metaclass's __hash__, and weakly, so a notebook class can be freed
        self._data_kinds: dict[int, tuple[weakref.ref[type], Any]] = {}
        self._known: set[str] = set(_names(list(ns)))
        # the names a dynamic cell's rebinding is looked for in: all but IPython's own, which
        # grow by one or two per cell run (_i3, _3) and are never notebook data
        self._tracked: dict[str, None] = _trackable(_names(list(ns)))
        self._end_marker: Any = _last_key(ns)

    # -- before ------------------------------------------------------------
    def before(self, names: CellNames, ns: Mapping[str, Any], hashing: Hashing) -> Snapshot:
        self.values.start_cell()
        if len(ns) != len(self._known) or _last_key(ns) != self._end_marker:
            self._catch_up(ns)
        called = self._called_globals(names, ns)
        only_rebound = names.stores - names.loads - names.mutates - names.impure
        present = list(filter(ns.__contains__, (names.referenced - only_rebound) | called))
        candidates = sorted(self._data_items(present, ns)[0])
        before = {name: hashing.before(name, ns[name]) for name in candidates}
        touched = names.referenced | names.stores | names.deletes | called
        identities = {n: _identity(ns[n]) for n in touched if n in ns}
        every_name = self._tracked_identities(ns) if names.dynamic else None
        try:
            unchanged = self.values.provably_unchanged(names, before.keys(), ns)
        except KeyboardInterrupt:
            raise
        except BaseException:  # noqa: BLE001 - an optimisation only (a stub module may raise anything)
            unchanged = set()
        return Snapshot(names, before, identities, every_name, unchanged, called, _last_key(ns), len(ns))

    def _catch_up(self, ns: Mapping[str, Any]) -> None:
        """Names added or removed between cells (widgets, threads): follow them cheaply."""
        added = _keys_after(ns, self._end_marker)
        if added is not None:
            self._known.update(added)
            self._tracked.update(_trackable(added[::-1]))
        if added is None or len(ns) != len(self._known):
            names = _names(list(ns))
            self._known = set(names)
            self._tracked = _trackable(names)
        self._end_marker = _last_key(ns)

    def _tracked_identities(self, ns: Mapping[str, Any]) -> tuple[list[str], list[int]]:
        """A dynamic cell's view before it: the tracked names and their values' identities
        (C loops; the values are not kept)."""
        keys = list(self._tracked)
        return keys, list(map(_identity, map(ns.get, keys, repeat(_MISSING))))

    def _called_globals(self, names: CellNames, ns: Mapping[str, Any]) -> set[str]:
        """Globals the notebook code a cell can run may read or write: its functions, and the
        methods of its classes and of the objects made from them that the cell names
        (``model.predict(x)`` reads the ``THRESHOLD`` ``predict`` names; ``Model()`` what
        ``__init__`` names), followed through the notebook functions and methods that code
        names in turn."""
        found: set[str] = set()
        wanted = set(names.attributes)
        if wanted:  # no attribute named: no class attribute read
            for name in names.loads:
                found |= class_attribute_globals(ns.get(name), ns, wanted)
        seen: set[int] = set()
        grew = True
        while grew and len(seen) < _MAX_CODE_FOLLOWED:
            grew = False
            for name in sorted(names.loads | found):
                value = ns.get(name)
                if _identity(type(value)) in _FOREIGN_BUILTINS:  # notebook_code's cached "none"
                    continue
                for fn in notebook_code(value, ns, wanted):
                    if _identity(fn) not in seen:
                        seen.add(_identity(fn))
                        found |= code_globals(fn.__code__)
                        wanted |= code_names(fn.__code__)  # `self.helper()` inside a method: its attribute names too
                        grew = True
        return found

    # -- after -------------------------------------------------------------
    def after(self, snap: Snapshot, ns: Mapping[str, Any], hashing: Hashing) -> NamespaceChanges:
        changes = NamespaceChanges()
        rebound, rebound_values = self._rebound(snap, ns)
        known = self._known
        deleted = {n for n in snap.identities if n not in ns}
        known -= deleted
        if len(known) != len(ns):  # names were created (or removed by something the code does not show)
            known.update(rebound)
        if len(known) != len(ns):
            gone = set(filterfalse(ns.__contains__, known))  # (not `known - ns.keys()`: that hashes every key)
            deleted |= gone
            known -= gone
        tracked = self._tracked
        for name in deleted:
            tracked.pop(name, None)
        tracked.update(_trackable([name for name in rebound if name not in tracked]))
        self._end_marker = _last_key(ns)

        changes.reads = self._reads(snap)
        data, values = self._data_items(rebound, ns, rebound_values)
        named, more = sorted(data[:MAX_NAMED_WRITES]), data[MAX_NAMED_WRITES:]
        for name in named:
            value = ns[name]
            fp = hashing.after(name, value)
            changes.by_identity[_identity(value)] = fp
            changes.writes.append(Write(name, fp, False))
        if more:
            changes.more_writes = summarise_writes(more, values[MAX_NAMED_WRITES:] if values else None, ns)
            changes.more_written = more
        changes.writes += self._mutated(snap, ns, rebound, hashing, changes)
        if deleted:
            changes.deletes = sorted(n for n in deleted if not _INTERNAL.match(n))
            self.values.forget(changes.deletes)
        return changes

    def _rebound(self, snap: Snapshot, ns: Mapping[str, Any]) -> tuple[list[str], list[Any] | None]:
        """Names bound to another object (or created) by the cell: those added after the last
        key seen before the cell, those it stores, and those of the names it can reach that
        changed; a dynamic cell may rebind any name, so every tracked one is compared, and
        the values come along from the same C loops."""
        stored = list(filter(ns.__contains__, sorted(snap.names.stores)))
        new_keys = _keys_after(ns, snap.marker)
        if new_keys is None:  # the marker itself was deleted: look at every name
            new_keys = [k for k in _names(list(ns)) if k not in self._known]
        else:
            new_keys.reverse()  # (found from the end)
        if snap.every_name is not None:
            keys, ids = snap.every_name
            values = list(map(ns.get, keys, repeat(_MISSING)))
            changed = compress(zip(keys, values), map(ne, ids, map(_identity, values)))
            found = {name: value for name, value in changed if value is not _MISSING}
            for name in (*new_keys, *stored):
                if name not in found:
                    found[name] = ns[name]
            return list(found), list(found.values())
        bound = dict.fromkeys(new_keys)
        bound.update(dict.fromkeys(stored))
        for name, identity in snap.identities.items():
            if name in ns and _identity(ns[name]) != identity:
                bound[name] = None
        return list(bound), None

    def _reads(self, snap: Snapshot) -> list[tuple[str, Fingerprint]]:
        """Names loaded before being stored (or read by called notebook functions) that existed."""
        pool = snap.names.loads | snap.called_globals if snap.called_globals else snap.names.loads
        return [(name, snap.before[name]) for name in sorted(pool) if name in snap.before]

    def _mutated(
        self, snap: Snapshot, ns: Mapping[str, Any], rebound: list[str], hashing: Hashing, changes: NamespaceChanges
    ) -> list[Write]:
        """Candidates changed in place (whatever API did it), then names sharing their objects."""
        out: list[Write] = []
        skip = snap.unchanged.union(rebound) if rebound else snap.unchanged  # (only candidates are looked up)
        for name, before in snap.before.items():
            value = _MISSING if name in skip else ns.get(name, _MISSING)
            if value is _MISSING:
                continue
            now = hashing.after(name, value)
            changes.by_identity[_identity(value)] = now
            same = before.same_content(now)
            # weak before, exact now (a file the cell closed): its state moved to one known now
            known_now = before.weak and not now.weak and now.hash is not None
            if same is False or known_now or name in snap.names.mutates:
                out.append(Write(name, now, True))
            elif same is None and (
                    name in snap.names.impure and name in snap.names.loads or name in snap.called_globals):
                weak = now if now.weak else before
                changes.unknown_changes.append((name, weak.reason or "not readable"))
        written = [w.name for w in (*changes.writes, *out)]
        # changed through another name: the tracker's sharing index knows who else holds it
        if written and not self.values.reaches_nothing(written):
            handled = set(snap.before).union(rebound)
            for name, fp in sorted(self.values.shared_writes(written, ns, handled).items()):
                if name in ns and self.is_data(name, ns[name]):
                    changes.by_identity[_identity(ns[name])] = fp
                    out.append(Write(name, fp, True))
        return out

    def is_data(self, name: str, value: Any) -> bool:
        """Notebook data: not IPython's own names, injected builtins, modules or imported code."""
        kind = type(value)
        verdict = self._verdict(kind)
        if verdict is False or (verdict is _BY_VALUE and not _defined_here(kind, value)):
            return False
        return not self._ipythons(name, value)

    def _ipythons(self, name: str, value: Any) -> bool:
        """A name IPython injected that still holds its value (_i3), or one of its own (In, _)."""
        if type(name) is not str:
            return bool(_INTERNAL.match(name))  # raises, as before: the pattern takes strings only
        if self.hidden.get(name, _MISSING) is value:
            return True
        return (name[:1] == "_" or name in _IPYTHON_NAMES) and _INTERNAL.match(name) is not None

    def _data_items(
        self, names: list[str], ns: Mapping[str, Any], values: list[Any] | None = None
    ) -> tuple[list[str], list[Any] | None]:
        """The names that hold notebook data (and, when all are plain, their values). A cell
        may bind 100,000 names, so the common case (every value of a plain data type) runs
        in C loops; the decision by type is cached, names are checked only when they could
        be IPython's."""
        if values is None:
            values = list(map(ns.__getitem__, names))
        if len(names) <= _FEW:
            return self._one_by_one(names, values)
        kinds = list(map(type, values))
        verdicts = {self._verdict(kind) for kind in dict(zip(map(_identity, kinds), kinds)).values()}
        if verdicts <= {True}:
            drop = _internal_names(names)
            hidden = self.hidden  # grows by a name per cell (IPython's _i<n>): look up the names, not it
            drop.update(n for n in filter(hidden.__contains__, names) if hidden[n] is ns[n])
            if not drop:
                return names, values
            kept = [n not in drop for n in names]
            return list(compress(names, kept)), list(compress(values, kept))
        return self._one_by_one(names, values)  # (no values back: not all are plain)

    def _one_by_one(self, names: list[str], values: list[Any]) -> tuple[list[str], list[Any] | None]:
        """``_data_items`` name by name: a few names (most cells: nothing built per type), or
        some value not of a plain data type."""
        kept: list[str] = []
        kept_values: list[Any] | None = []
        kinds = self._data_kinds
        for name, value in zip(names, values):
            kind = type(value)
            known = kinds.get(_identity(kind))  # _verdict's cache, read here: a call less per name
            verdict = known[1] if known is not None and known[0]() is kind else self._verdict(kind)
            if verdict is not True:
                kept_values = None  # not all plain: names only, as for many names
                if verdict is False or not _defined_here(kind, value):
                    continue
            if self._ipythons(name, value):
                continue
            kept.append(name)
            if kept_values is not None:
                kept_values.append(value)
        return kept, kept_values

    def _verdict(self, kind: type) -> Any:
        key = _identity(kind)
        known = self._data_kinds.get(key)
        if known is not None and known[0]() is kind:
            return known[1]
        verdict = _data_kind(kind)
        cache = self._data_kinds

        def forget(ref: weakref.ref[type]) -> None:
            if cache.get(key, (None,))[0] is ref:
                del cache[key]

        try:
            cache[key] = (weakref.ref(kind, forget), verdict)
        except TypeError:
            pass
        return verdict


def _maybe_internal(names: list[str]) -> list[str]:
    """Names that could be IPython's: those starting with "_" (found by scanning one joined
    string, not name by name) and the few IPython names without one."""
    if len(names) <= 64:
        return names
    joined = "\n" + "\n".join(names)
    found = list(_IPYTHON_NAMES.intersection(names))
    start = joined.find("\n_")
    while start >= 0:
        end = joined.find("\n", start + 1)
        found.append(joined[start + 1 : end if end >= 0 else len(joined)])
        start = joined.find("\n_", start + 1)
    return found


_BY_VALUE = object()  # functions and classes: data when defined in the notebook
_FEW = 16  # up to this many names, _data_items takes them one by one (no lists, sets, regex scans)


_ENVIRON = type(os.environ)  # the process's environment: its variables are values one by one (environment_variables)


def _data_kind(kind: type) -> Any:
    if issubclass(kind, types.ModuleType) or kind is _ENVIRON:
        return False
    if kind is types.FunctionType or kind is types.BuiltinFunctionType or issubclass(kind, type):
        return _BY_VALUE
    return True


def _defined_here(kind: type, value: Any) -> bool:
    """A function or class of the notebook itself, not imported code (from x import f)."""
    module = value.__module__ if kind is types.FunctionType else _static_module(value)
    return module == "__main__"


def summarise_writes(names: list[str], values: list[Any] | None, ns: Mapping[str, Any]) -> WriteSummary:
    """One aggregate for many names: exact when every value is a plain scalar or string of
    an exact builtin type (hashed together in C loops: machine numbers as an array, other
    scalars by their unambiguous reprs), weak otherwise (fingerprinting each would cost
    more than the cell)."""
    if values is None:
        values = list(map(ns.__getitem__, names))
    names_hash = xxhash.xxh3_128_hexdigest("\0".join(names).encode("utf-8", "surrogatepass"))
    content = _scalars_digest(values)
    if content is not None:
        fp = Fingerprint("names", content, False, f"{len(names):,} more names")
    else:
        fp = weak("names", f"beyond {MAX_NAMED_WRITES:,} names only plain scalars are fingerprinted together",
                  f"{len(names):,} more names")
    return WriteSummary(len(names), names_hash, fp, tuple(names[:10]))


def _scalars_digest(values: list[Any]) -> str | None:
    """xxh3 of a list of exact-builtin scalars, tagged by kind; None if any value is not one."""
    kinds = set(map(_identity, map(type, values)))  # not id(): an audit event (a Python hook) per value
    if not kinds <= _SCALAR_KINDS:
        return None
    if len(kinds) == 1 and (_identity(int) in kinds or _identity(float) in kinds):
        try:
            packed = array("q" if _identity(int) in kinds else "d", values)
        except OverflowError:  # an int beyond 64 bits: by repr below
            pass
        else:
            return xxhash.xxh3_128_hexdigest(packed.typecode.encode() + packed.tobytes())
    return xxhash.xxh3_128_hexdigest("\0".join(map(repr, values)).encode("utf-8", "surrogatepass"))


_MAX_CODE_FOLLOWED = 10_000  # notebook functions and methods read per cell (a bound on the work)
_TYPE_MRO = type.__dict__["__mro__"]
_TYPE_DICT = type.__dict__["__dict__"]


def notebook_code(value: Any, ns: Mapping[str, Any], wanted: set[str]) -> list[types.FunctionType]:
    """The notebook's own functions ``value`` can run: itself if it is one (or the function of
    a bound method or ``functools.partial`` kept in a name, with the methods of the bound
    object named in ``wanted``); else, for a class defined in the notebook, its constructor
    and the members named in ``wanted``; for an instance of one, those members and its other
    special methods (operators, ``len``, ``repr`` run them). Read from the classes' own
    dicts, so no descriptor, metaclass or ``__getattr__`` runs."""
    kind = type(value)
    if _foreign_builtin(kind):
        return []
    if kind is types.FunctionType:
        return [value] if value.__globals__ is ns else []
    if kind is functools.partial:
        return notebook_code(value.func, ns, wanted)
    if kind is types.MethodType:
        owner = value.__self__
        cls = owner if issubclass(type(owner), type) else type(owner)
        return notebook_code(value.__func__, ns, wanted) + _members(cls, ns, wanted, frozenset())
    is_class = issubclass(kind, type)
    cls = value if is_class else kind
    return _members(cls, ns, wanted, _CONSTRUCTION if is_class else None)


def _members(cls: type, ns: Mapping[str, Any], wanted: set[str], specials: frozenset[str] | None
             ) -> list[types.FunctionType]:
    """Functions of ``cls``'s notebook classes named in ``wanted`` or in ``specials`` (None:
    every special method but the constructor's)."""
    if _static_module(cls) != "__main__":
        return []
    found: list[types.FunctionType] = []
    for klass in _TYPE_MRO.__get__(cls):
        if _static_module(klass) != "__main__":
            continue
        for name, member in _TYPE_DICT.__get__(klass).items():
            if type(name) is not str:  # a key a metaclass put there: hashing it could run its code
                continue
            if specials is None:
                chosen = name[:2] == "__" == name[-2:] and name not in _CONSTRUCTION
            else:
                chosen = name in specials
            if not (chosen or name in wanted):
                continue
            tp = type(member)
            if tp is staticmethod or tp is classmethod:
                parts = [member.__func__]
            elif tp is property:
                parts = [member.fget, member.fset, member.fdel]
            else:
                parts = [member]
            found += [f for f in parts if type(f) is types.FunctionType and f.__globals__ is ns]
    return found


_CONSTRUCTION = frozenset({"__new__", "__init__", "__post_init__"})
_TYPE_FLAGS = type.__dict__["__flags__"]
_HEAP_TYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made at run time (can be freed; its __module__ can change)
_FOREIGN_BUILTINS: set[int] = set()  # identities of the static types _foreign_builtin said yes to


def _foreign_builtin(kind: type) -> bool:
    """A static (compiled-in, never freed or changed) type from outside the notebook, not a
    function, method, partial or class: its instances run no notebook code. Cached by identity."""
    key = _identity(kind)
    if key in _FOREIGN_BUILTINS:
        return True
    if (_TYPE_FLAGS.__get__(kind) & _HEAP_TYPE or kind is types.FunctionType or kind is types.MethodType
            or kind is functools.partial or issubclass(kind, type) or _static_module(kind) == "__main__"):
        return False
    _FOREIGN_BUILTINS.add(key)
    return True


_TYPE_NAME = type.__dict__["__name__"]
_CODE_MEMBERS = (types.FunctionType, property, staticmethod, classmethod)


def _is_code(member: Any) -> bool:
    kind = type(member)
    return any(kind is code for code in _CODE_MEMBERS)  # not `in`: == runs a metaclass's __eq__


def class_attribute_globals(value: Any, ns: Mapping[str, Any], wanted: set[str]) -> set[str]:
    """The globals naming the notebook classes whose own data attributes the cell reads through
    an instance of them (``c.rate`` reads ``Cfg.rate``: a later ``Cfg.rate = 2`` changes what it
    read). Read from the classes' own dicts; a class counts only under its own name."""
    kind = type(value)
    if not wanted or issubclass(kind, type) or _static_module(kind) != "__main__":
        return set()
    read, _ = static.dict_reader(kind)
    own = read(value) if read is not None else None
    shadowing = {k for k in own if type(k) is str and k in wanted} if type(own) is dict else set()
    found: set[str] = set()
    for klass in _TYPE_MRO.__get__(kind):
        if _static_module(klass) != "__main__":
            continue
        attributes = _TYPE_DICT.__get__(klass)
        # a data attribute, not code (methods are followed to the globals they name); an
        # instance's own value hides it
        if any(type(k) is str and k in wanted and k not in shadowing and not _is_code(v)
               for k, v in attributes.items()):
            name = _TYPE_NAME.__get__(klass)
            if ns.get(name) is klass:
                found.add(name)
    return found


def code_names(code: types.CodeType, depth: int = 0) -> set[str]:
    """Every name a function's code (and its nested code) uses: globals, attributes, imports."""
    found = set(code.co_names)
    if depth < 3:
        for const in code.co_consts:
            if inspect.iscode(const):
                found |= code_names(const, depth + 1)
    return found


# Instructions naming a global (or, in a class body, a global or class name); co_names also
# holds attribute and imported module names (`self.x` is no read of a global `x`).
_GLOBAL_OPS = frozenset(op for name, op in dis.opmap.items()
                        if name.endswith(("_GLOBAL", "_NAME")) and name != "IMPORT_NAME"
                        or name == "LOAD_FROM_DICT_OR_GLOBALS")
_GLOBALS_OF_CODE: dict[int, tuple[weakref.ref[types.CodeType], frozenset[str]]] = {}
_MAX_CODE_CACHED = 4096


def code_globals(code: types.CodeType, depth: int = 0) -> set[str]:
    """Global names a function's code (and its nested code) may read or write: the names its
    global-name instructions take (read from the bytecode, nothing runs)."""
    cached = _GLOBALS_OF_CODE.get(_identity(code))
    if cached is not None and cached[0]() is code:
        found = set(cached[1])
    else:
        found = {ins.argval for ins in dis.get_instructions(code) if ins.opcode in _GLOBAL_OPS
                 and type(ins.argval) is str}
        if len(_GLOBALS_OF_CODE) >= _MAX_CODE_CACHED:
            _GLOBALS_OF_CODE.clear()
        _GLOBALS_OF_CODE[_identity(code)] = (weakref.ref(code), frozenset(found))
    if depth < 3:
        for const in code.co_consts:
            if inspect.iscode(const):
                found |= code_globals(const, depth + 1)
    return found


def _kind(value: Any) -> str:
    try:
        return static.kind_name(type(value))
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
    return module if type(module) is str else None


def _last_key(ns: Mapping[str, Any]) -> Any:
    """The namespace's last name, or _UNKNOWN when its last key is no name (it is not kept)."""
    if type(ns) is not dict or not ns:
        return _MISSING
    key = next(reversed(ns))
    return key if type(key) is str else _UNKNOWN


def _keys_after(ns: Mapping[str, Any], marker: Any) -> list[str] | None:
    """Names inserted after ``marker`` (dicts keep insertion order); None when it is gone."""
    if type(ns) is not dict or marker is _UNKNOWN:
        return None
    if marker is _MISSING:
        return _names(list(ns))
    if marker not in ns:
        return None
    found: list[str] = []
    for key in reversed(ns):
        if type(key) is str:
            if key == marker:
                break
            found.append(key)
    return found


# A key of the namespace that is not a string (``globals()[obj] = 1``) names no variable, and
# hashing or comparing it would run its class's code: the names below leave such keys out.
_STR_KIND = frozenset({_identity(str)})


def _all_names(keys: list[Any]) -> bool:
    """Every key is a string (C loops: the keys' types, by identity)."""
    return set(map(_identity, map(type, keys))) <= _STR_KIND


def _names(keys: list[Any]) -> list[str]:
    """The string keys among ``keys``."""
    return keys if _all_names(keys) else [key for key in keys if type(key) is str]


def _internal_names(names: list[str]) -> set[str]:
    """The names among ``names`` that are IPython's own (``_i3``, ``_3``, ``Out``, ...)."""
    return set(filter(_INTERNAL.match, _maybe_internal(names)))


def _trackable(names: list[str]) -> dict[str, None]:
    """``names`` without IPython's own, in order."""
    internal = _internal_names(names)
    return dict.fromkeys(name for name in names if name not in internal) if internal else dict.fromkeys(names)
