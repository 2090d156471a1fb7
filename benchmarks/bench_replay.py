"""Replay wall time vs the recorded execution time (target: <= 1.2x plus kernel start).

For each notebook (example_notebooks/*.ipynb, or a generated representative notebook
when there are none, or the paths given on the command line): copy its folder to a
temporary place, record it with `nbgov run` (real kernel, real recorder), then
`nbgov replay` it, and print

    recorded  = sum of the recorded cells' durations (the recorder's own clock, cell body only)
    client    = the same cells as the recording client saw them (nbclient's busy -> reply
                timestamps: includes message round trips and the recorder's fingerprinting)
    replay    = replay wall time minus kernel start(s)
    ratio     = replay / recorded (the target), and replay / client (like for like)

Run: python benchmarks/bench_replay.py [NOTEBOOK ...]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

from datetime import datetime

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nbgov.errors import NbgovError  # noqa: E402
from nbgov.replay.replayer import replay  # noqa: E402
from nbgov.replay.runner import run_notebook  # noqa: E402
from nbgov.replay.source import load_log  # noqa: E402

TARGET = 1.2

REPRESENTATIVE = [
    "import numpy as np\nimport pandas as pd",
    "rng = np.random.default_rng(0)\nn = 1_000_000\n"
    "sales = pd.DataFrame({'store': rng.integers(0, 50, n), 'amount': rng.gamma(2.0, 30.0, n),\n"
    "                      'units': rng.integers(1, 9, n)})",
    "sales.to_parquet('sales.parquet')",
    "loaded = pd.read_parquet('sales.parquet')",
    "by_store = loaded.groupby('store').agg(total=('amount', 'sum'), units=('units', 'sum'))",
    "m = rng.normal(size=(600, 600))\ninv = np.linalg.inv(m @ m.T + np.eye(600))",
    "top = by_store.sort_values('total', ascending=False).head(5)\nsummary = float(top.total.sum())",
]


def representative(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in REPRESENTATIVE]
    path = folder / "representative.ipynb"
    nbformat.write(nb, str(path))
    return path


def client_seconds(notebook: Path) -> float:
    """Sum over code cells of nbclient's 'iopub.status.busy' -> 'shell.execute_reply'."""
    total = 0.0
    for cell in nbformat.read(str(notebook), as_version=4).cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.status.busy" in timing and "shell.execute_reply" in timing:
            busy = datetime.fromisoformat(timing["iopub.status.busy"].replace("Z", "+00:00"))
            reply = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            total += (reply - busy).total_seconds()
    return total


def measure(notebook: Path) -> tuple[float, float, float, float, int, int]:
    """(recorded s, client s, replay s without kernel start, kernel start s, steps, diverged)."""
    summary = run_notebook(notebook)
    if summary.error:
        raise SystemExit(f"{notebook.name}: recording failed: {summary.error}")
    log = load_log(notebook)
    session = summary.recorded[0]["body"]["session"] if summary.recorded else None
    log.entries = [e for e in log.entries if e["body"].get("session") == session]
    result = replay(log)
    recorded = sum(float(e["body"]["duration_s"]) for e in summary.recorded)
    diverged = sum(1 for s in result.steps if s.causes)
    replayed = result.wall_seconds - result.kernel_seconds
    return recorded, client_seconds(notebook), replayed, result.kernel_seconds, len(result.steps), diverged


def main(argv: list[str]) -> int:
    sources = [Path(a) for a in argv] or sorted((REPO / "example_notebooks").glob("*.ipynb"))
    worst = 0.0
    print(f"{'notebook':26} {'steps':>5} {'recorded s':>10} {'client s':>8} {'replay s':>8} {'kernel s':>8} "
          f"{'ratio':>6} {'vs client':>9}")
    with tempfile.TemporaryDirectory(prefix="nbgov-bench-") as tmp:
        if not sources:
            generated = Path(tmp) / "generated"
            generated.mkdir()
            sources = [representative(generated)]
        for index, source in enumerate(sources):
            work = Path(tmp) / f"nb{index}"
            shutil.copytree(source.parent, work, ignore=shutil.ignore_patterns(".nbgov", ".ipynb_checkpoints"))
            notebook = work / source.name
            nb = nbformat.read(str(notebook), as_version=4)
            nb.metadata.pop("nbgov", None)
            nbformat.write(nb, str(notebook))
            started = time.perf_counter()
            try:
                recorded, client, replayed, kernel, steps, diverged = measure(notebook)
            except NbgovError as exc:
                print(f"{source.name:26} could not run: {exc}")
                continue
            ratio = replayed / recorded if recorded > 0 else float("inf")
            like = replayed / client if client > 0 else float("inf")
            worst = max(worst, ratio)
            note = f"  ({diverged} diverged)" if diverged else ""
            print(f"{source.name:26} {steps:5d} {recorded:10.2f} {client:8.2f} {replayed:8.2f} {kernel:8.2f} "
                  f"{ratio:5.2f}x {like:8.2f}x{note}   [{time.perf_counter() - started:.1f}s total]")
    print(f"worst ratio {worst:.2f}x (target <= {TARGET}x plus kernel start)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
