"""Compare one recorded execution with its replay and name the likely cause of a difference.

Pure functions over typed records (nbgov.lineage.record), so the rules read in one
place. Files and models are checked first (an input that changed explains everything
after it), then the variables read, then the outputs (variables written, the displayed
result, files written, models created). A value whose fingerprint is weak cannot be
compared: its step is "unverifiable", never "reproduced", and a later difference that
may have entered through it is blamed on it, the earliest value that may differ.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash

from nbgov.lineage import files
from nbgov.lineage.database_files import is_duckdb
from nbgov.lineage.fingerprint import SCHEME
from nbgov.lineage.placement import Placement
from nbgov.lineage.random_state import unseeded
from nbgov.lineage.record import (
    ExecutionRecord,
    FileAccess,
    Fingerprint,
    ModelUse,
    Read,
    environment_variable,
    is_global_state,
    result_name,
)
from nbgov.lineage.user_files import NO_SUCH_FILE, UserFileError, not_regular, open_regular
from nbgov.replay.blocking import BlockingInput

INPUT_FILE_CHANGED = "input file changed"
UNREPLAYABLE_INPUT = "input is no file"  # read from a FIFO, device or socket when recorded too
MODEL_CHANGED = "model changed"
NONDETERMINISTIC = "nondeterministic output"
HASH_ORDER = "hash ordering"
CELL_FAILED = "cell failed"
UNEXPLAINED_STATE = "unexplained state"
UNSEEDED = "unseeded random state"
UNSEEDED_UNSEEN = "unseeded draws changed nothing"  # a note: only the state left differs, nothing was shown
SEEDED_IN_STEP = "random state seeded in the step"  # a note: the state before differed, the step set it
RANDOM_STATE_NOT_RECORDED = "random state not recorded"  # a note: only the replay recorded a generator's state
ENVIRONMENT = "environment variable"  # a variable the step read holds another value in the replay's environment
ENVIRONMENT_NOT_RECORDED = "environment variable not recorded"  # a note: only the replay recorded setting one
UPSTREAM = "upstream divergence"
UNVERIFIED_UPSTREAM = "unverifiable upstream value"
NOT_RECORDED = "not compared"
MODEL_METADATA = "model names or doc strings differ"
TIMINGS_ONLY = "only the fit and score timings it measured differ"
REMOVED_EITHER_WAY = "absent after the step in both runs"
DATABASE_BYTES = "a DuckDB database's bytes differ in every run"
# pre-step findings that are no cause: a DuckDB database's bytes cannot say; its writer's tables
# reproduced (a note), or could not be compared (unverifiable)
_DATABASE_READ = "database read"
_DATABASE_READ_UNVERIFIED = "database read, unverified"
MODEL_SUFFIXES = (".onnx",)
MAX_PREFIX_BYTES = 64 * 1024 * 1024  # files the step writes, hashed before it runs up to this size
_NBGOV_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Cause:
    """One reason a step did not reproduce (or, for notes, a harmless difference)."""

    kind: str
    detail: str
    name: str | None = None

    def text(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class Upstream:
    """What earlier replayed steps left different or uncompared."""

    records: dict[str, int] = field(default_factory=dict)  # diverged record id -> step
    files: dict[str, int] = field(default_factory=dict)  # abspath written differently -> step
    unverified: dict[str, tuple[int, str]] = field(default_factory=dict)  # record id -> (step, what)


@dataclass(frozen=True)
class StepContext:
    """What a comparison needs beyond the two records."""

    relocation: Placement
    hash_seed_random: bool = False  # the recorded session says it ran with a random PYTHONHASHSEED
    fingerprints: int | None = SCHEME  # the recorded session's fingerprint scheme (None: before schemes)

    def uncomparable(self, diff: ValueDiff) -> str | None:
        """Why a value that differs cannot be called different: it was hashed under another
        fingerprint scheme (a newer nbgov reads more of some kinds of value), or None."""
        if diff.same is not False or diff.names_only or self.fingerprints == SCHEME:
            return None
        then = f"scheme {self.fingerprints}" if self.fingerprints is not None else "an older scheme"
        return f"recorded with fingerprint {then}, this nbgov hashes with scheme {SCHEME} ({diff.how})"


@dataclass
class Comparison:
    """The verdict on one step."""

    causes: list[Cause] = field(default_factory=list)
    notes: list[Cause] = field(default_factory=list)
    unverifiable: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unverifiable_inputs: list[str] = field(default_factory=list)  # the reads among ``unverifiable``
    # global generators read with another state than recorded, which no execution of the log
    # left: judged after the outputs (a step that seeds before drawing leaves the same state)
    unseeded: list[str] = field(default_factory=list)


def short(h: object) -> str:
    return str(h)[:12] if h else "—"


def file_now(path: Path) -> tuple[str | None, str]:
    """(the recorder's content hash of the file now, a sqlite or DuckDB database with its
    journal or WAL; "") or, when there is none, (None, why): "missing", "is a FIFO (named
    pipe), not a file" (never opened: that would wait for a writer), "unreadable"."""
    why = not_regular(path)
    if why is not None:
        return None, "missing" if why == NO_SUCH_FILE else why
    digest = files.content_hash(str(path))
    return (digest, "") if digest is not None else (None, "unreadable")


def is_own_source(file: FileAccess) -> bool:
    """nbgov's own modules (imported lazily inside a cell) are tooling, not notebook data."""
    try:
        return Path(file.abspath or "").resolve().is_relative_to(_NBGOV_ROOT)
    except (OSError, ValueError):
        return False


def _is_model_file(file: FileAccess, models: Iterable[ModelUse]) -> bool:
    return (file.path or file.abspath).lower().endswith(MODEL_SUFFIXES) or any(
        m.source and m.source == file.source for m in models)


def created_models(record: ExecutionRecord) -> set[str]:
    """"name@version" of the models this execution created: outputs, not inputs.

    ``ModelUse.role`` says so; logs written before roles name them in a CREATE MODEL statement.
    """
    created = {f"{m.name}@{m.version}" for m in record.models if m.role == "output"}
    if any(m.role is not None for m in record.models):
        return created
    return {m for stmt in record.sql if stmt.kind == "create_model" for m in stmt.models}


def precheck_files(original: ExecutionRecord, context: StepContext, upstream: Upstream) -> list[Cause]:
    """Before the step runs: do the files it read still hold what they held then?"""
    causes: list[Cause] = []
    for file in original.files:
        if file.mode != "read" or not file.hash or is_own_source(file):
            continue
        path = context.relocation.path(file)
        now, why = file_now(path)
        if now == file.hash:
            continue
        shown = context.relocation.shown(file)
        state = why if now is None else f"hash {short(file.hash)} → {short(now)}"
        step = upstream.files.get(str(path))
        if step is None and file.source in upstream.records:
            step = upstream.records[str(file.source)]
        if step is None and now is not None and file.source and is_duckdb(str(path)):
            causes.append(_database_input(shown, str(file.source), upstream))
        elif step is not None:
            causes.append(Cause(UPSTREAM, f"{shown} written differently at step {step}", shown))
        elif _is_model_file(file, original.models):
            causes.append(Cause(MODEL_CHANGED, f"{shown}: {state}", shown))
        else:
            causes.append(Cause(INPUT_FILE_CHANGED, f"{shown}: {state}", shown))
    return causes + _written_not_files(original, context, {c.name for c in causes})


def blocked_cause(original: ExecutionRecord, found: BlockingInput) -> Cause:
    """The step read ``found``, a FIFO, device or socket now, so it is not run: an input file
    changed when the record hashed a file there (a model changed, for a model file), else an
    input that was no file's content when recorded either."""
    if found.file.mode == "write":
        return Cause(INPUT_FILE_CHANGED, f"{found.text()}, where the step writes a file, so the step was not run",
                     found.shown)
    if found.file.hash is None:
        return Cause(UNREPLAYABLE_INPUT, f"{found.text()}; the recording has no content of it either, so the step "
                     "was not run", found.shown)
    kind = MODEL_CHANGED if _is_model_file(found.file, original.models) else INPUT_FILE_CHANGED
    return Cause(kind, f"{found.text()} (recorded: a file, hash {short(found.file.hash)}), so the step was not run",
                 found.shown)


def _written_not_files(original: ExecutionRecord, context: StepContext, named: set[str | None]) -> list[Cause]:
    """Files the step wrote as files (it hashed them) that are something else now: a FIFO
    blocks the write until the step's timeout, a folder fails it. Named before the step
    runs, so its timeout or error is explained; ``named``: shown already as inputs."""
    causes: list[Cause] = []
    for file in original.files:
        shown = context.relocation.shown(file)
        if file.mode != "write" or file.hash is None or shown in named or is_own_source(file):
            continue
        why = not_regular(context.relocation.path(file))
        if why is not None and why != NO_SUCH_FILE:
            named.add(shown)
            causes.append(Cause(INPUT_FILE_CHANGED, f"{shown}: {why}, where the step writes a file", shown))
    return causes


def _database_input(shown: str, source: str, upstream: Upstream) -> Cause:
    """A DuckDB database an earlier step of the log wrote: its bytes differ in every run, so
    it is as reproduced as that step's tables were (a note), or could not be compared there."""
    if source in upstream.unverified:
        step, what = upstream.unverified[source]
        return Cause(_DATABASE_READ_UNVERIFIED, f"{DATABASE_BYTES}; it comes from step {step}, where {what}", shown)
    return Cause(_DATABASE_READ, f"{shown}: read; {DATABASE_BYTES}, and the tables its writer wrote reproduced",
                 shown)


def _tables_written(record: ExecutionRecord) -> dict[str, Fingerprint | None]:
    """The database tables the step's SQL created or changed, with their content fingerprints."""
    return {t.name: t.fingerprint for stmt in record.sql for t in stmt.tables
            if t.mode == "write" and t.origin == "database"}


def _database_tables(path: str, original: ExecutionRecord, replay: ExecutionRecord,
                     verdict: Comparison) -> list[tuple[str, str]]:
    """A DuckDB database the step wrote, whose bytes differ as they do in every run: compared
    by the tables the step's SQL wrote (their content fingerprints), else not compared."""
    then, now = _tables_written(original), _tables_written(replay)
    hashes = {name: fp.hash for name, fp in then.items() if fp is not None and not fp.weak}
    again = {name: fp.hash for name, fp in now.items() if fp is not None and not fp.weak}
    if not then or None in (*hashes.values(), *again.values()) or (len(hashes), len(again)) != (len(then), len(now)):
        verdict.unverifiable.append(f"`{path}`: {DATABASE_BYTES}, and what this step changed in it was not "
                                    "fingerprinted table by table (only %%sqlml statements are)")
        return []
    differing = [(f"table {name}", f"table hash {short(hashes[name])} → {short(again[name])}"
                  if name in hashes and name in again else "written in only one run")
                 for name in sorted(hashes.keys() | again.keys()) if hashes.get(name) != again.get(name)]
    if not differing:
        verdict.notes.append(Cause(DATABASE_BYTES, f"{path}: the tables this step wrote reproduced "
                                   f"({', '.join(sorted(then))})", path))
    return differing


Prefix = tuple[int, str]  # (size, xxh3_128 of those bytes)


def written_before(original: ExecutionRecord, context: StepContext) -> dict[str, Prefix]:
    """Before the step runs: the files it writes that are there already, and that it is not
    recorded reading. Native code appending (``!echo >> log.txt``) reads what was there, and
    the OS cannot tell that open from a rewrite; after the step, these bytes still at the
    start of a grown file say it was appended to."""
    read = {str(context.relocation.path(f)) for f in original.files if f.mode == "read"}
    out: dict[str, Prefix] = {}
    for file in original.files:
        where = context.relocation.path(file)
        if file.mode != "write" or file.removed or str(where) in read or str(where) in out or is_own_source(file):
            continue
        prefix = _prefix(where, None)
        if prefix is not None:
            out[str(where)] = prefix
    return out


def _prefix(path: Path, size: int | None) -> Prefix | None:
    """(size, hash) of the file's first ``size`` bytes (all of it when None); None when it is
    missing, shorter, too big, unreadable or no regular file (a FIFO would block the open)."""
    try:
        with open_regular(path, "a file the step writes") as handle:
            total = os.fstat(handle.fileno()).st_size
            want = total if size is None else size
            if want > total or want > MAX_PREFIX_BYTES:
                return None
            return want, xxhash.xxh3_128_hexdigest(handle.read(want))
    except (OSError, UserFileError):  # a path no file system holds is NO_SUCH_FILE there
        return None


def _appended(original: ExecutionRecord, replay: ExecutionRecord, changed: list[tuple[str, str]],
              context: StepContext, before: dict[str, Prefix], upstream: Upstream) -> list[Cause]:
    """Written files that differ, held content before the step and now start with it, and
    that neither run saw read (a Python append is a read: ``_read_only_now`` names it): the
    step added to what was there, so that content was an input the record could not name."""
    causes: list[Cause] = []
    read_now = {f.abspath for f in replay.files if f.mode == "read"}
    names = {name for name, _ in changed}
    for file in original.files:
        where = str(context.relocation.path(file))
        if file.mode != "write" or file.path not in names or where not in before or where in read_now:
            continue
        size, digest = before[where]
        now = _prefix(Path(where), None)
        if now is None or now[0] <= size or _prefix(Path(where), size) != (size, digest):
            continue
        names.discard(file.path)
        if where in upstream.files:
            causes.append(Cause(UPSTREAM, f"{file.path}: written differently at step {upstream.files[where]}, "
                                "then added to by this step", file.path))
            continue
        causes.append(Cause(INPUT_FILE_CHANGED, f"{file.path}: held {size:,} bytes (hash {short(digest)}) before "
                            "the step, which added to them: what was there was read, the recording could not "
                            "see it (native code appending), and it is not what the recorded run found", file.path))
    return causes


def _fp_text(a: Fingerprint, b: Fingerprint) -> str:
    def one(fp: Fingerprint) -> str:
        return short(fp.hash) + (f" ({fp.summary})" if fp.summary else "")

    return f"{one(a)} → {one(b)}"


def _weak_reason(a: Fingerprint, b: Fingerprint | None = None) -> str:
    for fp in (a, b):
        if fp is not None and (fp.weak or fp.hash is None):
            return fp.reason or fp.summary or f"a {fp.kind} nbgov cannot read"
    return "cannot be compared"


@dataclass(frozen=True)
class ValueDiff:
    """How a value recorded then compares with the value recomputed now."""

    same: bool | None  # None: cannot be told (a weak fingerprint)
    names_only: bool = False  # same meaning: an ONNX model's names, a search's or cross_validate's timings aside
    how: str = ""
    note: str = MODEL_METADATA  # what differs when ``names_only``


def diff_values(then: Fingerprint, now: Fingerprint) -> ValueDiff:
    same = then.same_content(now)
    if same is None:
        return ValueDiff(None, how=_weak_reason(then, now))
    if same:
        return ValueDiff(True)
    if then.semantic and then.semantic == now.semantic:
        # a plain dict has a meaning only as cross_validate's result, without its timings
        note = TIMINGS_ONLY if then.kind.startswith("sklearn.") or then.kind == "dict" else MODEL_METADATA
        return ValueDiff(False, names_only=True, how=_fp_text(then, now), note=note)
    return ValueDiff(False, how=_fp_text(then, now))


def _files_differing(original: ExecutionRecord, replay: ExecutionRecord, mode: str, context: StepContext,
                     skip: set[str]) -> list[tuple[str, FileAccess, FileAccess]]:
    now = {f.abspath: f for f in replay.files if f.mode == mode}
    out = []
    for file in original.files:
        if file.mode != mode or file.path in skip or is_own_source(file):
            continue
        again = now.get(str(context.relocation.path(file)))
        if again is not None and _claims(file) and (again.hash, again.removed) != (file.hash, file.removed):
            out.append((file.path, file, again))
    return out


def _claims(file: FileAccess) -> bool:
    """The record says what is at the path: content by hash, or nothing (removed)."""
    return bool(file.hash) or file.removed


def _file_change(then: FileAccess, now: FileAccess) -> str:
    if not then.removed and not now.removed:
        return f"file hash {short(then.hash)} → {short(now.hash)}"
    return " → ".join("removed" if f.removed else f"hash {short(f.hash)}" for f in (then, now))


def _files_written_once(original: ExecutionRecord, replay: ExecutionRecord, context: StepContext,
                        verdict: Comparison) -> list[tuple[str, str]]:
    """Files with content that only one of the two runs wrote: a recorded write that did not
    happen again, or a write the recording does not have. Either way the step did not do
    what the log says (a file whose content was never hashed, e.g. too large, is no claim
    either way; a removed one is). A removal is judged by what it leaves: a path absent
    after the step in both runs is a note (``shutil.rmtree(scratch)`` found files a
    previous run left this time, or nothing to remove), one still there a difference."""
    recorded = {str(context.relocation.path(f)): f for f in original.files
                if f.mode == "write" and not is_own_source(f)}
    now = {f.abspath: f for f in replay.files if f.mode == "write" and not is_own_source(f)}
    out: list[tuple[str, str]] = []
    for where, f in recorded.items():
        if not _claims(f) or where in now:
            continue
        if f.removed and not os.path.lexists(where):
            verdict.notes.append(Cause(REMOVED_EITHER_WAY, f"{f.path}: removed in the recording; not there "
                                       "to remove this time", f.path))
        else:
            out.append((f.path, "not removed again" if f.removed else "not written again"))
    for where, f in now.items():
        if not _claims(f) or where in recorded:
            continue
        if f.removed:  # the recording did not find it: absent afterwards there too
            verdict.notes.append(Cause(REMOVED_EITHER_WAY, f"{f.path}: removed now (it was there this time, "
                                       "not when recorded)", f.path))
        else:
            out.append((f.path, "written now, not in the recording"))
    return out


def _models_differing(original: ExecutionRecord, replay: ExecutionRecord
                      ) -> list[tuple[str, ModelUse, ModelUse]]:
    now = {m.name: m for m in replay.models}
    out = []
    for model in original.models:
        again = now.get(model.name)
        if again is not None and again.sha256 != model.sha256:
            out.append((f"{model.name}@{model.version}", model, again))
    return out


def compare_models(original: ExecutionRecord, replay: ExecutionRecord, upstream: Upstream) -> list[Cause]:
    """Models the step used (not created) whose bytes differ now."""
    causes = []
    created = created_models(original)
    for label, model, again in _models_differing(original, replay):
        if label in created:
            continue
        if model.source in upstream.records:
            step = upstream.records[str(model.source)]
            causes.append(Cause(UPSTREAM, f"{label} created differently at step {step}", label))
        else:
            detail = f"{label}: sha256 {short(model.sha256)} → {short(again.sha256)}"
            causes.append(Cause(MODEL_CHANGED, detail, label))
    return causes


def _result_not_read(read: Read, upstream: Upstream, verdict: Comparison) -> None:
    """A result the recording read through the output history (``Out[3]``) that the replay did
    not read: its displaying step diverged (the cause), or it cannot be compared, and why."""
    if read.source in upstream.records:
        step = upstream.records[str(read.source)]
        verdict.causes.append(Cause(UPSTREAM, f"`{read.name}` was not read again: step {step}, which displayed it, "
                                    "diverged", read.name))
        return
    why = not_replayed_result(read) or ("the replay read no such result through IPython's output history (a "
                                        "result displayed since only in the replay, or none kept)")
    verdict.unverifiable.append(f"`{read.name}` (read): {why}")
    verdict.unverifiable_inputs.append(f"`{read.name}`: {why}")


def not_replayed_result(read: Read) -> str | None:
    """Why a replay cannot show again the result a read took from the output history, or None:
    the execution that displayed it is not in the log (it ran before nbgov recorded)."""
    if read.displayed is None or read.source is not None:
        return None
    return (f"displayed by execution {read.displayed}, which no record of its kernel session holds (it ran before "
            "nbgov recorded), so the replay cannot display it again")


def compare_reads(original: ExecutionRecord, replay: ExecutionRecord, upstream: Upstream,
                  context: StepContext, verdict: Comparison, numbered: bool = True) -> None:
    """``numbered``: the replay ran under the recorded execution count; else its results read
    through the output history are not compared (the caller says why)."""
    now = {r.name: r for r in replay.reads}
    for read in original.reads:
        if not numbered and read.displayed is not None:
            continue
        again = now.get(read.name)
        if again is None:
            if read.displayed is not None:
                _result_not_read(read, upstream, verdict)
            continue
        diff = diff_values(read.fingerprint, again.fingerprint)
        why = context.uncomparable(diff)
        if why is None and diff.same is None:
            why = diff.how
        if why is not None:
            verdict.unverifiable.append(f"`{read.name}` (read): {why}")
            verdict.unverifiable_inputs.append(f"`{read.name}`: {why}")
        elif diff.names_only:
            verdict.notes.append(Cause(diff.note, f"`{read.name}`: {diff.how}", read.name))
        elif not diff.same:
            if read.source in upstream.records:
                verdict.causes.append(Cause(
                    UPSTREAM, f"`{read.name}` differs since step {upstream.records[str(read.source)]}", read.name))
            elif environment_variable(read.name) is not None:
                verdict.causes.append(Cause(ENVIRONMENT, environment_differs(read, diff), read.name))
            elif read.source in upstream.unverified:
                step, what = upstream.unverified[str(read.source)]
                verdict.causes.append(Cause(
                    UNVERIFIED_UPSTREAM, f"`{read.name}` differs; it comes from step {step}, where {what} "
                    "could not be compared: the difference most likely entered there", read.name))
            elif read.source is None and is_global_state(read.name):
                verdict.unseeded.append(read.name)
            else:
                why = ("no recorded execution wrote it" if read.source is None else
                       f"{'displayed' if read.displayed is not None else 'last written'} by {read.source}")
                verdict.causes.append(Cause(
                    UNEXPLAINED_STATE, f"`{read.name}` held {diff.how}; {why}", read.name))


def environment_differs(read: Read, diff: ValueDiff) -> str:
    """Why a step read another value of an environment variable: the replay's environment (the
    shell ``nbgov replay`` runs in) differs; the recording keeps no value to set it from."""
    where = ("no step of the log set it, so it comes from the environment the replay runs in"
             if read.source is None else f"it was last set by {read.source}, and differs all the same")
    return (f"`{read.name}` holds another value than when recorded ({diff.how}); {where} (the replay kernel "
            "inherits it; the recording keeps no value, only a fingerprint, so set it as it was to reproduce)")


def compare_outputs(original: ExecutionRecord, replay: ExecutionRecord, context: StepContext,
                    verdict: Comparison) -> list[tuple[str, str]]:
    """(name, how it differs) of the variables, displayed result, written files and created
    models that differ, or that only one of the two runs produced; weak ones go to
    ``unverifiable``, name-only model changes to notes."""
    changed: list[tuple[str, str]] = []
    now = {w.name: w for w in replay.writes}
    pairs: list[tuple[str, Fingerprint, Fingerprint | None]] = [
        (w.name, w.fingerprint, now[w.name].fingerprint if w.name in now else None) for w in original.writes]
    if original.result is not None:
        pairs.append((result_name(original.execution_count), original.result, replay.result))
    elif replay.result is not None:
        changed.append((result_name(original.execution_count), "displayed now, not in the recording"))
    recorded = {w.name for w in original.writes}
    for w in replay.writes:
        if w.name in recorded:
            continue
        if is_global_state(w.name):  # a log recorded before these were values makes no claim on them
            verdict.notes.append(Cause(RANDOM_STATE_NOT_RECORDED, f"`{w.name}`: the step drew from or seeded it "
                                       "now; the recording has no state of it to compare (recorded by an nbgov that "
                                       "did not record it, or it could not tell the cell's draws from its imports)",
                                       w.name))
            continue
        if environment_variable(w.name) is not None:  # a log recorded before these were values
            verdict.notes.append(Cause(ENVIRONMENT_NOT_RECORDED, f"`{w.name}`: the step set or removed it now; the "
                                       "recording has no value of it to compare (recorded by an nbgov that did not "
                                       "record environment variables)", w.name))
            continue
        changed.append((w.name, "written now, not in the recording"))
    for name, then, again in pairs:
        if again is None:
            changed.append((name, "not produced again"))
            continue
        diff = diff_values(then, again)
        if (why := context.uncomparable(diff)) is not None:
            verdict.unverifiable.append(f"`{name}`: {why}")
        elif diff.same is None:
            verdict.unverifiable.append(f"`{name}`: {diff.how}")
        elif diff.names_only:
            verdict.notes.append(Cause(diff.note, f"`{name}`: {diff.how}", name))
        elif not diff.same:
            changed.append((name, diff.how))
    for path, file, again_file in _files_differing(original, replay, "write", context, set()):
        if not again_file.removed and is_duckdb(str(context.relocation.path(file))):
            changed += _database_tables(path, original, replay, verdict)
        else:
            changed.append((path, _file_change(file, again_file)))
    changed += _files_written_once(original, replay, context, verdict)
    created = created_models(original)
    for label, model, again_model in _models_differing(original, replay):
        if label in created:
            changed.append((label, f"model sha256 {short(model.sha256)} → {short(again_model.sha256)}"))
    return changed


def failure_cause(original: ExecutionRecord, ename: str | None, evalue: str | None,
                  upstream: Upstream) -> Cause:
    """A replay error: a name an earlier failed step should have made, state the log
    cannot explain, or the cell simply failed."""
    for read in original.reads:  # a result the replay could not display again: `_3`, `Out[3]` fail
        if read.displayed is None:
            continue
        if read.source in upstream.records:
            return Cause(UPSTREAM, f"`{read.name}` was not displayed again as read: step "
                         f"{upstream.records[str(read.source)]}, which displayed it, diverged ({ename}: {evalue})",
                         read.name)
        missing = not_replayed_result(read)
        if missing is not None:
            return Cause(UNEXPLAINED_STATE, f"`{read.name}` was {missing} ({ename}: {evalue})", read.name)
    if ename == "NameError":
        for read in original.reads:
            if f"'{read.name}'" not in str(evalue):
                continue
            if read.source in upstream.records:
                step = upstream.records[str(read.source)]
                return Cause(UPSTREAM, f"`{read.name}` was not made again: step {step} diverged", read.name)
            if read.source is None:
                return Cause(UNEXPLAINED_STATE, f"`{read.name}` is not defined by any recorded execution "
                                                f"({ename}: {evalue})", read.name)
        return Cause(UNEXPLAINED_STATE, f"{ename}: {evalue} (a name the log does not define)")
    return Cause(CELL_FAILED, f"{ename}: {evalue}")


def _status_causes(original: ExecutionRecord, status: str, ename: str | None, evalue: str | None,
                   upstream: Upstream) -> list[Cause]:
    recorded_ok = original.status == "ok"
    if status != "ok" and recorded_ok:
        return [failure_cause(original, ename, evalue, upstream)]
    err = original.error
    recorded = f"{err.type}: {err.message}" if err else "an error"
    if status == "ok" and not recorded_ok:
        return [Cause(CELL_FAILED, f"recorded {recorded} did not happen again")]
    if status != "ok" and not recorded_ok and err and ename and err.type != ename:
        return [Cause(CELL_FAILED, f"{ename}: {evalue} (recorded {err.type})")]
    return []


def _explain_changes(original: ExecutionRecord, changed: list[tuple[str, str]], context: StepContext,
                     upstream: Upstream, verdict: Comparison, read_only_now: list[str]) -> None:
    """Outputs differ although no input was seen to differ: name the earliest suspect."""
    suspects = [(upstream.unverified[str(r.source)], r.name) for r in original.reads
                if r.source in upstream.unverified]
    if read_only_now:
        for path in read_only_now:
            verdict.causes.append(Cause(
                INPUT_FILE_CHANGED, f"{path}: read now, not in the recording", path))
        return
    for name, how in changed:
        if suspects:
            (step, what), read = min(suspects)
            verdict.causes.append(Cause(
                UNVERIFIED_UPSTREAM, f"`{name}` differs ({how}); its input `{read}` comes from step {step}, "
                f"where {what} could not be compared: the difference most likely entered there", name))
        elif verdict.unverifiable_inputs:  # an output that could not be compared explains nothing
            verdict.causes.append(Cause(
                UNVERIFIED_UPSTREAM, f"`{name}` differs ({how}); inputs that could not be compared: "
                f"{'; '.join(verdict.unverifiable_inputs)}", name))
        elif context.hash_seed_random:
            verdict.causes.append(Cause(
                HASH_ORDER, f"`{name}` differs although every input matched ({how}); the recorded session "
                "ran with a random PYTHONHASHSEED, so set and dict-of-set order may differ", name))
        else:
            verdict.causes.append(Cause(
                NONDETERMINISTIC, f"`{name}` differs although every input matched ({how})", name))


def compare_step(original: ExecutionRecord, replay: ExecutionRecord | None, status: str,
                 ename: str | None, evalue: str | None, pre: list[Cause], upstream: Upstream,
                 context: StepContext, before: dict[str, Prefix] | None = None,
                 numbered: bool = True, showed: bool = True) -> Comparison:
    """The verdict on one step: causes (empty = no divergence), notes, uncompared values;
    ``before``: ``written_before`` the step ran; ``numbered``: the replay kernel ran it under
    its recorded execution count (else a result it read as ``Out[3]`` may be another one);
    ``showed``: it printed or showed something besides its result (unknown: True)."""
    findings = (_DATABASE_READ, _DATABASE_READ_UNVERIFIED)
    verdict = Comparison(causes=[c for c in pre if c.kind not in findings])
    verdict.causes += _status_causes(original, status, ename, evalue, upstream)
    verdict.notes += [Cause(DATABASE_BYTES, c.detail, c.name) for c in pre if c.kind == _DATABASE_READ]
    for found in (c for c in pre if c.kind == _DATABASE_READ_UNVERIFIED):
        verdict.unverifiable.append(f"`{found.name}` (read): {found.detail}")
        verdict.unverifiable_inputs.append(f"`{found.name}`: {found.detail}")
    if replay is None:
        if not verdict.causes:
            verdict.causes.append(Cause(NOT_RECORDED, "the replay kernel recorded no lineage for this step"))
        return verdict
    verdict.causes += compare_models(original, replay, upstream)
    flagged = {c.name for c in (*verdict.causes, *pre) if c.name}  # a database read is judged before the step
    for path, file, again in _files_differing(original, replay, "read", context, flagged):
        kind = MODEL_CHANGED if _is_model_file(file, original.models) else INPUT_FILE_CHANGED
        verdict.causes.append(Cause(kind, f"{path}: hash {short(file.hash)} → {short(again.hash)}", path))
    for path in _read_without_content(original, replay, context):
        what = (f"`{path}` (read): recorded with no content (a FIFO or device then, or gone after the cell), "
                "read as a file now: what the recorded run read is not known")
        verdict.unverifiable.append(what)
        verdict.unverifiable_inputs.append(what)
    if not numbered:
        for read in original.reads:
            if read.displayed is not None:
                why = ("the replay kernel could not be given the recorded execution counts, so its output history "
                       "numbers results otherwise")
                verdict.unverifiable.append(f"`{read.name}` (read): {why}")
                verdict.unverifiable_inputs.append(f"`{read.name}`: {why}")
    compare_reads(original, replay, upstream, context, verdict, numbered)
    changed = compare_outputs(original, replay, context, verdict) if status == "ok" else []
    changed = _judge_unseeded(original, replay, changed, verdict, showed)
    verdict.changed = [name for name, _ in changed]
    if changed and not verdict.causes:
        verdict.causes += _appended(original, replay, changed, context, before or {}, upstream)
    if changed and not verdict.causes:
        _explain_changes(original, changed, context, upstream, verdict, _read_only_now(original, replay))
    return verdict


def _judge_unseeded(original: ExecutionRecord, replay: ExecutionRecord, changed: list[tuple[str, str]],
                    verdict: Comparison, showed: bool) -> list[tuple[str, str]]:
    """A global generator that started the step in another state than recorded, a state no
    execution of the log left (seeded from the OS at start). When other outputs differ too, its
    draws are their cause, named by generator. When only the state it left differs, its draws
    differ but every value recorded matched: if the step printed or showed anything (``showed``)
    it is unverifiable, never "reproduced" (what it printed or plotted from them has no
    fingerprint); if it showed nothing, the draws changed nothing recorded or seen (a library
    drawing a seed it does not use: ``Lasso().fit``): a note. When it left the same state, it
    seeded the generator itself (``random.seed(1)`` then draws): a note. Returns ``changed``
    without the states judged here."""
    then = {w.name: w.fingerprint for w in original.writes}
    now = {w.name: w.fingerprint for w in replay.writes}
    others = [change for change in changed if change[0] not in verdict.unseeded]
    for name in verdict.unseeded:
        left = then.get(name)
        again = now.get(name)
        same = left is not None and again is not None and left.same_content(again) is True
        if others:
            verdict.causes.append(Cause(UNSEEDED, f"`{name}`: the step {unseeded(name)}", name))
        elif not same and showed:
            verdict.unverifiable.append(f"`{name}`: the step {unseeded(name)}; what it printed or showed from "
                                        "those draws has no fingerprint, so whether that differs is not known")
        elif not same:
            verdict.notes.append(Cause(UNSEEDED_UNSEEN, f"`{name}`: the step {unseeded(name)}; every value it "
                                       "wrote matched and it printed and showed nothing, so they changed nothing "
                                       "recorded or seen", name))
        else:
            verdict.notes.append(Cause(SEEDED_IN_STEP, f"`{name}`: the state before the step differs from the "
                                       "recording's (no execution of the log left it), and the step left the same "
                                       "state: it seeded it (a draw made before that seeding, in the same step, "
                                       "would not be seen)", name))
    return changed if others else [change for change in changed if change[0] not in verdict.unseeded]


def _read_without_content(original: ExecutionRecord, replay: ExecutionRecord, context: StepContext) -> list[str]:
    """Files the recording read with neither size nor hash, not gone after the cell (a FIFO,
    device or socket then: the recorder notes it) that the replay read as a file with content:
    what the recorded run read is not known, so the step cannot be called reproduced."""
    hashed_now = {f.abspath for f in replay.files if f.mode == "read" and f.hash}
    return [context.relocation.shown(f) for f in original.files
            if f.mode == "read" and f.size is None and f.hash is None and not is_own_source(f)
            and str(context.relocation.path(f)) in hashed_now]


def _read_only_now(original: ExecutionRecord, replay: ExecutionRecord) -> list[str]:
    """Files the replay read that the recording did not: there now, absent then (a file
    appended to, a cache the code reads when it exists), so their content was an input
    only this time."""
    then = {f.path for f in original.files if f.mode == "read"}
    return [f.path for f in replay.files if f.mode == "read" and f.path not in then]
