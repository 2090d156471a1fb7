"""The global generators' state, read once per cell: exact, and cheap where it can be."""

from __future__ import annotations

import _random
import random
import struct

import numpy as np
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
