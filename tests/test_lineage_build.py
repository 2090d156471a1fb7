"""The pure record builder: facts and provenance in, the typed record out (no shell, no I/O)."""

from __future__ import annotations

from nbgov.lineage.build import CellFacts, ObservedFile, Provenance, build_record
from nbgov.lineage.namespace import NamespaceChanges
from nbgov.lineage.record import ExecutionRecord, Fingerprint, Write
from nbgov.lineage.sqlreport import read_activity

S = "a" * 32
FP = Fingerprint("int", "1" * 32)


def record(count: int, writes: tuple[str, ...] = (), deletes: tuple[str, ...] = ()) -> ExecutionRecord:
    return ExecutionRecord(S, count, None, "", "", "", 0.0, "ok",
                           writes=tuple(Write(n, FP) for n in writes), deletes=deletes)


def test_the_writer_of_a_name_is_the_latest_record_that_wrote_it_one_by_one_or_in_bulk() -> None:
    p = Provenance()
    p.note(record(1, writes=("a", "b")))
    p.note(record(2), also_written=("b", "c", "d"))  # a cell that defined many names
    p.note(record(3, writes=("c",)))
    p.note(record(4, deletes=("d",)))
    assert [p.writer(n) for n in "abcde"] == [f"{S}:1", f"{S}:2", f"{S}:3", None, None]
    p.note(record(5), also_written=("a", "c"))
    assert [p.writer(n) for n in "abc"] == [f"{S}:5", f"{S}:2", f"{S}:5"]


def test_a_record_from_facts_names_sources_roles_and_tables() -> None:
    provenance = Provenance(files={"/nb/in.csv": f"{S}:1"}, models={"churn@1": f"{S}:2"})
    provenance.note(record(3, writes=("df",)))
    create = read_activity({"statement": "CREATE MODEL churn FROM $clf", "kind": "create_model",
                            "models": [{"name": "churn", "version": 2, "sha256": "f" * 64}], "params": ["clf"]})
    score = read_activity({"statement": "SELECT predict(churn, *) FROM df", "kind": "select",
                           "tables_read": ["df"], "frames": ["df"],
                           "models": [{"name": "churn", "version": 1, "sha256": "e" * 64},
                                      {"name": "churn", "version": 2, "sha256": "f" * 64}]})
    facts = CellFacts(S, 4, "cell", "%%sqlml ...", "2026-01-01T00:00:00Z", 0.5,
                      changes=NamespaceChanges(reads=[("df", FP)]),
                      files=[ObservedFile("in.csv", "/nb/in.csv", "read", 3, "2" * 32)],
                      sql=[create, score], sql_values={"df": FP, "clf": FP})
    rec = build_record(facts, provenance)
    assert [(r.name, r.source) for r in rec.reads] == [("df", f"{S}:3"), ("clf", None)]
    assert [(m.key, m.role, m.source) for m in rec.models] == [
        ("churn@2", "output", None),  # registered here, even though the cell also scored with it
        ("churn@1", "input", f"{S}:2"),
    ]
    assert rec.files[0].source == f"{S}:1"
    (table,) = rec.sql[1].tables
    assert (table.name, table.origin, table.fingerprint) == ("df", "notebook", FP)
    assert rec.code_hash and rec.status == "ok" and rec.id == f"{S}:4"


def test_a_malformed_sql_report_is_kept_with_its_problems_noted() -> None:
    report = read_activity({"statement": 5, "kind": "select", "tables_read": "df",
                            "models": [{"name": "m"}, {"name": "ok", "version": 1, "sha256": "a"}]})
    assert report.statement == "" and report.tables_read == () and [m.name for m in report.models] == ["ok"]
    assert len(report.problems) == 2


def test_a_frozen_activity_gives_model_roles_and_table_contents() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Ref:
        name: str
        version: int
        sha256: str
        producer: str | None = None
        opset: int | None = None

    @dataclass(frozen=True)
    class Content:
        table: str
        rows: int | None
        hash: str | None
        reason: str | None = None

    @dataclass(frozen=True)
    class Activity:  # the shape nbgov.sqlml.activity.Activity hands over
        statement: str
        kind: str
        engine: str = "duckdb"
        tables_read: tuple[str, ...] = ()
        tables_written: tuple[str, ...] = ()
        files_read: tuple[str, ...] = ()
        files_written: tuple[str, ...] = ()
        frames: tuple[str, ...] = ()
        params: tuple[str, ...] = ()
        models_used: tuple[Ref, ...] = ()
        models_created: tuple[Ref, ...] = ()
        written: tuple[Content, ...] = ()

    report = read_activity(Activity(
        "CREATE TABLE scored AS SELECT *, predict(churn, *) FROM df; ...", "create", tables_read=("df",),
        tables_written=("scored", "big"), frames=("df",), models_used=(Ref("churn", 1, "a" * 64),),
        models_created=(Ref("churn", 2, "b" * 64),),
        written=(Content("scored", 1200, "c" * 32), Content("big", None, None, "larger than 1 GB")),
    ))
    assert report.problems == ()
    assert [(m.name, m.version, m.role) for m in report.models] == [("churn", 1, "input"), ("churn", 2, "output")]
    assert report.table_fingerprints["scored"] == Fingerprint("table", "c" * 32, False, "1,200 rows")
    big = report.table_fingerprints["big"]
    assert big.weak and big.hash is None and big.reason == "larger than 1 GB"
    rec = build_record(CellFacts(S, 1, None, "", "", 0.0, sql=[report], sql_values={"df": FP}), Provenance())
    tables = {(t.name, t.mode): (t.origin, t.fingerprint) for t in rec.sql[0].tables}
    assert tables[("scored", "write")] == ("database", report.table_fingerprints["scored"])
    assert tables[("df", "read")] == ("notebook", FP)


def test_a_create_model_that_found_its_bytes_registered_reports_a_use_as_json_too() -> None:
    """An engine's activity handed over as JSON (``Activity.to_json``): an empty
    ``models_created`` means nothing was created, not "infer it from the statement kind"."""
    from nbgov.sqlml.activity import Activity, ModelRef

    ref = ModelRef("churn", 1, "a" * 64, "skl2onnx", 17)
    again = Activity("CREATE MODEL churn FROM $clf", "create_model", params=("clf",), models_used=(ref,))
    new = Activity("CREATE MODEL churn FROM $clf", "create_model", params=("clf",), models_created=(ref,))
    for activity, role in ((again, "input"), (new, "output")):
        for handed in (activity, activity.to_json()):
            assert [(m.name, m.version, m.role) for m in read_activity(handed).models] == [("churn", 1, role)]
    rec = build_record(CellFacts(S, 2, None, "", "", 0.0, sql=[read_activity(again.to_json())]),
                       Provenance(models={"churn@1": f"{S}:1"}))
    assert [(m.key, m.role, m.source) for m in rec.models] == [("churn@1", "input", f"{S}:1")]


def test_a_drop_names_the_creator_of_what_it_dropped_and_ends_its_provenance() -> None:
    """DROP MODEL reports its versions as dropped: the record names the execution that made
    each (as a use would), and after it no later scorer can name that execution as its source."""
    from nbgov.sqlml.activity import Activity, ModelRef

    ref = ModelRef("churn", 1, "a" * 64, "skl2onnx", 17)
    provenance = Provenance(models={"churn@1": f"{S}:1"})
    score_then_drop = [read_activity(Activity("SELECT predict(churn, *) FROM df", "select", models_used=(ref,))),
                       read_activity(Activity("DROP MODEL churn", "drop_model", models_dropped=(ref,)).to_json())]
    rec = build_record(CellFacts(S, 2, None, "", "", 0.0, sql=score_then_drop), provenance)
    assert [(m.key, m.role, m.source) for m in rec.models] == [
        ("churn@1", "input", f"{S}:1"), ("churn@1", "dropped", f"{S}:1")
    ], "the cell scored with the version it then dropped: both are said"
    assert rec.sql[1].models == ("churn@1",)
    provenance.note(rec)
    assert provenance.models == {}
    recreate = read_activity(Activity("CREATE MODEL churn FROM $m", "create_model", models_created=(ref,)))
    drop_then_create = [read_activity(Activity("DROP MODEL churn", "drop_model", models_dropped=(ref,))), recreate]
    again = build_record(CellFacts(S, 3, None, "", "", 0.0, sql=drop_then_create), Provenance())
    assert [(m.key, m.role) for m in again.models] == [("churn@1", "output")], "the state the cell left"
