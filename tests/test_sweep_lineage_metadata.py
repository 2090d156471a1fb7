"""Fingerprints must see the metadata that changes what a value does: a masked array's
mask, fill value and masked-out data; a DatetimeIndex's freq; pandas flags; an ndarray
subclass; structured dtypes numpy gives no ``descr``; Arrow schema metadata."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from nbgov.lineage.fingerprint import fingerprint
from tests.fixtures.lineage import RecordingShell


def _differ(a: Any, b: Any) -> None:
    fa, fb = fingerprint(a), fingerprint(b)
    assert not fa.weak and not fb.weak, (fa.reason, fb.reason)
    assert fa.hash != fb.hash


def _same(a: Any, b: Any) -> None:
    fa, fb = fingerprint(a), fingerprint(b)
    assert not fa.weak and fa.hash == fb.hash


@pytest.mark.parametrize("n", [5, 20_000, 300_000])  # inline bytes, one buffer, block digests
def test_a_masked_array_is_its_data_mask_and_fill_value(n: int) -> None:
    data = np.arange(n, dtype="f8")
    mask = np.zeros(n, dtype=bool)
    other_mask = mask.copy()
    other_mask[1] = True
    hidden = data.copy()
    hidden[1] = -7.0  # under the mask: .data, filled(...) and unmasking show it
    masked = np.ma.array(data, mask=other_mask)
    _same(masked, np.ma.array(data.copy(), mask=other_mask.copy()))
    _differ(np.ma.array(data, mask=mask), masked)
    _differ(masked, np.ma.array(hidden, mask=other_mask))
    _differ(np.ma.array(data, mask=other_mask, fill_value=1.0), np.ma.array(data, mask=other_mask, fill_value=2.0))
    _differ(np.ma.array(data, mask=other_mask, hard_mask=True), masked)
    _differ(masked, data)


@pytest.mark.parametrize("n", [5, 300_000])
def test_hashing_a_masked_array_leaves_it_as_it_was(n: int) -> None:
    """numpy.ma's own tobytes() fills masked slots (and sets a default fill value on the
    array), its view() reshapes the mask: the recorder must call neither."""
    masked = np.ma.array(np.arange(float(n)), mask=np.zeros(n, dtype=bool))
    state = vars(masked)
    before = dict(state)
    mask = state["_mask"]
    first = fingerprint(masked)
    assert state == before and state["_fill_value"] is None
    assert state["_mask"] is mask and mask.shape == (n,)
    assert fingerprint(masked).hash == first.hash


@pytest.mark.parametrize("n", [5, 300_000])
def test_data_under_the_mask_is_content_whichever_is_hashed_first(n: int) -> None:
    data = np.arange(float(n))
    hidden = data.copy()
    hidden[1] = -7.0
    mask = np.zeros(n, dtype=bool)
    mask[1] = True
    assert fingerprint(np.ma.array(data, mask=mask)).hash != fingerprint(np.ma.array(hidden, mask=mask)).hash


def test_masking_an_element_in_a_cell_is_a_write(recording: RecordingShell) -> None:
    recording.run("import numpy as np\nm = np.ma.array(np.arange(100_000.0))")
    recording.run("m[3] = np.ma.masked")
    assert [(w["name"], w["mutated"]) for w in recording.body()["writes"]] == [("m", True)]
    recording.run("m.fill_value = -1.0")
    assert [(w["name"], w["mutated"]) for w in recording.body()["writes"]] == [("m", True)]


def test_a_datetime_index_freq_is_content() -> None:
    regular = pd.date_range("2024-01-01", periods=4, freq="D")
    plain = pd.DatetimeIndex(regular, freq=None)
    _differ(regular, plain)
    _differ(pd.Series([1, 2, 3, 4], index=regular), pd.Series([1, 2, 3, 4], index=plain))
    _differ(pd.DataFrame({"a": range(4)}, index=regular), pd.DataFrame({"a": range(4)}, index=plain))
    _same(plain, pd.DatetimeIndex(list(regular)))
    steps = pd.timedelta_range("1D", periods=3, freq="D")
    _differ(steps, pd.TimedeltaIndex(steps, freq=None))
    # a PeriodIndex carries its freq in its dtype (already part of the content)
    _differ(pd.period_range("2024-01", periods=2, freq="M"), pd.period_range("2024-01-01", periods=2, freq="D"))


def test_allows_duplicate_labels_is_content_and_turning_it_off_is_a_write(recording: RecordingShell) -> None:
    frame = pd.DataFrame({"a": [1, 2]})
    _differ(frame, frame.set_flags(allows_duplicate_labels=False))
    _same(frame, frame.set_flags(allows_duplicate_labels=True))
    series = pd.Series([1, 2], name="s")
    _differ(series, series.set_flags(allows_duplicate_labels=False))
    recording.run("import pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})")
    recording.run("df.flags.allows_duplicate_labels = False")
    assert [(w["name"], w["mutated"]) for w in recording.body()["writes"]] == [("df", True)]


def test_an_ndarray_subclass_is_not_a_plain_array() -> None:
    plain = np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    _differ(plain, plain.view(np.rec.recarray))
    _same(plain.view(np.rec.recarray), plain.copy().view(np.rec.recarray))


def test_structured_dtypes_without_descr_are_read_and_told_apart() -> None:
    def laid_out(names: list[str], offsets: list[int]) -> Any:
        spec = {"names": names, "formats": ["i4", "f8"], "offsets": offsets, "itemsize": 16}
        return np.zeros(2, dtype=np.dtype(spec))  # type: ignore[call-overload]

    out_of_order = laid_out(["a", "b"], [8, 0])
    _differ(out_of_order, laid_out(["x", "b"], [8, 0]))
    _differ(out_of_order, laid_out(["a", "b"], [12, 0]))
    _differ(out_of_order, laid_out(["b", "a"], [8, 0]))
    _same(out_of_order, laid_out(["a", "b"], [8, 0]))


def test_arrow_schema_and_field_metadata_are_content() -> None:
    table = pa.table({"a": [1, 2]})
    _differ(table, table.replace_schema_metadata({"k": "v"}))
    _differ(table.replace_schema_metadata({"k": "v"}), table.replace_schema_metadata({"k": "w"}))
    field = pa.schema([pa.field("a", pa.int64(), metadata={"unit": "kg"})])
    _differ(table, pa.table({"a": [1, 2]}, schema=field))
    _same(table.replace_schema_metadata({"k": "v", "j": "u"}), table.replace_schema_metadata({"j": "u", "k": "v"}))
    # pandas' own metadata rebuilds the index in to_pandas(): it is part of the table
    indexed = pa.Table.from_pandas(pd.DataFrame({"a": [1, 2]}, index=[10, 20]), preserve_index=True)
    assert indexed.schema.metadata
    _differ(indexed, indexed.replace_schema_metadata(None))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (pd.Categorical(["a", "b"], ordered=True), pd.Categorical(["a", "b"], ordered=False)),
        (pd.Categorical(["a", "b"], categories=["a", "b"]), pd.Categorical(["a", "b"], categories=["b", "a"])),
        (pd.Series([1, 2], name="x"), pd.Series([1, 2], name="y")),
        (pd.Series([1], index=pd.Index([1], name="a")), pd.Series([1], index=pd.Index([1], name="b"))),
        (
            pd.Series([1], index=pd.MultiIndex.from_tuples([(1, 2)], names=["a", "b"])),
            pd.Series([1], index=pd.MultiIndex.from_tuples([(1, 2)], names=["a", "c"])),
        ),
        (np.zeros(2, dtype=[("a", "i4")]), np.zeros(2, dtype=[("b", "i4")])),
        (np.array([1, 2], dtype="<i4"), np.array([1, 2], dtype=">i4")),
        (np.frombuffer(b"\x01\x00\x00\x00", "<i4"), np.frombuffer(b"\x01\x00\x00\x00", ">i4")),
    ],
    ids=["ordered", "category-order", "series-name", "index-name", "index-names", "field-name", "byte-order",
         "byte-order-same-bytes"],
)
def test_metadata_already_read_stays_read(a: Any, b: Any) -> None:
    _differ(a, b)


def test_printing_a_masked_array_is_not_a_write(recording: RecordingShell) -> None:
    """numpy.ma sets the default fill value on the array the first time it is read (repr
    does): the same value before and after, so no write."""
    recording.run("import numpy as np\nm = np.ma.array([1.0, 2.0], mask=[0, 1])")
    recording.run("repr(m)")
    assert recording.body()["writes"] == []
    explicit = np.ma.array([1.0, 2.0], mask=[False, True], fill_value=1e20)
    assert fingerprint(np.ma.array([1.0, 2.0], mask=[False, True])).hash == fingerprint(explicit).hash


def test_multiindex_levels_no_row_uses_or_out_of_order_are_content() -> None:
    full = pd.MultiIndex.from_arrays([[1, 2, 2], ["a", "b", "a"]], names=["n", "s"])
    sliced = full[:1]  # keeps 2 and "b" in its levels
    fresh = pd.MultiIndex.from_arrays([[1], ["a"]], names=["n", "s"])
    assert [list(x) for x in sliced.levels] != [list(x) for x in fresh.levels]
    _differ(sliced, fresh)
    _differ(pd.Series([1], index=sliced), pd.Series([1], index=fresh))
    _same(sliced.remove_unused_levels(), fresh)
    _same(full, pd.MultiIndex.from_tuples([(1, "a"), (2, "b"), (2, "a")], names=["n", "s"]))
    unsorted = pd.MultiIndex(levels=[[2, 1]], codes=[[1, 0]])
    _differ(unsorted, pd.MultiIndex.from_arrays([[1, 2]]))
    with_nan = pd.MultiIndex.from_arrays([[1.0, np.nan], ["a", "b"]])
    _same(with_nan, pd.MultiIndex.from_arrays([[1.0, np.nan], ["a", "b"]]))
    assert fingerprint(pd.DataFrame({"x": [1, 2, 3]}, index=full)).weak is False


def test_a_masked_object_array_holding_itself_terminates() -> None:
    masked = np.ma.array(np.empty(2, dtype=object), mask=[False, True])
    masked.data[0] = masked  # numpy.ma.__setitem__ would try to mask by its mask
    first = fingerprint(masked)
    assert not first.weak, first.reason
    other = np.ma.array(np.empty(2, dtype=object), mask=[False, True])
    other.data[0] = other
    assert fingerprint(other).hash == first.hash


@pytest.mark.parametrize(("a", "b"), [("D", "2D"), ("D", "24h"), ("h", "min"), ("D", "B"), ("W-MON", "D")])
def test_every_freq_is_told_apart(a: str, b: str) -> None:
    one = pd.date_range("2024-01-01", periods=1, freq=a)  # a Monday: the same single value
    other = pd.date_range("2024-01-01", periods=1, freq=b)
    assert list(one) == list(other)
    _differ(one, other)
    _same(one, pd.date_range("2024-01-01", periods=1, freq=a))


def test_a_custom_business_day_is_read_with_its_holidays() -> None:
    one = pd.date_range("2024-01-02", periods=3, freq=pd.offsets.CustomBusinessDay(holidays=["2024-01-10"]))
    other = pd.date_range("2024-01-02", periods=3, freq=pd.offsets.CustomBusinessDay(holidays=["2024-01-11"]))
    assert list(one) == list(other)
    _differ(one, other)


def test_a_field_title_that_is_an_object_is_not_run() -> None:
    calls: list[str] = []

    class Title:
        def __repr__(self) -> str:
            calls.append("repr")
            return "T"

        def __hash__(self) -> int:
            calls.append("hash")
            return 1

    dtype = np.dtype([((Title(), "a"), "i4")])
    calls.clear()
    for value in (np.zeros(2, dtype=dtype), np.zeros(2, dtype=[("outer", dtype)])):
        fp = fingerprint(value)
        assert fp.weak and "title" in str(fp.reason)
    assert calls == []
    _differ(np.zeros(1, dtype=[(("one", "a"), "i4")]), np.zeros(1, dtype=[(("two", "a"), "i4")]))
