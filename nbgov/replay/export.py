"""`nbgov export`: the recorded lineage in standard shapes (OpenLineage, W3C PROV-JSON).

OpenLineage: the notebook is the job; each kernel session is a parent run and each
execution a run (one COMPLETE or FAIL event). Its inputs and outputs are datasets:
notebook variables and the displayed result (``Out[n]``), files, tables the SQL touched
and ONNX models, each with a version facet carrying its content hash (a model's
sha256). A model is an output of the execution that registered that version and an
input of those that scored with it. Events are built with openlineage-python's own
classes, so its validators check them.

PROV-JSON: executions are activities, values, files, tables and models are entities;
``used`` and ``wasGeneratedBy`` follow the same roles.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    lifecycle_state_change_dataset,
    parent_run,
    source_code_job,
    sql_job,
)
from openlineage.client.serde import Serde

from nbgov import __version__
from nbgov.lineage.record import ExecutionRecord, Fingerprint, LogEntry, SessionInfo, result_name

PRODUCER = f"https://pypi.org/project/nbgov/{__version__}"
NAMESPACE = "nbgov"
MODEL_NAMESPACE = "nbgov-model"
FACET_SCHEMA = "https://pypi.org/project/nbgov/#/facets/{name}.json"
_RUN_NS = uuid.UUID("6f1c7a52-3d0e-4c55-9a55-6e62676f7601")


@attr.define
class NbgovFingerprintDatasetFacet(DatasetFacet):
    """Our content fingerprint of a notebook variable, file, table or result at that moment."""

    kind: str
    hash: str | None = attr.field(default=None)
    weak: bool = attr.field(default=False)
    summary: str = attr.field(default="")

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA.format(name="NbgovFingerprintDatasetFacet")


@attr.define
class NbgovModelDatasetFacet(DatasetFacet):
    """One registered version of an ONNX model: catalog version, bytes hash, who made it."""

    version: int
    sha256: str
    onnxProducer: str | None = attr.field(default=None)  # noqa: N815 - OpenLineage facets are camelCase
    opset: int | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA.format(name="NbgovModelDatasetFacet")


@dataclass(frozen=True)
class Dataset:
    """One input or output of an execution, in OpenLineage's terms."""

    namespace: str
    name: str
    output: bool
    version: str | None = None
    fingerprint: Fingerprint | None = None
    model: NbgovModelDatasetFacet | None = None
    removed: bool = False  # a file the execution removed or renamed away, a model version it dropped

    def facets(self) -> dict[str, DatasetFacet]:
        facets: dict[str, DatasetFacet] = {}
        if self.version:
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=self.version)
        if self.removed:
            facets["lifecycleStateChange"] = lifecycle_state_change_dataset.LifecycleStateChangeDatasetFacet(
                lifecycleStateChange=lifecycle_state_change_dataset.LifecycleStateChange.DROP)
        if self.fingerprint is not None:
            fp = self.fingerprint
            facets["nbgov_fingerprint"] = NbgovFingerprintDatasetFacet(fp.kind, fp.hash, fp.weak, fp.summary)
        if self.model is not None:
            facets["nbgov_model"] = self.model
        return facets


def datasets(record: ExecutionRecord, notebook: str) -> Iterator[Dataset]:
    """Everything an execution read and wrote, as datasets."""
    values = f"nbgov://{notebook}"
    for read in record.reads:
        yield Dataset(values, read.name, False, read.fingerprint.hash, read.fingerprint)
    for write in record.writes:
        yield Dataset(values, write.name, True, write.fingerprint.hash, write.fingerprint)
    if record.result is not None:
        yield Dataset(values, result_name(record.execution_count), True, record.result.hash, record.result)
    for file in record.files:
        yield Dataset("file", file.abspath, file.mode == "write", file.hash, removed=file.removed)
    for stmt in record.sql:
        fingerprints: dict[tuple[str, str], Fingerprint | None] = {
            (t.name, t.mode): t.fingerprint for t in stmt.tables if t.origin == "database"
        }
        frames = {t.name for t in stmt.tables if t.origin == "notebook"}
        for mode, names in (("read", stmt.tables_read), ("write", stmt.tables_written)):
            for name in names:
                if name in frames:
                    continue  # a notebook DataFrame: already an input as a variable
                fp = fingerprints.get((name, mode))
                yield Dataset(f"{stmt.engine}://nbgov", name, mode == "write", fp.hash if fp else None, fp)
    for model in record.models:
        facet = NbgovModelDatasetFacet(model.version, model.sha256, model.producer, model.opset)
        yield Dataset(MODEL_NAMESPACE, model.name, model.role != "input", model.sha256, None, facet,
                      removed=model.role == "dropped")


def run_id(record_id: str) -> str:
    """A stable UUID for a record id, so re-exports give the same run ids."""
    return str(uuid.uuid5(_RUN_NS, record_id))


def _session_run_id(session: str) -> str:
    try:
        return str(uuid.UUID(hex=session))
    except ValueError:
        return run_id(f"session:{session}")


def _end_time(record: ExecutionRecord) -> str:
    try:
        start = datetime.fromisoformat(record.started.replace("Z", "+00:00"))
    except ValueError:
        start = datetime.now(timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    try:
        return (start + timedelta(seconds=record.duration_s)).isoformat()
    except OverflowError:  # started near year 9999: the end is past what a datetime holds
        return datetime.max.replace(tzinfo=timezone.utc).isoformat()


def _records(entries: Sequence[LogEntry]) -> list[ExecutionRecord]:
    return [e.record for e in entries if e.record is not None]


def openlineage_events(notebook: str, entries: Sequence[LogEntry]) -> list[dict[str, Any]]:
    """One run event per execution, as JSON-ready dicts."""
    events = []
    for record in _records(entries):
        run_facets: dict[str, RunFacet] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=_session_run_id(record.session)),
                job=parent_run.Job(namespace=NAMESPACE, name=notebook),
            ),
        }
        if record.error is not None:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{record.error.type}: {record.error.message}", programmingLanguage="python",
            )
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="NBGOV",
                                                     jobType="NOTEBOOK_CELL"),
            "sourceCode": source_code_job.SourceCodeJobFacet(language="python", sourceCode=record.code),
        }
        if record.sql:
            dialect = record.sql[0].engine
            job_facets["sql"] = sql_job.SQLJobFacet(query=";\n".join(s.statement for s in record.sql), dialect=dialect)
        found = list(datasets(record, notebook))
        event = RunEvent(
            eventType=RunState.FAIL if record.status == "error" else RunState.COMPLETE,
            eventTime=_end_time(record),
            run=Run(runId=run_id(record.id), facets=run_facets),
            job=Job(namespace=NAMESPACE, name=notebook, facets=job_facets),
            inputs=[InputDataset(d.namespace, d.name, facets=d.facets()) for d in found if not d.output],
            outputs=[OutputDataset(d.namespace, d.name, facets=d.facets()) for d in found if d.output],
            producer=PRODUCER,
        )
        events.append(Serde.to_dict(event))
    return events


_PROV_PREFIXES = {
    "nbgov": "https://pypi.org/project/nbgov/#", "var": "urn:nbgov:var:", "file": "urn:nbgov:file:",
    "table": "urn:nbgov:table:", "model": "urn:nbgov:model:", "run": "urn:nbgov:run:",
    "session": "urn:nbgov:session:",
}


def _qid(prefix: str, *parts: Any) -> str:
    return f"{prefix}:" + "/".join(str(p).replace(" ", "_") for p in parts)


def _prov_entity(d: Dataset) -> tuple[str, dict[str, str]]:
    """A dataset as a PROV entity id and attributes."""
    if d.model is not None:
        return _qid("model", d.name, d.model.version), {
            "prov:label": d.name, "nbgov:version": str(d.model.version), "nbgov:sha256": d.model.sha256,
            "nbgov:producer": str(d.model.onnxProducer), "nbgov:opset": str(d.model.opset)}
    if d.namespace == "file" and d.removed:
        return _qid("file", d.name, "removed"), {"prov:label": d.name, "nbgov:removed": "true"}
    if d.namespace == "file":
        return _qid("file", d.name, d.version or "unknown"), {"prov:label": d.name, "nbgov:hash": str(d.version)}
    if d.namespace.startswith("nbgov://"):
        fp = d.fingerprint
        return _qid("var", d.name, d.version or "unknown"), {
            "prov:label": d.name, "nbgov:kind": fp.kind if fp else "", "nbgov:fingerprint": str(d.version),
            "nbgov:summary": fp.summary if fp else ""}
    return _qid("table", d.namespace.split(":", 1)[0], d.name, d.version or "unknown"), {
        "prov:label": d.name, "nbgov:fingerprint": str(d.version)}


def prov_document(notebook: str, entries: Sequence[LogEntry]) -> dict[str, Any]:
    """W3C PROV-JSON: executions are activities; values, files, tables and models are entities."""
    doc: dict[str, Any] = {
        "prefix": dict(_PROV_PREFIXES), "entity": {}, "activity": {}, "agent": {}, "used": {},
        "wasGeneratedBy": {}, "wasInvalidatedBy": {}, "wasAssociatedWith": {}, "wasInformedBy": {},
    }
    counter = 0

    def relation(kind: str, value: dict[str, Any]) -> None:
        nonlocal counter
        counter += 1
        doc[kind][f"_:{kind}{counter}"] = value

    for entry in entries:
        if isinstance(entry.body, SessionInfo):
            doc["agent"][_qid("session", entry.body.session)] = {
                "prov:type": {"$": "prov:SoftwareAgent", "type": "prov:QUALIFIED_NAME"},
                "nbgov:python": entry.body.python, "nbgov:started": entry.body.started,
                "nbgov:hash_seed": str(entry.body.hash_seed), "nbgov:notebook": notebook,
            }
    for record in _records(entries):
        act = _qid("run", record.id)
        doc["activity"][act] = {
            "prov:startTime": record.started, "prov:endTime": _end_time(record),
            "prov:label": f"{record.label} cell {record.cell_id}", "nbgov:code": record.code,
            "nbgov:status": record.status, "nbgov:code_hash": record.code_hash,
        }
        relation("wasAssociatedWith", {"prov:activity": act, "prov:agent": _qid("session", record.session)})
        for d in datasets(record, notebook):
            entity, attributes = _prov_entity(d)
            if d.model is not None and d.removed:  # a dropped model version: it ends here
                doc["entity"].setdefault(entity, attributes)
                relation("wasInvalidatedBy", {"prov:entity": entity, "prov:activity": act})
            elif d.output:
                doc["entity"][entity] = attributes
                relation("wasGeneratedBy", {"prov:entity": entity, "prov:activity": act})
            else:
                doc["entity"].setdefault(entity, attributes)
                relation("used", {"prov:activity": act, "prov:entity": entity})
        informants = {r.source for r in record.reads} | {f.source for f in record.files}
        informants |= {m.source for m in record.models if m.role == "input"}
        for source in sorted(s for s in informants if s):
            relation("wasInformedBy", {"prov:informed": act, "prov:informant": _qid("run", source)})
    return {k: v for k, v in doc.items() if v}
