"""What each `nbgov export` format holds, for the command's help: kept apart from
``export`` (which builds the events with openlineage-python) so that every `nbgov`
command, which shows this text in its help, starts without importing that client."""

from __future__ import annotations

FORMATS_HELP = """\
openlineage: OpenLineage run events as JSON Lines (one event per line, as OpenLineage's
file transport writes them): the notebook is the job, each kernel session a parent run,
each execution a run (COMPLETE or FAIL). Datasets: variables and Out[n] in namespace
nbgov://<notebook>, files in "file" (absolute path), SQL tables in <engine>://nbgov,
ONNX models in "nbgov-model" (output of the execution that registered the version,
input of those that scored it); the version facet holds the content hash (sha256 for
models) and nbgov_fingerprint/nbgov_model facets the details.
openlineage-json: the same events as one JSON array.
prov: W3C PROV-JSON: executions are activities, values/files/tables/models entities.
"""
