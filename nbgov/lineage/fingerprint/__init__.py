"""Exact content fingerprints (xxh3-128) of notebook values, read without running user code.

``Fingerprinter.fingerprint(value)`` never raises and never calls the value's own
code: no ``__getattr__``, property, ``__iter__``, ``__len__``, ``__eq__``, ``__hash__``,
``__fspath__``, ``__reduce__`` or method of a class it does not know (see
``static``). It hashes what it can read exactly; where content truly cannot be
read (a socket, a generator, an open file, a lock, a native object of an unknown
library) the fingerprint is *weak*: no hash, and a ``reason`` saying why.

Modules: ``static`` (reading state statically), ``encode`` (the byte stream),
``walk`` (the iterative, cycle-safe traversal), ``kinds`` (the handler table),
``objects`` (Python's own types and instances), ``columnar`` (numpy, pandas,
polars, Arrow), ``memmap`` (file-mapped arrays), ``protobuf`` (ONNX models, by
bytes and by meaning), ``logs`` (``logging``'s loggers and handlers, as their
configuration), ``summary`` (shape/length text).

Interrupts: a KeyboardInterrupt while hashing returns a weak fingerprint with
reason "unfinished: interrupted" and sets ``Fingerprinter.interrupted``; until
``reset_interrupt()`` every further value returns at once the same way, so a
recorder can finish its record quickly and say what was not hashed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import xxhash

from nbgov.lineage.fingerprint import columnar, libraries, protobuf, static
from nbgov.lineage.fingerprint import model_probe, sklearn_probe
from nbgov.lineage.fingerprint.encode import ATOMS, LONG_TEXT
from nbgov.lineage.fingerprint.kinds import Kinds
from nbgov.lineage.fingerprint.objects import flat_encoding
from nbgov.lineage.fingerprint.summary import summarize
from nbgov.lineage.fingerprint.walk import Limits, NotExact, SecretHeld, Walk, held_secret
from nbgov.lineage.record import Fingerprint

__all__ = ["Fingerprinter", "Measurement", "fingerprint", "hash_bytes", "INTERRUPTED"]

# Which bytes a value's fingerprint reads; raised whenever the bytes read for some kind of
# value change (a property found to be missed), so a replay by a newer nbgov does not call
# a value recorded under an older scheme different (it is said to be uncomparable instead).
# 2: masked arrays' masks, DatetimeIndex freq, pandas flags, Arrow metadata, MultiIndex levels.
# 3: numpy padding bytes (structured dtypes' gaps, x87 long doubles' unused bytes) left out.
# 4: logging's loggers and handlers read as their configuration (``logs``); before, a logger was
#    its whole dict (the level cache every ``logger.info`` fills, the process's logger registry).
# 5: a file handler's file relative to the working folder when inside it (a copied folder's
#    replay logs to its own copy of the file).
# 6: what sits under a null in a fixed-width Arrow column (and a pandas masked array, read
#    through Arrow) read as zeros: it is undefined, so equal columns hashed differently.
# 7: the process's global generators (numpy's ``np.random.mtrand._rand``, ``random._inst``)
#    inside a value (a scipy frozen distribution) read as their names, not their state.
SCHEME = 7
DEFAULT_MAX_BYTES = 64 * 1024**3
DEFAULT_MAX_ITEMS = 10_000_000  # Python objects visited per value
DEFAULT_MAX_REACH = 100_000  # mutable objects remembered per value for sharing
INTERRUPTED = "unfinished: interrupted"
_NO_REACH: frozenset[int] = frozenset()
# what ``probe`` hashes for a None label (an unnamed index): ``_digest(None)``, then ";"
_NONE_LABEL = xxhash.xxh3_128_hexdigest(ATOMS[id(type(None))](None)).encode("ascii") + b";"
_CACHE_LIMIT = 4096


class Measurement(NamedTuple):
    """A fingerprint, and the ids of the mutable objects the value's graph holds.

    ``complete`` is False when the walk stopped early (a weak part, the reach
    limit): then the value may hold more than ``reach`` says.
    """

    fingerprint: Fingerprint
    reach: frozenset[int]
    complete: bool
    # asked for with ``measure(obj, probe=True)`` and read on the way (a plain frame):
    # ``probe(obj)`` as it is now, None where no probe applies; ``probed`` False: not read
    probe: str | None = None
    probed: bool = False
    # every object read is data or code of Python's or of the data and model libraries (none
    # of the notebook's classes or functions): what a library model's read-only method touches
    library_only: bool = False


class Fingerprinter:
    """Hashes values; remembers immutable ones (weakly) so they are hashed once."""

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_items: int = DEFAULT_MAX_ITEMS,
        max_reach: int = DEFAULT_MAX_REACH,
    ) -> None:
        self.limits = Limits(max_items=max_items, max_bytes=max_bytes, max_reach=max_reach)
        self.kinds = Kinds()
        self.interrupted = False
        self.hashed_bytes = 0  # for benchmarks and tests: work actually done
        # the (text, reason) of secrets no fingerprint may hold, asked per value read (the
        # recorder's are the secret-named environment variables' values: ``secret_values``)
        self.secrets: Callable[[], Sequence[tuple[bytes, str]]] | None = None
        # id -> (weak reference proving the id still names that object, measurement)
        self._immutable: dict[int, tuple[weakref.ref[Any], Measurement]] = {}

    # -- public ------------------------------------------------------------
    def fingerprint(self, obj: Any) -> Fingerprint:
        """Fingerprint ``obj``; never raises, never runs its code."""
        return self.measure(obj).fingerprint

    def measure(self, obj: Any, probe: bool = False) -> Measurement:
        """Fingerprint ``obj`` and collect the ids of the mutable objects it reaches;
        ``probe``: also its version probe, where hashing read what the probe reads."""
        try:
            if self.interrupted:
                return _weak(obj, f"{INTERRUPTED} (not hashed after the interrupt)")
            tp = type(obj)
            key = _identity(tp)
            atom = _ATOMS.get(key)
            if atom is not None and not (tp is str and len(obj) > LONG_TEXT):  # most values: no frame more
                encode, kind = atom
                digest = xxhash.xxh3_128_hexdigest(encode(obj))
                # tuple.__new__: the named tuple's own __new__ is a Python function (a frame per value)
                return tuple.__new__(Measurement, (Fingerprint(kind, digest, False, summarize(obj)), _NO_REACH, True,
                                                   None, False, True))
            return self._measure(obj, probe)
        except KeyboardInterrupt:
            self.interrupted = True
            return _weak(obj, INTERRUPTED)
        except BaseException as exc:  # noqa: BLE001 - whatever a library raised, the cell goes on
            return _weak(obj, f"unreadable: {type(exc).__name__} while reading")

    def reset_interrupt(self) -> None:
        """Start hashing again after an interrupt (the recorder calls it per cell)."""
        self.interrupted = False

    def probe(self, obj: Any) -> str | None:
        """A cheap version probe of a large numeric array or frame, or of a LightGBM or
        scikit-learn model (``model_probe``, ``sklearn_probe``), None when not applicable.

        Hashes the identity of the buffers (address, shape, dtype, labels) and a sample
        of their bytes: used to skip re-hashing a big value between two cells when
        nothing visibly changed. Values under PROBE_MIN_BYTES are always hashed fully.
        """
        try:
            model = model_probe.probe(obj, self._digest)
            if model is not model_probe.NOT_A_MODEL:
                return model
            model = sklearn_probe.probe(obj, self._digest)
            if model is not sklearn_probe.NOT_SKLEARN:
                return model
            return self._probe_of(columnar.probe_plan(obj))
        except Exception:
            return None

    def _probe_of(self, plan: tuple[str, list[Any], list[tuple[Any, int, int]]] | None) -> str | None:
        try:
            if plan is None:
                return None
            meta, labels, regions = plan
            h = xxhash.xxh3_128(meta.encode("utf-8", "surrogatepass"))
            for part in labels:  # each part's digest text, then ";" (no digest text holds one)
                if part is None:  # an unnamed index
                    h.update(_NONE_LABEL)
                    continue
                fast = columnar.probe_labels(part)
                text = self._digest(part) if fast is None else "L" + xxhash.xxh3_128_hexdigest(fast)
                h.update(text.encode("ascii") + b";")
            columnar.sample_regions(h, regions)
            return h.hexdigest()
        except Exception:
            return None

    def clear(self) -> None:
        self._immutable.clear()

    def _digest(self, obj: Any) -> str:
        """The content hash alone ("weak" when inexact), for a probe's small labels: no summary."""
        tp = type(obj)
        encode = ATOMS.get(id(tp))
        if encode is not None and not (tp is str and len(obj) > LONG_TEXT):
            return xxhash.xxh3_128_hexdigest(encode(obj))
        walk = Walk(self.kinds, self.limits)
        try:
            return walk.run(obj)
        except (NotExact, RecursionError):
            return "weak"
        finally:
            self.hashed_bytes += walk.hashed_bytes
            walk.release()

    # -- internals ---------------------------------------------------------
    def _measure(self, obj: Any, probe: bool = False) -> Measurement:
        """Anything but an atom (``measure`` hashes those itself)."""
        tp = type(obj)
        key = _identity(tp)
        if key in _REFERENCE_KINDS or static.inherits(tp, weakref.ref):
            return _weak(obj, _REFERENCE_REASON)
        flat_kind = _FLAT_KINDS.get(key)
        flat = flat_encoding(obj) if flat_kind is not None and 2 * len(obj) < self.limits.max_items else None
        needles = self.secrets() if self.secrets is not None else ()
        if flat is not None and flat_kind is not None:
            held = held_secret(flat, needles) if needles else None
            if held is not None:
                return _weak(obj, held, summary="")
            reach = _NO_REACH if tp is tuple else frozenset((id(obj),))
            fp = Fingerprint(flat_kind, xxhash.xxh3_128_hexdigest(flat), False, summarize(obj))
            return Measurement(fp, reach, True, library_only=True)
        cached = self._immutable.get(id(obj))
        if cached is not None and cached[0]() is obj:
            return cached[1]
        walk = Walk(self.kinds, self.limits)
        walk.secrets = needles
        probed, probe_digest = False, None
        try:
            digest = walk.run(obj)
            library_only = not walk.holds_own_code and all(map(static.library_kind, walk.types_read()))
            layout = walk.frame_layouts.get(id(obj)) if probe else None
            if layout is not None:  # a plain frame: its probe from the layout just read
                probed, probe_digest = True, self._probe_of(columnar.layout_probe_plan(layout))
            reach = walk.lasting_reach()
        except NotExact as weak:
            summary = "" if isinstance(weak, SecretHeld) else None
            return Measurement(_weak(obj, weak.reason, summary).fingerprint, walk.lasting_reach(), False)
        except RecursionError:
            return _weak(obj, "too deeply nested for the library that holds it")
        finally:
            self.hashed_bytes += walk.hashed_bytes
            walk.release()
        reason = "; ".join(walk.notes) or None
        semantic = protobuf.semantic_digest(obj) or self._without_timings(obj)
        fp = Fingerprint(static.kind_name(tp), digest, False, summarize(obj), reason=reason, semantic=semantic)
        measured = Measurement(fp, reach, walk.reach_complete, probe_digest, probed, library_only)
        if _immutable(obj):
            self._remember(obj, measured)
        return measured

    def _without_timings(self, obj: Any) -> str | None:
        """A scikit-learn search, or the dict cross_validate returns, hashed without the fit
        and score times it measured: two equal ones, fitted twice, differ only there
        (compared as meaning, never as bytes)."""
        state = libraries.search_without_timings(obj) or libraries.cross_validate_without_timings(obj)
        if state is None:
            return None
        walk = Walk(self.kinds, self.limits)
        try:
            digest = walk.run(state)
        except (NotExact, RecursionError):
            return None
        finally:
            self.hashed_bytes += walk.hashed_bytes
            walk.release()
        return xxhash.xxh3_128_hexdigest(f"{static.kind_name(type(obj))}\0{digest}".encode())

    def _remember(self, obj: Any, measured: Measurement) -> None:
        try:
            ref = weakref.ref(obj)
        except TypeError:
            return
        if len(self._immutable) >= _CACHE_LIMIT:
            self._immutable = {k: v for k, v in self._immutable.items() if v[0]() is not None}
            if len(self._immutable) >= _CACHE_LIMIT:
                self._immutable.clear()
        self._immutable[id(obj)] = (ref, measured)


# Exact types by identity: object.__hash__ (their address, rotated; a dict keyed by the
# type would run a metaclass's __hash__), not id(), whose audit event runs nbgov's hook.
_identity = object.__hash__
# (encoder, kind) of the atoms: one lookup for both
_ATOMS = {_identity(tp): (ATOMS[id(tp)], static.kind_name(tp)) for tp in (int, float, str, bool, type(None), complex)}
# an int's bytes as enc_int makes them, by a C method: no Python frame for the commonest value
_ATOMS[_identity(int)] = (b"i%x;".__mod__, "int")
_FLAT_KINDS = {_identity(tp): static.kind_name(tp) for tp in (list, tuple, dict)}
# A weak reference or proxy held by a name stands for another object: inside a value it is a
# back-reference (hashed as such), but as the value itself it has no content of its own, and
# a constant would call every two of them equal ("reproduced") whatever they point to.
_REFERENCE_KINDS = frozenset(map(_identity, (weakref.ProxyType, weakref.CallableProxyType)))
_REFERENCE_REASON = "a weak reference: it stands for another object, compared under that object's own name"


def _weak(obj: Any, reason: str, summary: str | None = None) -> Measurement:
    tp = type(obj)
    shown = summarize(obj) if summary is None else summary
    return Measurement(Fingerprint(static.kind_name(tp), None, True, shown, reason=reason), _NO_REACH, False)


def _immutable(obj: Any) -> bool:
    """Arrow data, and numpy arrays read-only all the way down: nobody can change them."""
    tp = type(obj)
    if static.module_of(tp).startswith("pyarrow.") and static.verified(tp):
        return True
    ndarray = static.library_class("numpy", "ndarray")
    if ndarray is None or tp is not ndarray or obj.dtype.hasobject:
        return False
    base: Any = obj
    while type(base) is ndarray:
        if base.flags.writeable:
            return False
        base = base.base
    return base is None or type(base) is bytes


def fingerprint(obj: Any) -> Fingerprint:
    """One-off fingerprint without a cache (the recorder keeps a Fingerprinter)."""
    return Fingerprinter().fingerprint(obj)


def hash_bytes(data: Any) -> str:
    """xxh3_128 hex of a bytes-like object (code, file contents)."""
    return xxhash.xxh3_128_hexdigest(data)
