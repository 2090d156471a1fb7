"""Lineage recorder benchmark: time added per cell, and fingerprint throughput.

Run:  python3 benchmarks/bench_recorder.py [--repeat N] [--no-peer]

Per-cell overhead: two real IPython shells in this process, one recorded and one
not, run the same cell alternately; the added time is the median of the paired
differences (pairing cancels the noise of other processes). Cells: a trivial
one, a 50-statement one, and one that reads a 100 MB DataFrame and writes a
new one (as an operator, whose operand needs no after-hash, and as a method
call, where the frame is hashed again after the cell). The peer, ipyflow (PyPI ipyflow-core), is measured the same way in a
subprocess (its tracer is process-wide and would slow the unrecorded shell).

Fingerprints: GB/s of nbgov's fingerprint against raw xxh3_128 over the same
buffers, pandas.util.hash_pandas_object, and sha256; numeric and string data.
Targets (issue 5): trivial cell ≤ 1 ms added; 100 MB cell ≤ 30 ms added;
numeric fingerprinting ≥ 50% of raw xxh3 throughput.

Huge namespaces (issue 13): with 100,000 names defined, a trivial cell ≤ 1 ms added, and
the cell that defines them ≤ 2x plain, with a sidecar line of bounded size. Pairs run
in a seeded random order (which shell goes first), and the median of the paired
differences (ms added) and ratios (recorded / plain) is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SETUP = (
    "import numpy as np, pandas as pd\n"
    "big = pd.DataFrame(np.random.default_rng(0).random((1_310_720, 10)), columns=[f'c{i}' for i in range(10)])\n"
)
CELLS = {
    "trivial": "z = 1",
    "50 statements": "\n".join(["a0 = 0"] + [f"a{i} = a{i - 1} + {i}" for i in range(1, 50)]),
    "100 MB frame read + new written": "out = big + 1",
    "same via a method call (rehashed)": "out = big.add(1)",
}


def _shell() -> Any:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell()
    shell.history_manager.enabled = False
    return shell


def _time(shell: Any, code: str) -> float:
    t0 = time.perf_counter()
    result = shell.run_cell(code, store_history=True)
    elapsed = time.perf_counter() - t0
    if not result.success:
        raise RuntimeError(f"benchmark cell failed: {code!r}")
    return elapsed


def paired(bare: Any, recorded: Any, code: str, n: int, rng: random.Random) -> tuple[list[float], list[float]]:
    """Run ``code`` n times in both shells, which one first drawn from ``rng`` each time;
    returns (bare seconds, recorded seconds) per pair."""
    bases, recs = [], []
    for _ in range(n):
        if rng.random() < 0.5:
            b = _time(bare, code)
            r = _time(recorded, code)
        else:
            r = _time(recorded, code)
            b = _time(bare, code)
        bases.append(b)
        recs.append(r)
    return bases, recs


def overhead(repeat: int) -> dict[str, dict[str, float]]:
    from nbgov.lineage import recorder

    bare, recorded = _shell(), _shell()
    rec = recorder.install(recorded)
    out: dict[str, dict[str, float]] = {}
    try:
        for shell in (bare, recorded):
            _time(shell, SETUP)
        for name, code in CELLS.items():
            n = repeat if name in ("trivial", "50 statements") else max(5, repeat // 20)
            for shell in (bare, recorded):  # warm-up
                _time(shell, code)
            bases, recs = paired(bare, recorded, code, n, random.Random(f"overhead:{name}"))
            diffs = [r - b for b, r in zip(bases, recs)]
            out[name] = {"bare_ms": statistics.median(bases) * 1e3, "added_ms": statistics.median(diffs) * 1e3}
        assert rec.records, "the recorded shell produced no records"
    finally:
        rec.uninstall()
    return out


PEER_SCRIPT = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from IPython.core.interactiveshell import InteractiveShell
setup, cells, repeat = json.loads(sys.argv[2]), json.loads(sys.argv[3]), int(sys.argv[4])
shell = InteractiveShell.instance()
shell.history_manager.enabled = False
def t(code):
    t0 = time.perf_counter(); r = shell.run_cell(code, store_history=True); e = time.perf_counter() - t0
    assert r.success, code
    return e
t(setup)
def measure():
    res = {}
    for name, code in cells.items():
        n = repeat if name in ("trivial", "50 statements") else max(5, repeat // 4)
        t(code)
        res[name] = statistics.median([t(code) for _ in range(n)]) * 1e3
    return res
bare = measure()
r = shell.run_cell("%load_ext ipyflow", store_history=True)
assert r.success
t(setup)
flow = measure()
print(json.dumps({k: {"bare_ms": bare[k], "added_ms": flow[k] - bare[k]} for k in cells}))
"""


def peer_ipyflow(repeat: int) -> dict[str, dict[str, float]] | str:
    try:
        import ipyflow  # noqa: F401
    except ImportError:
        return "ipyflow not installed (python3 -m pip install ipyflow-core)"
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-c", PEER_SCRIPT, str(REPO), json.dumps(SETUP), json.dumps(CELLS), str(repeat)],
            capture_output=True,
            text=True,
            cwd=tmp,
            timeout=1800,
        )
    if proc.returncode != 0:
        return f"ipyflow run failed: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


NAMES = 100_000
DEFINE_NAMES = f"globals().update({{f'v{{i}}': i * 2 for i in range({NAMES})}})"


def huge_namespace(repeat: int, seed: int = 13) -> dict[str, float]:
    """Both shells hold 100,000 names; a trivial cell, and the cell defining the names again."""
    from nbgov.lineage import recorder

    bare, recorded = _shell(), _shell()
    rec = recorder.install(recorded)
    rng = random.Random(seed)
    try:
        for shell in (bare, recorded):
            _time(shell, DEFINE_NAMES)
            _time(shell, "z = 1")
        bases, recs = paired(bare, recorded, "z = 1", repeat, rng)
        trivial_added = statistics.median(r - b for b, r in zip(bases, recs)) * 1e3
        bases, recs = paired(bare, recorded, DEFINE_NAMES, max(5, repeat // 20), rng)
        define_ratio = statistics.median(r / b for b, r in zip(bases, recs))
        store = rec.store
        line = max(len(x) for x in store.path.read_bytes().splitlines()) if store else 0
    finally:
        rec.uninstall()
    return {
        "trivial_added_ms": trivial_added,
        "define_bare_ms": statistics.median(bases) * 1e3,
        "define_ratio": define_ratio,
        "largest_line_kb": line / 1024,
    }


def _gbps(nbytes: int, fn: Callable[[], Any], repeat: int = 5) -> float:
    fn()
    best = min(_timed(fn) for _ in range(repeat))
    return nbytes / best / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def throughput() -> dict[str, dict[str, float]]:
    import numpy as np
    import pandas as pd
    import xxhash

    from nbgov.lineage.fingerprint import Fingerprinter

    rng = np.random.default_rng(1)
    numeric = pd.DataFrame(rng.random((1_310_720, 10)), columns=[f"c{i}" for i in range(10)])
    columns = [numeric[c].to_numpy() for c in numeric.columns]
    nbytes = sum(c.nbytes for c in columns)
    fper = Fingerprinter()

    def raw_xxh3() -> None:
        h = xxhash.xxh3_128()
        for c in columns:
            h.update(c)
        h.hexdigest()

    def sha() -> None:
        h = hashlib.sha256()
        for c in columns:
            h.update(c)
        h.hexdigest()

    results: dict[str, dict[str, float]] = {}
    results["numeric 100 MB"] = {
        "nbgov": _gbps(nbytes, lambda: fper.fingerprint(numeric)),
        "raw xxh3": _gbps(nbytes, raw_xxh3),
        "hash_pandas_object": _gbps(nbytes, lambda: pd.util.hash_pandas_object(numeric), repeat=2),
        "sha256": _gbps(nbytes, sha, repeat=2),
    }
    words = np.array(["basic", "pro", "enterprise", "ünïcode ✓", "x" * 20])
    strings = pd.DataFrame({"a": rng.choice(words, 1_000_000), "b": rng.choice(words, 1_000_000)})
    str_bytes = int(sum(strings[c].str.len().sum() for c in strings.columns))
    results["strings 1M rows x 2"] = {
        "nbgov": _gbps(str_bytes, lambda: fper.fingerprint(strings)),
        "hash_pandas_object": _gbps(str_bytes, lambda: pd.util.hash_pandas_object(strings), repeat=2),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="paired runs per small cell (default 200)")
    parser.add_argument("--no-peer", action="store_true", help="skip the ipyflow peer")
    parser.add_argument("--peer-repeat", type=int, default=20, help="runs per cell for ipyflow (default 20)")
    args = parser.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="nbgov-bench-"))  # the sidecar goes here

    print("== time added per cell (median of paired runs) ==")
    ours = overhead(args.repeat)
    peer = None if args.no_peer else peer_ipyflow(args.peer_repeat)
    for name, m in ours.items():
        line = f"{name:34s} bare {m['bare_ms']:8.2f} ms   nbgov +{m['added_ms']:7.2f} ms"
        if isinstance(peer, dict):
            p = peer[name]["added_ms"]
            ratio = p / m["added_ms"] if m["added_ms"] > 0 else float("inf")
            line += f"   ipyflow +{p:8.2f} ms   (ipyflow/nbgov added = {ratio:.1f}x)"
        print(line)
    if isinstance(peer, str):
        print(f"peer: {peer}")
    print(
        f"targets: trivial ≤ 1 ms -> {'PASS' if ours['trivial']['added_ms'] <= 1 else 'MISS'}; "
        f"100 MB ≤ 30 ms -> {'PASS' if ours['100 MB frame read + new written']['added_ms'] <= 30 else 'MISS'}"
    )

    print(f"\n== {NAMES:,} names in the namespace (seeded random order, medians of pairs) ==")
    huge = huge_namespace(args.repeat)
    print(f"trivial cell: nbgov +{huge['trivial_added_ms']:.2f} ms "
          f"(target ≤ 1 ms -> {'PASS' if huge['trivial_added_ms'] <= 1 else 'MISS'})")
    print(f"defining the names (plain {huge['define_bare_ms']:.0f} ms): recorded/plain = {huge['define_ratio']:.2f}x "
          f"(target ≤ 2x -> {'PASS' if huge['define_ratio'] <= 2 else 'MISS'}); "
          f"largest sidecar line {huge['largest_line_kb']:.0f} KB")

    print("\n== fingerprint throughput (GB/s, best of runs) ==")
    tp = throughput()
    for data, row in tp.items():
        cells = "   ".join(f"{k} {v:6.2f}" for k, v in row.items())
        print(f"{data:22s} {cells}")
    num = tp["numeric 100 MB"]
    print(
        f"numeric: nbgov/raw xxh3 = {num['nbgov'] / num['raw xxh3']:.2f} "
        f"(target ≥ 0.50 -> {'PASS' if num['nbgov'] / num['raw xxh3'] >= 0.5 else 'MISS'}); "
        f"nbgov/hash_pandas_object = {num['nbgov'] / num['hash_pandas_object']:.1f}x; "
        f"nbgov/sha256 = {num['nbgov'] / num['sha256']:.1f}x"
    )
    st = tp["strings 1M rows x 2"]
    print(f"strings: nbgov/hash_pandas_object = {st['nbgov'] / st['hash_pandas_object']:.1f}x")


if __name__ == "__main__":
    main()
