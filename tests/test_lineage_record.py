"""The typed record: loaded once from JSON, old logs included, with errors that name the field."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from nbgov.lineage.record import (
    ExecutionRecord,
    Fingerprint,
    LogEntry,
    ModelUse,
    RecordError,
    SessionInfo,
    SqlStatement,
    TableUse,
    WriteSummary,
    load_entries,
    parse_entry,
)
from nbgov.lineage.store import make_entry, verify_chain
from tests.fixtures.lineage import entry_validator

SESSION = "a" * 32
SHA = "5" * 64


def _fp(h: str = "1" * 32) -> dict[str, Any]:
    return {"kind": "int", "hash": h, "weak": False, "summary": "1"}


def old_execution_body() -> dict[str, Any]:
    """An execution body as the first release wrote it: no result, notes, roles, engine or tables."""
    return {
        "schema": "nbgov.record/1",
        "id": f"{SESSION}:3",
        "session": SESSION,
        "execution_count": 3,
        "cell_id": "c1",
        "code": "%%sqlml\nCREATE MODEL churn FROM 'm.onnx'",
        "code_hash": "2" * 32,
        "started": "2026-11-01T10:00:00.000Z",
        "duration_s": 0.25,
        "status": "ok",
        "error": None,
        "reads": [{"name": "x", "fingerprint": _fp(), "source": None}],
        "writes": [{"name": "y", "fingerprint": _fp("3" * 32), "mutated": False}],
        "deletes": [],
        "files": [{"path": "m.onnx", "abspath": "/n/m.onnx", "mode": "read", "size": 10, "hash": "4" * 32,
                   "source": None}],
        "models": [
            {"name": "churn", "version": 2, "sha256": SHA, "producer": "skl2onnx", "opset": 17, "source": None},
            {"name": "base", "version": 1, "sha256": SHA, "producer": None, "opset": None, "source": None},
        ],
        "sql": [{"statement": "CREATE MODEL churn FROM 'm.onnx'", "kind": "create_model", "tables_read": [],
                 "tables_written": [], "files_read": ["m.onnx"], "files_written": [], "models": ["churn@2"]}],
        "packages_added": {"duckdb": "2.0.0"},
    }


def old_session_body() -> dict[str, Any]:
    return {"schema": "nbgov.session/1", "session": SESSION, "started": "2026-11-01T10:00:00.000Z",
            "notebook": "/n/nb.ipynb", "python": "3.11.9", "platform": "Linux", "packages": {}, "cwd": "/n"}


def test_an_old_log_loads_typed_and_infers_model_roles_from_create_model() -> None:
    raws = [make_entry(0, "0" * 32, "session", old_session_body()),
            make_entry(1, "0" * 32, "execution", old_execution_body())]
    entries, problems = load_entries(raws)
    assert problems == []
    session, execution = entries
    assert session.kind == "session" and session.session is not None and session.session.hash_seed is None
    record = execution.record
    assert record is not None and execution.session is None
    assert record.id == f"{SESSION}:3" and record.label == "[3]"
    assert record.result is None and record.notes == () and record.more_writes is None
    assert [(m.key, m.role) for m in record.models] == [("churn@2", "output"), ("base@1", "input")]
    assert record.sql[0].engine == "duckdb" and record.sql[0].tables == ()
    assert execution.raw is raws[1], "the stored JSON is kept as is: its hash covers it"


def test_a_new_record_round_trips_and_validates_against_the_schema() -> None:
    body = old_execution_body()
    body["models"][0]["role"] = "output"
    body["models"][1]["role"] = "input"
    body["sql"][0]["engine"] = "duckdb"
    body["sql"][0]["tables"] = [
        TableUse("df", "read", "notebook", Fingerprint("pandas.DataFrame", "6" * 32)).to_json(),
        TableUse("scored", "write", "database", None).to_json(),
    ]
    body["result"] = _fp("7" * 32)
    body["more_writes"] = WriteSummary(99_500, "8" * 32, Fingerprint("names", None, True, "", reason="not hashed"),
                                       ("v500", "v501")).to_json()
    body["notes"] = ["recording interrupted: 1 fingerprint unfinished"]
    record = ExecutionRecord.from_json(body)
    assert record.to_json() == body
    assert record.sql[0].tables[0].fingerprint == Fingerprint("pandas.DataFrame", "6" * 32)
    validator = entry_validator()
    validator.validate(make_entry(0, "0" * 32, "execution", body))
    session = dict(old_session_body(), hash_seed="0")
    assert SessionInfo.from_json(session).to_json() == session
    validator.validate(make_entry(1, "0" * 32, "session", session))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e["body"].__setitem__("execution_count", "3"), "entry 1 body: 'execution_count' must be an integer"),
        (lambda e: e["body"].__setitem__("execution_count", True), "'execution_count' must be an integer"),
        (lambda e: e["body"]["reads"][0].pop("name"), "entry 1 body.reads[0]: 'name' must be a string, got nothing"),
        (lambda e: e["body"]["models"][0].__setitem__("role", "both"), "'role' must be input, output or dropped"),
        (lambda e: e["body"]["files"][0].__setitem__("mode", "append"), "'mode' must be read or write"),
        (lambda e: e["body"].__setitem__("writes", {"y": 1}), "'writes' must be a list, got dict"),
        (lambda e: e.__setitem__("kind", "rename"), "entry 1: unknown entry kind 'rename'"),
        (lambda e: e.__setitem__("kind", "repair"), "entry 1 body: 'cut_bytes' must be an integer"),
        (lambda e: e.__setitem__("body", [1]), "entry 1 body: expected an object, got list"),
        (lambda e: e["body"]["reads"][0].__setitem__("fingerprint", {"hash": 5}),
         "body.reads[0].fingerprint: 'kind' must be a string"),
    ],
)
def test_a_malformed_entry_is_one_error_naming_the_entry_and_the_field(edit: Any, message: str) -> None:
    raw = copy.deepcopy(make_entry(1, "0" * 32, "execution", old_execution_body()))
    edit(raw)
    with pytest.raises(RecordError) as caught:
        parse_entry(raw)
    assert message in str(caught.value)
    entries, problems = load_entries([raw])
    assert entries == [] and len(problems) == 1


def test_a_deeply_nested_body_is_an_error_not_a_crash() -> None:
    raw = make_entry(1, "0" * 32, "execution", old_execution_body())
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    raw = dict(raw, body=dict(raw["body"], reads=deep))
    entries, problems = load_entries([raw])
    assert entries == [] and len(problems) == 1


def test_typed_entries_pass_through_and_still_verify_by_their_raw_json() -> None:
    raws = [make_entry(0, "0" * 32, "session", old_session_body())]
    raws.append(make_entry(1, raws[0]["hash"], "execution", old_execution_body()))
    typed = load_entries(raws)[0]
    again, problems = load_entries(typed)
    assert problems == [] and again == typed and all(isinstance(e, LogEntry) for e in again)
    assert verify_chain([e.raw for e in typed]) == []
    assert json.loads(json.dumps([e.raw for e in typed])) == raws


def test_model_use_key_and_default_role() -> None:
    use = ModelUse("churn", 4, SHA)
    assert use.key == "churn@4" and use.role == "input"
    assert ModelUse.from_json(use.to_json()) == use


def test_a_dropped_model_version_round_trips_and_validates() -> None:
    """DROP MODEL's role: stored as written, in the schema, and never taken for a create
    (a drop_model statement names the version too)."""
    body = old_execution_body()
    body["models"] = [ModelUse("churn", 2, SHA, "skl2onnx", 17, f"{SESSION}:1", "dropped").to_json()]
    body["sql"] = [SqlStatement("DROP MODEL churn", "drop_model", models=("churn@2",)).to_json()]
    record = ExecutionRecord.from_json(body)
    assert [(m.key, m.role, m.source) for m in record.models] == [("churn@2", "dropped", f"{SESSION}:1")]
    assert record.to_json()["models"] == body["models"]
    assert ExecutionRecord.from_json(record.to_json()) == record
    entry_validator().validate(make_entry(0, "0" * 32, "execution", body))


def test_a_repair_entry_of_the_store_is_typed_and_judges_nothing() -> None:
    from nbgov.lineage.record import RepairInfo
    from nbgov.lineage.stale import stale_flags

    repair = RepairInfo(17, "9" * 32, '{"seq": 4, "bo', "torn last line (crash mid-append)")
    raw = make_entry(2, "0" * 32, "session", old_session_body()) | {"kind": "repair", "body": repair.to_json()}
    entry = parse_entry(raw)
    assert entry.kind == "repair" and entry.body == repair and entry.record is None and entry.session is None
    assert stale_flags([raw]) == {}
