"""The interpreter-wide random generators a cell can draw from without naming a variable:
the ``random`` module's hidden instance (``random.random()``, ``random.seed``) and numpy's
legacy global ``RandomState`` (``np.random.rand``, ``np.random.seed``, and every library
call given ``random_state=None``).

No variable holds them, so a record cannot name the cell that seeded what another cell
drew. Their state is read after each cell (their own compiled getters, on the libraries'
exact classes only: no notebook code runs) and compared with what it was after the cell
before: a cell that changed one gets a note saying its record does not show that input.
Once per cell, and compared as read (no digest): copied straight from the generators' C
objects where their layout was checked (``generator_memory``; under a microsecond each),
else through their getters (about 10 microseconds for the Mersenne Twister's 625 words,
35 for numpy's state). A ``numpy.random.Generator`` made with
``default_rng(seed)`` is an ordinary variable and recorded as one.
"""

from __future__ import annotations

import sys
from typing import Any

from nbgov.lineage import generator_memory

RANDOM = "the random module's global state (random.seed, random.random)"
NUMPY = "numpy's global random state (np.random.seed, np.random.rand, random_state=None)"


State = tuple[object, ...]  # ints, floats and bytes read from the generator: compared with ==


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
    """Notes for the generators the cell changed (drew from or seeded); ``imported``: the cell
    imported modules, which may have drawn at import (rich draws ``getrandbits`` then)."""
    who = "the cell (or a module it imported)" if imported else "the cell"
    return [f"{who} drew from or seeded {what}: no variable holds it, so the cells that seeded it or "
            "drew from it before are not named as this record's inputs"
            for what, state in after.items() if what in before and before[what] != state]


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
    if type(inner) is dict and hasattr(inner.get("key"), "tobytes"):
        rest = tuple(sorted((k, repr(v)) for k, v in state.items() if k != "state"))
        return (inner["key"].tobytes(), repr(inner.get("pos")), rest)
    return None
