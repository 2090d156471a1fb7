"""Property-based checks: equal structures hash equal, any mutation changes the hash."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from nbgov.lineage.fingerprint import fingerprint

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=12),
)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=4), max_leaves=8)
structures = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=12),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=6), inner, max_size=6),
        st.sets(hashables, max_size=6),
    ),
    max_leaves=40,
)
settings.register_profile("nbgov", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("nbgov")


def h(value: Any) -> str:
    fp = fingerprint(value)
    assert not fp.weak, fp.reason
    assert fp.hash is not None
    return fp.hash


@given(structures)
@settings(max_examples=120)
def test_equal_structures_hash_equal(value: Any) -> None:
    assert h(value) == h(copy.deepcopy(value))


@given(st.lists(hashables, min_size=1, max_size=20, unique_by=repr), st.randoms())
@settings(max_examples=100)
def test_sets_hash_the_same_in_any_insertion_order(items: list[Any], rnd: Any) -> None:
    # equal items of other types (False, 0, 0.0) would make the set keep whichever came
    # first: then the two sets really differ, and so must their fingerprints
    assume(len(set(items)) == len(items))
    shuffled = list(items)
    rnd.shuffle(shuffled)
    assert h(set(items)) == h(set(shuffled)) and h(frozenset(items)) == h(frozenset(shuffled))


def _lists_in(value: Any, found: list[list[Any]]) -> list[list[Any]]:
    if type(value) is list:
        found.append(value)
        for item in value:
            _lists_in(item, found)
    elif type(value) is dict:
        for item in value.values():
            _lists_in(item, found)
    elif type(value) is tuple:
        for item in value:
            _lists_in(item, found)
    return found


@given(structures, scalars, st.integers(min_value=0))
@settings(max_examples=120)
def test_appending_anywhere_changes_the_hash(value: Any, extra: Any, pick: int) -> None:
    lists = _lists_in(value, [])
    assume(lists)
    before = h(value)
    lists[pick % len(lists)].append(extra)
    assert h(value) != before


@given(structures, st.integers(min_value=0))
@settings(max_examples=120)
def test_replacing_a_scalar_by_a_different_one_changes_the_hash(value: Any, pick: int) -> None:
    lists = [lst for lst in _lists_in(value, []) if lst]
    assume(lists)
    target = lists[pick % len(lists)]
    index = pick % len(target)
    old = target[index]
    new: Any = ("replaced", old) if type(old) is not str else old + "·"
    before = h(value)
    target[index] = new
    assert h(value) != before


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=29))
@settings(max_examples=60)
def test_isomorphic_cycles_hash_equal_and_different_shapes_differ(length: int, back: int) -> None:
    def ring(n: int, target: int) -> list[Any]:
        nodes: list[list[Any]] = [[i] for i in range(n)]
        for i in range(n - 1):
            nodes[i].append(nodes[i + 1])
        nodes[-1].append(nodes[target % n])
        return nodes[0]

    assert h(ring(length, back)) == h(ring(length, back))
    if length > 1:
        assert h(ring(length, back)) != h(ring(length, back + 1)) or (back % length) == ((back + 1) % length)


@given(
    st.lists(st.tuples(st.integers(-1000, 1000), st.floats(allow_nan=False), st.text(max_size=5)), min_size=1, max_size=30),
    st.integers(min_value=0),
)
@settings(max_examples=100)
def test_frames_equal_when_copied_and_different_after_one_cell_changes(rows: list[Any], pick: int) -> None:
    frame = pd.DataFrame(rows, columns=["i", "f", "s"])
    assert h(frame) == h(frame.copy(deep=True))
    objects = frame.astype({"s": object})
    assert h(objects) == h(objects.copy(deep=True))
    row = pick % len(frame)
    changed = frame.copy()
    changed.loc[row, "i"] = int(changed.loc[row, "i"]) + 1
    assert h(changed) != h(frame)
    value = float(frame.loc[row, "f"])
    nudged = frame.copy()
    nudged.loc[row, "f"] = math.nextafter(value, -math.inf if value == math.inf else math.inf)
    assert h(nudged) != h(frame)


@given(st.integers(min_value=0, max_value=3_000_000), st.integers(min_value=0, max_value=255))
@settings(max_examples=40)
def test_one_byte_anywhere_in_a_large_buffer_changes_the_hash(position: int, value: int) -> None:
    data = np.zeros(3_000_001, dtype=np.uint8)  # three block digests and a partial one
    before = h(data)
    data[position] = value
    assert (h(data) == before) == (value == 0)


flat_containers = st.one_of(
    st.lists(scalars, max_size=24),
    st.lists(scalars, max_size=24).map(tuple),
    st.dictionaries(st.text(max_size=6), scalars, max_size=12),
    st.lists(st.text(max_size=3), min_size=8, max_size=24),
    st.lists(st.floats(allow_nan=False) | st.integers(-(2**70), 2**70), min_size=8, max_size=24),
)


@given(flat_containers)
@settings(max_examples=150)
def test_the_fast_path_for_flat_containers_hashes_exactly_like_the_walk(value: Any) -> None:
    from nbgov.lineage.fingerprint import Fingerprinter
    from nbgov.lineage.fingerprint.kinds import Kinds
    from nbgov.lineage.fingerprint.walk import Limits, Walk

    walked = Walk(Kinds(), Limits(max_items=10**6, max_bytes=10**9, max_reach=10**5)).run(value)
    assert Fingerprinter().fingerprint(value).hash == walked
