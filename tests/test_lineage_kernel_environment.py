"""What only a fresh kernel process can show: the hash seed it started with, imports that
read system files, and an interrupt that lands while the recorder is hashing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.store import read_entries, verify_chain
from tests.fixtures.kernel import kernel_env, kernel_manager
from tests.fixtures.lineage import INSTALL_RECORDER

pytestmark = pytest.mark.kernel


class Kernel:
    def __init__(self, notebook: Path, **env: str | None) -> None:
        environment = kernel_env(notebook)
        for key, value in env.items():
            if value is None:
                environment.pop(key, None)
            else:
                environment[key] = value
        self.km = kernel_manager()
        self.km.start_kernel(env=environment, cwd=str(notebook.parent))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=90)
        self.sidecar = notebook.parent / ".nbgov" / f"{notebook.stem}.jsonl"
        assert self.execute(INSTALL_RECORDER)["content"]["status"] == "ok"

    def execute(self, code: str, output: Any = None) -> dict[str, Any]:
        return self.kc.execute_interactive(code, timeout=120, output_hook=output or (lambda msg: None))

    def bodies(self) -> list[dict[str, Any]]:
        entries, problems = read_entries(self.sidecar)
        assert problems == [] and verify_chain(entries) == []
        return [e["body"] for e in entries]

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


@pytest.fixture
def kernels() -> Iterator[Any]:
    started: list[Kernel] = []

    def start(notebook: Path, **env: str | None) -> Kernel:
        started.append(Kernel(notebook, **env))
        return started[-1]

    yield start
    for kernel in started:
        kernel.close()


def test_the_session_records_the_hash_seed_the_kernel_started_with(kernels: Any, tmp_path: Path) -> None:
    seeded = kernels(tmp_path / "seeded.ipynb", PYTHONHASHSEED="123")
    random = kernels(tmp_path / "random.ipynb", PYTHONHASHSEED=None)
    for kernel in (seeded, random):
        # the notebook changing os.environ later does not change what the kernel started with
        assert kernel.execute("import os\nos.environ['PYTHONHASHSEED'] = '7'")["content"]["status"] == "ok"
    assert seeded.bodies()[0]["hash_seed"] == "123"
    assert random.bodies()[0]["hash_seed"] is None


def test_importing_onnxruntime_and_sklearn_reads_no_data_file(kernels: Any, tmp_path: Path) -> None:
    kernel = kernels(tmp_path / "imports.ipynb")
    reply = kernel.execute("import onnxruntime, sklearn.ensemble, pandas, pyarrow.parquet, polars, duckdb")
    assert reply["content"]["status"] == "ok"
    body = kernel.bodies()[-1]
    assert body["files"] == [], [f["abspath"] for f in body["files"]]
    assert set(body["packages_added"]) >= {"onnxruntime", "sklearn", "duckdb"}


def test_an_interrupt_while_the_recorder_hashes_keeps_the_record_and_prints_one_line(
    kernels: Any, tmp_path: Path
) -> None:
    kernel = kernels(tmp_path / "interrupted.ipynb")
    slow_hashing = (
        "import time, sys\n"
        "_fp = _nbgov_rec.fingerprinter\n"
        "_real = _fp._measure\n"
        "def _slow(value, *rest):\n"
        "    if type(value).__name__ == 'Huge':\n"
        "        print('nbgov-test: hashing', flush=True)\n"
        "        time.sleep(60)\n"
        "    return _real(value, *rest)\n"
        "_fp._measure = _slow\n"
        "class Huge:\n"
        "    pass"
    )
    assert kernel.execute(slow_hashing)["content"]["status"] == "ok"
    stderr: list[str] = []

    def watch(msg: dict[str, Any]) -> None:
        if msg["msg_type"] == "stream":
            if "nbgov-test: hashing" in msg["content"]["text"]:
                kernel.km.interrupt_kernel()  # a real SIGINT, as the Interrupt button sends
            if msg["content"]["name"] == "stderr":
                stderr.append(msg["content"]["text"])

    reply = kernel.execute("h = Huge()\nafter = 1", output=watch)
    assert reply["content"]["status"] == "ok", "the cell itself ran to the end"
    lines = [line for line in "".join(stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("nbgov: recording was interrupted"), lines
    body = kernel.bodies()[-1]
    assert body["code"] == "h = Huge()\nafter = 1"
    fps = {w["name"]: w["fingerprint"] for w in body["writes"]}
    assert fps["h"]["weak"] is True and "interrupted" in fps["h"]["reason"]
    assert any("interrupted" in note for note in body["notes"])
    assert kernel.execute("still = after + 1")["content"]["status"] == "ok"
    assert kernel.bodies()[-1]["code"] == "still = after + 1"
    assert os.path.getsize(kernel.sidecar) > 0
