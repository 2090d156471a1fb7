"""Variables a pandas expression reads through ``@name`` (``df.query("age > @min_age")``,
``df.eval``, ``pd.eval``) are reads of the cell, so rewriting them makes it stale."""

from __future__ import annotations

from nbgov.lineage.analysis import analyze
from nbgov.lineage.stale import stale_flags
from tests.fixtures.lineage import RecordingShell


def test_at_names_in_pandas_expressions_are_loads() -> None:
    names = analyze("old = df.query('age > @min_age and city == @city')\n"
                    "s = frame.eval(expr='a * @factor')\nt = pd.eval('@x + 1')\nu = other('@nothing')")
    assert {"min_age", "city", "factor", "x"} <= names.loads
    assert "nothing" not in names.loads
    assert "min_age" not in analyze("df.query(text)").loads


def test_a_query_cell_reads_its_at_variables_and_goes_stale(recording: RecordingShell) -> None:
    recording.run("import pandas as pd\ndf = pd.DataFrame({'age': [10, 30, 50]})\nmin_age = 20")
    recording.run("old = df.query('age > @min_age')")
    assert [r["name"] for r in recording.body()["reads"]] == ["df", "min_age"]
    recording.run("min_age = 40")
    assert stale_flags(recording.rec.records).get(recording.record(1).id) == ["input min_age rewritten by [3]"]
