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

The notebook file and the kernel path (issue 18), on a generated notebook of 1,000 cells
``x{i} = x{i-1} + 1``, each round running plain nbclient and ``nbgov run`` in a seeded
random order (median of the paired ratios):
- notebook growth per execution: bytes of the recorded notebook minus the plain one,
  over 1,000 (target ≤ 300);
- lines of the file's diff after re-running one cell in the same kernel and saving
  (target ≤ 40);
- ``nbgov run`` over plain nbclient (target ≤ 1.15x); nbgov's modules are byte-compiled first,
  as an install leaves them (``byte_compile_nbgov``);
- per-cell added time, last 100 cells over the first 100 (target within 10%): in process
  (delivery building each message), a young chain's cells 1-100 and an old chain's last
  100 measured side by side in a seeded random order, each recorded shell paired with a
  bare one (through a kernel, per-cell noise of milliseconds hides it).
- CPU added per cell, in the kernel and in ``nbgov run``'s own process (each run's
  RUSAGE_CHILDREN and process_time), which says where the added time goes: on two
  cores, client and kernel together keep both busy, so added CPU is added time.
- the CPU nbgov's two hooks take per cell inside the kernel (one extra, untimed run whose
  load code wraps them: ``HOOK_CLOCK``), and a third variant in each round: plain nbclient
  on a kernel whose hooks only spin the CPU for as long (``SPIN_HOOKS``): what that much
  work per cell costs through a kernel on this machine, whatever the work is.
- a fourth variant in each round: ``nbgov run`` with lineage delivery on, as under
  JupyterLab (``frontend_listening``: each entry also goes out on IOPub for the sidebar),
  over plain nbclient, with its hooks' CPU; no target (the issue's is the headless run).
- a fifth: ``nbgov run`` whose kernel loads nbgov and then takes the recorder's two hooks
  off (``HOOKS_OFF``), over plain nbclient: what the runner and nbgov's presence cost
  without recording, so the rest of ``nbgov run``'s ratio is the hooks' share.
And a ``%%sqlml`` query returning 100,000 rows of a 1M-row DataFrame, with recording
on (``%load_ext nbgov``) against the magic alone (target ≤ 1.1x), ``--repeat / 4``
rounds; and the time recording adds per query in a session that has run 1,000 cells
against a young one (a query is a magic cell, whose names are all compared; IPython's
history grows by a name or two per cell), measured side by side.

Run only these: python3 benchmarks/bench_recorder.py --cases notebook,sqlml

Why the hooks' CPU in a kernel exceeds what the same cells add in process: a hook doing
fixed plain-Python work (no nbgov), timed per call in a plain kernel driven cell by cell
through jupyter_client and in an in-process shell, each round both in a seeded random
order (median of the per-round ratios of per-call medians; no target).

Run only this: python3 benchmarks/bench_recorder.py --cases kernelspeed

Cells that score with a fitted model (``pred = forest.predict(X_test)``: a 100-tree forest,
a 500-tree LightGBM model, a scikit-learn pipeline on a frame), recorded vs bare shell,
``--repeat / 10`` paired rounds: what recording adds to the cells users run most once a
model is trained (no target).

Run only these: python3 benchmarks/bench_recorder.py --cases predict

Values fingerprinted with a secret-named environment variable set against none (the
fingerprint then searches the bytes it hashes for the secret's text): a dict of 50,000
words, a list of 100,000 strings, a small config dict, a frame with a 1M-row string column,
a numpy array of 100,000 ``str_``; ``--repeat / 10`` paired rounds (no target).

Run only these: python3 benchmarks/bench_recorder.py --cases secrets
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import io
import json
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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
    assert shell.history_manager is not None
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
    return recorded_vs_bare(SETUP, CELLS, lambda name: repeat if name in ("trivial", "50 statements")
                            else max(5, repeat // 20))


def recorded_vs_bare(setup: str, cells: dict[str, str], rounds: Callable[[str], int]) -> dict[str, dict[str, float]]:
    """Each cell run in a recorded and a bare shell alternately (after ``setup`` in both and one
    warm-up run): the bare time, the median of the paired differences, and the median ratio."""
    from nbgov.lineage import recorder

    bare, recorded = _shell(), _shell()
    rec = recorder.install(recorded)
    out: dict[str, dict[str, float]] = {}
    try:
        for shell in (bare, recorded):
            _time(shell, setup)
        for name, code in cells.items():
            for shell in (bare, recorded):  # warm-up
                _time(shell, code)
            times = paired({"bare": lambda: _time(bare, code), "nbgov": lambda: _time(recorded, code)}, rounds(name))
            diffs = [r - b for b, r in zip(times["bare"], times["nbgov"], strict=True)]
            out[name] = {"bare_ms": statistics.median(times["bare"]) * 1e3,
                         "added_ms": statistics.median(diffs) * 1e3, "ratio": median_ratio(times, "nbgov", "bare")}
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
    return json.loads(proc.stdout.strip().splitlines()[-1])


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


def paired_ratios(times: dict[str, list[float]], ours: str, base: str) -> list[float]:
    return [a / b for a, b in zip(times[ours], times[base], strict=True) if b > 0]


def median_ratio(times: dict[str, list[float]], ours: str, base: str) -> float:
    return statistics.median(paired_ratios(times, ours, base))


def middle_half(ratios: list[float]) -> str:
    """The paired ratios' first to third quartile: how far a median near a target can be trusted."""
    if len(ratios) < 4:
        return "too few rounds for quartiles"
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return f"middle half of the paired ratios {q1:.2f}-{q3:.2f}"


def _cpu(fn: Callable[[], Any]) -> Callable[[], float]:
    """CPU time of this process (single-threaded work): robust to other processes' load."""

    def timed() -> float:
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    return timed


def forest_case(rounds: int, rows: int = 2000, trees: int = 100, max_depth: int | None = 8) -> dict[str, float]:
    """A fitted forest fingerprinted against ``pickle.dumps`` of it (CPU time, paired). The
    deep one (no depth bound, as scikit-learn's default) is mostly its trees' node arrays,
    a structured dtype with padding."""
    import pickle

    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from nbgov.lineage.fingerprint import Fingerprinter

    X, y = make_classification(rows, 10, flip_y=0.2, random_state=0)
    forest = RandomForestClassifier(trees, max_depth=max_depth, random_state=0).fit(X, y)
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
    from nbgov.lineage.record import ExecutionRecord

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
        body = rec.records[-1].body
        reason = body.writes[0].fingerprint.reason if isinstance(body, ExecutionRecord) and body.writes else ""
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
        deep = forest_case(max(10, repeat // 20), rows=20_000, trees=200, max_depth=None)
        print("== fitted 200-tree RandomForest of unbounded depth on 20,000 rows (median of paired runs) ==")
        print(f"nbgov fingerprint {deep['nbgov_ms']:6.2f} ms   pickle.dumps {deep['pickle_ms']:6.2f} ms   "
              f"nbgov/pickle = {deep['ratio']:.2f}")
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
        print(f"bare {mem['bare_mb']:8.1f} MB   nbgov {mem['nbgov_mb']:8.1f} MB   nbgov/bare = {mem['ratio']:.2f}   "
              f"target ≤ 1.05x (as without nbgov) -> {'PASS' if mem['ratio'] <= 1.05 else 'MISS'}")


PREDICT_SETUP = (
    "import numpy as np, pandas as pd, lightgbm as lgb\n"
    "from sklearn.ensemble import RandomForestClassifier\n"
    "from sklearn.compose import ColumnTransformer\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "from sklearn.pipeline import make_pipeline\n"
    "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
    "rng = np.random.default_rng(0)\n"
    "X = rng.random((20_000, 20)); y = (X[:, 0] + rng.random(20_000) > 1).astype(int); X_test = X[:200].copy()\n"
    "forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)\n"
    "booster = lgb.LGBMClassifier(n_estimators=500, verbose=-1).fit(X, y)\n"
    "frame = pd.DataFrame({'a': X[:, 0], 'b': X[:, 1], 'c': rng.choice(['x', 'y', 'z'], 20_000)})\n"
    "pipe = make_pipeline(ColumnTransformer([('num', StandardScaler(), ['a', 'b']),\n"
    "                                        ('cat', OneHotEncoder(handle_unknown='ignore'), ['c'])]),\n"
    "                     LogisticRegression()).fit(frame, y)\n"
    "test = frame.head(200).copy()\n"
)
PREDICT_CELLS = {
    "RandomForest, 100 trees of unbounded depth": "pred = forest.predict(X_test)",
    "LightGBM, 500 trees": "pred = booster.predict(X_test)",
    "scikit-learn pipeline on a frame": "proba = pipe.predict_proba(test)[:, 1]",
}


def predict_cases(rounds: int) -> dict[str, dict[str, float]]:
    """Cells that score 200 rows with a fitted model, recorded vs bare shell (median of paired
    runs): the model is an input of each, fingerprinted before the cell; the cell only calls a
    read-only method of it, so it need not be hashed again after."""
    return recorded_vs_bare(PREDICT_SETUP, PREDICT_CELLS, lambda name: rounds)


def report_predict(rounds: int) -> None:
    print(f"\n== a cell scoring 200 rows with a fitted model, {rounds} paired rounds (no target) ==")
    for name, m in predict_cases(rounds).items():
        print(f"{name:45s} bare {m['bare_ms']:7.2f} ms   nbgov +{m['added_ms']:7.2f} ms   nbgov/bare = {m['ratio']:.2f}")


SECRET_NAME, SECRET_TEXT = "NBGOV_BENCH_API_TOKEN", "a-secret-token-for-the-bench-0123"


def secrets_case(rounds: int) -> dict[str, dict[str, float]]:
    """Each value fingerprinted with the secret set and with none, in a seeded random order
    per round; the environment is listed before the timed part (as a cell's first value does)."""
    import numpy as np
    import pandas as pd

    from nbgov.lineage.values import ValueTracker

    rng = random.Random(0)
    words = {"".join(rng.choices(string.ascii_lowercase, k=8)) + str(i): i for i in range(50_000)}
    values = {
        "dict of 50,000 words": words,
        "list of 100,000 str": list(words) * 2,
        "config dict (8 items)": {f"k{i}": f"value-{i}" for i in range(8)},
        "frame, 1M-row string column": pd.DataFrame(
            {"user": pd.array([f"user-{i % 5000}" for i in range(1_000_000)], dtype="string[pyarrow]")}),
        "numpy str_ array, 100,000": np.array([f"id-{i}" for i in range(100_000)]),
    }
    tracker = ValueTracker()

    def timed(value: Any, secret: bool) -> float:
        if secret:
            os.environ[SECRET_NAME] = SECRET_TEXT
        else:
            os.environ.pop(SECRET_NAME, None)
        tracker.secrets.needles()
        start = time.perf_counter()
        fingerprint = tracker.fingerprinter.fingerprint(value)
        seconds = time.perf_counter() - start
        assert fingerprint.hash is not None, "the bench's values hold no secret"
        return seconds

    try:
        times = paired({f"{name}|{variant}": functools.partial(timed, value, variant == "secret")
                        for name, value in values.items() for variant in ("none", "secret")}, rounds, seed=18)
    finally:
        os.environ.pop(SECRET_NAME, None)
    return {name: {"ratio": median_ratio(times, f"{name}|secret", f"{name}|none"),
                   "none_ms": statistics.median(times[f"{name}|none"]) * 1e3} for name in values}


def report_secrets(rounds: int) -> None:
    print(f"\n== fingerprints with a secret-named environment variable set vs none, {rounds} paired rounds "
          "(no target) ==")
    for name, m in secrets_case(rounds).items():
        print(f"{name:32s} none {m['none_ms']:8.2f} ms   secret set / none = {m['ratio']:.2f}")


# A hook whose work is fixed, plain Python (no nbgov): its CPU per call, kept in the shell.
FIXED_HOOK = """
import json as _json, time as _time
_fixed = []
def _fixed_work(result):
    start = _time.thread_time()
    items = {str(i): [i, str(i)] for i in range(150)}
    _json.dumps(items)
    sorted(items)
    _fixed.append(_time.thread_time() - start)
get_ipython().events.register("post_run_cell", _fixed_work)
"""


def _fixed_hook_in_kernel(cells: int) -> float:
    """Median CPU seconds of ``FIXED_HOOK``'s work per cell in a plain kernel, cells sent one
    by one through jupyter_client as a frontend sends them."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", stderr=subprocess.DEVNULL)
    try:
        quiet = {"timeout": 60, "output_hook": lambda msg: None}
        kc.execute_interactive(FIXED_HOOK, **quiet)
        for i in range(cells):
            kc.execute_interactive(f"x{i} = {i} + 1", **quiet)
        shown: list[str] = []
        kc.execute_interactive("print(repr(sorted(_fixed)[len(_fixed) // 2]))", timeout=60,
                               output_hook=lambda msg: shown.append(msg["content"].get("text", "")))
        return float(ast.literal_eval("".join(shown).strip()))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _fixed_hook_in_process(cells: int) -> float:
    shell = _shell()
    shell.run_cell(FIXED_HOOK).raise_error()
    for i in range(cells):
        shell.run_cell(f"x{i} = {i} + 1", store_history=True)
    fixed = sorted(shell.user_ns["_fixed"])
    return float(fixed[len(fixed) // 2])


def report_kernel_speed(rounds: int, cells: int = 2000) -> None:
    """Why nbgov's hooks take more CPU in a kernel than the same cells add in process: the
    same fixed Python work in a post_run_cell hook, in a plain kernel and in an in-process
    shell, each round both in a seeded random order."""
    print(f"\n== the same Python work in a cell hook, kernel vs in process: {cells} cells, {rounds} rounds "
          "(no target) ==")
    times = paired({"kernel": lambda: _fixed_hook_in_kernel(cells), "in process": lambda: _fixed_hook_in_process(cells)},
                   rounds, seed=8)
    print(f"fixed hook work in a kernel / in process  {median_ratio(times, 'kernel', 'in process'):.2f}x   "
          f"(in process {statistics.median(times['in process']) * 1e6:.0f} us per call: any Python a hook runs "
          "costs this much more CPU between a kernel's messages)")


ALL_CASES = "overhead,throughput,forest,names,memmap,memory,notebook,sqlml,predict,secrets,kernelspeed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200, help="paired runs per small cell (default 200)")
    parser.add_argument("--no-peer", action="store_true", help="skip the ipyflow peer")
    parser.add_argument("--peer-repeat", type=int, default=20, help="runs per cell for ipyflow (default 20)")
    parser.add_argument("--cases", default=ALL_CASES, help=f"comma-separated subset of {ALL_CASES}")
    parser.add_argument("--memmap-gb", type=float, default=2.0, help="size of the mapped file (default 2 GB)")
    parser.add_argument("--notebook-rounds", type=int, default=7,
                        help="paired runs of the 1,000-cell notebook (default 7: a kernel's speed varies from "
                             "one start to the next by about 10%%, so fewer make an unstable median)")
    parser.add_argument("--cells", type=int, default=1000, help="cells of the generated notebook (default 1000)")
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
    if "notebook" in cases:
        report_notebook(args.cells, args.notebook_rounds)
    if "sqlml" in cases:
        report_sqlml(max(20, args.repeat // 4))
    if "predict" in cases:
        report_predict(max(10, args.repeat // 10))
    if "secrets" in cases:
        report_secrets(max(10, args.repeat // 10))
    if "kernelspeed" in cases:
        report_kernel_speed(max(3, args.repeat // 50))


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


# -- the notebook file and the kernel path (issue 18) -----------------------------------


def chain_notebook(path: Path, cells: int) -> Path:
    """The generated notebook: ``x0 = 0`` then ``x{i} = x{i-1} + 1``."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x0 = 0")] + [
        nbformat.v4.new_code_cell(f"x{i} = x{i - 1} + 1") for i in range(1, cells)
    ]
    nbformat.write(nb, str(path))
    return path


def _timed_client(base: type) -> Any:
    """``base`` (an nbclient class) that keeps the wall time of each cell it executes."""

    class Timed(base):
        cell_times: list[float] = []

        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return await super().async_execute_cell(cell, cell_index, *args, **kwargs)
            finally:
                type(self).cell_times.append(time.perf_counter() - start)

    return Timed


def run_plain(source: Path, out: Path, client: type | None = None) -> tuple[float, list[float], int]:
    """Plain nbclient: execute, write; (seconds, per-cell seconds, bytes written)."""
    import nbformat
    from nbclient import NotebookClient

    client_class = _timed_client(client or NotebookClient)
    client_class.cell_times = []
    start = time.perf_counter()
    nb = nbformat.read(str(source), as_version=4)
    client_class(nb, kernel_name="python3", timeout=600, resources={"metadata": {"path": str(source.parent)}}).execute(
        cwd=str(source.parent), stderr=subprocess.DEVNULL)
    nbformat.write(nb, str(out))
    return time.perf_counter() - start, list(client_class.cell_times), out.stat().st_size


def run_nbgov(source: Path, out: Path, recording: bool = True) -> tuple[float, list[float], int]:
    """`nbgov run SOURCE -o OUT` (the command's own code path), timing each cell; without
    ``recording``, its kernel loads nbgov and then takes the recorder's hooks off (``HOOKS_OFF``)."""
    from nbgov.replay import runner

    client_class = _timed_client(runner.RecordingNotebookClient)
    client_class.cell_times = []
    original, original_load = runner.RecordingNotebookClient, runner.LOAD_NBGOV
    runner.RecordingNotebookClient = client_class  # type: ignore[misc]
    if not recording:
        runner.LOAD_NBGOV = original_load + "\n" + HOOKS_OFF
    try:
        start = time.perf_counter()
        summary = runner.run_notebook(source, out)
        seconds = time.perf_counter() - start
    finally:
        runner.RecordingNotebookClient, runner.LOAD_NBGOV = original, original_load  # type: ignore[misc]
    recorded = len(client_class.cell_times) if recording else 0
    assert summary.error is None and len(summary.recorded) == recorded, summary.error
    return seconds, list(client_class.cell_times), out.stat().st_size


# Appended to the code `nbgov run` loads nbgov with: takes the recorder's two hooks off again,
# so the kernel holds all that loading nbgov leaves (its modules, magics, audit hook) and
# records nothing.
HOOKS_OFF = """
for _event in ("pre_run_cell", "post_run_cell"):
    for _hook in [h for h in get_ipython().events.callbacks[_event]
                  if type(getattr(h, "__self__", None)).__name__ == "Recorder"]:
        get_ipython().events.unregister(_event, _hook)
"""


@contextlib.contextmanager
def frontend_listening() -> Iterator[None]:
    """`nbgov run`'s kernel with lineage delivery on, as under JupyterLab: each entry goes out
    on IOPub (the runner's client takes the messages and drops them, as it does any comm)."""
    from nbgov.lineage.delivery import HEADLESS_ENV
    from nbgov.replay import runner

    original = runner.kernel_env

    def listening_env(*args: Any, **kwargs: Any) -> dict[str, str]:
        env = original(*args, **kwargs)
        env.pop(HEADLESS_ENV)
        return env

    runner.kernel_env = listening_env
    try:
        yield
    finally:
        runner.kernel_env = original


def run_nbgov_listening(source: Path, out: Path) -> tuple[float, list[float], int]:
    """``run_nbgov`` with a frontend's lineage messages sent (``frontend_listening``)."""
    with frontend_listening():
        return run_nbgov(source, out)


def rerun_diff(folder: Path, cells: int, index: int) -> int:
    """Lines changed in the saved file when one cell is run again in the same kernel."""
    import difflib

    import nbformat

    from nbgov.lineage import notebook_meta
    from nbgov.lineage.store import WRITABLE_KINDS
    from nbgov.replay.kernel import kernel_env
    from nbgov.replay.runner import RecordingNotebookClient
    from nbgov.replay.source import read_sidecar, sidecar_file

    path = chain_notebook(folder / "rerun.ipynb", cells)
    nb = nbformat.read(str(path), as_version=4)
    client = RecordingNotebookClient(nb, kernel_name="python3", timeout=600,
                                     resources={"metadata": {"path": str(folder)}})

    def save() -> list[str]:
        entries = [e for e in read_sidecar(sidecar_file(path)) if e["kind"] in WRITABLE_KINDS]
        notebook_meta.merge_entries(nb, entries, notebook_meta.sidecar_relpath(path))
        notebook_meta.write_notebook(nb, path)
        return path.read_text().splitlines()

    with client.setup_kernel(env=kernel_env(path), cwd=str(folder), stderr=subprocess.DEVNULL):
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        before = save()
        client.execute_cell(nb.cells[index], index)
        after = save()
    return sum(1 for line in difflib.unified_diff(before, after, lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---")))


def _with_cpu(run: Callable[[Path, Path], tuple[float, list[float], int]], source: Path, out: Path
              ) -> tuple[float, list[float], int, float, float]:
    """``run``'s result, and the CPU seconds its kernel and this process spent."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = time.process_time()
    seconds, cell_times, size = run(source, out)
    own = time.process_time() - own
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    kernel = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    return seconds, cell_times, size, kernel, own


def byte_compile_nbgov() -> None:
    """nbgov's modules byte-compiled, as ``pip install`` leaves an installed nbgov: the kernel
    imports them from this checkout, and where PYTHONDONTWRITEBYTECODE is set (these machines
    set it) it would otherwise compile them from source in every run, about 60 ms that no
    installed nbgov pays. The files go to ``__pycache__`` folders, which git ignores."""
    import compileall

    compileall.compile_dir(str(REPO / "nbgov"), quiet=1)


# Appended to the code `nbgov run` loads nbgov with: times the recorder's two hooks (CPU of
# the kernel's main thread) and writes pre and post seconds at the kernel's exit.
HOOK_CLOCK = """
import atexit as _atexit, time as _time
_spent = {{"pre_run_cell": 0.0, "post_run_cell": 0.0}}
def _clocked(event, hook):
    def clocked(arg):
        start = _time.thread_time()
        try:
            hook(arg)
        finally:
            _spent[event] += _time.thread_time() - start
    return clocked
for _event in _spent:
    for _hook in [h for h in get_ipython().events.callbacks[_event]
                  if type(getattr(h, "__self__", None)).__name__ == "Recorder"]:
        get_ipython().events.unregister(_event, _hook)
        get_ipython().events.register(_event, _clocked(_event, _hook))
_atexit.register(lambda: open({path!r}, "w").write(repr(_spent)))
"""
# Loaded into a plain kernel: hooks that only spin the CPU for as long as nbgov's took.
SPIN_HOOKS = """
import time as _time
def _spinning(seconds):
    def spin(arg):
        end = _time.perf_counter() + seconds
        while _time.perf_counter() < end:
            pass
    return spin
get_ipython().events.register("pre_run_cell", _spinning({pre}))
get_ipython().events.register("post_run_cell", _spinning({post}))
"""


def hook_seconds(source: Path, out: Path, cells: int) -> dict[str, float]:
    """CPU seconds per cell in the recorder's pre- and post-cell hooks, inside the kernel of
    one `nbgov run` (not a timed round)."""
    from nbgov.replay import runner

    clock = out.with_suffix(".hooks")
    original = runner.LOAD_NBGOV
    runner.LOAD_NBGOV = original + "\n" + HOOK_CLOCK.format(path=str(clock))
    try:
        runner.run_notebook(source, out)
    finally:
        runner.LOAD_NBGOV = original
    spent: dict[str, float] = ast.literal_eval(clock.read_text())
    return {event: seconds / cells for event, seconds in spent.items()}


def run_spinning(hooks: dict[str, float]) -> Callable[[Path, Path], tuple[float, list[float], int]]:
    """Plain nbclient on a kernel whose cells each spin in pre- and post-cell hooks for as long
    as nbgov's hooks take: what that much work per cell costs through a kernel, whatever it is."""
    from nbclient import NotebookClient

    code = SPIN_HOOKS.format(pre=hooks["pre_run_cell"], post=hooks["post_run_cell"])

    class Spinning(NotebookClient):
        async def async_start_new_kernel_client(self) -> Any:
            kc: Any = await super().async_start_new_kernel_client()
            await kc.execute_interactive(code, silent=True, timeout=60)
            return kc

    return lambda source, out: run_plain(source, out, Spinning)


def notebook_case(cells: int, rounds: int) -> dict[str, Any]:
    byte_compile_nbgov()
    folder = Path(tempfile.mkdtemp(prefix="nbgov-notebook-"))
    source = chain_notebook(folder / "chain.ipynb", cells)
    hooks = hook_seconds(source, folder / "clocked.ipynb", cells)
    with frontend_listening():
        listening_hooks = hook_seconds(source, folder / "clocked-listening.ipynb", cells)
    runs: dict[str, Callable[[Path, Path], tuple[float, list[float], int]]] = {
        "plain": run_plain, "nbgov": run_nbgov, "spin": run_spinning(hooks), "listening": run_nbgov_listening,
        "off": functools.partial(run_nbgov, recording=False)}
    results: dict[str, list[Any]] = {name: [] for name in runs}
    order = random.Random(18)
    for round_no in range(rounds):
        for name in order.sample(list(runs), len(runs)):
            out = folder / f"{name}-{round_no}.ipynb"
            results[name].append(_with_cpu(runs[name], source, out))
    ratios = [n[0] / p[0] for p, n in zip(results["plain"], results["nbgov"], strict=True)]
    spin_ratios = [s[0] / p[0] for p, s in zip(results["plain"], results["spin"], strict=True)]
    listening_ratios = [n[0] / p[0] for p, n in zip(results["plain"], results["listening"], strict=True)]
    off_ratios = [n[0] / p[0] for p, n in zip(results["plain"], results["off"], strict=True)]
    growth = [(n[2] - p[2]) / cells for p, n in zip(results["plain"], results["nbgov"], strict=True)]
    first, last = chain_flatness(cells, folder)
    return {
        "growth_bytes": statistics.median(growth),
        "diff_lines": float(rerun_diff(folder, cells, cells // 2)),
        "run_ratio": statistics.median(ratios),
        "run_spread": middle_half(ratios),
        "spin_ratio": statistics.median(spin_ratios),
        "off_ratio": statistics.median(off_ratios),
        "hook_pre_ms": hooks["pre_run_cell"] * 1e3,
        "hook_post_ms": hooks["post_run_cell"] * 1e3,
        "listening_ratio": statistics.median(listening_ratios),
        "listening_hooks_ms": (listening_hooks["pre_run_cell"] + listening_hooks["post_run_cell"]) * 1e3,
        "added_first_ms": first * 1e3,
        "added_last_ms": last * 1e3,
        "plain_cell_ms": statistics.median(statistics.median(p[1]) for p in results["plain"]) * 1e3,
        # the cells alone (each run's median cell), without starting the kernel and writing the file
        "cell_ratio": statistics.median(statistics.median(n[1]) / statistics.median(p[1])
                                        for p, n in zip(results["plain"], results["nbgov"], strict=True)),
        "fixed_s": statistics.median(n[0] - sum(n[1]) for n in results["nbgov"]),
        "plain_fixed_s": statistics.median(p[0] - sum(p[1]) for p in results["plain"]),
        # where the added time goes: CPU of the kernel (a child, reaped) and of this process
        "kernel_cpu_ms": statistics.median(n[3] - p[3] for p, n in zip(results["plain"], results["nbgov"], strict=True)) * 1e3,
        "client_cpu_ms": statistics.median(n[4] - p[4] for p, n in zip(results["plain"], results["nbgov"], strict=True)) * 1e3,
    }


def _serialize_only(data: dict[str, Any]) -> None:
    """Stands in for the kernel's IOPub: serializes the message as the kernel would, sends nothing."""
    json.dumps(data)


class _NoComms:
    def register_target(self, *args: Any) -> None:
        """No frontend to register with."""


def chain_flatness(cells: int, folder: Path) -> tuple[float, float]:
    """Per-cell time the recorder adds (with delivery building each message) over the
    chain's first 100 cells and over its last 100, in process (through a kernel, per-cell
    noise of milliseconds hides a difference this small). Measured side by side so that the
    machine's drift during the run cannot pass for growth: a young chain (cells 1-100) and an
    old one (grown untimed to ``cells - 100`` cells, then its last 100), each recorded shell
    paired with a bare one running the same cell, in a seeded random order."""
    from nbgov.lineage import delivery, recorder

    def code(i: int) -> str:
        return "x0 = 0" if i == 0 else f"x{i} = x{i - 1} + 1"

    chains = {age: (_shell(), _shell()) for age in ("young", "old")}
    installed = []
    for age, (_bare, recorded) in chains.items():
        recorded.user_ns["__session__"] = str(folder / f"chain-{age}.ipynb")  # a sidecar of its own
        rec = recorder.install(recorded)
        installed.append((delivery.Delivery(rec, _NoComms(), _serialize_only), rec))
    added: dict[str, list[float]] = {"young": [], "old": []}
    order = random.Random(18)
    try:
        for i in range(cells - 100):
            for shell in chains["old"]:
                _time(shell, code(i))
        for shell in chains["young"]:
            _time(shell, code(0))
        for k in range(1, 101):
            for age in order.sample(list(chains), 2):
                i = k if age == "young" else cells - 101 + k
                bare, recorded = chains[age]
                times = {}
                for name in order.sample(["bare", "recorded"], 2):
                    times[name] = _time(bare if name == "bare" else recorded, code(i))
                added[age].append(times["recorded"] - times["bare"])
    finally:
        for sender, rec in installed:
            sender.uninstall()
            rec.uninstall()
    return statistics.median(added["young"]), statistics.median(added["old"])


def report_notebook(cells: int, rounds: int) -> None:
    print(f"\n== the notebook file and the kernel path: {cells} cells x{{i}} = x{{i-1}} + 1, "
          f"{rounds} paired rounds (issue 18) ==")
    m = notebook_case(cells, rounds)
    flat = m["added_last_ms"] / m["added_first_ms"] if m["added_first_ms"] > 0 else float("inf")
    print(f"notebook growth per execution     {m['growth_bytes']:8.0f} bytes   (target ≤ 300 -> "
          f"{'PASS' if m['growth_bytes'] <= 300 else 'MISS'})")
    print(f"diff after re-running one cell    {m['diff_lines']:8.0f} lines   (target ≤ 40 -> "
          f"{'PASS' if m['diff_lines'] <= 40 else 'MISS'})")
    print(f"nbgov run / plain nbclient        {m['run_ratio']:8.2f}x        (target ≤ 1.15 -> "
          f"{'PASS' if m['run_ratio'] <= 1.15 else 'MISS'}; {m['run_spread']})")
    print(f"  of which the cells alone        {m['cell_ratio']:8.2f}x        (each run's median cell; the rest is "
          f"starting the kernel and writing the notebook: {m['fixed_s']:.2f} s, plain nbclient {m['plain_fixed_s']:.2f} s)")
    print(f"plain nbclient cell               {m['plain_cell_ms']:8.2f} ms")
    print(f"nbgov's hooks in the kernel       {m['hook_pre_ms'] + m['hook_post_ms']:8.3f} ms per cell "
          f"(before the cell {m['hook_pre_ms']:.3f}, after it {m['hook_post_ms']:.3f}; CPU of its main thread)")
    print(f"nbgov loaded, recording off       {m['off_ratio']:8.2f}x plain nbclient (nbgov run with its modules, "
          "magics and audit hook in the kernel and the recorder's hooks taken off: the rest is the hooks')")
    print(f"hooks that only spin as long      {m['spin_ratio']:8.2f}x plain nbclient (what that much work per "
          "cell costs through a kernel here, whatever the work)")
    print(f"with a frontend listening         {m['listening_ratio']:8.2f}x plain nbclient, hooks "
          f"{m['listening_hooks_ms']:.3f} ms per cell (JupyterLab's path: each entry also goes out on IOPub)")
    print(f"CPU added per cell: kernel {m['kernel_cpu_ms'] / cells:.3f} ms, nbgov run's process "
          f"{m['client_cpu_ms'] / cells:.3f} ms (both cores are busy through a kernel: added CPU is added time)")
    print(f"added per cell in process, first 100 cells {m['added_first_ms']:6.3f} ms")
    print(f"added per cell in process, last 100 cells  {m['added_last_ms']:6.3f} ms   last/first = {flat:.2f} "
          f"(target within 10% -> {'PASS' if abs(flat - 1) <= 0.10 or m['added_last_ms'] <= m['added_first_ms'] else 'MISS'})")


SQLML_SETUP = (
    "import numpy as np, pandas as pd\n"
    "rng = np.random.default_rng(0)\n"
    "orders = pd.DataFrame({'id': np.arange(1_000_000), 'amount': rng.random(1_000_000),"
    " 'qty': rng.integers(0, 50, 1_000_000)})\n"
)
SQLML_QUERY = "%%sqlml -o picked\nSELECT id, amount, qty FROM orders WHERE id % 10 = 0"


def sqlml_case(rounds: int) -> dict[str, Any]:
    """The same %%sqlml cell with recording on and with the magic alone, in a young session
    and in an old one (``SQLML_AGE`` small queries run before, untimed: a query is a magic
    cell, whose names are all compared, and IPython's history grows by a name or two per
    cell). Each round runs the four in a seeded random order, so the machine's drift during
    the run cannot pass for growth. The ratio is the young session's; the added time is
    the recorded query's less the bare one's, per session."""
    from nbgov import magics

    sessions = {age: (_shell(), _shell()) for age in ("young", "old")}
    installed = []
    for alone, recorded in sessions.values():
        installed.append(magics.install(alone))
        recorded.run_cell("%load_ext nbgov").raise_error()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # each query still displays its frame, unseen
            for shell in sessions["old"]:
                for _ in range(SQLML_AGE):
                    _time(shell, SQLML_SMALL_QUERY)
            for shell in (*sessions["young"], *sessions["old"]):
                _time(shell, SQLML_SETUP)
                _time(shell, SQLML_QUERY)  # warm-up: plan cache, DuckDB's first scan
            assert all(len(recorded.user_ns["picked"]) == 100_000 for _, recorded in sessions.values())
            times = paired({f"{age} {role}": functools.partial(_time, shell, SQLML_QUERY)
                            for age, pair in sessions.items() for role, shell in zip(("alone", "recorded"), pair)},
                           rounds, seed=18)
    finally:
        for undo in installed:
            undo.uninstall()
        for _, recorded in sessions.values():
            recorded.run_cell("%unload_ext nbgov")

    def added(age: str) -> float:
        pairs = zip(times[f"{age} recorded"], times[f"{age} alone"], strict=True)
        return statistics.median(r - a for r, a in pairs)

    return {"ratio": median_ratio(times, "young recorded", "young alone"),
            "spread": middle_half(paired_ratios(times, "young recorded", "young alone")),
            "alone_ms": statistics.median(times["young alone"]) * 1e3,
            "added_young_ms": added("young") * 1e3, "added_old_ms": added("old") * 1e3}


def _run_in(kernel: Any, code: str) -> float:
    """Seconds from sending ``code`` to its request's idle status (outputs read and dropped)."""
    start = time.perf_counter()
    reply = kernel.kc.execute_interactive(code, timeout=600, output_hook=lambda msg: None)
    seconds = time.perf_counter() - start
    assert reply["content"]["status"] == "ok", reply["content"]
    return seconds


def sqlml_kernel_case(rounds: int) -> dict[str, float]:
    """The same %%sqlml cell through two kernels as `nbgov run` starts them (nbgov loaded,
    headless): one recording, one with the recorder's hooks taken off (``HOOKS_OFF``: the
    magic alone); each round runs both in a seeded random order. Where users run queries:
    there the record is written after the cell's reply, while the client reads it."""
    from nbgov.replay.kernel import RecordingKernel

    folder = Path(tempfile.mkdtemp(prefix="nbgov-sqlml-kernel-"))
    with contextlib.ExitStack() as stack:
        kernels = {role: stack.enter_context(RecordingKernel("python3", folder, folder / f"{role}.ipynb"))
                   for role in ("alone", "recorded")}
        _run_in(kernels["alone"], HOOKS_OFF)
        for kernel in kernels.values():
            _run_in(kernel, SQLML_SETUP)
            _run_in(kernel, SQLML_QUERY)  # warm-up: plan cache, DuckDB's first scan
        times = paired({role: functools.partial(_run_in, kernel, SQLML_QUERY) for role, kernel in kernels.items()},
                       rounds, seed=18)
    return {"ratio": median_ratio(times, "recorded", "alone"), "alone_ms": statistics.median(times["alone"]) * 1e3}


SQLML_AGE = 1000  # cells an old session has run
SQLML_SMALL_QUERY = "%%sqlml -o small\nSELECT 1 AS one"


def report_sqlml(rounds: int) -> None:
    print(f"\n== %%sqlml: 100,000 rows of a 1M-row DataFrame, {rounds} paired rounds (issue 18) ==")
    m = sqlml_case(rounds)
    print(f"recording on / magic alone        {m['ratio']:8.2f}x        (magic alone {m['alone_ms']:.1f} ms; "
          f"target ≤ 1.1 -> {'PASS' if m['ratio'] <= 1.1 else 'MISS'}; {m['spread']})")
    flat = m["added_old_ms"] / m["added_young_ms"] if m["added_young_ms"] > 0 else float("inf")
    print(f"added per query, young session {m['added_young_ms']:6.3f} ms, after {SQLML_AGE} cells "
          f"{m['added_old_ms']:6.3f} ms   old/young = {flat:.2f} (within 10% -> "
          f"{'PASS' if abs(flat - 1) <= 0.10 or m['added_old_ms'] <= m['added_young_ms'] else 'MISS'})")
    k = sqlml_kernel_case(rounds)
    print(f"through a kernel, recording on / magic alone {k['ratio']:5.2f}x (magic alone {k['alone_ms']:.1f} ms "
          "from request to idle; the target above is the in-process figure)")


if __name__ == "__main__":
    main()
