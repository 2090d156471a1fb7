"""`nbgov verify`: is the recorded lineage the untouched append-only log?

Three checks: the sidecar's own hash chain (nbgov.lineage.store.verify_chain); the
notebook metadata against the sidecar; and, when asked, SSH signatures of chain heads
(nbgov.replay.sign). The sidecar is the authority and the metadata a copy delivered
to the notebook, so the two can differ without anyone tampering:

- an entry in the sidecar but not in the notebook was *not delivered to this
  notebook* (run after the last save, by another kernel on the same notebook, or a
  repair the store wrote): a notice;
- an entry in the notebook but not in the sidecar, that links into the chain and
  whose execution the sidecar does not hold in another form, was *never written to
  the sidecar* (the kernel could not write it, e.g. a full disk) or was cut from it
  since: a notice, and a problem with ``--require-sidecar`` (which asks that the
  sidecar hold the whole log: an empty or cut-down sidecar must not pass it);
- an entry whose own hash is wrong, or that holds an execution the sidecar holds
  differently, or that links to nothing, is *tampering*: a problem (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbgov.errors import LineageError
from nbgov.lineage import notebook_meta
from nbgov.lineage.compact import Lookup
from nbgov.lineage.store import (
    REPAIR,
    ZERO_HASH,
    count_entries,
    SidecarRead,
    SidecarRefused,
    malformation,
    read_log,
    safe_entry_hash,
    verify_chain,
)
from nbgov.replay.source import choose_sidecar, typed_execution, typed_session

Entry = Mapping[str, Any]


@dataclass
class VerifyResult:
    """Problems (tampering, corruption or inconsistency) and notices (benign facts) found."""

    notebook: Path
    sidecar: Path | None
    sidecar_entries: int = 0
    metadata_entries: int = 0
    counts: str = ""
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    signed_through: int = -1  # with allowed signers: the newest entry one of them signed (replay runs no later one)

    @property
    def exit_code(self) -> int:
        return 1 if self.problems else 0


def describe(entry: Entry) -> str:
    """'entry 4 (execution [3] of cell ab12)' — enough for a reviewer to find it."""
    seq = entry.get("seq", "?")
    body = entry.get("body")
    if not isinstance(body, Mapping):
        return f"entry {seq}"
    if entry.get("kind") == "session":
        return f"entry {seq} (session {str(body.get('session', '?'))[:8]})"
    if entry.get("kind") == REPAIR:
        return f"entry {seq} (repair)"
    cell = body.get("cell_id")
    where = f" of cell {cell}" if cell else ""
    return f"entry {seq} (execution [{body.get('execution_count', '?')}]{where})"


def identity(entry: Entry) -> str | None:
    """What an entry records, independent of its place in the chain: one execution of one
    session, or one session's start. Two entries with one identity must be identical."""
    body = entry.get("body")
    if not isinstance(body, Mapping):
        return None
    if entry.get("kind") == "session":
        return f"session:{body.get('session')}"
    if entry.get("kind") == "execution":
        return f"execution:{body.get('session')}:{body.get('execution_count')}"
    return None


@dataclass
class _Sidecar:
    """The sidecar's entries indexed for the metadata comparison."""

    by_hash: dict[str, Entry]
    by_identity: dict[str, Entry]

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> _Sidecar:
        by_hash: dict[str, Entry] = {}
        by_identity: dict[str, Entry] = {}
        for entry in entries:
            if malformation(entry) is None:
                by_hash.setdefault(str(entry["hash"]), entry)
                key = identity(entry)
                if key is not None:
                    by_identity.setdefault(key, entry)
        return cls(by_hash, by_identity)


def _runs_text(seqs: Iterable[int]) -> str:
    """'5, 7-9' for the sequence numbers 5, 7, 8, 9."""
    ordered = sorted(set(seqs))
    if not ordered:
        return ""
    runs = [(ordered[0], ordered[0])]
    for seq in ordered[1:]:
        if seq == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def check_metadata_entries(entries: Sequence[Entry], where: str, sidecar: _Sidecar,
                           known_hashes: set[str], result: VerifyResult) -> list[Entry]:
    """Each metadata entry against the sidecar; returns those the sidecar never got."""
    undelivered: list[Entry] = []
    for entry in entries:
        wrong = malformation(entry)
        if wrong:
            result.problems.append(f"{where}: {describe(entry)} malformed ({wrong})")
            continue
        name = describe(entry)
        if safe_entry_hash(entry) != entry["hash"]:
            result.problems.append(f"{where}: {name} edited (hash mismatch)")
            continue
        twin = sidecar.by_hash.get(str(entry["hash"]))
        if twin is not None:
            if dict(twin) != dict(entry):
                result.problems.append(f"{where}: {name} differs from the sidecar's {describe(twin)} (edited)")
            continue
        key = identity(entry)
        other = sidecar.by_identity.get(key) if key else None
        if other is not None:
            result.problems.append(f"{where}: {name} differs from the sidecar's {describe(other)} "
                                   "(one of them was edited)")
        elif int(entry["seq"]) == 0 and entry["prev"] == ZERO_HASH or entry["prev"] in known_hashes:
            undelivered.append(entry)
        else:
            result.problems.append(f"{where}: {name} links to an entry found nowhere (inserted)")
    return undelivered


def report_unbacked(undelivered: Sequence[Entry], result: VerifyResult) -> None:
    """Metadata entries a sidecar lacks: the notebook says more happened than the log can
    show. A full disk (the kernel warned then) or a sidecar cut down since (its last lines
    deleted) look the same from here; either way those records cannot be checked, so the
    lineage is inconsistent (exit 1), as CONTRACT says, and replay refuses it with verify."""
    if not undelivered:
        return
    one = len(undelivered) == 1
    seqs = _runs_text(int(e["seq"]) for e in undelivered)
    result.problems.append(
        f"notebook metadata: {describe(undelivered[0]) if one else f'entries {seqs}'} "
        f"{'is' if one else 'are'} not in the sidecar (cut from the sidecar since, or never written to it: "
        f"the kernel could not write {'it' if one else 'them'}, e.g. a full disk); "
        f"{'it links' if one else 'they link'} into the chain but cannot be checked against it")


def check_metadata(meta: notebook_meta.NotebookLineage, cells: dict[str, dict[str, Any]],
                   sidecar_entries: list[dict[str, Any]], result: VerifyResult) -> None:
    """Notebook and cell metadata against the sidecar entries."""
    sidecar = _Sidecar.of(sidecar_entries)
    for entry in meta.sessions:
        if entry["kind"] != "session":
            result.problems.append(f"notebook metadata: {describe(entry)} listed as a session")
    for entry in meta.log:
        if entry["kind"] != "execution":
            result.problems.append(f"notebook metadata: {describe(entry)} listed as an execution")
    entries = meta.entries()
    known = set(sidecar.by_hash) | {str(e["hash"]) for e in entries}
    undelivered = check_metadata_entries(entries, "notebook metadata", sidecar, known, result)
    report_unbacked(undelivered, result)
    in_notebook = {str(e["hash"]) for e in entries}
    absent = [e for e in sidecar_entries if malformation(e) is None and str(e["hash"]) not in in_notebook]
    if absent:
        repairs = [e for e in absent if e["kind"] == REPAIR]
        result.notices.append(
            f"sidecar {'entry' if len(absent) == 1 else 'entries'} {_runs_text(int(e['seq']) for e in absent)} "
            "not delivered to this notebook (run after it was last saved, or by another kernel on the "
            f"same notebook{', or repairs the store wrote' if repairs else ''})")
    for cell_id, entry in cells.items():
        where = f"cell {cell_id} metadata"
        check_metadata_entries([entry], where, sidecar, known, result)
        recorded_cell = entry["body"].get("cell_id")
        if recorded_cell and str(recorded_cell) != cell_id:
            result.problems.append(f"{where}: holds {describe(entry)} of another cell (moved)")


def check_metadata_alone(entries: Sequence[Entry], result: VerifyResult) -> None:
    """Without a sidecar: each entry's own hash and its link to an entry in the notebook."""
    hashes = {str(e["hash"]) for e in entries}
    for entry in entries:
        name = describe(entry)
        if safe_entry_hash(entry) != entry["hash"]:
            result.problems.append(f"notebook metadata: {name} edited (hash mismatch)")
        elif int(entry["seq"]) == 0:
            if entry["prev"] != ZERO_HASH:
                result.problems.append(f"notebook metadata: {name} is not the start of a log (inserted)")
        elif entry["prev"] not in hashes:
            result.problems.append(
                f"notebook metadata: {name} links to entry {int(entry['seq']) - 1}, which is not in the "
                "notebook (deleted, or written by another kernel: the sidecar would tell)")


def check_records(entries: Iterable[Entry], where: str, result: VerifyResult) -> None:
    """Every session and execution body reads as its typed record (what replay will load)."""
    for entry in entries:
        if malformation(entry) is not None:
            continue
        try:
            if entry["kind"] == "execution":
                typed_execution(dict(entry))
            elif entry["kind"] == "session":
                typed_session(dict(entry))
        except LineageError as exc:
            result.problems.append(f"{where}: {exc}")


def note_counts_going_back(entries: Iterable[Entry], where: str, result: VerifyResult) -> None:
    """A notice (not a failure) where an execution's count is lower than an earlier one of
    its session: a kernel's counter only grows (a cell run without history keeps it), unless
    code reset it, so the log was edited or the counter reset; a valid chain cannot tell."""
    last: dict[str, tuple[int, int]] = {}  # session -> (highest count so far, its entry's seq)
    going_back: list[str] = []
    for entry in entries:
        body = entry.get("body")
        if entry.get("kind") != "execution" or malformation(entry) is not None or not isinstance(body, Mapping):
            continue
        session, count = body.get("session"), body.get("execution_count")
        if type(session) is not str or type(count) is not int:
            continue
        highest = last.get(session)
        if highest is not None and count < highest[0]:
            going_back.append(f"entry {entry.get('seq')} has execution count {count} after entry {highest[1]}'s "
                              f"{highest[0]}")
        if highest is None or count > highest[0]:
            last[session] = (count, int(entry.get("seq", -1)))
    if going_back:
        more = f" (and {len(going_back) - 1} more)" if len(going_back) > 1 else ""
        result.notices.append(f"{where}: execution counts go back within a kernel session: {going_back[0]}{more}; "
                              "the log was edited, or code reset the kernel's counter")


def check_sidecar(read: SidecarRead, result: VerifyResult) -> None:
    """The sidecar's lines and chain; repairs and a torn tail are said, not failed."""
    result.problems += [f"sidecar: {p.message}" for p in read.problems]
    result.problems += [f"sidecar: {p.message}" for p in verify_chain(read.entries)]
    check_records(read.entries, "sidecar", result)
    note_counts_going_back(read.entries, "sidecar", result)
    for entry in read.entries:
        if entry.get("kind") == REPAIR and isinstance(entry.get("body"), Mapping):
            body = entry["body"]
            result.notices.append(
                f"sidecar entry {entry.get('seq')}: a line cut short by a crash was repaired "
                f"({body.get('cut_bytes')} bytes removed, xxh3 {str(body.get('cut_xxh3'))[:16]})")
    if read.torn_tail:
        result.notices.append(f"the sidecar ends in a line cut short by a crash ({read.torn_tail} bytes); "
                              "the next append repairs it")


def verify(notebook: Path, require_sidecar: bool = False, allowed_signers: Path | None = None) -> VerifyResult:
    """Check one notebook's lineage; LineageError when there is nothing to check."""
    nb = notebook_meta.read_notebook(notebook)
    problems: list[str] = []
    try:
        meta = notebook_meta.read_lineage(nb)
    except LineageError as exc:
        meta = None
        problems.append(f"notebook metadata: {exc}")
    choice = choose_sidecar(notebook, meta)
    problems += choice.problems
    try:
        read = read_log(choice.path)
    except SidecarRefused as exc:
        read = SidecarRead(exists=False)
        problems.append(f"sidecar refused: {exc}")
    if meta is not None and read.exists:
        # compact entries may refer to entries this notebook lacks: the sidecar holds them
        meta = notebook_meta.read_lineage(nb, fallback=Lookup.of(e for e in read.entries if malformation(e) is None))
    if meta is not None:
        problems += [f"notebook metadata: {line} (edited, or cut from its log)" for line in meta.unreadable]
    try:
        cells = notebook_meta.cell_latest(nb, meta, elsewhere=[e for e in read.entries if malformation(e) is None])
    except LineageError as exc:
        cells = {}
        problems.append(f"cell metadata: {exc}")
    result = VerifyResult(notebook, choice.path if read.exists else None, problems=problems,
                          notices=list(choice.notices))
    if not read.exists:
        if meta is None and not problems:
            if require_sidecar:
                result.problems.append(f"no sidecar at {choice.path} and no lineage in the notebook")
                return result
            raise LineageError(f"{notebook}: no lineage recorded (no 'nbgov' metadata, no sidecar)")
        missing = f"no sidecar at {choice.path.parent.name}/{choice.path.name}"
        if require_sidecar:
            result.problems.append(f"{missing} (--require-sidecar)")
        else:
            result.notices.append(f"{missing}: checked the metadata's own chain only")
        if meta is not None:
            entries = meta.entries()
            result.metadata_entries = len(entries)
            result.counts = count_entries(entries)
            check_metadata_alone(entries, result)
            check_records(entries, "notebook metadata", result)
            note_counts_going_back(entries, "notebook metadata", result)
        _check_signatures(notebook, choice.path, [], allowed_signers, result)
        return result
    shown = f"{choice.path.parent.name}/{choice.path.name}"
    if not read.entries and not read.problems and not read.torn_tail:
        if meta is None and not problems and not require_sidecar:
            raise LineageError(f"{notebook}: no lineage recorded (no 'nbgov' metadata, and the sidecar "
                               f"{shown} holds no entries)")
        if require_sidecar:
            result.problems.append(f"the sidecar {shown} holds no entries (--require-sidecar)")
        else:
            result.notices.append(f"the sidecar {shown} holds no entries")
    result.sidecar_entries = len(read.entries)
    result.counts = count_entries(read.entries)
    check_sidecar(read, result)
    if meta is None:
        result.notices.append("the notebook has no 'nbgov' metadata: checked the sidecar only")
    else:
        result.metadata_entries = len(meta.entries())
        check_metadata(meta, cells, read.entries, result)
    _check_signatures(notebook, choice.path, read.entries, allowed_signers, result)
    return result


def _check_signatures(notebook: Path, sidecar: Path, entries: list[dict[str, Any]],
                      allowed_signers: Path | None, result: VerifyResult) -> None:
    from nbgov.replay.sign import check_signatures

    report = check_signatures(notebook, sidecar, entries, allowed_signers)
    result.problems += report.problems
    result.notices += report.notices
    result.signers += report.signers
    result.signed_through = report.signed_through
