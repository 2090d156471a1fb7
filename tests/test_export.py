"""`nbgov export` (OpenLineage, PROV-JSON) and `nbgov graph` from a really recorded notebook."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import dataset_version_dataset, parent_run
from openlineage.client.serde import Serde

from tests.fixtures.replay import invoke, record, sidecar_lines

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    (folder / "in.csv").write_text("v\n1\n2\n")
    return record(
        folder / "flow.ipynb",
        "rows = open('in.csv').read().splitlines()[1:]",
        "total = sum(int(r) for r in rows)",
        "with open('out.txt', 'w') as fh:\n    fh.write(str(total))",
        "label = f'total={total}'",
    )


def executions(path: Path) -> list[dict[str, Any]]:
    return [e["body"] for e in sidecar_lines(path) if e["kind"] == "execution"]


def rebuild(event: dict[str, Any]) -> RunEvent:
    """Re-create the event with openlineage-python's classes: their validators check
    the UUIDs, the ISO times and the facet shapes."""
    parent = event["run"]["facets"]["parent"]

    def datasets(kind: type, items: list[dict[str, Any]]) -> list[Any]:
        out = []
        for d in items:
            facets = {}
            if "version" in d["facets"]:
                facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                    datasetVersion=d["facets"]["version"]["datasetVersion"])
            out.append(kind(d["namespace"], d["name"], facets=facets))
        return out

    return RunEvent(
        eventType=RunState(event["eventType"]), eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets={"parent": parent_run.ParentRunFacet(
            run=parent_run.Run(runId=parent["run"]["runId"]),
            job=parent_run.Job(namespace=parent["job"]["namespace"], name=parent["job"]["name"]))}),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
        inputs=datasets(InputDataset, event["inputs"]), outputs=datasets(OutputDataset, event["outputs"]),
        producer=event["producer"],
    )


def test_openlineage_export_has_one_valid_run_event_per_execution(recorded: Path) -> None:
    result = invoke("export", recorded, "--format", "openlineage")
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    bodies = executions(recorded)
    assert len(events) == len(bodies) == 4
    for event, body in zip(events, bodies):
        again = Serde.to_dict(rebuild(event))
        assert again["run"]["runId"] == event["run"]["runId"]
        assert event["eventType"] == "COMPLETE"
        assert event["job"] == {**event["job"], "namespace": "nbgov", "name": "flow.ipynb"}
        assert event["job"]["facets"]["sourceCode"]["sourceCode"] == body["code"]
        assert uuid.UUID(event["run"]["facets"]["parent"]["run"]["runId"]).hex == body["session"]
    assert len({e["run"]["runId"] for e in events}) == 4
    # step 2 read `rows` at exactly the fingerprint step 1 wrote
    rows_out = next(d for d in events[0]["outputs"] if d["name"] == "rows")
    rows_in = next(d for d in events[1]["inputs"] if d["name"] == "rows")
    written = next(w for w in bodies[0]["writes"] if w["name"] == "rows")
    assert rows_out["facets"]["version"]["datasetVersion"] == written["fingerprint"]["hash"]
    assert rows_in["facets"]["version"] == rows_out["facets"]["version"]
    assert rows_in["facets"]["nbgov_fingerprint"]["kind"] == "list"
    # files are datasets too, with their content hash as version
    csv = next(d for d in events[0]["inputs"] if d["namespace"] == "file")
    assert csv["name"].endswith("in.csv")
    out_file = next(d for d in events[2]["outputs"] if d["namespace"] == "file")
    assert out_file["name"].endswith("out.txt") and out_file["facets"]["version"]["datasetVersion"]


def test_prov_export_links_activities_entities_and_sessions(recorded: Path, tmp_path: Path) -> None:
    target = tmp_path / "prov.json"
    result = invoke("export", recorded, "--format", "prov", "-o", target)
    assert result.exit_code == 0, result.output
    doc = json.loads(target.read_text())
    bodies = executions(recorded)
    assert len(doc["activity"]) == 4 and len(doc["agent"]) == 1
    act1, act2 = (f"run:{bodies[0]['id']}", f"run:{bodies[1]['id']}")
    assert doc["activity"][act2]["nbgov:code"] == bodies[1]["code"]
    generated = {(g["prov:entity"], g["prov:activity"]) for g in doc["wasGeneratedBy"].values()}
    used = {(u["prov:activity"], u["prov:entity"]) for u in doc["used"].values()}
    rows_entity = next(e for e, a in generated if a == act1 and e.startswith("var:rows/"))
    assert (act2, rows_entity) in used  # the same entity (same fingerprint) flows 1 -> 2
    informed = {(i["prov:informed"], i["prov:informant"]) for i in doc["wasInformedBy"].values()}
    assert (act2, act1) in informed
    assert any(e.startswith("file:") and e.split("/")[-2] == "in.csv" for _, e in used)


def test_graph_as_dot_and_as_svg(recorded: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dot = invoke("graph", recorded)
    assert dot.exit_code == 0
    bodies = executions(recorded)
    assert f'"{bodies[0]["id"]}" -> "{bodies[1]["id"]}" [label="rows"]' in dot.output
    assert 'shape=note' in dot.output  # files
    monkeypatch.setenv("PATH", str(tmp_path))  # no graphviz: nbgov draws the SVG itself
    assert shutil.which("dot") is None
    svg_file = tmp_path / "g.svg"
    assert invoke("graph", recorded, "--format", "svg", "-o", svg_file).exit_code == 0
    root = ElementTree.fromstring(svg_file.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert any("total = sum" in t for t in texts) and "rows" in texts and "in.csv" in texts


@pytest.fixture(scope="module")
def with_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A notebook in the shape of the skl2onnx documentation examples: fit, register, score,
    refit and register again."""
    folder = tmp_path_factory.mktemp("export-models")
    return record(
        folder / "churn.ipynb",
        "%load_ext nbgov",
        "import numpy as np, pandas as pd\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "rng = np.random.default_rng(0)\n"
        "customers = pd.DataFrame({'age': rng.uniform(20, 80, 50), 'income': rng.uniform(1, 9, 50)})\n"
        "clf = LogisticRegression().fit(customers, customers['age'] > 50)",
        "%%sqlml\nCREATE MODEL churn FROM $clf",
        "%%sqlml -o scored\nSELECT age, predict(churn, age, income) AS p FROM customers",
        "clf = LogisticRegression(C=0.01).fit(customers, customers['income'] > 5)",
        "%%sqlml\nCREATE OR REPLACE MODEL churn FROM $clf",
    )


def _datasets(event: dict[str, Any], side: str, namespace: str) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in event[side] if d["namespace"] == namespace}


def test_models_are_output_datasets_of_the_registering_run_and_inputs_of_the_scoring_run(
    with_models: Path,
) -> None:
    result = invoke("export", with_models, "--format", "openlineage-json")
    assert result.exit_code == 0, result.output
    events = json.loads(result.output)
    assert isinstance(events, list) and [rebuild(e) for e in events]
    bodies = executions(with_models)
    by_code = {b["code"].splitlines()[1] if b["code"].startswith("%%") else b["code"]: e
               for b, e in zip(bodies, events)}
    create = by_code["CREATE MODEL churn FROM $clf"]
    score = by_code["SELECT age, predict(churn, age, income) AS p FROM customers"]
    again = by_code["CREATE OR REPLACE MODEL churn FROM $clf"]
    created = _datasets(create, "outputs", "nbgov-model")["churn"]
    assert _datasets(create, "inputs", "nbgov-model") == {}
    scored = _datasets(score, "inputs", "nbgov-model")["churn"]
    assert _datasets(score, "outputs", "nbgov-model") == {}
    sha1 = next(m["sha256"] for b in bodies for m in b["models"] if m["role"] == "output" and m["version"] == 1)
    assert created["facets"]["version"]["datasetVersion"] == scored["facets"]["version"]["datasetVersion"] == sha1
    assert created["facets"]["nbgov_model"]["version"] == 1 and created["facets"]["nbgov_model"]["onnxProducer"]
    v2 = _datasets(again, "outputs", "nbgov-model")["churn"]
    assert v2["facets"]["nbgov_model"]["version"] == 2 and v2["facets"]["version"]["datasetVersion"] != sha1
    # the notebook frame the SELECT read is the variable, with its content version
    assert "customers" in _datasets(score, "inputs", "nbgov://churn.ipynb")
    assert "Out[" not in " ".join(_datasets(create, "outputs", "nbgov://churn.ipynb"))
    lines = invoke("export", with_models, "--format", "openlineage").output.splitlines()
    assert [json.loads(line) for line in lines] == events, "JSON Lines and the array carry the same events"


def test_prov_uses_and_generates_models_by_role(with_models: Path) -> None:
    doc = json.loads(invoke("export", with_models, "--format", "prov").output)
    bodies = executions(with_models)
    create, score = (next(b for b in bodies if text in b["code"]) for text in ("CREATE MODEL", "SELECT age"))
    generated = {(g["prov:entity"], g["prov:activity"]) for g in doc["wasGeneratedBy"].values()}
    used = {(u["prov:activity"], u["prov:entity"]) for u in doc["used"].values()}
    assert ("model:churn/1", f"run:{create['id']}") in generated
    assert (f"run:{score['id']}", "model:churn/1") in used
    assert (f"run:{create['id']}", "model:churn/1") not in used
    informed = {(i["prov:informed"], i["prov:informant"]) for i in doc["wasInformedBy"].values()}
    assert (f"run:{score['id']}", f"run:{create['id']}") in informed
    assert doc["entity"]["model:churn/1"]["nbgov:sha256"] == create["models"][0]["sha256"]


def test_export_help_documents_the_formats() -> None:
    text = invoke("export", "--help").output
    for phrase in ("JSON Lines", "openlineage-json", "one JSON array", "nbgov-model", "PROV-JSON"):
        assert phrase in text
