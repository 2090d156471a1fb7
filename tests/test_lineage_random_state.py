"""The global generators' state, read once per cell: exact, and cheap where it can be."""

from __future__ import annotations

import _random
import importlib
import random
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.random import mtrand

from nbgov.lineage import generator_memory, random_state


def test_the_random_module_state_is_copied_as_its_own_getter_returns_it() -> None:
    random.seed(7)
    random.random()
    copy = generator_memory.twister_reader(_random.Random)
    assert copy is not None  # CPython: read from memory
    words, gauss = random_state.probe()[random_state.RANDOM]
    state = _random.Random.getstate(random._inst)  # type: ignore[attr-defined]
    assert words == struct.pack(f"=i{len(state) - 1}I", state[-1], *state[:-1]) == copy(random._inst)  # type: ignore[attr-defined]
    assert gauss is None


def test_numpys_legacy_state_is_copied_as_get_state_returns_it() -> None:
    np.random.seed(3)
    np.random.standard_normal()  # one normal left cached
    copy = generator_memory.legacy_numpy_reader(mtrand.RandomState)
    assert copy is not None
    state = np.random.get_state(legacy=False)
    assert state["has_gauss"] == 1
    assert copy(mtrand._rand) == generator_memory._getter_bytes(state)
    assert random_state.probe()[random_state.NUMPY] == (copy(mtrand._rand),)


def test_a_draw_a_seed_and_the_gauss_cache_alone_are_each_a_change() -> None:
    random.seed(1)
    np.random.seed(1)
    before = random_state.probe()
    assert random_state.changed(before, random_state.probe()) == []
    random.random()
    np.random.rand()
    assert len(random_state.changed(before, random_state.probe())) == 2
    random.seed(1)  # the same states again: nothing to say
    np.random.seed(1)
    assert random_state.changed(before, random_state.probe()) == []
    random.gauss(0, 1)  # draws two normals, keeps one
    np.random.standard_normal()
    cached = random_state.probe()
    random.gauss(0, 1)  # uses the kept one: the twisters' words do not move
    np.random.standard_normal()
    after = random_state.probe()
    assert cached[random_state.RANDOM][0] == after[random_state.RANDOM][0]
    assert np.random.get_state(legacy=False)["has_gauss"] == 0
    notes = random_state.changed(cached, after)
    assert len(notes) == 2 and "random module" in notes[0] and "numpy" in notes[1], notes


def test_a_generator_of_another_class_is_not_read() -> None:
    class Mine(random.Random):
        pass

    original = random._inst  # type: ignore[attr-defined]
    random._inst = Mine(3)  # type: ignore[attr-defined]
    try:
        assert random_state.RANDOM not in random_state.probe()
    finally:
        random._inst = original  # type: ignore[attr-defined]


def test_a_random_state_on_another_bit_generator_is_left_to_its_getter() -> None:
    copy = generator_memory.legacy_numpy_reader(mtrand.RandomState)
    assert copy is not None
    assert copy(mtrand.RandomState(np.random.PCG64(5))) is None
    assert copy(mtrand.RandomState(np.random.MT19937(5))) is not None


def test_a_class_holding_python_code_is_never_constructed_to_find_its_layout() -> None:
    ran: list[str] = []

    class Twister(_random.Random):
        def __init__(self, *args: object) -> None:
            ran.append("twister")

    class State(mtrand.RandomState):
        def __init__(self, *args: object) -> None:
            ran.append("state")
            super().__init__(*args)

    assert generator_memory.twister_reader(Twister) is None
    assert generator_memory.legacy_numpy_reader(State) is None
    assert ran == []


# -- draws made while a module is first imported -------------------------------------


@pytest.fixture
def module_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on sys.path for modules written by the test; they are forgotten after it."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("nbgov_unit_"):
            sys.modules.pop(name, None)


def test_a_watch_tells_a_draw_at_import_from_the_cells_own(module_folder: Path) -> None:
    (module_folder / "nbgov_unit_draws.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    (module_folder / "nbgov_unit_plain.py").write_text("VALUE = 1\n")
    watch = random_state.start(random_state.probe())
    importlib.import_module("nbgov_unit_draws")
    importlib.import_module("nbgov_unit_plain")
    notes = watch.finish(imported=True)
    assert notes == ["importing nbgov_unit_draws drew from or seeded the random module's global state at import; "
                     "the cell's own code did not draw from it or seed it"]
    assert watch.own == set() and watch.importing == []
    # what it keeps: names and the states as read, no object of the program
    assert all(type(name) is str for outer, inner in watch.imports.values() for name in (*outer, *inner))
    assert all(type(part) in (bytes, float, type(None)) for state in watch.last.values() for part in state)

    watch = random_state.start(random_state.probe())
    random.random()
    importlib.import_module("nbgov_unit_plain")  # already loaded: no import, nothing to tell
    assert watch.finish(imported=False) == random_state.changed(watch.first, watch.last)


def test_the_wrapper_is_in_place_only_while_a_watch_runs(module_folder: Path) -> None:
    bootstrap: Any = sys.modules["_frozen_importlib"]
    original = bootstrap._find_and_load
    watch = random_state.start(random_state.probe())
    assert watch.sees_imports and bootstrap._find_and_load is not original
    assert bootstrap._find_and_load.__code__.co_filename == original.__code__.co_filename
    assert bootstrap._find_and_load.__globals__ is vars(bootstrap)  # shown as importlib's own frame
    assert "make" not in vars(bootstrap)  # nothing added to importlib's namespace
    watch.finish(imported=False)
    assert bootstrap._find_and_load is original
    random_state.stop(watch)  # twice: nothing more
    assert bootstrap._find_and_load is original


def test_another_threads_imports_are_not_taken_for_the_cells(module_folder: Path) -> None:
    # only the cell's thread is watched: a draw at import elsewhere counts as a draw, as before
    (module_folder / "nbgov_unit_thread.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    watch = random_state.start(random_state.probe())
    worker = threading.Thread(target=importlib.import_module, args=("nbgov_unit_thread",))
    worker.start()
    worker.join()
    notes = watch.finish(imported=True)
    assert len(notes) == 1 and notes[0].startswith("the cell drew from or seeded the random module"), notes


def test_imports_run_through_another_wrapper_cannot_be_told_apart(module_folder: Path) -> None:
    # a notebook's own import profiler replaced importlib's function: it is left in place, not
    # wrapped, and a cell that imported says it cannot tell who drew
    (module_folder / "nbgov_unit_profiled.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    bootstrap: Any = sys.modules["_frozen_importlib"]
    original = bootstrap._find_and_load

    def profiled(name: str, import_: Any) -> Any:
        return original(name, import_)

    bootstrap._find_and_load = profiled
    try:
        watch = random_state.start(random_state.probe())
        assert not watch.sees_imports and bootstrap._find_and_load is profiled
        importlib.import_module("nbgov_unit_profiled")
        notes = watch.finish(imported=True)
        assert bootstrap._find_and_load is profiled
    finally:
        bootstrap._find_and_load = original
    assert len(notes) == 1 and notes[0].startswith("the cell (or a module it imported) drew from"), notes


def test_an_unfinished_reading_cannot_tell_who_drew(module_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (module_folder / "nbgov_unit_unread.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    watch = random_state.start(random_state.probe())
    reads = iter([None])

    def failing() -> dict[str, random_state.State]:
        if next(reads, "done") is None:
            raise OSError("unreadable")
        return original_probe()

    original_probe = random_state.probe
    monkeypatch.setattr(random_state, "probe", failing)
    importlib.import_module("nbgov_unit_unread")  # the import itself is untouched
    assert sys.modules["nbgov_unit_unread"].TOKEN >= 0
    notes = watch.finish(imported=True)
    assert len(notes) == 1 and notes[0].startswith("the cell (or a module it imported) drew from"), notes


# -- the cell's own changes, as fingerprinted values ---------------------------------


def test_a_states_fingerprint_is_the_same_whichever_reader_took_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # a replay's process may read through the getters where the recording's copied memory
    random.seed(11)
    random.random()
    np.random.seed(11)
    np.random.standard_normal()
    fast = random_state.probe()
    monkeypatch.setattr(generator_memory, "twister_reader", lambda core: None)
    monkeypatch.setattr(generator_memory, "legacy_numpy_reader", lambda cls: None)
    slow = random_state.probe()
    assert type(slow[random_state.RANDOM][0]) is tuple and type(fast[random_state.RANDOM][0]) is bytes
    for what in (random_state.RANDOM, random_state.NUMPY):
        assert random_state.fingerprint(what, slow[what]) == random_state.fingerprint(what, fast[what])
    random.random()
    assert random_state.fingerprint(random_state.RANDOM, random_state.probe()[random_state.RANDOM]) != \
        random_state.fingerprint(random_state.RANDOM, slow[random_state.RANDOM])


def test_a_watch_hands_the_cells_own_changes_over_without_a_note(module_folder: Path) -> None:
    (module_folder / "nbgov_unit_own.py").write_text("import random\nTOKEN = random.getrandbits(24)\n")
    np.random.seed(2)
    watch = random_state.start(random_state.probe())
    before = random_state.fingerprint(random_state.NUMPY, watch.first[random_state.NUMPY])
    importlib.import_module("nbgov_unit_own")  # the random module: the import's, a note
    np.random.rand()  # numpy's: the cell's own, a read and a write
    notes = watch.finish(imported=True, recorded=True)
    assert len(notes) == 1 and notes[0].startswith("importing nbgov_unit_own"), notes
    assert [(c.what, c.name, c.before) for c in watch.changes] == [
        (random_state.NUMPY, "numpy.random (global state)", before)]
    after = random_state.probe()[random_state.NUMPY]
    assert watch.changes[0].after == random_state.fingerprint(random_state.NUMPY, after)
    # a cell that changes neither has nothing to hash
    watch = random_state.start(random_state.probe())
    assert watch.finish(imported=False, recorded=True) == [] and watch.changes == []
