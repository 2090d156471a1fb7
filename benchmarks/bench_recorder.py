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

Fingerprint, namespace and memory cases (issues 12, 13), each a median of paired
ratios, the variants of a round run in a seeded random order:
- a fitted 100-tree RandomForest fingerprinted, against pickle.dumps of it, in
  CPU time of this process (target: ≤ 5 ms median);
- a trivial cell with 100,000 names in the namespace, recorded vs bare shell
  (target: ≤ 1 ms added), and the cell that defines those 100,000 names
  (target: ≤ 2x plain);
- a cell that maps a 2 GB file (np.memmap, mode w+, a few values written;
  --memmap-gb scales it), recorded vs bare (the fingerprint reads only the
  file's data regions);
- peak memory of the cell `del a; b = np.ones(40e6)` after `a = np.ones(40e6)`,
  recorded vs bare, each in a fresh interpreter (tracemalloc peak; numpy reports
  its buffers to it).

Run only these: python3 benchmarks/bench_recorder.py --cases forest,names,memmap,memory
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
            times = paired({"bare": lambda: _time(bare, code), "nbgov": lambda: _time(recorded, code)}, n)
            diffs = [r - b for b, r in zip(times["bare"], times["nbgov"], strict=True)]
            out[name] = {"bare_ms": statistics.median(times["bare"]) * 1e3, "added_ms": statistics.median(diffs) * 1e3}
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


# -- fingerprint, namespace and memory cases (paired, seeded random order) -------------


def paired(variants: dict[str, Callable[[], float]], rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """Run every variant once per round, in a fresh seeded random order; the times per variant."""
    order = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for _ in range(rounds):
        order.shuffle(names)
        for name in names:
            times[name].append(variants[name]())
    return times


def median_ratio(times: dict[str, list[float]], ours: str, base: str) -> float:
    return statistics.median(a / b for a, b in zip(times[ours], times[base], strict=True) if b > 0)


def _cpu(fn: Callable[[], Any]) -> Callable[[], float]:
    """CPU time of this process (single-threaded work): robust to other processes' load."""

    def timed() -> float:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    return timed


def forest_case(rounds: int) -> dict[str, float]:
    import pickle

    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from nbgov.lineage.fingerprint import Fingerprinter

    X, y = make_classification(2000, 10, random_state=0)
    forest = RandomForestClassifier(100, max_depth=8, random_state=0).fit(X, y)
    fper = Fingerprinter()
    fper.fingerprint(forest)
    times = paired(
        {"nbgov": _cpu(lambda: fper.fingerprint(forest)), "pickle": _cpu(lambda: pickle.dumps(forest, protocol=5))},
        rounds,
    )
    return {
        "nbgov_ms": statistics.median(times["nbgov"]) * 1e3,
        "pickle_ms": statistics.median(times["pickle"]) * 1e3,
        "ratio": median_ratio(times, "nbgov", "pickle"),
    }


NAMES_SETUP = "globals().update({f'n{i}': i for i in range(100_000)})"
NAMES_DEFINE = "globals().update({f'd{i}': [i] for i in range(100_000)})"


def namespace_cases(rounds: int) -> dict[str, dict[str, float]]:
    from nbgov.lineage import recorder

    bare, recorded = _shell(), _shell()
    rec = recorder.install(recorded)
    try:
        for shell in (bare, recorded):
            _time(shell, NAMES_SETUP)
            _time(shell, "z = 1")
        trivial = paired({"bare": lambda: _time(bare, "z = 1"), "nbgov": lambda: _time(recorded, "z = 1")}, rounds)
        define = paired(
            {"bare": lambda: _time(bare, NAMES_DEFINE), "nbgov": lambda: _time(recorded, NAMES_DEFINE)},
            max(3, rounds // 20),
        )
    finally:
        rec.uninstall()
    added = statistics.median(n - b for n, b in zip(trivial["nbgov"], trivial["bare"], strict=True))
    return {
        "trivial cell, 100,000 names": {
            "bare_ms": statistics.median(trivial["bare"]) * 1e3,
            "added_ms": added * 1e3,
            "ratio": median_ratio(trivial, "nbgov", "bare"),
        },
        "cell defining 100,000 names": {
            "bare_ms": statistics.median(define["bare"]) * 1e3,
            "added_ms": statistics.median(n - b for n, b in zip(define["nbgov"], define["bare"], strict=True)) * 1e3,
            "ratio": median_ratio(define, "nbgov", "bare"),
        },
    }


def memmap_case(gigabytes: float, rounds: int) -> dict[str, float]:
    from nbgov.lineage import recorder

    folder = Path(tempfile.mkdtemp(prefix="nbgov-memmap-"))
    rows = int(gigabytes * 1024**3) // 8
    bare, recorded = _shell(), _shell()
    rec = recorder.install(recorded)
    cell = (
        "m = np.memmap({path!r}, dtype='float64', mode='w+', shape=({rows},))\n"
        "m[::50_000_000] = 1.0\n"
        "m[-1] = 2.0"
    )
    counter = iter(range(10**6))

    def run(shell: Any) -> float:
        path = folder / f"map{next(counter)}.dat"
        elapsed = _time(shell, cell.format(path=str(path), rows=rows))
        shell.user_ns.pop("m", None)
        path.unlink()
        return elapsed

    try:
        for shell in (bare, recorded):
            _time(shell, "import numpy as np")
        times = paired({"bare": lambda: run(bare), "nbgov": lambda: run(recorded)}, rounds)
        reason = rec.records[-1]["body"]["writes"][0]["fingerprint"].get("reason", "")
    finally:
        rec.uninstall()
    return {
        "bare_ms": statistics.median(times["bare"]) * 1e3,
        "nbgov_ms": statistics.median(times["nbgov"]) * 1e3,
        "ratio": median_ratio(times, "nbgov", "bare"),
        "reason": reason,  # type: ignore[dict-item]
    }


MEMORY_SCRIPT = r"""
import sys, tracemalloc
sys.path.insert(0, sys.argv[1])
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.history_manager.enabled = False
if sys.argv[2] == "nbgov":
    from nbgov.lineage import recorder
    recorder.install(shell)
shell.run_cell("import numpy as np", store_history=True)
tracemalloc.start()  # numpy reports its buffers to tracemalloc
assert shell.run_cell("a = np.ones(int(40e6))", store_history=True).success
tracemalloc.reset_peak()
assert shell.run_cell("del a\nb = np.ones(int(40e6))", store_history=True).success
print(tracemalloc.get_traced_memory()[1] // 1024)  # the most held at once during that cell
"""


def memory_case(rounds: int) -> dict[str, float]:
    def peak(variant: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(
                [sys.executable, "-c", MEMORY_SCRIPT, str(REPO), variant],
                capture_output=True, text=True, cwd=tmp, timeout=600,
            )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"memory case failed: {proc.stderr.strip().splitlines()[-1:]}")
        return float(proc.stdout.strip().splitlines()[-1]) / 1024  # KiB -> MiB

    times = paired({"bare": lambda: peak("bare"), "nbgov": lambda: peak("nbgov")}, rounds)
    return {
        "bare_mb": statistics.median(times["bare"]),
        "nbgov_mb": statistics.median(times["nbgov"]),
        "ratio": median_ratio(times, "nbgov", "bare"),
    }


def report_fingerprint_cases(cases: set[str], repeat: int, memmap_gb: float) -> None:
    if "forest" in cases:
        forest = forest_case(max(20, repeat // 4))
        print("\n== fitted 100-tree RandomForest (median of paired runs) ==")
        print(
            f"nbgov fingerprint {forest['nbgov_ms']:6.2f} ms   pickle.dumps {forest['pickle_ms']:6.2f} ms   "
            f"nbgov/pickle = {forest['ratio']:.2f}   target ≤ 5 ms -> {'PASS' if forest['nbgov_ms'] <= 5 else 'MISS'}"
        )
    if "names" in cases:
        print("\n== 100,000 names in the namespace (median of paired runs) ==")
        names = namespace_cases(max(20, repeat // 4))
        for name, m in names.items():
            print(f"{name:30s} bare {m['bare_ms']:8.2f} ms   nbgov +{m['added_ms']:8.2f} ms   nbgov/bare = {m['ratio']:.2f}")
        trivial, define = names["trivial cell, 100,000 names"], names["cell defining 100,000 names"]
        print(
            f"targets: trivial ≤ 1 ms added -> {'PASS' if trivial['added_ms'] <= 1 else 'MISS'}; "
            f"defining ≤ 2x -> {'PASS' if define['ratio'] <= 2 else 'MISS'}"
        )
    if "memmap" in cases:
        mm = memmap_case(memmap_gb, 5)
        print(f"\n== a cell mapping a {memmap_gb:g} GB file (median of paired runs) ==")
        print(f"bare {mm['bare_ms']:8.2f} ms   nbgov {mm['nbgov_ms']:8.2f} ms   nbgov/bare = {mm['ratio']:.2f}")
        print(f"recorded: {mm['reason']}")
    if "memory" in cases:
        mem = memory_case(3)
        print("\n== peak memory of the cell `del a; b = np.ones(40e6)` (fresh interpreters, tracemalloc) ==")
        print(f"bare {mem['bare_mb']:8.1f} MB   nbgov {mem['nbgov_mb']:8.1f} MB   nbgov/bare = {mem['ratio']:.2f}")


ALL_CASES = "overhead,throughput,forest,names,memmap,memory"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="paired runs per small cell (default 200)")
    parser.add_argument("--no-peer", action="store_true", help="skip the ipyflow peer")
    parser.add_argument("--peer-repeat", type=int, default=20, help="runs per cell for ipyflow (default 20)")
    parser.add_argument("--cases", default=ALL_CASES, help=f"comma-separated subset of {ALL_CASES}")
    parser.add_argument("--memmap-gb", type=float, default=2.0, help="size of the mapped file (default 2 GB)")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    unknown = cases - set(ALL_CASES.split(","))
    if unknown:
        parser.error(f"unknown case(s) {', '.join(sorted(unknown))}; expected some of {ALL_CASES}")
    os.chdir(tempfile.mkdtemp(prefix="nbgov-bench-"))  # the sidecar goes here
    if "overhead" in cases:
        report_overhead(args.repeat, None if args.no_peer else args.peer_repeat)
    if "throughput" in cases:
        report_throughput()
    report_fingerprint_cases(cases, args.repeat, args.memmap_gb)


def report_overhead(repeat: int, peer_repeat: int | None) -> None:
    print("== time added per cell (median of paired runs) ==")
    ours = overhead(repeat)
    peer = None if peer_repeat is None else peer_ipyflow(peer_repeat)
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


def report_throughput() -> None:
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
