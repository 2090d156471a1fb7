"""The interpreter-wide random generators a cell can draw from without naming a variable:
the ``random`` module's hidden instance (``random.random()``, ``random.seed``) and numpy's
legacy global ``RandomState`` (``np.random.rand``, ``np.random.seed``, and every library
call given ``random_state=None``).

No variable holds them, so they are recorded as values under names no variable can have
(``random (global state)``, ``numpy.random (global state)``, as ``Out[3]`` is): what was
printed or plotted from a draw has no fingerprint, and without them a replay called an
unseeded ``print(random.random())`` reproduced. Their state is read after each cell (their
own compiled getters, on the libraries' exact classes only: no notebook code runs) and
compared with what it was after the cell before. Once per cell, and compared as read (no
digest): copied straight from the generators' C objects where their layout was checked
(``generator_memory``; under a microsecond each), else through their getters (about 10
microseconds for the Mersenne Twister's 625 words, 35 for numpy's state). Only a cell whose
own code changed one (``OwnChange``) pays for hashing it: its record reads the state it
started from and writes the state it left (``fingerprint``: the words as the C struct holds
them, whichever reader took them). A draw between cells (another thread, a silent execution)
is not seen until the next cell ends, and counts as that cell's. A ``numpy.random.Generator``
made with ``default_rng(seed)`` is an ordinary variable and recorded as one.

A module may draw when it is first imported (``rich``, which scikit-learn imports, takes
random bits for its style hashes): the state changes though the cell's own code drew
nothing. To tell the two apart, ``Watch`` wraps, while a cell is recorded, importlib's
``_find_and_load`` (what ``import`` and ``importlib.import_module`` call for a module not yet
loaded) and reads the state at each start and end of such an import on the cell's thread.
A change between two of those points belongs to the module being imported then (the
innermost) or, outside any import, to the cell's own code: the cell's own is recorded as a
read and a write (whatever it also imported); an import's only gets a note naming it (what
that module computed at import may still depend on it), so an import cell does not diverge
in a replay.
Where the imports could not be watched (another wrapper is in place, a reading failed or
was interrupted), the note says "the cell (or a module it imported)": it cannot tell.
Another thread's draw counts for whatever the cell's thread was running then (outside an
import: the cell's own code); ``importlib.reload`` calls no ``_find_and_load``, so what a
reloaded module draws counts as the cell's.
"""

from __future__ import annotations

import _thread
import struct
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nbgov.lineage import generator_memory
from nbgov.lineage.fingerprint import hash_bytes
from nbgov.lineage.record import NUMPY_STATE_NAME, RANDOM_STATE_NAME, Fingerprint

RANDOM = "the random module's global state (random.seed, random.random)"
NUMPY = "numpy's global random state (np.random.seed, np.random.rand, random_state=None)"
SHORT = {RANDOM: "the random module's global state", NUMPY: "numpy's global random state"}
# the name a generator's state is read and written under in a record (no variable can have it)
NAMES = {RANDOM: RANDOM_STATE_NAME, NUMPY: NUMPY_STATE_NAME}
# where a state no execution of the log left comes from
_ORIGIN = {RANDOM: "the random module seeds it from the OS when the kernel starts",
           NUMPY: "numpy seeds it from the OS when the kernel imports numpy"}
KIND = "random_state"  # the fingerprint kind of a generator's state


State = tuple[object, ...]  # ints, floats and bytes read from the generator: compared with ==


@dataclass(frozen=True)
class OwnChange:
    """A global generator the cell's own code drew from or seeded: its state before the cell
    (or when the cell's import made it) and after, as fingerprints (no state object kept);
    ``also``: the note's tail when an import in the cell changed it too."""

    what: str
    before: Fingerprint
    after: Fingerprint
    also: str = ""

    @property
    def name(self) -> str:
        return NAMES[self.what]

    def note(self, source_count: int | None) -> str:
        """The record's one note on it: read and written, and where the state it started from
        came from (``source_count``: the execution of this session that left it)."""
        head = f"the cell drew from or seeded {self.what}: its state is recorded as `{self.name}`"
        if source_count is not None:
            return f"{head}, read as execution {source_count} left it and written after the cell{self.also}"
        return (f"{head}; no execution in this session's log left the state the cell started from "
                f"({_ORIGIN.get(self.what, 'seeded from the OS')}, or it changed since where no record saw it: a "
                "module's first load, another thread), so the read names no source, and unless the cell seeded "
                f"it before drawing, its draws differ in every run{self.also}")


def unseeded(name: str) -> str:
    """Why draws from the generator recorded as ``name`` differ between runs when no execution
    of the log left the state they started from (replay's cause)."""
    what = next((w for w, n in NAMES.items() if n == name), "")
    return (f"drew from {SHORT.get(what, name)}, which nothing in the log seeded: "
            f"{_ORIGIN.get(what, 'it is seeded from the OS')}, so its draws differ in every run "
            "(or what last set it is in no record: a module's first load, another thread)")


def fingerprint(what: str, state: State) -> Fingerprint:
    """The state's content hash (xxh3_128 of its words as the C struct holds them, however it
    was read), so a replay compares it whichever reader its process used."""
    return Fingerprint(KIND, hash_bytes(_canonical(state)), summary="Mersenne Twister state")


def _canonical(state: State) -> bytes:
    parts: list[bytes] = []
    for part in state:
        if type(part) is bytes:
            parts.append(part)
        elif type(part) is tuple and part and all(type(w) is int for w in part):
            # the random module's getter: 624 words then the index, as the memory copy lays them out
            words: tuple[int, ...] = part
            parts.append(struct.pack(f"=i{len(words) - 1}I", words[-1], *words[:-1]))
        elif part is None:
            parts.append(b"\0")
        elif type(part) is float:
            parts.append(b"\1" + struct.pack("=d", part))
        else:
            parts.append(repr(part).encode("utf-8", "surrogatepass"))
        parts.append(b"\xff")
    return b"".join(parts)


def probe() -> dict[str, State]:
    """Each global generator's state, by what it is; nothing for one not imported."""
    out: dict[str, State] = {}
    python = _python_state()
    if python is not None:
        out[RANDOM] = python
    numpy = _numpy_state()
    if numpy is not None:
        out[NUMPY] = numpy
    return out


def changed(before: dict[str, State], after: dict[str, State], imported: bool = False) -> list[str]:
    """Notes for the generators the cell changed (drew from or seeded), not knowing who did;
    ``imported``: the cell imported modules, which may have drawn at import."""
    who = "the cell (or a module it imported)" if imported else "the cell"
    return [_drew(who, what) for what, state in after.items() if what in before and before[what] != state]


def _drew(who: str, what: str) -> str:
    return (f"{who} drew from or seeded {what}: no variable holds it, so the cells that seeded it or "
            "drew from it before are not named as this record's inputs")


class Watch:
    """Who changed the global generators during one cell: its own code, or the first
    import of a module (``start`` begins watching, ``finish`` ends it and says what it saw).

    Holds the generators' states as read (bytes and numbers) and module names: no user
    object. Read at each boundary of an import on the cell's thread: ``probe``, about 3
    microseconds, next to the milliseconds of loading a module."""

    def __init__(self, before: dict[str, State]) -> None:
        self.thread = _thread.get_ident()
        self.first = dict(before)
        self.last = dict(before)  # the states at the latest boundary (a generator gone keeps its last)
        self.importing: list[str] = []  # the modules being imported, outermost first
        self.own: set[str] = set()  # generators the cell's own code changed
        # per generator changed at import: the cell's imports it happened under, and the modules
        # whose own import-time code changed it (both in first-seen order)
        self.imports: dict[str, tuple[dict[str, None], dict[str, None]]] = {}
        self.sees_imports = False  # the wrapper was in place for this watch
        self.sound = True  # every boundary was read; False: attribution unknown, say so
        self.born: dict[str, State] = {}  # generators first seen during the cell (numpy imported in it)
        self.changes: list[OwnChange] = []  # after ``finish``: what the cell's own code changed

    def enter(self, name: object) -> int:
        """An import of ``name`` starts: what changed since the last boundary was its importer's."""
        depth = len(self.importing)
        sound, self.sound = self.sound, False  # an interrupt inside leaves it unsound
        try:
            self._settle()
        except Exception:  # noqa: BLE001 - never into the import: the note says it cannot tell
            return depth
        self.importing.append(name if type(name) is str else "a module")
        self.sound = sound
        return depth

    def leave(self, depth: int) -> None:
        """The import begun at ``depth`` ended (or failed): what changed was that module's."""
        sound, self.sound = self.sound, False
        try:
            self._settle()
        except Exception:  # noqa: BLE001
            del self.importing[depth:]
            return
        del self.importing[depth:]
        self.sound = sound and len(self.importing) == depth

    def _settle(self) -> None:
        now = probe()
        last = self.last
        for what, state in now.items():
            old = last.get(what)
            if old is None:
                self.born.setdefault(what, state)
                continue  # new (numpy's is made, from fresh entropy, at its import)
            if old == state:
                continue
            if self.importing:
                outer, inner = self.imports.setdefault(what, ({}, {}))
                outer[self.importing[0]] = None
                inner[self.importing[-1]] = None
            else:
                self.own.add(what)
        last.update(now)

    def finish(self, imported: bool, recorded: bool = False) -> list[str]:
        """Stop watching; the notes for the generators that changed. ``imported``: the cell
        loaded modules (if they were not watched, who drew is not known). ``changes`` then
        holds the generators the cell's own code changed; with ``recorded`` they get no note
        here (the record reads and writes them, and its builder says where they came from)."""
        stop(self)
        try:
            self._settle()
        except Exception:  # noqa: BLE001 - the reading fails again below, into the record's note
            self.sound = False
        if self.importing:
            self.sound = False
        if not self.sound or (imported and not self.sees_imports):
            self.last.update(probe())
            if not imported:  # no module loaded: what changed was the cell's own doing
                self.changes = [self._change(what, "") for what in self.last
                                if what in self.first and self.first[what] != self.last[what]]
                if recorded:
                    return []
            return changed(self.first, self.last, imported)
        notes = []
        self.changes = []
        for what in self.last:
            outer, inner = self.imports.get(what, ({}, {}))
            if what in self.own:
                also = f" (importing {_names(outer)} changed it too)" if outer else ""
                self.changes.append(self._change(what, also))
                if not recorded:
                    notes.append(_drew("the cell", what) + also)
            elif outer:
                short = SHORT.get(what, what)
                did = (f"drew from or seeded {short} at import" if list(inner) == list(outer) else
                       f"changed {short} ({_names(inner)} drew from or seeded it at import)")
                notes.append(f"importing {_names(outer)} {did}; the cell's own code did not draw from it or seed it")
        return notes

    def _change(self, what: str, also: str) -> OwnChange:
        """The cell's own change of ``what``, fingerprinted (only such cells pay the hashing)."""
        before = self.first.get(what, self.born.get(what))
        assert before is not None  # changed means seen before
        return OwnChange(what, fingerprint(what, before), fingerprint(what, self.last[what]), also)


def _names(names: dict[str, None], most: int = 3) -> str:
    shown = list(names)[:most]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


# -- watching imports --------------------------------------------------------------
# Process-wide: importlib has one ``_find_and_load``. The wrapper is put in place for a cell
# and taken out after it; it calls the function that was there when it was first made,
# never a later one (which might call it back), and only watches the cell's thread.

_watching: list[Watch | None] = [None]  # the watch in progress: one slot, never emptied (read by any thread)
_original: Callable[..., Any] | None = None
_wrapper: Callable[..., Any] | None = None

# compiled as importlib's own (its file name, its globals): the import machinery trims the
# frame from a failed import's traceback, as it trims its own, and a traceback that shows
# importlib's frames shows it as one of them; the helpers are closed over, so nothing is
# added to importlib's namespace
_WRAPPER_SOURCE = """\
def make(original, watching, get_ident):
    def _find_and_load(name, import_):
        watch = watching[0]
        if watch is None or watch.thread != get_ident():
            return original(name, import_)
        depth = watch.enter(name)
        try:
            return original(name, import_)
        finally:
            watch.leave(depth)
    return _find_and_load
"""


def start(before: dict[str, State]) -> Watch:
    """Begin a watch of the cell about to run (ending one left unfinished)."""
    watch = Watch(before)
    previous = _watching[0]
    if previous is not None:
        previous.sound = False
    _watching[0] = watch
    try:
        watch.sees_imports = _put_in_place()
    except Exception:  # noqa: BLE001 - unwatched imports: the note says it cannot tell
        watch.sees_imports = False
    return watch


def stop(watch: Watch) -> None:
    """End ``watch`` (if it is still the one in progress) and take the wrapper out."""
    if _watching[0] is watch:
        _watching[0] = None
        bootstrap = _bootstrap()
        if bootstrap is not None and _wrapper is not None and bootstrap.__dict__.get("_find_and_load") is _wrapper:
            bootstrap.__dict__["_find_and_load"] = _original


def _bootstrap() -> types.ModuleType | None:
    module = sys.modules.get("_frozen_importlib")  # what the interpreter's import calls into
    return module if type(module) is types.ModuleType else None


def _put_in_place() -> bool:
    global _original, _wrapper
    bootstrap = _bootstrap()
    if bootstrap is None:
        return False
    namespace = bootstrap.__dict__
    current = namespace.get("_find_and_load")
    if _wrapper is None:
        if not (type(current) is types.FunctionType and current.__globals__ is namespace):
            return False  # importlib's own function only: another's wrapper could call back into ours
        _original, _wrapper = current, _make_wrapper(current, namespace)
    if current is _wrapper:
        return True
    if current is not _original:
        return False  # replaced since by something else: not wrapped twice, not watched
    namespace["_find_and_load"] = _wrapper
    return True


def _make_wrapper(original: Callable[..., Any], namespace: dict[str, Any]) -> Callable[..., Any]:
    code = compile(_WRAPPER_SOURCE, original.__code__.co_filename, "exec")
    make_code = next(c for c in code.co_consts if type(c) is types.CodeType)
    make: Any = types.FunctionType(make_code, namespace, "make")
    wrapper: Any = make(original, _watching, _thread.get_ident)
    wrapper.__qualname__ = "_find_and_load"
    inner = wrapper.__code__
    if hasattr(inner, "co_qualname"):  # 3.11+: what tracebacks print
        wrapper.__code__ = inner.replace(co_qualname="_find_and_load")
    return wrapper


def _python_state() -> State | None:
    module = sys.modules.get("random")
    base = sys.modules.get("_random")
    if module is None or base is None:
        return None
    cls, inst = module.__dict__.get("Random"), module.__dict__.get("_inst")
    core = base.__dict__.get("Random")
    if cls is None or core is None or type(inst) is not cls:
        return None
    if not any(klass is core for klass in type.__dict__["__mro__"].__get__(cls)):
        return None
    gauss = object.__getattribute__(inst, "__dict__").get("gauss_next")
    if not (gauss is None or type(gauss) is float):
        return None
    copy = generator_memory.twister_reader(core)
    if copy is not None:
        return (copy(inst), gauss)
    state = core.__dict__["getstate"](inst)  # the compiled Mersenne Twister's own getter
    return (state, gauss) if type(state) is tuple else None


def _numpy_state() -> State | None:
    mtrand = sys.modules.get("numpy.random.mtrand")
    if mtrand is None:
        return None
    cls: Any = mtrand.__dict__.get("RandomState")
    rs = mtrand.__dict__.get("_rand")
    if cls is None or type(rs) is not cls:
        return None
    copy = generator_memory.legacy_numpy_reader(cls)
    copied = copy(rs) if copy is not None else None
    if copied is not None:
        return (copied,)
    state: Any = vars(cls)["get_state"](rs, legacy=False)  # numpy's own reader of its bit generator
    if type(state) is not dict:
        return None
    inner = state.get("state")
    if state.get("bit_generator") == "MT19937":
        try:  # the memory reader's form, so the fingerprint is the same whichever reader a process uses
            return (generator_memory._getter_bytes(state),)
        except Exception:  # noqa: BLE001 - another layout: kept as read
            pass
    if type(inner) is dict and hasattr(inner.get("key"), "tobytes"):
        rest = tuple(sorted((k, repr(v)) for k, v in state.items() if k != "state"))
        return (inner["key"].tobytes(), repr(inner.get("pos")), rest)
    return None
