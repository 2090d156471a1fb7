"""Lineage of notebooks shaped like library documentation (pandas' "10 minutes",
scikit-learn's examples, file round trips): what the record says must be what the code
did, and replay must say "reproduced" exactly when the values are the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nbgov.lineage.fingerprint import fingerprint
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import record


def _poked(arr: np.ndarray, byte: int, value: int) -> np.ndarray:
    """A copy of ``arr`` with one raw byte of its buffer set."""
    copy = arr.copy()
    copy.view("u1").reshape(-1)[byte] = value
    return copy


def test_structured_padding_is_not_content() -> None:
    # sklearn's Tree nodes: an aligned struct with 7 padding bytes after an u1 field
    aligned = np.dtype([("flag", "u1"), ("value", "<f8")], align=True)
    plain = np.zeros(3, aligned)
    padded = _poked(plain, 1, 0x79)  # byte 1: padding between flag and value
    assert fingerprint(padded).hash == fingerprint(plain).hash
    assert fingerprint(padded[0]).hash == fingerprint(plain[0]).hash
    changed = _poked(plain, 8, 1)  # byte 8: the first value
    assert fingerprint(changed).hash != fingerprint(plain).hash
    assert fingerprint(changed[0]).hash != fingerprint(plain[0]).hash
    nested = np.zeros(2, [("pairs", aligned, (2,)), ("n", "<i4")])
    assert fingerprint(_poked(nested, 17, 3)).hash == fingerprint(nested).hash
    assert fingerprint(_poked(nested, 16, 3)).hash != fingerprint(nested).hash


def test_long_double_padding_is_not_content() -> None:
    if np.finfo(np.longdouble).nmant != 63 or np.dtype(np.longdouble).itemsize <= 10:
        pytest.skip("no x87 long double with padding here")
    values = np.array([1.5, 2.5], dtype=np.longdouble)
    size = values.itemsize
    assert fingerprint(_poked(values, size - 1, 0x79)).hash == fingerprint(values).hash
    assert fingerprint(_poked(values, 9, 0x40)).hash != fingerprint(values).hash
    assert fingerprint(_poked(values, size - 1, 9)[0]).hash == fingerprint(values[0]).hash
    complex_values = np.array([1 + 2j], dtype=np.clongdouble)
    assert fingerprint(_poked(complex_values, 2 * size - 1, 3)).hash == fingerprint(complex_values).hash
    assert fingerprint(_poked(complex_values, size + 9, 3)).hash != fingerprint(complex_values).hash


@pytest.mark.kernel
def test_a_model_loaded_with_joblib_is_reproduced(tmp_path: Path) -> None:
    # unpickled trees keep allocator leftovers in their node padding: it differed per kernel
    path = record(
        tmp_path / "models.ipynb",
        "import joblib\nfrom sklearn.datasets import load_iris\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "X, y = load_iris(return_X_y=True)\n"
        "joblib.dump(RandomForestClassifier(n_estimators=5, random_state=1).fit(X, y), 'rf.joblib')",
        "loaded = joblib.load('rf.joblib')\npred = loaded.predict(X)",
    )
    result = replay(load_log(path))
    assert [s.status for s in result.steps] == ["reproduced", "reproduced"], [
        c.detail for s in result.steps for c in s.causes
    ]
    assert result.exit_code == 0
