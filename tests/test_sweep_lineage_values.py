"""Fingerprints that must tell apart values that differ (pandas metadata carried through
operations and into files)."""

from __future__ import annotations

import pandas as pd

from nbgov.lineage.fingerprint import fingerprint
from tests.fixtures.lineage import RecordingShell


def test_pandas_attrs_are_part_of_a_frame_and_a_series() -> None:
    plain = pd.DataFrame({"a": [1, 2]})
    tagged = pd.DataFrame({"a": [1, 2]})
    tagged.attrs["unit"] = "kg"
    other = pd.DataFrame({"a": [1, 2]})
    other.attrs["unit"] = "g"
    hashes = {fingerprint(v).hash for v in (plain, tagged, other)}
    assert len(hashes) == 3 and not fingerprint(tagged).weak
    assert fingerprint(plain).hash == fingerprint(pd.DataFrame({"a": [1, 2]})).hash
    series = pd.Series([1.0], name="w")
    before = fingerprint(series).hash
    series.attrs["source"] = "scale"
    assert fingerprint(series).hash != before


def test_setting_attrs_in_a_cell_is_a_write(recording: RecordingShell) -> None:
    recording.run("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})")
    recording.run("df.attrs['unit'] = 'kg'")
    body = recording.body()
    assert [(w["name"], w["mutated"]) for w in body["writes"]] == [("df", True)]
    assert body["writes"][0]["fingerprint"]["hash"] != body["reads"][0]["fingerprint"]["hash"]


def test_a_seeded_random_random_is_read_exactly_and_a_system_one_is_not() -> None:
    import random

    seeded, same, other = random.Random(7), random.Random(7), random.Random(8)
    assert not fingerprint(seeded).weak
    assert fingerprint(seeded).hash == fingerprint(same).hash != fingerprint(other).hash
    before = fingerprint(seeded).hash
    seeded.random()
    assert fingerprint(seeded).hash != before  # its state advanced
    assert fingerprint(random.SystemRandom()).weak


def test_reading_attrs_runs_no_property_of_a_subclass() -> None:
    calls: list[str] = []

    class Sub(pd.DataFrame):
        @property
        def _attrs(self) -> dict[str, str]:
            calls.append("_attrs")
            return {"forged": "yes"}

        @_attrs.setter
        def _attrs(self, value: object) -> None:
            calls.append("set")

    frame = Sub({"a": [1]})
    calls.clear()
    assert not fingerprint(frame).weak and calls == []


def test_a_weak_reference_held_by_a_name_is_unverifiable_not_a_constant() -> None:
    import weakref

    class Box:
        def __init__(self, n: int) -> None:
            self.n = n

    one, two = Box(1), Box(2)
    for make in (weakref.proxy, weakref.ref):
        a, b = fingerprint(make(one)), fingerprint(make(two))
        assert a.weak and b.weak and a.same_content(b) is None  # never "equal" whatever they point to
        assert a.reason is not None and "weak reference" in a.reason
    assert not fingerprint([weakref.ref(one)]).weak  # inside a value: a back-reference, as before
