"""execute: run a ``Prepared`` on an engine (DuckDB here): register UDFs, score relations
in Arrow batches with onnxruntime, run the final SQL."""
