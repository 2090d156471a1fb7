def test_full(shell, onnx_models, customers_frame):
    shell.user_ns["customers"] = customers_frame
    shell.user_ns["p"] = str(onnx_models.get("pipeline_mixed").path)
    r = shell.run_cell("%%sqlml\nCREATE MODEL churn FROM $p;\nSELECT predict(churn, *).output_label AS y FROM customers")
    r.raise_error()
    rec = [x for x in shell._nbgov_installed if hasattr(x, "records")][0]
    import json; print(json.dumps(rec.records[-1]["body"], indent=1, default=str)[:3000])
