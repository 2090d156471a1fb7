"""`nbgov replay`: re-run the recorded executions in the order they ran, and compare.

The replay kernel loads nbgov too, so every replayed step produces a fresh record with
fresh fingerprints; its sidecar goes to a temporary folder so the original log is
never touched. A new kernel session in the log restarts the replay kernel.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbgov.replay import compare
from nbgov.replay.kernel import RecordingKernel
from nbgov.replay.runner import kernel_name_of
from nbgov.replay.source import LineageLog, sidecar_file

REPRODUCED = "reproduced"
DIVERGED = "diverged"


@dataclass
class StepResult:
    """One replayed execution."""

    step: int
    record_id: str
    cell_id: str | None
    execution_count: int | None
    code: str
    recorded_seconds: float
    replay_seconds: float
    causes: list[compare.Cause] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    replay_record: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        return DIVERGED if self.causes else REPRODUCED


@dataclass
class ReplayResult:
    """The whole replay: steps in recorded order plus timings."""

    notebook: Path
    steps: list[StepResult]
    wall_seconds: float
    kernel_seconds: float
    total_steps: int
    log: LineageLog

    @property
    def first_divergence(self) -> StepResult | None:
        return next((s for s in self.steps if s.causes), None)

    @property
    def recorded_seconds(self) -> float:
        return sum(s.recorded_seconds for s in self.steps)

    @property
    def exit_code(self) -> int:
        return 1 if self.first_divergence else 0


class SidecarTail:
    """Reads only what the replay kernel appended since the last look (no O(n²) re-reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_entries(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        return [json.loads(line) for line in complete.splitlines() if line.strip()]


def _cwd_for(session_body: dict[str, Any] | None, notebook: Path) -> Path:
    recorded = Path(str(session_body.get("cwd"))) if session_body and session_body.get("cwd") else None
    if recorded is not None and recorded.is_dir():
        return recorded
    return notebook.resolve().parent


def _mark_upstream(upstream: compare.Upstream, step: StepResult, body: dict[str, Any]) -> None:
    if not step.causes:
        return
    upstream.records[step.record_id] = step.step
    for file in body.get("files") or []:
        if file.get("mode") == "write" and file.get("abspath"):
            upstream.files[str(file["abspath"])] = step.step


def _replay_step(index: int, body: dict[str, Any], kernel: RecordingKernel, tail: SidecarTail,
                 upstream: compare.Upstream, timeout: float | None) -> tuple[StepResult, str]:
    """Check the step's files, run its recorded code, compare the fresh record with the old."""
    pre = compare.precheck_files(body, kernel.cwd, upstream)
    code = str(body.get("code", ""))
    outcome = kernel.execute(code, body.get("cell_id"), timeout)
    new = [e for e in tail.new_entries() if e["kind"] == "execution"]
    again = new[-1]["body"] if new else None
    status = "ok" if outcome.status == "ok" else "error"
    causes, changed = compare.compare_step(body, again, status, outcome.ename, outcome.evalue, pre,
                                           upstream)
    step = StepResult(index, str(body.get("id")), body.get("cell_id"), body.get("execution_count"),
                      code, float(body.get("duration_s") or 0.0), outcome.seconds, causes, changed,
                      again)
    _mark_upstream(upstream, step, body)
    return step, outcome.status


def replay(log: LineageLog, until: int | None = None, timeout: float | None = None,
           kernel_name: str | None = None) -> ReplayResult:
    """Replay log.executions() (the first `until` of them) in fresh recording kernels."""
    executions = log.executions()
    todo = executions[:until] if until else executions
    sessions = log.sessions()
    name = kernel_name_of(log.nb, kernel_name)
    upstream = compare.Upstream()
    steps: list[StepResult] = []
    started = finished = time.perf_counter()
    kernel_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="nbgov-replay-") as tmp:
        session_name = Path(tmp) / log.notebook.name  # the replay kernel's sidecar lives here
        tail = SidecarTail(sidecar_file(session_name))
        kernel: RecordingKernel | None = None
        current: str | None = None
        try:
            for index, entry in enumerate(todo, start=1):
                body = entry["body"]
                if kernel is None or body.get("session") != current:
                    t0 = time.perf_counter()
                    if kernel is not None:
                        kernel.shutdown()
                    current = body.get("session")
                    session = sessions.get(str(current))
                    kernel = RecordingKernel(name, _cwd_for(session["body"] if session else None,
                                                            log.notebook), session_name)
                    kernel.start()
                    kernel_seconds += time.perf_counter() - t0
                step, status = _replay_step(index, body, kernel, tail, upstream, timeout)
                steps.append(step)
                finished = time.perf_counter()
                if status == "dead":  # later steps get a fresh kernel (and say what they miss)
                    kernel.shutdown()
                    kernel = None
        finally:
            if kernel is not None:
                kernel.shutdown()
    # wall time up to the last step's reply: the final shutdown is cleanup, not replay
    return ReplayResult(log.notebook, steps, finished - started, kernel_seconds, len(executions), log)
