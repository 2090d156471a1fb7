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


def test_frames_duckdb_reads_by_name_are_loads() -> None:
    names = analyze("total = duckdb.sql('SELECT sum(a) FROM df JOIN dims USING (k)').df()\n"
                    "n = con.execute(\"WITH c AS (SELECT * FROM raw) SELECT count(*) FROM c, main.t, 'x.parquet'\")")
    assert {"df", "dims", "raw"} <= names.loads
    assert not {"c", "t", "x.parquet", "main"} & names.loads
    assert analyze("con.execute(sql_text)").loads == {"con", "sql_text"}
    assert analyze("con.execute('SELECT FROM FROM ((( df')").loads <= {"con", "df"}  # unparsable: no crash


def test_a_duckdb_query_over_a_notebook_frame_reads_it(recording: RecordingShell) -> None:
    recording.run("import duckdb, pandas as pd\ndf = pd.DataFrame({'a': [1, 2]})")
    recording.run("total = duckdb.sql('SELECT sum(a) AS s FROM df').df()")
    assert [r["name"] for r in recording.body()["reads"]] == ["df"]
    recording.run("df.loc[0, 'a'] = 5")
    assert stale_flags(recording.rec.records).get(recording.record(1).id) == ["input df rewritten by [3]"]
