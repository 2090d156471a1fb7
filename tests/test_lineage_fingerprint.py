"""Fingerprints: exact (content-equal ⇔ same hash, in practice), fast paths, weak fallbacks."""

from __future__ import annotations

import socket
import threading
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import xxhash

from nbgov.lineage.fingerprint import Fingerprinter, fingerprint


def h(obj: Any) -> str | None:
    return fingerprint(obj).hash


def _frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.normal(50_000, 9_000, n),
            "plan": rng.choice(["basic", "pro", "ünïcode ✓"], n),
            "flag": rng.random(n) > 0.5,
            "when": pd.date_range("2024-01-01", periods=n, freq="h"),
        }
    )


def test_equal_frames_hash_equal_and_every_kind_of_change_is_seen() -> None:
    df = _frame()
    fp = fingerprint(df)
    assert fp.kind == "pandas.DataFrame" and not fp.weak and fp.summary == "1000×5"
    assert h(df.copy()) == fp.hash
    changed = df.copy()
    changed.loc[500, "plan"] = "pro " if df.loc[500, "plan"] != "pro " else "basic"
    assert h(changed) != fp.hash  # one string value
    assert h(df.rename(columns={"age": "Age"})) != fp.hash  # column name
    assert h(df.astype({"age": "int32"})) != fp.hash  # dtype width (hash_pandas_object misses it)
    assert h(df.set_index(df.index + 1)) != fp.hash  # index
    assert h(df[["income", "age", "plan", "flag", "when"]]) != fp.hash  # column order
    tz = df.assign(when=df["when"].dt.tz_localize("UTC"))
    assert h(tz) != fp.hash  # timezone


def test_hash_pandas_object_blind_spots_are_not_ours() -> None:
    a = pd.DataFrame({"x": np.array([1, 2, 3], dtype="int64")})
    b = pd.DataFrame({"x": np.array([1, 2, 3], dtype="int32")})
    c = pd.DataFrame({"y": np.array([1, 2, 3], dtype="int64")})
    assert pd.util.hash_pandas_object(a).equals(pd.util.hash_pandas_object(b))
    assert pd.util.hash_pandas_object(a).equals(pd.util.hash_pandas_object(c))
    assert len({h(a), h(b), h(c)}) == 3


def test_strings_go_through_arrow_buffers_whatever_their_storage() -> None:
    values = ["a", None, "ccc", "", "dd"]
    arrow_backed = pd.Series(values, dtype="str")
    object_backed = pd.Series(values, dtype=object)
    assert not fingerprint(arrow_backed).weak and not fingerprint(object_backed).weak
    # NaN vs "" vs missing are different content
    assert h(pd.Series(["a", "", "b"], dtype=object)) != h(pd.Series(["a", None, "b"], dtype=object))
    # boundaries between strings matter: ["ab","c"] != ["a","bc"]
    assert h(pd.Series(["ab", "c"])) != h(pd.Series(["a", "bc"]))


def test_arrow_hash_ignores_chunking_and_slicing_but_not_content() -> None:
    one = pa.chunked_array([["a", "b", "c", None]])
    two = pa.chunked_array([["a"], ["b", "c", None]])
    assert h(one) == h(two)
    assert h(pa.array(["x", "a", "b"]).slice(1)) == h(pa.array(["a", "b"]))
    assert h(pa.array([1, 2, 3]).slice(1)) == h(pa.array([2, 3]))
    assert h(pa.array(["a", "b"])) != h(pa.array(["a", "c"]))
    assert h(pa.array([1, 2], pa.int64())) != h(pa.array([1, 2], pa.int32()))
    nested = pa.array([[1, 2], [3]])
    assert h(nested) == h(pa.array([[1, 2], [3]])) and h(nested) != h(pa.array([[1], [2, 3]]))


def test_what_sits_under_a_null_is_not_content() -> None:
    """Arrow leaves the slot under a null undefined (here: the sum's 5, against 0): equal columns
    fingerprint equal, whatever computed them; pandas' nullable arrays (read through Arrow) too."""
    import pyarrow.compute as pc

    computed = pc.add(pa.array([1, None, 3]), 5)
    assert np.frombuffer(computed.buffers()[1], np.int64)[1] != 0  # leftover bytes under the null
    assert h(computed) == h(pa.array([6, None, 8]))
    assert h(computed) != h(pa.array([6, None, 9])) and h(computed) != h(pa.array([6, 0, 8]))
    assert h(pc.multiply(pa.array([1.5, None, 2.0]), 2.0).slice(1)) == h(pa.array([None, 4.0]))
    one, other = pd.array([1, None, 3], dtype="Int64"), pd.array([1, 2, 3], dtype="Int64")
    other[1] = pd.NA
    assert h(one) == h(other) and h(pd.Series(one)) == h(pd.Series(other))
    assert h(one) != h(pd.array([1, 0, 3], dtype="Int64"))


def test_arrow_booleans_with_nulls_are_exact() -> None:
    with_null = pa.array([True, None, False])
    assert not fingerprint(with_null).weak
    assert h(with_null) == h(pa.chunked_array([[True], [None, False]]))
    assert h(with_null) != h(pa.array([True, None, True]))
    assert h(with_null) != h(pa.array([True, False, False]))  # a null is not a False
    assert h(pa.array([True, None, False]).slice(1)) == h(pa.array([None, False]))


def test_pyarrow_tables_and_polars_frames() -> None:
    df = _frame(200)
    table = pa.Table.from_pandas(df, preserve_index=False)
    assert fingerprint(table).kind == "pyarrow.Table"
    assert h(table) == h(pa.Table.from_pandas(df, preserve_index=False))
    assert h(table) != h(table.rename_columns(["a", "b", "c", "d", "e"]))
    pdf = pl.from_pandas(df)
    assert fingerprint(pdf).kind == "polars.DataFrame" and not fingerprint(pdf).weak
    assert h(pdf) == h(pl.from_pandas(df))
    assert h(pdf) != h(pdf.with_columns(pl.col("plan").str.to_uppercase()))
    assert h(pdf) != h(pdf.rename({"age": "AGE"}))
    assert h(pdf["plan"]) != h(pdf["age"])


def test_numpy_contiguous_strided_and_dtypes() -> None:
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    assert h(a.T) == h(np.ascontiguousarray(a.T))  # layout does not matter, content does
    assert h(a.T) != h(a)
    assert h(a[:, ::2]) == h(a[:, ::2].copy())
    assert h(a.astype(np.float32)) != h(a)
    assert h(a.reshape(6, 4)) != h(a)  # same bytes, other shape
    assert h(np.array(["2024-01-01"], dtype="datetime64[D]")) != h(np.array([19723], dtype="int32"))
    fper = Fingerprinter()
    big = np.ones(1_000_000)
    fper.fingerprint(big)
    assert fper.hashed_bytes == big.nbytes  # hashed in place, once


def test_numpy_hash_is_xxh3_over_the_raw_buffer_without_copying() -> None:
    a = np.arange(1000, dtype=np.int64)
    fp1 = fingerprint(a)
    a[10] = -1
    assert fingerprint(a).hash != fp1.hash
    a[10] = 10
    assert fingerprint(a).hash == fp1.hash
    assert xxhash.xxh3_128_hexdigest(memoryview(a)) == xxhash.xxh3_128_hexdigest(a.tobytes())


def test_scalars_strings_bytes_and_containers() -> None:
    assert h(1) != h(1.0) != h(True)
    assert h("1") != h(b"1")
    assert h(0.1 + 0.2) != h(0.3)
    assert h([1, 2]) != h((1, 2))
    assert h({"a": 1}) != h({"a": 2})
    assert h({1, 2, 3}) == h({3, 2, 1})
    assert h([[1], [2]]) != h([[1, 2]])
    assert h(None) == h(None) and fingerprint("abc").summary == "3 chars"
    assert h(np.float64(1.5)) != h(1.5)


def test_deep_and_cyclic_containers_hash_exactly() -> None:
    def nest(depth: int, leaf: Any) -> list[Any]:
        deep: list[Any] = [leaf]
        for _ in range(depth):
            deep = [deep]
        return deep

    fp = fingerprint(nest(200_000, 1))
    assert not fp.weak and fp.hash == h(nest(200_000, 1)) and fp.hash != h(nest(200_000, 2))
    assert h(nest(200_000, 1)) != h(nest(199_999, 1))
    looped: list[Any] = [1]
    looped.append(looped)
    again: list[Any] = [1]
    again.append(again)
    assert not fingerprint(looped).weak and h(looped) == h(again) and h(looped) != h([1, [1]])


def test_unhashable_and_huge_values_get_typed_weak_fingerprints_never_exceptions() -> None:
    sock = socket.socket()
    try:
        for value in (sock, threading.Lock(), iter([1, 2]), (x for x in range(3))):
            fp = fingerprint(value)
            assert fp.weak and fp.hash is None and fp.kind.endswith(type(value).__qualname__)

        class Hostile:
            @property
            def __dict__(self) -> Any:  # type: ignore[override]
                raise RuntimeError("no")

        fp = fingerprint(Hostile())
        assert fp.weak and fp.hash is None
        huge = Fingerprinter(max_bytes=1024).fingerprint(np.zeros(10_000))
        assert huge.weak and huge.kind == "numpy.ndarray" and huge.summary.startswith("10000")
        many = Fingerprinter(max_items=100).fingerprint(list(range(1000)))
        assert many.weak and many.reason is not None and "more than 100 " in many.reason
    finally:
        sock.close()


def test_sklearn_estimators_hash_their_learned_state() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(100, 3)), rng.integers(0, 2, 100)
    model = make_pipeline(StandardScaler(), LogisticRegression())
    unfitted = fingerprint(model)
    assert not unfitted.weak and unfitted.kind == "sklearn.Pipeline"
    model.fit(X, y)
    fitted = fingerprint(model)
    assert fitted.hash != unfitted.hash
    model.fit(X[:50], y[:50])
    assert fingerprint(model).hash != fitted.hash
    assert h(LogisticRegression(C=1.0)) != h(LogisticRegression(C=2.0))


def test_onnx_models_hash_their_serialised_bytes(onnx_models: Any) -> None:
    import onnx

    model = onnx.load_from_string(onnx_models.get("logreg").onnx)
    fp = fingerprint(model)
    assert not fp.weak and fp.kind == "onnx.ModelProto"
    assert fp.hash == h(onnx.load_from_string(onnx_models.get("logreg").onnx))
    model.producer_name = "someone else"
    assert h(model) != fp.hash


def test_user_objects_hash_their_state_and_functions_their_code() -> None:
    class Box:
        def __init__(self, v: Any) -> None:
            self.v = v

    assert h(Box([1])) == h(Box([1])) and h(Box([1])) != h(Box([2]))
    from collections import Counter, OrderedDict, deque

    assert h(Counter("aab")) != h(Counter("abb")) and not fingerprint(Counter("a")).weak
    assert h(OrderedDict(a=1)) != h({"a": 1})  # the type is part of the content
    assert h(deque([1, 2])) != h(deque([2, 1])) and not fingerprint(deque()).weak

    def f(x: int) -> int:
        return x + 1

    def g(x: int) -> int:
        return x + 2

    assert h(f) != h(g)


def test_immutable_values_are_not_rehashed() -> None:
    fper = Fingerprinter()
    table = pa.table({"x": np.arange(100_000)})
    first = fper.fingerprint(table)
    work = fper.hashed_bytes
    assert fper.fingerprint(table) == first and fper.hashed_bytes == work
    frozen = np.arange(100_000)
    frozen.flags.writeable = False
    fper.fingerprint(frozen)
    work = fper.hashed_bytes
    fper.fingerprint(frozen)
    assert fper.hashed_bytes == work
    mutable = np.arange(100_000)  # writable arrays are always rehashed: exactness first
    fper.fingerprint(mutable)
    work = fper.hashed_bytes
    mutable[0] = 5
    assert fper.fingerprint(mutable).hash != fingerprint(np.arange(100_000)).hash
    assert fper.hashed_bytes == work + mutable.nbytes


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([1, None, 3], dtype="Int64"),
        pd.Series(["a", "b", "a"], dtype="category"),
        pd.Series([1.5, None], dtype="Float64"),
        pd.Series(pd.to_timedelta([1, 2], unit="s")),
        pd.Series([{"a": 1}, [1, 2]]),
    ],
)
def test_pandas_extension_dtypes_hash_exactly(series: pd.Series) -> None:
    fp = fingerprint(series)
    assert not fp.weak and fp.hash == h(series.copy())
    other = series.copy()
    other.iloc[0] = series.iloc[1] if not isinstance(series.iloc[0], dict) else {"a": 2}
    assert h(other) != fp.hash


def test_the_fingerprinters_own_int_encoder_writes_enc_ints_bytes() -> None:
    from nbgov.lineage import fingerprint as fp_module
    from nbgov.lineage.fingerprint.encode import enc_int

    encode, kind = fp_module._ATOMS[object.__hash__(int)]  # noqa: SLF001 - the fast path's table
    assert kind == "int"
    for value in (0, 1, -1, 255, -(2**63), 2**64, -(2**200) + 3, 10**400):
        assert encode(value) == enc_int(value), value
