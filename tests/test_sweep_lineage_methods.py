"""A cell that calls a method of a notebook class reads the globals that method names:
`model.predict(x)` depends on `THRESHOLD`, so rewriting `THRESHOLD` makes that cell stale
(and `Model()` reads what `__init__` names, not what every method names)."""

from __future__ import annotations

from nbgov.lineage.stale import stale_flags
from tests.fixtures.lineage import RecordingShell

DEFINE = """
THRESHOLD = 0.5
SCALE = 2
OFFSET = 1
class Model:
    def __init__(self):
        self.scale = SCALE
    def predict(self, xs):
        return [self._shift(x) > THRESHOLD for x in xs]
    def _shift(self, x):
        return x + OFFSET
    @property
    def label(self):
        return NAME
NAME = 'm'
"""


def _reads(recording: RecordingShell) -> list[str]:
    return [r["name"] for r in recording.body()["reads"]]


def test_methods_a_cell_calls_read_the_globals_they_name(recording: RecordingShell) -> None:
    recording.run(DEFINE)
    recording.run("model = Model()")
    assert _reads(recording) == ["Model", "SCALE"]
    recording.run("flags = model.predict([0.2, 0.9])")
    assert _reads(recording) == ["OFFSET", "THRESHOLD", "model"]
    recording.run("tag = model.label")
    assert _reads(recording) == ["NAME", "model"]
    recording.run("THRESHOLD = 0.1")
    stale = stale_flags(recording.rec.records)
    assert stale.get(recording.record(2).id) == ["input THRESHOLD rewritten by [5]"], stale
    assert recording.record(1).id not in stale  # Model() never ran predict


def test_a_bound_method_or_partial_kept_in_a_name_reads_what_its_function_names(
        recording: RecordingShell) -> None:
    recording.run(DEFINE)
    recording.run("import functools\nmodel = Model()\npredict = model.predict\n"
                  "def scaled(x, k):\n    return x * k * SCALE\ntimes = functools.partial(scaled, k=3)")
    recording.run("flags = predict([0.2])")
    assert _reads(recording) == ["OFFSET", "THRESHOLD", "predict"]
    recording.run("v = times(2)")
    assert _reads(recording) == ["SCALE", "times"]
