"""Lineage of %%sqlml cells through the whole extension (`%load_ext nbgov`): real DuckDB, real models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.recorder import Recorder
from nbgov.lineage.store import verify_chain


def _recorder(shell: Any) -> Recorder:
    found = [part for part in shell._nbgov_installed if isinstance(part, Recorder)]
    assert len(found) == 1
    return found[0]


def _run(shell: Any, code: str) -> dict[str, Any]:
    result = shell.run_cell(code, store_history=True)
    assert result.success, result.error_in_exec or result.error_before_exec
    return dict(_recorder(shell).records[-1].raw["body"])


def test_sqlml_cells_record_models_frames_results_and_files(shell: Any, tmp_path: Path, lineage_schema: Any) -> None:
    frame = _run(shell, "import pandas as pd\ncustomers = pd.DataFrame({'age': [30.0, 70.0, 50.0], 'income': [1.0, 2.0, 3.0]})")
    fit = _run(shell, "from sklearn.linear_model import LogisticRegression\nclf = LogisticRegression().fit(customers, [0, 1, 1])")
    create = _run(shell, "%%sqlml\nCREATE MODEL churn FROM $clf")
    assert {r["name"]: r["source"] for r in create["reads"]} == {"clf": fit["id"]}
    assert [(s["kind"], s["models"]) for s in create["sql"]] == [("create_model", ["churn@1"])]
    (model,) = create["models"]
    assert (model["name"], model["version"], model["producer"], model["role"]) == ("churn", 1, "skl2onnx", "output")
    assert len(model["sha256"]) == 64 and isinstance(model["opset"], int)

    score = _run(shell, "%%sqlml -o scored\nSELECT age, predict(churn, age, income) AS p FROM customers")
    assert {r["name"]: r["source"] for r in score["reads"]} == {"customers": frame["id"]}
    assert [(w["name"], w["mutated"]) for w in score["writes"]] == [("scored", False)]
    assert score["writes"][0]["fingerprint"]["summary"] == "3×2"
    assert [(m["name"], m["version"], m["source"], m["role"]) for m in score["models"]] == [
        ("churn", 1, create["id"], "input")
    ]
    assert [s["kind"] for s in score["sql"]] == ["select"]
    (table,) = score["sql"][0]["tables"]
    assert (table["name"], table["mode"], table["origin"]) == ("customers", "read", "notebook")
    assert table["fingerprint"] == frame["writes"][0]["fingerprint"], "the frame's content, as its writer left it"

    wrote = _run(shell, "customers.to_csv('c.csv', index=False)")
    counted = _run(shell, "%%sqlml -o n\nSELECT count(*) AS n FROM read_csv('c.csv')")
    (read,) = [f for f in counted["files"] if f["mode"] == "read"]
    assert read["path"] == "c.csv" and read["abspath"] == str(tmp_path / "c.csv")
    assert read["hash"] == wrote["files"][0]["hash"] and read["source"] == wrote["id"]

    rec = _recorder(shell)
    assert rec.stale(now_files=True) == {}
    _run(shell, "clf = LogisticRegression(C=0.01).fit(customers, [1, 0, 1])")
    recreate = _run(shell, "%%sqlml\nCREATE OR REPLACE MODEL churn FROM $clf")
    assert [m["version"] for m in recreate["models"]] == [2]
    assert [m["role"] for m in recreate["models"]] == ["output"]
    stale = rec.stale(now_files=True)
    assert stale[score["id"]] == [f"model churn changed: version 2 registered by [{recreate['execution_count']}]"]
    # the first registration is stale because its input clf was rewritten, not because of version 2
    assert stale[create["id"]] == [f"input clf rewritten by [{recreate['execution_count'] - 1}]"]
    assert recreate["id"] not in stale
    entries = rec.store.entries() if rec.store else []
    assert verify_chain(entries) == []
    for entry in entries:
        lineage_schema.validate(entry)


def test_tables_sqlml_writes_carry_their_content_and_their_readers_go_stale(shell: Any) -> None:
    _run(shell, "import pandas as pd\norders = pd.DataFrame({'id': [1, 2, 3], 'amount': [10.0, 20.0, 30.0]})")
    made = _run(shell, "%%sqlml\nCREATE TABLE big_orders AS SELECT * FROM orders WHERE amount > 15")
    (written,) = [t for t in made["sql"][0]["tables"] if t["mode"] == "write"]
    assert (written["name"], written["origin"]) == ("big_orders", "database")
    assert written["fingerprint"]["weak"] is False and len(written["fingerprint"]["hash"]) == 32
    assert written["fingerprint"]["summary"] == "2 rows"
    (frame,) = [t for t in made["sql"][0]["tables"] if t["mode"] == "read"]
    assert (frame["name"], frame["origin"]) == ("orders", "notebook") and frame["fingerprint"]["hash"]
    reader = _run(shell, "%%sqlml -o total\nSELECT sum(amount) AS s FROM big_orders")
    assert [(t["name"], t["origin"], t["mode"]) for t in reader["sql"][0]["tables"]] == [
        ("big_orders", "database", "read")
    ]
    rec = _recorder(shell)
    assert reader["id"] not in rec.stale(now_files=False)
    same = _run(shell, "%%sqlml\nUPDATE big_orders SET amount = amount WHERE id = 2")  # same content
    assert [t["fingerprint"]["hash"] for t in same["sql"][0]["tables"]] == [written["fingerprint"]["hash"]]
    assert reader["id"] not in rec.stale(now_files=False)
    changed = _run(shell, "%%sqlml\nUPDATE big_orders SET amount = 0 WHERE id = 2")
    assert rec.stale(now_files=False)[reader["id"]] == [f"table big_orders rewritten by [{changed['execution_count']}]"]


FEATURES = "age, income, tenure, visits, balance"


def _model_edges(rec: Recorder, label: str) -> dict[tuple[str, str], list[str]]:
    """The lineage graph's edges into and out of ``model:label``."""
    from nbgov.replay.graph import build_graph

    records = [e.record for e in rec.records if e.record is not None]
    graph = build_graph(records, rec.stale(now_files=True))
    return {k: v for k, v in graph.edges.items() if f"model:{label}" in k}


@pytest.mark.parametrize("source", ["variable", "file"])
def test_registering_the_same_bytes_again_uses_the_version_its_creator_made(
    shell: Any, onnx_models: Any, customers_frame: Any, source: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The audit's repro: the second CREATE prints "unchanged (same bytes)", changes nothing,
    and must not become the model's last writer (nor a second creator in the graph)."""
    model = onnx_models.get("linreg")
    shell.user_ns.update(customers=customers_frame, m1=model.onnx)
    create_sql = "%%sqlml\nCREATE MODEL mm FROM " + ("$m1" if source == "variable" else f"'{model.path}'")
    score_sql = f"%%sqlml -o scored\nSELECT predict(mm, {FEATURES}) AS p FROM customers"
    create = _run(shell, create_sql)
    first = _run(shell, score_sql)
    capsys.readouterr()
    again = _run(shell, create_sql)
    assert "model mm version 1 unchanged (same bytes)" in capsys.readouterr().out
    second = _run(shell, score_sql)
    mm = ("mm", 1)
    assert [(m["name"], m["version"], m["role"], m["source"]) for m in create["models"]] == [(*mm, "output", None)]
    assert [(m["name"], m["version"], m["role"], m["source"]) for m in again["models"]] == [
        (*mm, "input", create["id"])
    ], "an unchanged re-registration is an input of its cell, made by the first CREATE"
    assert again["models"][0]["sha256"] == create["models"][0]["sha256"]
    assert [(s["kind"], s["models"]) for s in again["sql"]] == [("create_model", ["mm@1"])]
    for scored in (first, second):
        assert [(m["role"], m["source"]) for m in scored["models"]] == [("input", create["id"])]
    rec = _recorder(shell)
    assert rec.stale(now_files=True) == {}
    edges = _model_edges(rec, "mm@1")
    creators = [src for (src, _), labels in edges.items() if "creates" in labels]
    assert creators == [create["id"]]
    assert edges[("model:mm@1", again["id"])] == ["uses"]


def test_dropping_a_model_names_the_versions_and_makes_their_scorers_stale(
    shell: Any, onnx_models: Any, customers_frame: Any
) -> None:
    """DROP MODEL is to a model what DROP TABLE is to a table: a change of it, so a cell that
    scored with the dropped version (and would now fail "unknown model") is stale."""
    from nbgov.replay.export import datasets, prov_document

    shell.user_ns.update(customers=customers_frame, m1=onnx_models.get("linreg").onnx)
    create = _run(shell, "%%sqlml\nCREATE MODEL mm FROM $m1")
    score = _run(shell, f"%%sqlml -o scored\nSELECT predict(mm, {FEATURES}) AS p FROM customers")
    drop = _run(shell, "%%sqlml\nDROP MODEL mm")
    (dropped,) = drop["models"]
    assert (dropped["name"], dropped["version"], dropped["role"], dropped["source"]) == (
        "mm", 1, "dropped", create["id"])
    assert dropped["sha256"] == create["models"][0]["sha256"]
    assert [(s["kind"], s["models"]) for s in drop["sql"]] == [("drop_model", ["mm@1"])]
    rec = _recorder(shell)
    assert rec.stale(now_files=True) == {score["id"]: [f"model mm@1 dropped by [{drop['execution_count']}]"]}
    assert _model_edges(rec, "mm@1")[(drop["id"], "model:mm@1")] == ["drops"]

    typed = rec.records[-1].record
    assert typed is not None and typed.id == drop["id"]
    (model_set,) = [d for d in datasets(typed, "test.ipynb") if d.model is not None]
    assert model_set.output and model_set.removed, "OpenLineage: an output whose lifecycle is DROP"
    prov = prov_document("test.ipynb", rec.records)
    assert list(prov["wasInvalidatedBy"].values()) == [
        {"prov:entity": "model:mm/1", "prov:activity": f"run:{drop['id']}"}
    ]

    # the same bytes registered again: the version the scorer read is back, as it was
    recreate = _run(shell, "%%sqlml\nCREATE MODEL mm FROM $m1")
    assert [(m["version"], m["role"]) for m in recreate["models"]] == [(1, "output")]
    assert rec.stale(now_files=True) == {}
    entries = rec.store.entries() if rec.store else []
    assert verify_chain(entries) == []


def test_dropping_one_version_leaves_the_scorers_of_others_alone(
    shell: Any, onnx_models: Any, customers_frame: Any, lineage_schema: Any
) -> None:
    shell.user_ns.update(customers=customers_frame, m1=onnx_models.get("linreg").onnx,
                         m2=onnx_models.get("tree_reg").onnx)
    _run(shell, "%%sqlml\nCREATE MODEL mm FROM $m1")
    pinned = _run(shell, f"%%sqlml -o one\nSELECT predict('mm@1', {FEATURES}) AS p FROM customers")
    _run(shell, "%%sqlml\nCREATE MODEL mm FROM $m2")
    newest = _run(shell, f"%%sqlml -o two\nSELECT predict(mm, {FEATURES}) AS p FROM customers")
    assert [(m["version"], m["role"]) for m in newest["models"]] == [(2, "input")]
    drop = _run(shell, "%%sqlml\nDROP MODEL 'mm@1'")
    assert [(m["name"], m["version"], m["role"]) for m in drop["models"]] == [("mm", 1, "dropped")]
    rec = _recorder(shell)
    # the drop is what makes the pinned scorer fail now: said rather than the newer version
    assert rec.stale(now_files=True) == {pinned["id"]: [f"model mm@1 dropped by [{drop['execution_count']}]"]}
    entries = rec.store.entries() if rec.store else []
    assert verify_chain(entries) == []
    for entry in entries:
        lineage_schema.validate(entry)


def test_a_model_registered_in_an_earlier_session_links_to_its_creator_for_the_same_bytes(shell: Any) -> None:
    """After a restart (here: the extension loaded again, a new session on the same log), scoring
    with a version kept in a database file names the execution that registered those bytes;
    the same name and version in another database, other bytes, names its own creator."""
    _run(shell, "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
                "people = pd.DataFrame({'age': [30.0, 70.0, 50.0]})\n"
                "one = LogisticRegression().fit(people, [0, 1, 1])\n"
                "two = LogisticRegression(C=0.01).fit(people, [1, 0, 1])")
    create = _run(shell, "%%sqlml --db kept.duckdb\nCREATE MODEL churn FROM $one")
    create_other = _run(shell, "%%sqlml --db other.duckdb\nCREATE MODEL churn FROM $two")
    shell.run_cell("%unload_ext nbgov").raise_error()
    shell.run_cell("%load_ext nbgov").raise_error()
    kept = _run(shell, "%%sqlml --db kept.duckdb -o a\nSELECT predict(churn, age) AS p FROM people")
    assert kept["session"] != create["session"]
    assert [(m["name"], m["version"], m["source"]) for m in kept["models"]] == [("churn", 1, create["id"])]
    other = _run(shell, "%%sqlml --db other.duckdb -o b\nSELECT predict(churn, age) AS p FROM people")
    assert [(m["name"], m["version"], m["source"]) for m in other["models"]] == [("churn", 1, create_other["id"])]
