"""The between-cells version probe (``Fingerprinter.probe``): its frame fast path (read from
pandas' block manager) gives the same probe as the generic reading, and every part of the
identity and every sampled window is still seen."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import xxhash

from nbgov.lineage.fingerprint import Fingerprinter, columnar
from nbgov.lineage.fingerprint.columnar import _GENERIC, _find_frame_classes, _frame_plan

N = 200_000  # 1.6 MB a float column: above the probe's minimum


def _reference_probe(fingerprinter: Fingerprinter, obj: Any) -> str | None:
    """The probe as it was read before the fast path: ``probe_parts``, then each array's
    windows through a uint8 view of the array."""
    try:
        arrays, meta, labels = columnar.probe_parts(obj)
        if arrays is None or sum(a.nbytes for a in arrays) < columnar.PROBE_MIN_BYTES:
            return None
        h = xxhash.xxh3_128(meta.encode("utf-8", "surrogatepass"))
        for part in labels:
            fast = columnar.probe_labels(part)
            text = fingerprinter._digest(part) if fast is None else "L" + xxhash.xxh3_128_hexdigest(fast)
            h.update(text.encode("ascii") + b";")
        for arr in arrays:
            flat = arr.reshape(-1).view("uint8")
            if len(flat) <= 64 * 64:
                h.update(memoryview(flat))
                continue
            step = (len(flat) - 64) // 63
            for k in range(64):
                h.update(flat[k * step : k * step + 64].tobytes())
        return h.hexdigest()
    except Exception:
        return None


def _mixed() -> pd.DataFrame:
    """Three columns in two blocks: ints at rows 0 and 1 of one, floats in the other."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"id": np.arange(N), "amount": rng.random(N), "qty": rng.integers(0, 50, N)})


def _values() -> dict[str, Any]:
    rng = np.random.default_rng(1)
    mixed = _mixed()
    rowview = pd.DataFrame({"a": np.ones(N)})
    rowview._mgr.blocks[0].values = np.ones((2, N))[:1, :]  # one row of a bigger block
    fortran = pd.DataFrame(np.ones((N, 2)))
    fortran._mgr.blocks[0].values = np.asfortranarray(np.ones((2, N)))  # rows not contiguous
    return {
        "mixed": mixed,
        "one block": pd.DataFrame(rng.random((N, 3))),
        "from fortran": pd.DataFrame(np.asfortranarray(rng.random((N, 3)))),
        "sliced rows": mixed.iloc[5:],
        "picked columns": mixed[["qty", "id"]],
        "named index": mixed.rename_axis("rows"),
        "int labels": pd.DataFrame({1: np.arange(N), 2.5: np.ones(N)}),
        "small ints": pd.DataFrame({"a": np.ones(N, np.float32), "b": np.ones(N, np.int16), "c": np.ones(N, bool)}),
        "many columns": pd.DataFrame(rng.random((20_000, 300))),  # each column under the window bytes
        "row view": rowview,
        "fortran block": fortran,
        "object column": mixed.assign(s="x"),
        "datetime column": mixed.assign(t=pd.Timestamp("2020")),
        "categorical": mixed.assign(c=pd.Categorical(["a"] * N)),
        "not a range index": mixed.set_index(pd.Index(np.arange(N) * 0.5)),
        "small": mixed.head(1000),
        "empty": pd.DataFrame({"a": np.ones(0)}),
        "no columns": pd.DataFrame(index=range(N)),
        "array": rng.random(N),
        "2-d array": rng.random((1000, 1000)),
        "fortran array": np.asfortranarray(rng.random((1000, 1000))),
        "datetimes": np.arange(N).astype("M8[s]"),
        "big-endian": np.arange(N, dtype=">i8"),
    }


@pytest.mark.parametrize("name", list(_values()))
def test_the_probe_equals_the_generic_reading(name: str) -> None:
    value = _values()[name]
    fingerprinter = Fingerprinter()
    assert fingerprinter.probe(value) == _reference_probe(fingerprinter, value)


def test_the_fast_path_covers_plain_frames_and_hands_back_the_rest() -> None:
    values = _values()
    classes = _find_frame_classes()
    assert classes is not None
    for name in ("mixed", "one block", "from fortran", "named index", "small ints", "many columns", "row view"):
        assert _frame_plan(values[name], classes) not in (None, _GENERIC), name
    for name in ("sliced rows", "fortran block"):
        assert _frame_plan(values[name], classes) is _GENERIC, name


@pytest.mark.parametrize("column", ["id", "amount", "qty"])
def test_an_in_place_change_to_any_sampled_window_changes_the_probe(column: str) -> None:
    frame = _mixed()
    fingerprinter = Fingerprinter()
    probe = fingerprinter.probe(frame)
    assert probe is not None
    block = next(b for b in frame._mgr.blocks if frame.columns.get_loc(column) in list(b.mgr_locs))
    row = list(block.mgr_locs).index(frame.columns.get_loc(column))
    raw = block.values[row].view("uint8")  # the column's bytes, in place
    step = (len(raw) - 64) // 63
    for window in (0, 1, 31, 62, 63):
        for at in (window * step, window * step + 63):  # first and last byte of the window
            raw[at] ^= 0xFF
            assert fingerprinter.probe(frame) != probe, (window, at)
            raw[at] ^= 0xFF
    assert fingerprinter.probe(frame) == probe


def test_a_new_buffer_index_dtype_or_order_changes_the_probe() -> None:
    frame = _mixed()
    fingerprinter = Fingerprinter()
    probe = fingerprinter.probe(frame)
    shifted = frame.copy(deep=False)
    shifted.index = pd.RangeIndex(1, N + 1)
    renamed = frame.copy(deep=False)
    renamed.index = pd.RangeIndex(0, N, name="rows")
    changed = [
        frame.copy(deep=True),  # the same bytes in new buffers
        shifted,
        renamed,
        frame.astype({"qty": "int32"}),
        frame[["amount", "id", "qty"]],
        frame.rename(columns={"qty": "quantity"}),
    ]
    for other in changed:
        assert fingerprinter.probe(other) != probe


def test_the_walks_exact_type_shortcuts_hash_as_the_general_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain Index's freq and an ArrowStringArray column skip the subclass checks: without
    those shortcuts (the classes unknown) every fingerprint is the same."""
    import pyarrow as pa

    values = [
        pd.DataFrame({"s": pd.array(["a", None, "bc"], dtype="str"), "n": [1, 2, 3]}),
        pd.DataFrame({"s": pd.array(["a", None], dtype="string[pyarrow]")}, index=pd.Index(["x", "y"], name="k")),
        pd.Index(["a", "b"], name="n"),
        pd.Series(pd.array(["x"] * 5, dtype=pd.ArrowDtype(pa.string()))),
        pa.chunked_array([["a"], ["bc", None]]),
        pa.array(["a", "bcdefghijklmnopqrstuvwxyz"], pa.string_view()),
        pa.array([b"a", b"bc"], pa.large_binary()),
        pa.array(["a", "b", "a"]).dictionary_encode(),
        pa.array([True, False, True]),
    ]
    fast = [Fingerprinter().fingerprint(v).hash for v in values]
    original = columnar.library_class

    def without_shortcuts(module: str, qualname: str) -> Any:
        if (module, qualname) in {("pandas.arrays", "ArrowStringArray"), ("pandas", "Index")}:
            return None
        return original(module, qualname)

    monkeypatch.setattr(columnar, "library_class", without_shortcuts)
    assert [Fingerprinter().fingerprint(v).hash for v in values] == fast
    assert None not in fast


def _frames_to_hash() -> dict[str, Any]:
    """The probe's values, and frames the plain-frame hashing must hand back or read the same."""
    mixed = _mixed()
    with_attrs = mixed.copy()
    with_attrs.attrs["source"] = "orders.parquet"
    no_duplicates = mixed.set_flags(allows_duplicate_labels=False)
    small = mixed.head(1000)
    return {
        **_values(),
        "attrs": with_attrs,
        "no duplicate labels": no_duplicates,
        "long doubles (padding)": pd.DataFrame({"x": np.ones(N, np.longdouble), "n": np.arange(N)}),
        "small, named": small.rename_axis("rows").rename_axis("fields", axis=1),
        "duplicate names": pd.DataFrame(np.ones((1000, 3)), columns=["a", "a", "b"]),
        "multiindex columns": pd.DataFrame(np.ones((10, 2)), columns=pd.MultiIndex.from_tuples([("a", 1), ("b", 2)])),
        "complex and unsigned": pd.DataFrame({"c": np.ones(100, complex), "u": np.ones(100, np.uint64)}),
        "frames inside a dict": {"a": small, "b": [small, small]},
    }


@pytest.mark.parametrize("name", list(_frames_to_hash()))
def test_plain_frames_hash_as_the_generic_walk_does(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashing a plain frame from its block manager writes the generic walk's bytes: the
    same digest and the same reach, whatever the frame (or where it sits in the value)."""
    value = _frames_to_hash()[name]
    fast = Fingerprinter().measure(value)
    with monkeypatch.context() as patched:
        patched.setattr(columnar, "frame_layout", lambda obj, classes: None)
        generic, again = Fingerprinter().measure(value), Fingerprinter().measure(value)
    assert fast.fingerprint.hash is not None
    assert fast.fingerprint == generic.fingerprint
    assert fast.reach == generic.reach == again.reach  # (objects a reader makes are not in it)


@pytest.mark.parametrize("name", list(_frames_to_hash()))
def test_the_probe_read_while_hashing_is_the_probe(name: str) -> None:
    value = _frames_to_hash()[name]
    fingerprinter = Fingerprinter()
    measured = fingerprinter.measure(value, probe=True)
    if measured.probed:
        assert measured.probe == fingerprinter.probe(value)
    not_plain = ("fortran block", "sliced rows", "picked columns", "not a range index", "object column",
                 "datetime column", "categorical")  # no RangeIndex, or blocks not numeric and C-contiguous
    plain = type(value) is pd.DataFrame and name not in not_plain
    assert measured.probed == plain, "a plain frame's probe is read while hashing; nothing else's is"
    assert not fingerprinter.measure(value).probed  # only when asked
