"""A %%sqlml read of an unchanged DataFrame reuses the fingerprint its writer left (the
between-cells version probe), and hashes again whenever the probe cannot prove it unchanged."""

from __future__ import annotations

from typing import Any

from nbgov.lineage.recorder import Recorder


def _recorder(shell: Any) -> Recorder:
    (found,) = [part for part in shell._nbgov_installed if isinstance(part, Recorder)]
    return found


def _run(shell: Any, code: str) -> dict[str, Any]:
    result = shell.run_cell(code, store_history=True)
    assert result.success, result.error_in_exec or result.error_before_exec
    return dict(_recorder(shell).records[-1].raw["body"])


def _frame_read(body: dict[str, Any], name: str) -> dict[str, Any]:
    (table,) = [t for s in body["sql"] for t in s["tables"] if t["name"] == name]
    return dict(table["fingerprint"])


class _CountingFingerprints:
    """Counts full fingerprints taken of one object (the probe is not one)."""

    def __init__(self, rec: Recorder, target: Any) -> None:
        self.count = 0
        fingerprinter = rec.values.fingerprinter
        for method in ("fingerprint", "measure"):
            setattr(fingerprinter, method, self._counting(getattr(fingerprinter, method), target))

    def _counting(self, original: Any, target: Any) -> Any:
        def counted(value: Any, *args: Any, **kwargs: Any) -> Any:
            if value is target:
                self.count += 1
            return original(value, *args, **kwargs)

        return counted


def test_an_unchanged_frame_is_not_rehashed_per_query_and_a_changed_one_is(shell: Any) -> None:
    written = _run(shell, "import numpy as np, pandas as pd\n"
                          "orders = pd.DataFrame({'id': np.arange(300_000), 'amount': np.linspace(0, 1, 300_000)})")
    rec = _recorder(shell)
    counter = _CountingFingerprints(rec, shell.user_ns["orders"])
    first = _run(shell, "%%sqlml -o top\nSELECT id, amount FROM orders WHERE amount > 0.9")
    second = _run(shell, "%%sqlml -o top\nSELECT count(*) AS n FROM orders")
    assert counter.count == 0, "the frame's fingerprint after the cell that wrote it was reused"
    assert _frame_read(first, "orders") == _frame_read(second, "orders") == written["writes"][0]["fingerprint"]

    _run(shell, "orders.loc[5, 'amount'] = -1.0")  # changed in place, between two queries
    changed = _run(shell, "%%sqlml -o top\nSELECT count(*) AS n FROM orders")
    assert _frame_read(changed, "orders")["hash"] != written["writes"][0]["fingerprint"]["hash"]


def test_a_frame_the_probe_cannot_vouch_for_is_hashed_on_every_query(shell: Any) -> None:
    _run(shell, "import pandas as pd\nnames = pd.DataFrame({'name': ['ada', 'bob', 'cy'] * 1000})")
    rec = _recorder(shell)
    counter = _CountingFingerprints(rec, shell.user_ns["names"])
    one = _run(shell, "%%sqlml -o n\nSELECT count(*) AS n FROM names")
    two = _run(shell, "%%sqlml -o n\nSELECT count(*) AS n FROM names")
    assert counter.count == 2, "a small frame (no version probe) is hashed again for each query"
    assert _frame_read(one, "names") == _frame_read(two, "names")


def test_the_probe_kept_for_a_query_result_is_the_probe_of_that_result(shell: Any) -> None:
    _run(shell, "import numpy as np, pandas as pd\n"
                "orders = pd.DataFrame({'id': np.arange(300_000), 'amount': np.linspace(0, 1, 300_000)})")
    _run(shell, "%%sqlml -o top\nSELECT id, amount FROM orders WHERE amount > 0.5")
    tracker = _recorder(shell).values
    for name in ("orders", "top"):
        ref, _, probe = tracker._after[name]
        assert ref() is shell.user_ns[name]
        assert probe == tracker.fingerprinter.probe(shell.user_ns[name]), name


def test_an_in_place_change_between_queries_to_a_sampled_window_is_seen(shell: Any) -> None:
    """A write no cell records (a thread, a callback), into bytes the probe samples: the next
    query hashes the frame again instead of reusing its last fingerprint."""
    written = _run(shell, "import numpy as np, pandas as pd\n"
                          "orders = pd.DataFrame({'id': np.arange(300_000), 'amount': np.linspace(0, 1, 300_000),"
                          " 'qty': np.arange(300_000) % 7})")
    before = _frame_read(_run(shell, "%%sqlml -o top\nSELECT count(*) AS n FROM orders"), "orders")
    assert before == written["writes"][0]["fingerprint"]
    orders = shell.user_ns["orders"]
    (block,) = [b for b in orders._mgr.blocks if 2 in list(b.mgr_locs)]
    raw = block.values[list(block.mgr_locs).index(2)].view("uint8")  # qty's bytes, in place
    raw[(len(raw) - 64) // 63 * 40] ^= 1  # the first byte of the 41st sampled window
    after = _frame_read(_run(shell, "%%sqlml -o top\nSELECT count(*) AS n FROM orders"), "orders")
    assert after["hash"] != before["hash"]
