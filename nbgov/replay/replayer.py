"""`nbgov replay`: re-run the recorded executions in the order they ran, and compare.

Only a log that `nbgov verify` accepts is replayed (``--unverified`` overrides, and
the result says so). The replay kernel runs where the recorded session's cells ran,
relative to the notebook's folder as it is now (nbgov.lineage.placement: a copied
folder replays in the copy; a notebook written by ``nbgov run NB -o out/NB.ipynb``
replays in NB's folder; recorded paths are read where they are now; when that folder
is not there, in the notebook's folder, and the result says so), with the hash seed
the recorded session had, or a fixed one. It loads nbgov too, so every replayed step produces a fresh record with fresh
fingerprints; its sidecar goes to a temporary folder so the original log is never
touched. A new kernel session in the log restarts the replay kernel.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from nbgov.errors import ReplayError
from nbgov.lineage.placement import Placement, place
from nbgov.lineage.record import ExecutionRecord
from nbgov.replay import blocking, compare
from nbgov.replay.kernel import FIXED_HASH_SEED, RecordingKernel
from nbgov.replay.runner import kernel_name_of
from nbgov.replay.safe_text import where_surrogate
from nbgov.replay.source import LineageLog, sidecar_file, typed_execution

REPRODUCED = "reproduced"
DIVERGED = "diverged"
UNVERIFIABLE = "unverifiable"


@dataclass
class StepResult:
    """One replayed execution."""

    step: int
    original: ExecutionRecord
    replay_seconds: float
    verdict: compare.Comparison = field(default_factory=compare.Comparison)
    replay_record: ExecutionRecord | None = None

    @property
    def record_id(self) -> str:
        return self.original.id

    @property
    def cell_id(self) -> str | None:
        return self.original.cell_id

    @property
    def execution_count(self) -> int:
        return self.original.execution_count

    @property
    def code(self) -> str:
        return self.original.code

    @property
    def recorded_seconds(self) -> float:
        return self.original.duration_s

    @property
    def causes(self) -> list[compare.Cause]:
        return self.verdict.causes

    @property
    def status(self) -> str:
        if self.verdict.causes:
            return DIVERGED
        return UNVERIFIABLE if self.verdict.unverifiable else REPRODUCED


@dataclass
class ReplayResult:
    """The whole replay: steps in recorded order plus timings."""

    notebook: Path
    steps: list[StepResult]
    wall_seconds: float
    kernel_seconds: float
    total_steps: int
    log: LineageLog
    unverified: str | None = None  # why the log did not verify, when replayed anyway
    notes: list[str] = field(default_factory=list)  # where the replay ran other than as recorded, why
    stopped: str | None = None  # why the replay stopped before the steps asked for (a FIFO it would read)

    @property
    def first_divergence(self) -> StepResult | None:
        return next((s for s in self.steps if s.causes), None)

    @property
    def recorded_seconds(self) -> float:
        return sum(s.recorded_seconds for s in self.steps)

    def count(self, status: str) -> int:
        return sum(1 for s in self.steps if s.status == status)

    @property
    def exit_code(self) -> int:
        """0 when every step reproduced; else 1."""
        return self.exit_status(allow_unverifiable=False)

    def exit_status(self, allow_unverifiable: bool) -> int:
        """0 when every step reproduced (or, if allowed, only could not be compared); else 1."""
        if self.first_divergence is not None:
            return 1
        return 1 if self.count(UNVERIFIABLE) and not allow_unverifiable else 0


def require_verified(notebook: Path, unverified: bool, allowed_signers: Path | None = None,
                     until: int | None = None) -> str | None:
    """ReplayError (exit 2) unless the log verifies (an entry only in the notebook metadata,
    which anyone can append there, fails it: its code is not run unasked); with
    ``unverified``, the reason as a warning.

    With ``allowed_signers`` the check is ``nbgov verify --allowed-signers`` itself, and no
    execution after the newest head an allowed signer signed is run (verify only notes
    those: appended after signing, nobody vouched for their code); nothing overrides it."""
    from nbgov.replay.verify import verify

    if allowed_signers is not None and unverified:
        raise ReplayError("--unverified and --allowed-signers contradict each other: signatures are required "
                          "only of a log that is verified")
    checked = verify(notebook, allowed_signers=allowed_signers)
    if checked.problems:
        more = f" (and {len(checked.problems) - 1} more)" if len(checked.problems) > 1 else ""
        why = f"its lineage does not verify: {checked.problems[0]}{more}"
    elif allowed_signers is not None:
        unsigned = _unsigned(notebook, checked.signed_through, until)
        if unsigned is not None:
            raise ReplayError(f"will not replay {notebook.name}: {unsigned}")
        return None
    else:
        return None
    if allowed_signers is not None:
        raise ReplayError(f"will not replay {notebook.name}: {why}; see `nbgov verify --allowed-signers "
                          f"{allowed_signers}`")
    if not unverified:
        raise ReplayError(f"will not replay {notebook.name}: {why}; see `nbgov verify`, or pass "
                          "--unverified to replay it anyway")
    return f"replaying {notebook.name} although {why}"


def _unsigned(notebook: Path, signed_through: int, until: int | None) -> str | None:
    """Why the executions to replay are not all covered by an allowed signer's head, or None."""
    from nbgov.replay.source import load_log

    executions = load_log(notebook).executions()
    todo = executions[:until] if until else executions
    later = [int(e["seq"]) for e in todo if int(e["seq"]) > signed_through]
    if not later:
        return None
    signed = sum(1 for e in todo if int(e["seq"]) <= signed_through)
    what = f"entry {later[0]}" if len(later) == 1 else f"entries {later[0]}-{later[-1]}"
    until_hint = f", or pass --until {signed} to replay the signed part" if signed else ""
    return (f"{what} {'was' if len(later) == 1 else 'were'} added after the newest head an allowed signer "
            f"signed (entry {signed_through}), so nobody vouched for that code; sign the log again{until_hint}")


def check_sendable(log: LineageLog, until: int | None = None) -> None:
    """ReplayError naming the first execution to replay whose code or cell id holds a lone
    surrogate (JSON can carry one as an escape). Kernel messages are UTF-8: jupyter_client
    cannot send it, and an ipykernel handed it could not echo it and would never reply,
    so the replay is refused before any kernel starts rather than failing mid-way."""
    entries = log.executions()
    for entry, record in list(zip(entries, log.execution_records()))[:until]:
        for what, text in (("code", record.code), ("cell id", record.cell_id or "")):
            where = where_surrogate(text)
            if where is not None:
                raise ReplayError(
                    f"will not replay {log.notebook.name}: entry {entry['seq']} ({record.label}) has recorded {what} "
                    f"holding a lone surrogate ({where}), which is not UTF-8 text, so no kernel can be sent it")


class SidecarTail:
    """Reads only what the replay kernel appended since the last look (no O(n²) re-reads)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_executions(self) -> list[ExecutionRecord]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self.offset += len(complete)
        entries = [json.loads(line) for line in complete.splitlines() if line.strip()]
        return [typed_execution(e) for e in entries if e.get("kind") == "execution"]


def _mark_upstream(upstream: compare.Upstream, step: StepResult, context: compare.StepContext) -> None:
    if step.causes:
        upstream.records[step.record_id] = step.step
        for file in step.original.files:
            if file.mode == "write":
                upstream.files[str(context.relocation.path(file))] = step.step
    elif step.verdict.unverifiable:
        upstream.unverified[step.record_id] = (step.step, step.verdict.unverifiable[0])


def _replay_step(index: int, original: ExecutionRecord, kernel: RecordingKernel, tail: SidecarTail,
                 upstream: compare.Upstream, context: compare.StepContext,
                 timeout: float | None) -> tuple[StepResult, str]:
    """Check the step's files, run its recorded code, compare the fresh record with the old."""
    pre = compare.precheck_files(original, context, upstream)
    before = compare.written_before(original, context)
    numbered = kernel.number_next(original.execution_count, timeout)
    outcome = kernel.execute(original.code, original.cell_id, timeout)
    new = tail.new_executions()
    again = new[-1] if new else None
    status = "ok" if outcome.status == "ok" else "error"
    verdict = compare.compare_step(original, again, status, outcome.ename, outcome.evalue, pre, upstream,
                                   context, before, numbered, outcome.showed)
    step = StepResult(index, original, outcome.seconds, verdict, again)
    _mark_upstream(upstream, step, context)
    return step, outcome.status


def replay(log: LineageLog, until: int | None = None, timeout: float | None = None,
           kernel_name: str | None = None, unverified: str | None = None) -> ReplayResult:
    """Replay the log's executions (the first `until` of them) in fresh recording kernels."""
    check_sendable(log, until)
    executions = log.execution_records()
    todo = executions[:until] if until else executions
    sessions = log.session_infos()
    random_seeds = log.random_seed_sessions()
    name = kernel_name_of(log.nb, kernel_name)
    folder = log.notebook.resolve().parent
    if not folder.is_dir():
        raise ReplayError(f"{folder}: the notebook's folder is not there")
    upstream = compare.Upstream()
    steps: list[StepResult] = []
    started = finished = time.perf_counter()
    kernel_seconds = 0.0
    with tempfile.TemporaryDirectory(prefix="nbgov-replay-") as tmp:
        session_name = Path(tmp) / log.notebook.name  # the replay kernel's sidecar lives here
        tail = SidecarTail(sidecar_file(session_name))
        kernel: RecordingKernel | None = None
        current: str | None = None
        context = compare.StepContext(Placement(None, folder))
        notes: list[str] = []
        stopped: str | None = None
        try:
            for index, original in enumerate(todo, start=1):
                if index == 1 or original.session != current:  # a new session: where it ran, a fresh kernel
                    if kernel is not None:
                        t0 = time.perf_counter()
                        kernel.shutdown()
                        kernel = None
                        kernel_seconds += time.perf_counter() - t0
                    current = original.session
                    session = sessions.get(current)
                    placement = place(session, log.notebook)
                    if placement.note and placement.note not in notes:
                        notes.append(placement.note)
                    context = compare.StepContext(placement, hash_seed_random=current in random_seeds,
                                                  fingerprints=session.fingerprints if session else None)
                blocked = blocking.first_blocking(original, context.relocation, compare.is_own_source)
                if blocked is not None:  # looked at before any kernel runs it: its open could wait forever
                    steps.append(StepResult(index, original, 0.0,
                                            compare.Comparison(causes=[compare.blocked_cause(original, blocked)])))
                    stopped = _stop_line(blocked, index, len(todo))
                    finished = time.perf_counter()
                    break
                if kernel is None:  # the session's first step, or the one after a kernel died
                    t0 = time.perf_counter()
                    session = sessions.get(current)
                    seed = session.hash_seed if session and session.hash_seed is not None else FIXED_HASH_SEED
                    kernel = RecordingKernel(name, context.relocation.folder, session_name, hash_seed=seed)
                    kernel.start()
                    kernel_seconds += time.perf_counter() - t0
                step, status = _replay_step(index, original, kernel, tail, upstream, context, timeout)
                steps.append(step)
                finished = time.perf_counter()
                if status == "dead":  # later steps get a fresh kernel (and say what they miss)
                    kernel.shutdown()
                    kernel = None
        finally:
            if kernel is not None:
                kernel.shutdown()
    # wall time up to the last step's reply: the final shutdown is cleanup, not replay
    return ReplayResult(log.notebook, steps, finished - started, kernel_seconds, len(executions), log,
                        unverified, notes, stopped)


def _stop_line(found: blocking.BlockingInput, index: int, todo: int) -> str:
    """Why the replay stopped at step ``index`` of ``todo``, in one line."""
    rest = todo - index
    after = f", nor the {rest} after it" if rest > 1 else ", nor the one after it" if rest else ""
    return f"{found.text()}; step {index} was not run{after}"
