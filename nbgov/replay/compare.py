"""Compare one recorded execution with its replay and name the likely cause of a difference.

Pure functions over record bodies (the BRIEF's lineage record shape), so the rules can
be read in one place: files and models are checked first (an input that changed
explains everything after it), then the variables read, then the outputs; outputs that
differ although every input matched are nondeterminism.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbgov.lineage import files

INPUT_FILE_CHANGED = "input file changed"
MODEL_CHANGED = "model changed"
NONDETERMINISTIC = "nondeterministic output"
CELL_FAILED = "cell failed"
UNEXPLAINED_STATE = "unexplained state"
UPSTREAM = "upstream divergence"
NOT_RECORDED = "not compared"
MODEL_SUFFIXES = (".onnx",)
_NBGOV_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Cause:
    """One reason a step did not reproduce."""

    kind: str
    detail: str
    name: str | None = None

    def text(self) -> str:
        return f"{self.kind}: {self.detail}"


@dataclass
class Upstream:
    """What earlier replayed steps left different: names and files -> the step that diverged."""

    records: dict[str, int] = field(default_factory=dict)  # original record id -> step
    files: dict[str, int] = field(default_factory=dict)  # abspath -> step


def short(h: Any) -> str:
    return str(h)[:12] if h else "—"


def hash_file(path: Path) -> str | None:
    """The recorder's content hash of a file now, None if it is missing or unreadable."""
    if not path.is_file():
        return None
    try:
        return files.hash_file(str(path))
    except OSError:
        return None


def _is_model_file(file: Mapping[str, Any], models: list[Mapping[str, Any]]) -> bool:
    path = str(file.get("path") or file.get("abspath") or "")
    return path.lower().endswith(MODEL_SUFFIXES) or any(
        m.get("source") and m.get("source") == file.get("source") for m in models
    )


def is_own_source(file: Mapping[str, Any]) -> bool:
    """nbgov's own modules (imported lazily inside a cell) are tooling, not notebook data."""
    try:
        return Path(str(file.get("abspath") or "")).resolve().is_relative_to(_NBGOV_ROOT)
    except (OSError, ValueError):
        return False


def _file_key(file: Mapping[str, Any], cwd: Path) -> Path:
    raw = file.get("abspath") or file.get("path") or ""
    path = Path(str(raw))
    return path if path.is_absolute() else cwd / path


def precheck_files(original: Mapping[str, Any], cwd: Path, upstream: Upstream) -> list[Cause]:
    """Before the step runs: do the files it read still hold what they held then?"""
    causes: list[Cause] = []
    models = list(original.get("models") or [])
    for file in original.get("files") or []:
        if file.get("mode") != "read" or not file.get("hash") or is_own_source(file):
            continue
        path = _file_key(file, cwd)
        now = hash_file(path)
        if now == file["hash"]:
            continue
        shown = str(file.get("path") or path)
        state = "missing" if now is None else f"hash {short(file['hash'])} → {short(now)}"
        step = upstream.files.get(str(path))
        if step is None and file.get("source") in upstream.records:
            step = upstream.records[str(file["source"])]
        if step is not None:
            causes.append(Cause(UPSTREAM, f"{shown} written differently at step {step}", shown))
        elif _is_model_file(file, models):
            causes.append(Cause(MODEL_CHANGED, f"{shown}: {state}", shown))
        else:
            causes.append(Cause(INPUT_FILE_CHANGED, f"{shown}: {state}", shown))
    return causes


def _by(items: Any, key: str) -> dict[str, Mapping[str, Any]]:
    return {str(i.get(key)): i for i in items or [] if isinstance(i, Mapping)}


def _fp_differs(a: Any, b: Any) -> bool | None:
    """True/False when both fingerprints are strong; None when they cannot be compared."""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return None
    if a.get("weak") or b.get("weak") or not a.get("hash") or not b.get("hash"):
        return None
    return bool(a.get("hash") != b.get("hash") or a.get("kind") != b.get("kind"))


def _fp_text(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    def one(fp: Mapping[str, Any]) -> str:
        summary = fp.get("summary")
        return f"{short(fp.get('hash'))}" + (f" ({summary})" if summary else "")

    return f"{one(a)} → {one(b)}"


def created_models(record: Mapping[str, Any]) -> set[str]:
    """"name@version" of the models this execution created (CREATE MODEL): outputs, not inputs."""
    return {str(m) for stmt in record.get("sql") or [] if stmt.get("kind") == "create_model"
            for m in stmt.get("models") or []}


def _changed_models(original: Mapping[str, Any], replay: Mapping[str, Any]
                    ) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    now = _by(replay.get("models"), "name")
    out = []
    for model in original.get("models") or []:
        again = now.get(str(model.get("name")))
        if again is not None and again.get("sha256") != model.get("sha256"):
            out.append((f"{model.get('name')}@{model.get('version')}", model, again))
    return out


def compare_models(original: Mapping[str, Any], replay: Mapping[str, Any],
                   upstream: Upstream) -> list[Cause]:
    """Models the step used (not created) whose bytes differ now."""
    causes = []
    created = created_models(original)
    for label, model, again in _changed_models(original, replay):
        if label in created:
            continue
        detail = f"{label}: sha256 {short(model.get('sha256'))} → {short(again.get('sha256'))}"
        if model.get("source") in upstream.records:
            step = upstream.records[str(model["source"])]
            causes.append(Cause(UPSTREAM, f"{label} created differently at step {step}", label))
        else:
            causes.append(Cause(MODEL_CHANGED, detail, label))
    return causes


def compare_files(original: Mapping[str, Any], replay: Mapping[str, Any], mode: str,
                  already: set[str]) -> list[tuple[str, Mapping[str, Any], Mapping[str, Any]]]:
    """Files of one mode whose hashes differ between the record and the replay."""
    now = _by([f for f in replay.get("files") or [] if f.get("mode") == mode], "abspath")
    out = []
    for file in original.get("files") or []:
        if file.get("mode") != mode or str(file.get("path")) in already or is_own_source(file):
            continue
        again = now.get(str(file.get("abspath")))
        if again is not None and file.get("hash") and again.get("hash") != file.get("hash"):
            out.append((str(file.get("path")), file, again))
    return out


def compare_reads(original: Mapping[str, Any], replay: Mapping[str, Any],
                  upstream: Upstream) -> list[Cause]:
    causes = []
    now = _by(replay.get("reads"), "name")
    for read in original.get("reads") or []:
        name = str(read.get("name"))
        again = now.get(name)
        if again is None or not _fp_differs(read.get("fingerprint"), again.get("fingerprint")):
            continue
        source = read.get("source")
        if source in upstream.records:
            causes.append(Cause(UPSTREAM, f"`{name}` differs since step {upstream.records[str(source)]}",
                                name))
        else:
            why = "no recorded execution wrote it" if source is None else f"last written by {source}"
            causes.append(Cause(
                UNEXPLAINED_STATE,
                f"`{name}` held {_fp_text(read['fingerprint'], again['fingerprint'])}; {why}", name,
            ))
    return causes


def compare_outputs(original: Mapping[str, Any], replay: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, how it differs) of the variables, written files and created models that differ."""
    changed = []
    now = _by(replay.get("writes"), "name")
    for write in original.get("writes") or []:
        name = str(write.get("name"))
        again = now.get(name)
        if again is None:
            changed.append((name, "not written again"))
        elif _fp_differs(write.get("fingerprint"), again.get("fingerprint")):
            changed.append((name, _fp_text(write["fingerprint"], again["fingerprint"])))
    for path, file, again_file in compare_files(original, replay, "write", set()):
        changed.append((path, f"file hash {short(file.get('hash'))} → {short(again_file.get('hash'))}"))
    created = created_models(original)
    for label, model, again_model in _changed_models(original, replay):
        if label in created:
            changed.append((label, f"model sha256 {short(model.get('sha256'))} → "
                                   f"{short(again_model.get('sha256'))}"))
    return changed


def failure_cause(original: Mapping[str, Any], ename: str | None, evalue: str | None,
                  upstream: Upstream) -> Cause:
    """A replay error: a name an earlier failed step should have made, state the log
    cannot explain, or the cell simply failed."""
    if ename == "NameError":
        for read in original.get("reads") or []:
            name = str(read.get("name"))
            if f"'{name}'" not in str(evalue):
                continue
            if read.get("source") in upstream.records:
                step = upstream.records[str(read["source"])]
                return Cause(UPSTREAM, f"`{name}` was not made again: step {step} diverged", name)
            if read.get("source") is None:
                return Cause(UNEXPLAINED_STATE, f"`{name}` is not defined by any recorded execution "
                                                f"({ename}: {evalue})", name)
        return Cause(UNEXPLAINED_STATE, f"{ename}: {evalue} (a name the log does not define)")
    return Cause(CELL_FAILED, f"{ename}: {evalue}")


def compare_step(original: Mapping[str, Any], replay: Mapping[str, Any] | None,
                 status: str, ename: str | None, evalue: str | None,
                 pre: list[Cause], upstream: Upstream) -> tuple[list[Cause], list[str]]:
    """All causes for one step (empty = reproduced) and the outputs that differ."""
    causes = list(pre)
    recorded_ok = original.get("status", "ok") == "ok"
    if status != "ok" and recorded_ok:
        causes.append(failure_cause(original, ename, evalue, upstream))
    elif status == "ok" and not recorded_ok:
        err = original.get("error") or {}
        causes.append(Cause(CELL_FAILED, f"recorded error {err.get('type')}: {err.get('message')} "
                                         "did not happen again"))
    elif status != "ok" and not recorded_ok:
        err = original.get("error") or {}
        if err.get("type") and ename and err.get("type") != ename:
            causes.append(Cause(CELL_FAILED, f"{ename}: {evalue} (recorded {err.get('type')})"))
    if replay is None:
        if not causes:
            causes.append(Cause(NOT_RECORDED, "the replay kernel recorded no lineage for this step"))
        return causes, []
    causes += compare_models(original, replay, upstream)
    flagged = {c.name for c in causes if c.name}
    for path, file, again in compare_files(original, replay, "read", flagged):
        kind = MODEL_CHANGED if _is_model_file(file, list(original.get("models") or [])) else INPUT_FILE_CHANGED
        causes.append(Cause(kind, f"{path}: hash {short(file.get('hash'))} → {short(again.get('hash'))}",
                            path))
    causes += compare_reads(original, replay, upstream)
    changed = compare_outputs(original, replay) if status == "ok" else []
    if changed and not causes:
        for name, how in changed:
            causes.append(Cause(NONDETERMINISTIC,
                                f"`{name}` differs although every input matched ({how})", name))
    return causes, [name for name, _ in changed]
