"""The global generators' state, read once per cell: exact, and cheap where it can be."""

from __future__ import annotations

import _random
import random
import struct

from nbgov.lineage import random_state


def test_the_random_module_state_is_read_as_its_own_getter_returns_it() -> None:
    random.seed(7)
    random.random()
    words, gauss = random_state.probe()[random_state.RANDOM]
    state = _random.Random.getstate(random._inst)  # type: ignore[attr-defined]
    assert random_state._twister_layout_checked(_random.Random)  # CPython: read from memory
    assert words == struct.pack(f"=i{len(state) - 1}I", state[-1], *state[:-1])
    assert gauss is None


def test_a_draw_a_seed_and_the_gauss_cache_alone_are_each_a_change() -> None:
    random.seed(1)
    before = random_state.probe()
    assert random_state.changed(before, random_state.probe()) == []
    random.random()
    assert len(random_state.changed(before, random_state.probe())) == 1
    random.seed(1)  # the same state again: nothing to say
    assert random_state.changed(before, random_state.probe()) == []
    random.gauss(0, 1)  # draws two normals, keeps one
    cached = random_state.probe()
    random.gauss(0, 1)  # uses the kept one: the twister's words do not move
    after = random_state.probe()
    assert cached[random_state.RANDOM][0] == after[random_state.RANDOM][0]
    assert len(random_state.changed(cached, after)) == 1


def test_a_generator_of_another_class_is_not_read() -> None:
    class Mine(random.Random):
        pass

    original = random._inst  # type: ignore[attr-defined]
    random._inst = Mine(3)  # type: ignore[attr-defined]
    try:
        assert random_state.RANDOM not in random_state.probe()
    finally:
        random._inst = original  # type: ignore[attr-defined]
