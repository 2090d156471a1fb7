"""Facts observed around one cell in, one ``ExecutionRecord`` out: pure, no I/O.

The hooks (``recorder``) observe: names and fingerprints, files opened and their
hashes, SQL reports, the displayed result. This module only combines those facts
with the provenance known so far (the execution that last wrote each variable, file
and model version) into the typed record, so the whole shape of a record can be
tested without a shell.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from nbgov.lineage.fingerprint import hash_bytes
from nbgov.lineage.namespace import NamespaceChanges
from nbgov.lineage.random_state import OwnChange
from nbgov.lineage.record import (
    ErrorInfo,
    ExecutionRecord,
    FileAccess,
    FileMode,
    Fingerprint,
    ModelUse,
    Read,
    SqlStatement,
    TableUse,
    Write,
    environment_variable,
    is_global_state,
    record_id,
)
from nbgov.lineage.output_history import DisplayedRead
from nbgov.lineage.sqlreport import ReportedModel, SqlReport


@dataclass(frozen=True)
class ObservedFile:
    """A file the cell opened, with size and hash taken after the cell."""

    path: str
    abspath: str
    mode: FileMode
    size: int | None
    hash: str | None
    removed: bool = False  # a write after which nothing is at the path


@dataclass(frozen=True)
class EarlierWriters:
    """Who last wrote each file and model version in the log's other sessions, and what
    content: a read links to one only when it read that same content (between sessions
    anything may have changed a file, and another database may hold another m@1)."""

    files: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)  # abspath -> (record id, hash)
    models: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (name@version, sha256) -> record id

    @classmethod
    def of(cls, records: Iterable[ExecutionRecord]) -> EarlierWriters:
        files: dict[str, tuple[str, str | None]] = {}
        models: dict[tuple[str, str], str] = {}
        for record in records:
            for file in record.files:
                if file.mode == "write":
                    files[file.abspath] = (record.id, file.hash)
            for model in record.models:
                if model.role == "output":
                    models[model.key, model.sha256] = record.id
                elif model.role == "dropped":
                    models.pop((model.key, model.sha256), None)
        return cls(files, models)


@dataclass
class Provenance:
    """Who wrote what last: record ids by variable name, file abspath and "model@version".

    Names a record summarises (a cell defining 100,000 names) are kept as one set per
    record instead of one entry per name; ``writer`` looks there too, newest first.

    ``seen`` is the last content recorded for each variable (the hash a record read or
    wrote, and that record's execution count): a later read of other content means the
    value changed where no record saw it (see ``unseen_changes``).
    """

    variables: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    _stamps: dict[str, int] = field(default_factory=dict)  # name -> when it was last written one by one
    _bulk: list[tuple[int, frozenset[str], str]] = field(default_factory=list)  # (when, names, record id)
    _clock: int = 0
    seen: dict[str, tuple[str, int]] = field(default_factory=dict)  # name -> (content hash, execution count)
    results: dict[str, Fingerprint] = field(default_factory=dict)  # record id -> the result it displayed
    # a global generator's name -> (record id, execution count, state hash) of its last write
    states: dict[str, tuple[str, int, str | None]] = field(default_factory=dict)
    # the log's other sessions (a restarted kernel, another kernel on the notebook), read when a
    # file or model is first looked for that this session never wrote
    earlier: Callable[[], EarlierWriters] | None = None
    _earlier_found: EarlierWriters | None = None

    def file_writer(self, abspath: str, digest: str | None) -> str | None:
        """The record that last wrote the file: this session's, else another session's that
        wrote exactly the content read now."""
        rid = self.files.get(abspath)
        if rid is not None or digest is None:
            return rid
        found = self._earlier().files.get(abspath)
        return found[0] if found is not None and found[1] == digest else None

    def model_writer(self, key: str, sha256: str) -> str | None:
        """The record that created the model version: this session's, else another session's
        that registered these same bytes."""
        rid = self.models.get(key)
        if rid is not None or not sha256:
            return rid
        return self._earlier().models.get((key, sha256))

    def _earlier(self) -> EarlierWriters:
        if self._earlier_found is None:
            self._earlier_found = self.earlier() if self.earlier is not None else EarlierWriters()
        return self._earlier_found

    def state_writer(self, name: str, state: Fingerprint) -> tuple[str, int] | None:
        """(record id, execution count) of the execution of this session that left a global
        generator in exactly ``state``; None when the last one left another (an import or
        another thread changed it since) or none did (seeded from the OS)."""
        last = self.states.get(name)
        if last is None or state.weak or state.hash is None or last[2] != state.hash:
            return None
        return last[0], last[1]

    def writer(self, name: str) -> str | None:
        """The record that last wrote (and did not since delete) this variable."""
        stamp = self._stamps.get(name, -1)
        for when, names, rid in reversed(self._bulk):
            if when < stamp:
                break
            if name in names:
                return rid
        return self.variables.get(name)

    def note(self, record: ExecutionRecord, also_written: tuple[str, ...] = ()) -> None:
        """Take in a record just appended (``also_written``: names its WriteSummary stands for)."""
        self._clock += 1
        rid = record.id
        for write in record.writes:
            self.variables[write.name] = rid
            self._stamps[write.name] = self._clock
            if is_global_state(write.name):
                self.states[write.name] = (rid, record.execution_count, write.fingerprint.hash)
        for name in record.deletes:
            self.variables.pop(name, None)
            self._stamps[name] = self._clock
        if also_written:
            self._bulk.append((self._clock, frozenset(also_written), rid))
        self._note_seen(record, also_written)
        if record.result is not None:
            self.results[rid] = record.result
        for file in record.files:
            if file.mode == "write":
                self.files[file.abspath] = rid
        for model in record.models:
            if model.role == "output":
                self.models[model.key] = rid
            elif model.role == "dropped":
                self.models.pop(model.key, None)  # nobody's version now, until registered again


    def _note_seen(self, record: ExecutionRecord, also_written: tuple[str, ...]) -> None:
        """The content each name had as this record last saw it (after its writes)."""
        for name, fp in [*((r.name, r.fingerprint) for r in record.reads),
                         *((w.name, w.fingerprint) for w in record.writes)]:
            if fp.weak or fp.hash is None:
                self.seen.pop(name, None)
            else:
                self.seen[name] = (f"{fp.kind}:{fp.hash}", record.execution_count)
        for name in (*record.deletes, *also_written):
            self.seen.pop(name, None)

    def unseen_changes(self, reads: list[Read]) -> list[str]:
        """Notes for the variables read with other content than the last record saw: a change
        made where nbgov could not follow it (a bound method or weak reference kept in
        another name, an iterator or generator, another thread), so in no record."""
        notes = []
        for read in reads:
            known = self.seen.get(read.name)
            fp = read.fingerprint
            if known is None or fp.weak or fp.hash is None or known[0] == f"{fp.kind}:{fp.hash}":
                continue
            if is_global_state(read.name):
                continue  # imports and other threads change them between records: its note says so
            if environment_variable(read.name) is not None:
                notes.append(f"`{read.name}` changed after [{known[1]}] recorded it, where no record saw it (a "
                             "library, os.putenv, a cell whose code names it in a way nbgov cannot read): that "
                             "change is in no record")
                continue
            notes.append(f"`{read.name}` changed after [{known[1]}] recorded it, by code nbgov could not "
                         "follow (a bound method, weak reference, iterator or generator held by another name, "
                         "or another thread): that change is in no record")
        return notes


@dataclass
class CellFacts:
    """Everything observed about one execution, before provenance is attached."""

    session: str
    execution_count: int
    cell_id: str | None
    code: str
    started: str
    duration_s: float
    error: ErrorInfo | None = None
    changes: NamespaceChanges = field(default_factory=NamespaceChanges)
    files: list[ObservedFile] = field(default_factory=list)
    sql: list[SqlReport] = field(default_factory=list)
    models: list[ReportedModel] = field(default_factory=list)  # reported outside a SQL statement
    sql_values: Mapping[str, Fingerprint] = field(default_factory=dict)  # frames and $params read
    packages_added: Mapping[str, str] = field(default_factory=dict)
    result: Fingerprint | None = None
    displayed: tuple[DisplayedRead, ...] = ()  # earlier results read through `_`, `_3`, `Out[3]`
    random_changes: tuple[OwnChange, ...] = ()  # global generators the cell's own code drew from or seeded
    # environment variables the cell read (value at its start) and set (value after): `os.environ['X']`
    environment_reads: tuple[tuple[str, Fingerprint], ...] = ()
    environment_writes: tuple[tuple[str, Fingerprint], ...] = ()
    notes: list[str] = field(default_factory=list)


def build_record(facts: CellFacts, provenance: Provenance) -> ExecutionRecord:
    """The record of one execution; sources come from ``provenance`` as it was before it."""
    changes = facts.changes
    reads = [Read(name, fp, provenance.writer(name)) for name, fp in changes.reads]
    read_names = {r.name for r in reads}
    for name, fp in sorted(facts.sql_values.items()):
        if name not in read_names:
            reads.append(Read(name, fp, provenance.writer(name)))
    reads += [Read(name, fp, provenance.writer(name)) for name, fp in facts.environment_reads]
    notes = [*facts.notes, *provenance.unseen_changes(reads)]  # a displayed result's note comes from _displayed
    if facts.displayed:
        reads += [_displayed(shown, facts.session, provenance, notes) for shown in facts.displayed]
    writes = [*changes.writes, *(Write(name, fp) for name, fp in facts.environment_writes)]
    for change in facts.random_changes:
        source = provenance.state_writer(change.name, change.before)
        reads.append(Read(change.name, change.before, source[0] if source else None))
        writes.append(Write(change.name, change.after))
        notes.append(change.note(source[1] if source else None))
    return ExecutionRecord(
        session=facts.session,
        execution_count=facts.execution_count,
        cell_id=facts.cell_id,
        code=facts.code,
        code_hash=hash_bytes(facts.code.encode("utf-8", "surrogatepass")),
        started=facts.started,
        duration_s=max(0.0, round(facts.duration_s, 6)),
        status="error" if facts.error else "ok",
        error=facts.error,
        reads=tuple(reads),
        writes=tuple(writes),
        deletes=tuple(changes.deletes),
        files=tuple(_files(facts.files, provenance)),
        models=tuple(_models(facts, provenance)),
        sql=tuple(_statement(report, facts.sql_values) for report in facts.sql),
        packages_added=dict(facts.packages_added),
        result=facts.result,
        more_writes=changes.more_writes,
        notes=tuple(dict.fromkeys(notes)),
    )


def _displayed(shown: DisplayedRead, session: str, provenance: Provenance, notes: list[str]) -> Read:
    """A result read through the output history: its source is the execution of this session
    whose result IPython keeps as ``Out[n]``; a note when no record holds it (displayed before
    nbgov was loaded) or when the value is no longer what that execution displayed."""
    source = record_id(session, shown.count)
    displayed = provenance.results.get(source)
    if displayed is None:
        notes.append(f"`{shown.name}` was displayed by execution {shown.count}, which this session's log does not "
                     "hold (it ran before nbgov recorded, or was not recorded): the read names no source")
        return Read(shown.name, shown.fingerprint, None)
    if displayed.same_content(shown.fingerprint) is False:
        notes.append(f"`{shown.name}` holds other content than [{shown.count}] displayed: the value was changed in "
                     "place since (through a name bound to the same object)")
    return Read(shown.name, shown.fingerprint, source)


def _files(observed: list[ObservedFile], provenance: Provenance) -> list[FileAccess]:
    out: list[FileAccess] = []
    for f in observed:
        source = provenance.file_writer(f.abspath, f.hash) if f.mode == "read" else None
        out.append(FileAccess(f.path, f.abspath, f.mode, f.size, f.hash, source, f.removed))
    return out


def _models(facts: CellFacts, provenance: Provenance) -> list[ModelUse]:
    """Per model version, one use (input) and one change: the last the cell made, so the
    record says the state it left (registered: output; removed: dropped). A version this
    execution registered is its output, even if the same cell also scored with it; one it
    scored and then dropped is both an input, from its creator, and dropped."""
    reported = [*facts.models, *(m for report in facts.sql for m in report.models)]
    last_change = {f"{m.name}@{m.version}": m for m in reported if m.role != "input"}
    found: dict[tuple[str, bool], ModelUse] = {}  # (name@version, a change) -> use
    for m in reported:
        key = f"{m.name}@{m.version}"
        change = last_change.get(key)
        if m.role == "input" and change is not None and change.role == "output":
            continue  # made here: not an input from anyone
        slot = (key, m.role != "input")
        if slot in found:
            continue
        kept = m if m.role == "input" or change is None else change
        source = None if kept.role == "output" else provenance.model_writer(key, kept.sha256)
        found[slot] = ModelUse(kept.name, kept.version, kept.sha256, kept.producer, kept.opset, source, kept.role)
    return list(found.values())


def _statement(report: SqlReport, values: Mapping[str, Fingerprint]) -> SqlStatement:
    tables: list[TableUse] = []
    for name in report.tables_read:
        if name in report.frames:
            tables.append(TableUse(name, "read", "notebook", values.get(name)))
        else:
            tables.append(TableUse(name, "read", "database", report.table_fingerprints.get(name)))
    for name in report.tables_written:
        tables.append(TableUse(name, "write", "database", report.table_fingerprints.get(name)))
    for name in report.frames:
        if name not in report.tables_read:
            tables.append(TableUse(name, "read", "notebook", values.get(name)))
    return SqlStatement(
        statement=report.statement,
        kind=report.kind,
        tables_read=report.tables_read,
        tables_written=report.tables_written,
        files_read=report.files_read,
        files_written=report.files_written,
        models=tuple(f"{m.name}@{m.version}" for m in report.models),
        engine=report.engine,
        tables=tuple(tables),
    )
