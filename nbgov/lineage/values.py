"""Fingerprints of the values a cell touches, taken before and after it runs.

Exactness first: a value is hashed before and after every cell that mentions it,
so in-place changes are seen whatever API made them. Two savings keep big values
cheap without giving that up where it matters:

- before a cell, a big array/frame (or a LightGBM or scikit-learn model: ``model_probe``,
  ``sklearn_probe``) whose fingerprint was taken after the previous cell is reused when
  its version probe (buffer addresses + sampled bytes) is unchanged — nothing in between
  ran as a cell;
- after a cell, a big numpy/pandas value the cell used only as an operand
  (``out = big + 1``, ``len(big)``) is not rehashed, unless another name the cell
  uses may share its memory or the cell runs code that could reach it.

Mutation through another name (``b = a`` in one cell, ``b.append(x)`` in a later
one): every fingerprint also collects the ids of the mutable objects the value's
graph reaches (lists, dicts, instances, array buffers; ids only, no references).
The tracker keeps them per name, with a reverse index id -> names, updated
incrementally each time a name is fingerprinted. After a cell, the recorder calls

    writes = tracker.shared_writes(changed_names, user_ns, handled=names_already_hashed)

which fingerprints the other names whose graphs share a mutable object with the
changed ones (``sharing``) and returns those whose content changed since the
tracker last saw them, as {name: new fingerprint}. The cost is proportional to
the objects the changed names reach, not to the namespace. A name's graph is
matched on the part its last fingerprint could read (a weak value stops early).

Interrupts: ``interrupted`` is True once a KeyboardInterrupt cut a fingerprint
short (that value and every later one get a weak fingerprint, reason
"unfinished: interrupted"); the recorder skips the cell's remaining values and
calls ``start_cell()`` before the next cell.

The tracker holds no user object: weak references and ids only.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Collection, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from nbgov.lineage.analysis import CellNames
from nbgov.lineage.fingerprint import INTERRUPTED, Fingerprinter, Measurement, static
from nbgov.lineage.fingerprint.columnar import frame_columns
from nbgov.lineage.record import Fingerprint
from nbgov.lineage.fingerprint.encode import LONG_TEXT
from nbgov.lineage.fingerprint.walk import held_secret
from nbgov.lineage.secret_values import MIN_CHARS, SecretValues

# Exact scalar types by identity (object.__hash__; id() raises an audit event, and hashing a
# type could run a metaclass's __hash__): values no probe applies to and no array shares.
_identity = object.__hash__
_SCALARS = frozenset(map(_identity, (int, float, complex, str, bytes, bool, type(None))))


class ValueTracker:
    """Owns the fingerprinter, the after-cell fingerprints of big values and the sharing index."""

    def __init__(self, fingerprinter: Fingerprinter | None = None) -> None:
        self.secrets = SecretValues()  # values holding secret environment variables' values are not hashed
        self.fingerprinter = fingerprinter or Fingerprinter()
        self.reuse_between_cells = True  # False: always hash before a cell
        self.skip_pure_reads = True  # False: always hash after a cell
        # name -> (weak ref to the value, its fingerprint after the last cell, its probe)
        self._after: dict[str, tuple[weakref.ref[Any], Fingerprint, str]] = {}
        self._reach: dict[str, frozenset[int]] = {}  # name -> ids of mutable objects it reaches
        self._owners: dict[int, str | set[str]] = {}  # id -> the name(s) reaching it
        self._last: dict[str, Fingerprint] = {}  # latest fingerprint of names that reach anything
        self._library: set[str] = set()  # names whose latest fingerprint read only library data and code

    # -- cells ---------------------------------------------------------------
    @property
    def interrupted(self) -> bool:
        """A KeyboardInterrupt cut hashing short in this cell: skip the remaining values."""
        return bool(getattr(self.fingerprinter, "interrupted", False))

    def start_cell(self) -> None:
        """Called before each cell: hash again after an interrupt in the previous one."""
        fper = self.fingerprinter
        if isinstance(fper, Fingerprinter):
            fper.interrupted = False  # (its reset_interrupt, without the call)

    def before(self, name: str, value: Any) -> Fingerprint:
        """Fingerprint before a cell; reuses the last after-fingerprint if the probe agrees."""
        try:
            known = self._after.get(name)
            if known is not None and self.reuse_between_cells and known[0]() is value:
                if self.fingerprinter.probe(value) == known[2]:
                    return known[1]
            return self._measure(name, value).fingerprint
        except KeyboardInterrupt:
            return self._interrupted(value)

    def after(self, name: str, value: Any) -> Fingerprint:
        """Fingerprint after a cell, remembered (with a probe) for the next cell."""
        try:
            measured = self._measure(name, value, probe=self.reuse_between_cells)
            fp = measured.fingerprint
            self._after.pop(name, None)
            if not self.reuse_between_cells or fp.hash is None or _identity(type(value)) in _SCALARS:
                return fp  # a scalar: no probe (it is for big arrays and frames)
            self._remember(name, value, measured)
            return fp
        except KeyboardInterrupt:
            return self._interrupted(value)

    def _remember(self, name: str, value: Any, measured: Measurement) -> None:
        """Keep a big array's or frame's fingerprint, with its probe, for the next cell (the
        probe read while hashing, where it was)."""
        probe = measured.probe if measured.probed else self.fingerprinter.probe(value)
        if probe is None:
            return
        try:
            ref = weakref.ref(value)
        except TypeError:
            return
        self._after[name] = (ref, measured.fingerprint, probe)

    def _interrupted(self, value: Any) -> Fingerprint:
        """An interrupt landed outside the fingerprinter's own guard: same outcome, same flag."""
        if isinstance(self.fingerprinter, Fingerprinter):
            self.fingerprinter.interrupted = True
        return Fingerprint(static.kind_name(type(value)), None, True, "", reason=INTERRUPTED)

    def forget(self, names: Iterable[str]) -> None:
        """Names deleted from the namespace: drop what the tracker knows of them."""
        for name in names:
            self._after.pop(name, None)
            self._last.pop(name, None)
            self._library.discard(name)
            self._index(name, frozenset())

    # -- sharing -------------------------------------------------------------
    def sharing(self, names: Iterable[str], ns: Mapping[str, Any]) -> set[str]:
        """Other names (still bound in ``ns``) whose graphs reached a mutable object that
        one of ``names`` reaches, as of their latest fingerprints."""
        asked = set(names)
        found: set[str] = set()
        for name in asked:
            for key in self._reach.get(name, ()):
                owners = self._owners.get(key)
                if owners is None:
                    continue
                if isinstance(owners, str):
                    found.add(owners)
                else:
                    found |= owners
        return {name for name in found - asked if name in ns}

    def reaches_nothing(self, names: Iterable[str]) -> bool:
        """No name of ``names`` reached a mutable object at its last fingerprint: none shares
        state with another name (``sharing`` is empty)."""
        return self._reach.keys().isdisjoint(names)

    def shared_writes(
        self, changed: Iterable[str], ns: Mapping[str, Any], handled: Collection[str] = ()
    ) -> dict[str, Fingerprint]:
        """Names changed through shared objects: {name: fingerprint now} for each other name
        sharing state with ``changed`` whose content provably changed (or became
        unreadable) since its last fingerprint. ``handled`` names are not hashed again."""
        writes: dict[str, Fingerprint] = {}
        others = self.sharing(changed, ns)
        if not others:
            return writes
        for name in sorted(others - set(handled)):
            if self.interrupted:
                break
            last = self._last.get(name)
            now = self.after(name, ns[name])
            if last is None:
                continue
            if last.same_content(now) is False or (not last.weak and now.weak):
                writes[name] = now
        return writes

    @property
    def fingerprinter(self) -> Fingerprinter:
        return self._fingerprinter

    @fingerprinter.setter
    def fingerprinter(self, value: Fingerprinter) -> None:
        """The one that hashes values here; a Fingerprinter is given the secrets to refuse."""
        self._fingerprinter = value
        if isinstance(value, Fingerprinter):
            value.secrets = self.secrets.needles

    def fingerprint(self, value: Any) -> Fingerprint:
        """A value's fingerprint, not remembered for the next cell (the displayed result)."""
        secret = self._secret(value)
        return secret.fingerprint if secret is not None else self.fingerprinter.fingerprint(value)

    def _secret(self, value: Any) -> Measurement | None:
        """A weak measurement for a str or bytes that is, or holds, a secret environment
        variable's value (a long text, and values holding one elsewhere, are refused by the
        fingerprint's walk)."""
        kind = type(value)
        if (kind is not str and kind is not bytes) or len(value) < MIN_CHARS or (kind is str and len(value) > LONG_TEXT):
            return None
        needles = self.secrets.needles()
        why = held_secret(value.encode("utf-8", "surrogatepass") if kind is str else value, needles) if needles else None
        if why is None:
            return None
        fingerprint = Fingerprint(static.kind_name(kind), None, True, "", reason=why)  # no length
        return Measurement(fingerprint, frozenset(), True)

    def _measure(self, name: str, value: Any, probe: bool = False) -> Measurement:
        fper = self.fingerprinter
        secret = self._secret(value)
        if secret is not None:
            measured = secret
        elif isinstance(fper, Fingerprinter):
            measured = fper.measure(value, probe)
        else:  # a stand-in with only fingerprint() (fault injection): no sharing known
            measured = Measurement(fper.fingerprint(value), frozenset(), False)
        if measured.library_only and measured.complete:
            self._library.add(name)
        else:
            self._library.discard(name)
        if measured.reach:
            self._last[name] = measured.fingerprint
            self._index(name, measured.reach)
        elif name in self._reach:  # it reached something before: unindex it
            self._last.pop(name, None)
            self._index(name, measured.reach)
        else:
            self._last.pop(name, None)
        return measured

    def _index(self, name: str, reach: frozenset[int]) -> None:
        """Replace ``name``'s reach in the reverse index (work ∝ the ids that changed)."""
        owners = self._owners
        old = self._reach.get(name)
        if old is None:  # a name seen for the first time: only additions
            if reach:
                for key in reach:
                    held = owners.get(key)
                    if held is None:
                        owners[key] = name
                    elif isinstance(held, str):
                        owners[key] = {held, name}
                    else:
                        held.add(name)
                self._reach[name] = reach
            return
        if old == reach:
            return
        for key in old - reach:
            held = owners.get(key)
            if held == name:
                del owners[key]
            elif isinstance(held, set):
                held.discard(name)
                if len(held) == 1:
                    owners[key] = next(iter(held))
        for key in reach - old:
            held = owners.get(key)
            if held is None:
                owners[key] = name
            elif isinstance(held, str):
                if held != name:
                    owners[key] = {held, name}
            else:
                held.add(name)
        if reach:
            self._reach[name] = reach
        else:
            self._reach.pop(name, None)

    # -- operands ------------------------------------------------------------
    def provably_unchanged(self, names: CellNames, candidates: AbstractSet[str], ns: Mapping[str, Any]) -> set[str]:
        """Candidates the cell can only read: big arrays/frames used purely as operands.

        Empty when anything in the cell could reach them another way: exec/magics,
        another name used in the cell that may share memory or hold them.
        """
        if names.dynamic or not self.skip_pure_reads:
            return set()
        return self._operands(names, candidates, ns) | self._models_read(names, candidates, ns)

    def _operands(self, names: CellNames, candidates: AbstractSet[str], ns: Mapping[str, Any]) -> set[str]:
        """Big arrays and frames used purely as operands (``out = big + 1``)."""
        buffers: dict[str, list[Any]] = {}
        for name in candidates:
            value = ns[name]
            if _identity(type(value)) not in _SCALARS and names.pure_only(name):
                found = numeric_buffers(value)
                if found is not None:
                    buffers[name] = found
        pure = set(buffers)
        if not pure:
            return set()
        for other in candidates - pure:
            if other in names.stores and other not in names.loads and other not in names.mutates:
                continue  # only rebound: its old value is not used
            value = ns[other]
            if _identity(type(value)) in _SCALARS:
                continue
            theirs = numeric_buffers(value)
            if theirs is None:
                return set()  # a container, object or function might reach them: hash for real
            for name in list(pure):
                if any(_may_share(a, b) for a in buffers[name] for b in theirs):
                    pure.discard(name)
        return pure

    def _models_read(self, names: CellNames, candidates: AbstractSet[str], ns: Mapping[str, Any]) -> set[str]:
        """Fitted library models the cell only calls read-only methods of (``model.predict(X)``).

        Such a method runs the library's code on the model and its arguments only, so the
        model is left as it was when every object it holds is library data or code (no
        function or class of the notebook's to call back into; see ``Measurement``), every
        other value the cell uses is too, no name it uses shares an object with the model,
        and every function, class or module it names is a library's (no notebook code runs
        that could reach the model by another way).
        """
        models = {name for name in names.read_calls & candidates
                  if name in self._library and static.model_library_kind(type(ns[name])) and _fitted(ns[name])}
        if not models:
            return set()
        only_rebound = names.stores - names.loads - names.mutates - names.impure  # its old value is not used
        for other in names.referenced - models - only_rebound:
            if other in candidates:
                if other not in self._library:
                    return set()
            elif other in ns and not other_is_library_code(ns[other]):
                return set()
        return {name for name in models if self.sharing((name,), ns).isdisjoint(names.referenced)}


def _fitted(model: Any, depth: int = 0) -> bool:
    """Fitted as scikit-learn tells (``check_is_fitted``): it holds state a fit set, named
    with a trailing underscore; a pipeline, when each of its steps is; a LightGBM booster,
    when it holds a native model. A model's read-only methods are read-only once it is
    fitted: before, some set such state (a ``CountVectorizer`` given its vocabulary sets
    ``vocabulary_`` at its first transform)."""
    read, _ = static.dict_reader(type(model))
    state = read(model) if read is not None else None
    if type(state) is not dict:
        return False
    if any(type(key) is str and key.endswith("_") and not key.startswith("__") for key in state):
        return True
    module = static.module_of(type(model))
    if module == "lightgbm.basic":  # a Booster holds its trained model natively, made with it
        return state.get("_handle") is not None
    steps = state.get("steps")
    pipeline = module.startswith("sklearn.pipeline")
    if not pipeline or type(steps) is not list or not steps or depth > 8:
        return False
    return all(type(step) is tuple and len(step) == 2 and (
        step[1] is None or (type(step[1]) is str and step[1] == "passthrough") or _fitted(step[1], depth + 1))
        for step in steps)


def other_is_library_code(value: Any, depth: int = 0) -> bool:
    """A module, function or class an installed library (or Python) defines: code that cannot
    reach a notebook variable except through the arguments it is given. A library function
    may be a closure (scikit-learn's validated functions are): what it closes over must be
    library code or data too."""
    kind = type(value)
    if kind is types.ModuleType:
        name = static.own_dict(types.ModuleType)["__dict__"].__get__(value).get("__name__")
        return type(name) is str and static.installed_module(name)
    if kind is types.FunctionType:
        module = value.__module__
        if type(module) is not str or not static.installed_module(module):
            return False
        return all(_library_closed_over(cell, depth) for cell in value.__closure__ or ())
    if kind is types.BuiltinFunctionType:
        owner = value.__self__
        return owner is None or type(owner) is types.ModuleType
    return static.is_class(value) and static.library_kind(value)


def _library_closed_over(cell: types.CellType, depth: int) -> bool:
    try:
        content = cell.cell_contents
    except ValueError:  # not yet assigned
        return True
    kind = type(content)
    code = kind is types.FunctionType or kind is types.ModuleType or kind is types.BuiltinFunctionType
    if code or static.is_class(content):  # (by identity: a metaclass's __eq__ is the notebook's code)
        return depth < 3 and other_is_library_code(content, depth + 1)
    return static.library_kind(kind) and kind is not types.MethodType


def numeric_buffers(value: Any) -> list[Any] | None:
    """The numpy buffers of a numpy array or pandas frame/series with numpy columns, else None.

    Only for the libraries' own classes (a notebook subclass could override what is read).
    """
    ndarray = static.library_class("numpy", "ndarray")
    if ndarray is None:
        return None
    tp = type(value)
    if tp is ndarray or tp is static.library_class("numpy", "memmap"):
        return None if value.dtype.hasobject else [value]
    if tp is static.library_class("pandas", "Series"):
        columns = [value.array]
    elif tp is static.library_class("pandas", "DataFrame"):
        columns = frame_columns(value)
    else:
        return None
    out = []
    for col in columns:
        arr: Any = col if type(col) is ndarray else getattr(col, "_ndarray", None)
        if type(arr) is not ndarray or arr.dtype.hasobject:
            return None
        out.append(arr)
    return out


def _may_share(a: Any, b: Any) -> bool:
    namespace = static.loaded_module("numpy")
    return True if namespace is None else bool(namespace["may_share_memory"](a, b))
