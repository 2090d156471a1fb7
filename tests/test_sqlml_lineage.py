"""With the whole extension loaded, %%sqlml statements reach the lineage record."""

from __future__ import annotations

import os

from nbgov.lineage.store import SidecarStore, sidecar_path


def test_sql_statements_and_models_are_recorded(shell, onnx_models, customers_frame):
    shell.user_ns["customers"] = customers_frame
    shell.user_ns["model_path"] = str(onnx_models.get("pipeline_mixed").path)
    result = shell.run_cell(
        "%%sqlml\nCREATE MODEL churn FROM $model_path;\n"
        "CREATE TABLE scored AS SELECT id, predict(churn, *).output_label AS y FROM customers"
    )
    result.raise_error()
    entries = SidecarStore(sidecar_path(os.environ["JPY_SESSION_NAME"])).entries()
    record = [e for e in entries if e["kind"] == "execution"][-1]["body"]
    statements = {s["statement"]: s for s in record["sql"]}
    create = statements["CREATE MODEL churn FROM $model_path"]
    assert create["kind"] == "create_model" and create["models"] == ["churn@1"]
    scored = statements["CREATE TABLE scored AS SELECT id, predict(churn, *).output_label AS y FROM customers"]
    assert scored["tables_written"] == ["scored"] and scored["models"] == ["churn@1"]
    assert [m["name"] for m in record["models"]] == ["churn"]
    assert "customers" in [r["name"] for r in record["reads"]]
