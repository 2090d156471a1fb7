"""`nbgov export`: the recorded lineage in standard shapes (OpenLineage, W3C PROV-JSON).

OpenLineage: the notebook is the job; each kernel session is a parent run and each
execution a run (one COMPLETE or FAIL event) whose inputs/outputs are datasets for
variables, files and SQL tables, with version facets carrying our fingerprints. The
events are built with openlineage-python's own classes, so its validators check them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    DatasetFacet,
    RunFacet,
    dataset_version_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    source_code_job,
    sql_job,
)
from openlineage.client.serde import Serde

from nbgov import __version__
from nbgov.replay.source import LineageLog

PRODUCER = f"https://pypi.org/project/nbgov/{__version__}"
NAMESPACE = "nbgov"
FACET_SCHEMA = "https://pypi.org/project/nbgov/#/facets/{name}.json"
_RUN_NS = uuid.UUID("6f1c7a52-3d0e-4c55-9a55-6e62676f7601")


@attr.define
class NbgovModelsRunFacet(RunFacet):
    """The ONNX models an execution used (name, version, sha256, producer, opset)."""

    models: list[dict[str, Any]] = attr.field(factory=list)
    _additional_skip_redact: ClassVar[list[str]] = ["models"]

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA.format(name="NbgovModelsRunFacet")


@attr.define
class NbgovFingerprintDatasetFacet(DatasetFacet):
    """Our content fingerprint of a notebook variable, file or table at that moment."""

    kind: str
    hash: str | None = attr.field(default=None)
    weak: bool = attr.field(default=False)
    summary: str = attr.field(default="")

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA.format(name="NbgovFingerprintDatasetFacet")


def run_id(record_id: str) -> str:
    """A stable UUID for a record id, so re-exports give the same run ids."""
    return str(uuid.uuid5(_RUN_NS, record_id))


def _session_run_id(session: str) -> str:
    try:
        return str(uuid.UUID(hex=session))
    except ValueError:
        return run_id(f"session:{session}")


def _end_time(body: Mapping[str, Any]) -> str:
    started = str(body.get("started") or "")
    try:
        start = datetime.fromisoformat(started.replace("Z", "+00:00"))
    except ValueError:
        start = datetime.now(timezone.utc)
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return (start + timedelta(seconds=float(body.get("duration_s") or 0))).isoformat()


def _version_facets(fp_hash: str | None, fp: Mapping[str, Any] | None) -> dict[str, DatasetFacet]:
    facets: dict[str, DatasetFacet] = {}
    if fp_hash:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=fp_hash)
    if fp is not None:
        facets["nbgov_fingerprint"] = NbgovFingerprintDatasetFacet(
            kind=str(fp.get("kind", "")), hash=fp.get("hash"), weak=bool(fp.get("weak")),
            summary=str(fp.get("summary", "")),
        )
    return facets


def _datasets(body: Mapping[str, Any], notebook_ns: str) -> tuple[list[InputDataset], list[OutputDataset]]:
    inputs: list[InputDataset] = []
    outputs: list[OutputDataset] = []
    for read in body.get("reads") or []:
        fp = read.get("fingerprint") or {}
        inputs.append(InputDataset(notebook_ns, str(read.get("name")),
                                   facets=_version_facets(fp.get("hash"), fp)))
    for write in body.get("writes") or []:
        fp = write.get("fingerprint") or {}
        outputs.append(OutputDataset(notebook_ns, str(write.get("name")),
                                     facets=_version_facets(fp.get("hash"), fp)))
    for file in body.get("files") or []:
        facets = _version_facets(file.get("hash"), None)
        name = str(file.get("abspath") or file.get("path"))
        if file.get("mode") == "write":
            outputs.append(OutputDataset("file", name, facets=facets))
        else:
            inputs.append(InputDataset("file", name, facets=facets))
    for stmt in body.get("sql") or []:
        inputs += [InputDataset("duckdb://nbgov", str(t)) for t in stmt.get("tables_read") or []]
        outputs += [OutputDataset("duckdb://nbgov", str(t)) for t in stmt.get("tables_written") or []]
    return inputs, outputs


def openlineage_events(log: LineageLog) -> list[dict[str, Any]]:
    """One run event per execution, as JSON-ready dicts."""
    notebook = log.notebook.name
    notebook_ns = f"nbgov://{notebook}"
    events = []
    for entry in log.executions():
        body = entry["body"]
        run_facets: dict[str, RunFacet] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=_session_run_id(str(body.get("session")))),
                job=parent_run.Job(namespace=NAMESPACE, name=notebook),
            ),
        }
        if body.get("models"):
            run_facets["nbgov_models"] = NbgovModelsRunFacet(models=[dict(m) for m in body["models"]])
        error = body.get("error")
        if body.get("status") == "error" and error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{error.get('type')}: {error.get('message')}", programmingLanguage="python",
            )
        job_facets: dict[str, Any] = {
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="NBGOV",
                                                     jobType="NOTEBOOK_CELL"),
            "sourceCode": source_code_job.SourceCodeJobFacet(language="python",
                                                             sourceCode=str(body.get("code", ""))),
        }
        statements = [str(s.get("statement")) for s in body.get("sql") or []]
        if statements:
            job_facets["sql"] = sql_job.SQLJobFacet(query=";\n".join(statements), dialect="duckdb")
        inputs, outputs = _datasets(body, notebook_ns)
        event = RunEvent(
            eventType=RunState.FAIL if body.get("status") == "error" else RunState.COMPLETE,
            eventTime=_end_time(body),
            run=Run(runId=run_id(str(body.get("id"))), facets=run_facets),
            job=Job(namespace=NAMESPACE, name=notebook, facets=job_facets),
            inputs=inputs, outputs=outputs, producer=PRODUCER,
        )
        events.append(Serde.to_dict(event))
    return events


def _qid(prefix: str, *parts: Any) -> str:
    return f"{prefix}:" + "/".join(str(p).replace(" ", "_") for p in parts)


def prov_document(log: LineageLog) -> dict[str, Any]:
    """W3C PROV-JSON: executions are activities, values/files/models are entities."""
    doc: dict[str, Any] = {
        "prefix": {"nbgov": "https://pypi.org/project/nbgov/#", "var": "urn:nbgov:var:",
                   "file": "urn:nbgov:file:", "model": "urn:nbgov:model:",
                   "run": "urn:nbgov:run:", "session": "urn:nbgov:session:"},
        "entity": {}, "activity": {}, "agent": {}, "used": {}, "wasGeneratedBy": {},
        "wasAssociatedWith": {}, "wasInformedBy": {},
    }
    counter = 0

    def rel(kind: str, value: dict[str, Any]) -> None:
        nonlocal counter
        counter += 1
        doc[kind][f"_:{kind}{counter}"] = value

    for session_id, entry in log.sessions().items():
        body = entry["body"]
        doc["agent"][_qid("session", session_id)] = {
            "prov:type": {"$": "prov:SoftwareAgent", "type": "prov:QUALIFIED_NAME"},
            "nbgov:python": str(body.get("python", "")), "nbgov:started": str(body.get("started", "")),
        }
    for entry in log.executions():
        body = entry["body"]
        act = _qid("run", body.get("id"))
        doc["activity"][act] = {
            "prov:startTime": str(body.get("started", "")), "prov:endTime": _end_time(body),
            "prov:label": f"[{body.get('execution_count')}] cell {body.get('cell_id')}",
            "nbgov:code": str(body.get("code", "")), "nbgov:status": str(body.get("status", "")),
            "nbgov:code_hash": str(body.get("code_hash", "")),
        }
        rel("wasAssociatedWith", {"prov:activity": act, "prov:agent": _qid("session", body.get("session"))})
        for read in body.get("reads") or []:
            fp = read.get("fingerprint") or {}
            ent = _qid("var", read.get("name"), fp.get("hash") or "unknown")
            doc["entity"].setdefault(ent, {"prov:label": str(read.get("name")), "nbgov:kind": str(fp.get("kind")),
                                           "nbgov:fingerprint": str(fp.get("hash"))})
            rel("used", {"prov:activity": act, "prov:entity": ent})
            if read.get("source"):
                rel("wasInformedBy", {"prov:informed": act, "prov:informant": _qid("run", read["source"])})
        for write in body.get("writes") or []:
            fp = write.get("fingerprint") or {}
            ent = _qid("var", write.get("name"), fp.get("hash") or "unknown")
            doc["entity"][ent] = {"prov:label": str(write.get("name")), "nbgov:kind": str(fp.get("kind")),
                                  "nbgov:fingerprint": str(fp.get("hash")),
                                  "nbgov:summary": str(fp.get("summary", ""))}
            rel("wasGeneratedBy", {"prov:entity": ent, "prov:activity": act})
        for file in body.get("files") or []:
            ent = _qid("file", file.get("abspath") or file.get("path"), file.get("hash") or "unknown")
            doc["entity"].setdefault(ent, {"prov:label": str(file.get("path")), "nbgov:hash": str(file.get("hash"))})
            if file.get("mode") == "write":
                rel("wasGeneratedBy", {"prov:entity": ent, "prov:activity": act})
            else:
                rel("used", {"prov:activity": act, "prov:entity": ent})
        for model in body.get("models") or []:
            ent = _qid("model", model.get("name"), model.get("version"))
            doc["entity"].setdefault(ent, {"prov:label": str(model.get("name")),
                                           "nbgov:sha256": str(model.get("sha256")),
                                           "nbgov:producer": str(model.get("producer")),
                                           "nbgov:opset": str(model.get("opset"))})
            rel("used", {"prov:activity": act, "prov:entity": ent})
    return {k: v for k, v in doc.items() if v}
