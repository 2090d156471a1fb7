"""%%sqlml / %sqlml on a real IPython shell: flags, assignment, display, errors, lineage notes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

from nbgov.magics import SqlML, split_assignment, split_flags
from tests.fixtures.sqlml import NotedSql


def _run(shell, code: str):
    result = shell.run_cell(code)
    return result


def _ok(shell, code: str):
    result = shell.run_cell(code)
    result.raise_error()
    return result.result


@pytest.fixture
def loaded(sql_shell, onnx_models, customers_frame):
    sql_shell.user_ns["customers"] = customers_frame
    sql_shell.user_ns["model_path"] = str(onnx_models.get("pipeline_mixed").path)
    _ok(sql_shell, "%%sqlml\nCREATE MODEL churn FROM $model_path")
    return sql_shell


def test_cell_magic_returns_the_last_result(loaded, customers_frame, capsys):
    out = _ok(
        loaded,
        "%%sqlml\nCREATE TABLE t AS SELECT * FROM customers;\nSELECT id, predict(churn, *).output_label AS y FROM t ORDER BY id",
    )
    assert isinstance(out, pd.DataFrame) and len(out) == len(customers_frame)
    assert "CREATE: ok" in capsys.readouterr().out


def test_line_magic_value_is_the_full_result(loaded, customers_frame):
    _ok(loaded, "df = %sqlml SELECT id, age FROM customers WHERE age > 50")
    df = loaded.user_ns["df"]
    assert df.id.tolist() == customers_frame[customers_frame.age > 50].id.tolist()


def test_first_line_assignment_and_dash_o(loaded, customers_frame):
    _ok(loaded, "%%sqlml\nhigh_risk << SELECT id FROM customers\nWHERE predict(churn, *).output_probability[2] > 0.8")
    model = loaded.user_ns["model_path"]
    assert isinstance(loaded.user_ns["high_risk"], pd.DataFrame) and model
    _ok(loaded, "%%sqlml -o everyone\nSELECT * FROM customers")
    assert len(loaded.user_ns["everyone"]) == len(customers_frame)


def test_display_is_limited_but_assignment_is_full(loaded, shown):
    _ok(loaded, "%config SqlML.displaylimit = 3")
    _ok(loaded, "%%sqlml -o full\nSELECT id FROM customers ORDER BY id")
    _ok(loaded, "%%sqlml --limit 7\nSELECT id FROM customers ORDER BY id")
    limited, seven = shown
    assert "3 of 400 rows shown" in limited["text/plain"]
    assert "3 of 400 rows shown" in limited["text/html"]
    assert len(loaded.user_ns["full"]) == 400
    assert "7 of 400 rows shown" in seven["text/plain"]
    other = pd.DataFrame({"a": range(50)})
    assert "rows shown" not in loaded.display_formatter.format(other)[0]["text/plain"]


def test_explain_shows_plan_and_notes_without_running(loaded, capsys):
    out = _ok(loaded, "%%sqlml --explain\nCREATE TABLE never AS SELECT predict(churn, *) AS p FROM customers")
    text = capsys.readouterr().out
    assert out is None
    assert "predict(churn@1)" in text and "batching" in text
    # the mixed pipeline (scaler + one-hot + logistic regression) runs as SQL, or in ONNX
    assert "inlined as SQL expression: pipeline" in text or "Python Arrow Scan" in text
    tables = _ok(loaded, "%sqlml SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'never'")
    assert tables.n[0] == 0


def test_explain_width_is_a_setting_checked_when_set(loaded, capsys, caplog):
    """``%config SqlML.explain_width`` lays --explain out for a narrower output area; a
    width too narrow or not an integer is refused in one line, the setting kept."""
    sql = "%%sqlml --explain\nSELECT id, predict(churn, *).output_label AS y FROM customers WHERE age > 50"
    _ok(loaded, sql)
    assert max(map(len, capsys.readouterr().out.splitlines())) > 60  # the default, 100, is wider
    _ok(loaded, "%config SqlML.explain_width = 60")
    _ok(loaded, sql)
    lines = capsys.readouterr().out.splitlines()
    assert "predict(churn@1)" in "\n".join(lines) and max(map(len, lines)) <= 60
    for value, said in (("10", "SqlML.explain_width expects an integer of at least 40, got 10"), ('"wide"', "expected an int")):
        caplog.clear()
        _ok(loaded, f"%config SqlML.explain_width = {value}")
        (record,) = caplog.records
        assert said in record.getMessage() and "\n" not in record.getMessage()
    assert loaded.magics_manager.registry["SqlML"].explain_width == 60


def test_no_optimize_gives_the_same_result(loaded, capsys):
    sql = "SELECT id, predict(churn, *).output_probability[2] AS p FROM customers ORDER BY id"
    optimized = _ok(loaded, f"%%sqlml\n{sql}")
    naive = _ok(loaded, f"%%sqlml --no-optimize\n{sql}")
    # the pipeline inlined as SQL: DOUBLE arithmetic vs onnxruntime's float32 kernels
    np.testing.assert_allclose(optimized.p, naive.p, rtol=1e-6, atol=1e-6)
    explained = _ok(loaded, f"%%sqlml --explain --no-optimize\n{sql}")
    assert explained is None and "optimizer off" in capsys.readouterr().out


def test_db_flag_switches_to_a_file_that_keeps_models(loaded, tmp_path, customers_frame):
    db = tmp_path / "work.duckdb"
    _ok(loaded, f"%%sqlml --db {db}\nCREATE MODEL churn FROM $model_path;\nCREATE TABLE c AS SELECT * FROM customers")
    assert loaded.magics_manager.registry["SqlML"].database == str(db)
    _ok(loaded, "%config SqlML.database = ':memory:'")
    assert _ok(loaded, "%sqlml SHOW MODELS").empty
    _ok(loaded, f"%config SqlML.database = '{db}'")
    out = _ok(loaded, "%sqlml SELECT count(predict(churn, *)) AS n FROM c")
    assert out.n[0] == len(customers_frame)


def test_user_mistakes_become_one_line_usage_errors(loaded):
    for code in (
        "%sqlml SELECT predict(nosuch, 1)",
        "%sqlml SELECT * FORM customers",
        "%sqlml SELECT $missing",
        "%%sqlml --limit notanumber\nSELECT 1",
        "%%sqlml\n",
    ):
        result = _run(loaded, code)
        assert isinstance(result.error_in_exec, UsageError), code
        assert "\n" not in str(result.error_in_exec)
    assert "known models: churn" in str(_run(loaded, "%sqlml SELECT predict(nosuch, 1)").error_in_exec)


def test_a_python_list_in_from_is_named_as_such(loaded):
    loaded.user_ns["rows"] = [{"id": 1}, {"id": 2}]
    error = _run(loaded, "%sqlml SELECT * FROM rows").error_in_exec
    assert isinstance(error, UsageError)
    assert str(error).startswith("'rows' is a list, not a table:") and "\n" not in str(error)
    assert "Catalog Error" not in str(error)


def test_every_statement_is_reported_to_the_recorder(loaded, noted_sql: NotedSql):
    _ok(loaded, "%%sqlml\nCREATE TABLE scores AS SELECT id, predict(churn, *).output_label AS y FROM customers;\nSELECT * FROM scores")
    kinds = [a.kind for a in noted_sql.activities]
    assert kinds == ["create_model", "ddl", "select"]
    create, ddl, select = noted_sql.activities
    assert create.params == ("model_path",) and create.models_created[0].version == 1
    assert ddl.frames == ("customers",) and ddl.tables_written == ("scores",) and ddl.engine == "duckdb"
    assert ddl.models_used[0].name == "churn" and ddl.models_created == ()
    (written,) = ddl.written  # the new table's content, hashed after the statement ran
    assert written.table == "scores" and written.rows == len(loaded.user_ns["customers"]) and written.hash
    assert select.tables_read == ("scores",) and select.written == ()
    assert set(select.to_json()) == {
        "statement", "kind", "engine", "tables_read", "tables_written", "files_read", "files_written", "models",
        "models_created", "models_dropped", "frames", "params", "written", "read",
    }
    assert select.read == ()  # DuckDB tables have no versions to record


def test_a_failing_recorder_never_breaks_the_cell(bare_shell, customers_frame):
    from nbgov import magics

    class Broken:
        def note_sql(self, activity):
            raise RuntimeError("disk full")

    installed = magics.install(bare_shell, recorder=Broken())
    try:
        bare_shell.user_ns["customers"] = customers_frame
        with pytest.warns(UserWarning, match="could not record"):
            out = _ok(bare_shell, "%sqlml SELECT count(*) AS n FROM customers")
        assert out.n[0] == len(customers_frame)
    finally:
        installed.uninstall()


def test_uninstall_removes_magic_and_config(bare_shell):
    from nbgov import magics

    def ours() -> list[object]:
        return [f for f in bare_shell.events.callbacks["post_run_cell"] if isinstance(getattr(f, "__self__", None), SqlML)]

    installed = magics.install(bare_shell)
    assert _ok(bare_shell, "%sqlml SELECT 41 + 1 AS x").x[0] == 42
    assert len(ours()) == 1  # the end of a cell ends its row limit
    installed.uninstall()
    assert "sqlml" not in bare_shell.magics_manager.magics["line"]
    assert not any(isinstance(c, SqlML) for c in bare_shell.configurables)
    assert ours() == []
    assert bare_shell.run_cell("%sqlml SELECT 1").error_in_exec is not None


def test_engines_belong_to_their_shell(bare_shell):
    from nbgov import magics

    first = SqlML(shell=bare_shell)
    second = SqlML(shell=bare_shell)
    first.duckdb.execute("CREATE TABLE only_here AS SELECT 1")
    assert second.duckdb.execute("SELECT count(*) AS n FROM duckdb_tables() WHERE table_name = 'only_here'")[0].df.n[0] == 0
    first.close()
    second.close()
    bare_shell.configurables.remove(first)
    bare_shell.configurables.remove(second)
    assert magics.install  # the factory stays the public entry point


def test_flag_and_assignment_parsing():
    assert split_flags("-o x --limit 5 SELECT -1") == ("-o x --limit 5", "SELECT -1")
    assert split_flags("--explain --no-optimize") == ("--explain --no-optimize", "")
    assert split_flags("SELECT 'a -o b'") == ("", "SELECT 'a -o b'")
    assert split_flags("--db 'a b.duckdb' -o x SELECT 'c d'") == ("--db 'a b.duckdb' -o x", "SELECT 'c d'")
    assert split_assignment("res << SELECT 1\nFROM t") == ("res", "SELECT 1\nFROM t")
    assert split_assignment("SELECT 1 << 2") == (None, "SELECT 1 << 2")


def test_scoring_progress_renders_as_a_display(sql_shell, capsys):
    from nbgov.magics import ScoringProgress

    progress = ScoringProgress(delay=0)
    progress("ML.PREDICT(MODEL m@1)", 500, 1000)
    progress("ML.PREDICT(MODEL m@1)", 1000, 1000)
    out = capsys.readouterr().out
    assert "500 / 1,000 rows scored (50%)" in out and "1,000 / 1,000 rows scored (100%)" in out
    progress("ML.PREDICT(MODEL m@1)", 300, None)  # still reading: no total yet
    assert "300 rows scored" in capsys.readouterr().out


def test_quick_scoring_shows_no_progress(sql_shell, capsys):
    from nbgov.magics import ScoringProgress

    progress = ScoringProgress(delay=60)
    progress("scoring: predict(m@1)", 500, None)
    progress("scoring: predict(m@1)", 1000, 1000)
    progress("scoring: predict(m@2)", 1000, 1000)
    assert "rows scored" not in capsys.readouterr().out


def test_line_magic_binds_dollar_names_instead_of_pasting_them(loaded, noted_sql: NotedSql):
    loaded.user_ns["who"] = "gold' OR '1'='1"
    out = _ok(loaded, "%sqlml SELECT count(*) AS n, $who AS echoed FROM customers WHERE plan = $who")
    assert out.n[0] == 0 and out.echoed[0] == "gold' OR '1'='1"
    assert noted_sql.activities[-1].params == ("who",)


def test_loading_the_magic_is_light_and_the_engine_starts_on_first_use():
    """%load_ext must not pay for pandas/DuckDB/onnxruntime; the first %%sqlml does."""
    import subprocess
    import sys
    from pathlib import Path

    script = """
import sys
from IPython.core.interactiveshell import InteractiveShell
from nbgov import magics
shell = InteractiveShell()
installed = magics.install(shell)
heavy = sorted(m for m in ("pandas", "duckdb", "onnxruntime", "onnx", "pyarrow", "sqlglot") if m in sys.modules)
print("heavy at load:", heavy)
shell.run_line_magic("config", "SqlML.displaylimit = 3")
shell.run_cell("%sqlml SELECT range AS i FROM range(10)").raise_error()  # its value printed, as Out[]
installed.uninstall()
"""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert "heavy at load: []" in lines, done.stdout
    assert lines[-1] == "3 of 10 rows shown", done.stdout


def test_jupysql_assignment_on_the_magic_line(loaded, customers_frame):
    """JupySQL's cell form ``%%sql name <<`` (the SQL in the cell) failed with 'unexpected
    text after the flags of %%sqlml'; it assigns like the first-line ``name << SELECT``."""
    out = _ok(loaded, "%%sqlml --limit 2 older <<\nSELECT id FROM customers WHERE age > 60 ORDER BY id")
    assert loaded.user_ns["older"] is out
    assert out.id.tolist() == customers_frame[customers_frame.age > 60].id.tolist()
    with pytest.raises(UsageError, match="unexpected text after the flags of %%sqlml"):
        _run(loaded, "%%sqlml SELECT 1\nSELECT 2").raise_error()


def test_a_db_path_that_cannot_be_opened_changes_nothing(loaded, customers_frame):
    """A mistyped ``--db`` closed the session's database before opening the new one and kept
    the bad path as the setting: every later cell failed and the in-memory tables and models
    were gone. It fails once, in one line; the session keeps its database."""
    magic = loaded.magics_manager.registry["SqlML"]
    _ok(loaded, "%%sqlml\nCREATE TABLE kept AS SELECT * FROM customers")
    result = _run(loaded, "%%sqlml --db /nonexistent/folder/x.duckdb\nSELECT 1")
    assert isinstance(result.error_in_exec, UsageError)
    assert "cannot open database '/nonexistent/folder/x.duckdb'" in str(result.error_in_exec)
    assert "\n" not in str(result.error_in_exec)
    assert magic.database == ":memory:"
    assert _ok(loaded, "%sqlml SELECT count(*) AS n FROM kept").n[0] == len(customers_frame)
    assert _ok(loaded, "%sqlml SHOW MODELS").name.tolist() == ["churn"]
    # naming the database the session is on is no switch: its tables stay
    assert _ok(loaded, "%%sqlml --db :memory:\nSELECT count(*) AS n FROM kept").n[0] == len(customers_frame)


def test_a_db_that_opens_stays_the_database_of_later_cells(loaded, tmp_path):
    """A ``--db`` that opens switches the session, as documented ("use and switch to")."""
    db = tmp_path / "work.duckdb"
    _ok(loaded, f"%%sqlml --db {db}\nCREATE TABLE only_in_file AS SELECT 1 AS a")
    assert _ok(loaded, "%sqlml SELECT count(*) AS n FROM only_in_file").n[0] == 1
    _run(loaded, "%%sqlml --db /nonexistent/folder/x.duckdb\nSELECT 1")
    assert loaded.magics_manager.registry["SqlML"].database == str(db)
    assert _ok(loaded, "%sqlml SELECT count(*) AS n FROM only_in_file").n[0] == 1


def test_db_paths_are_quoted_as_in_a_shell(loaded, tmp_path):
    """IPython's argument splitter keeps quotes, so ``--db "x.duckdb"`` named a file
    ``"x.duckdb"`` and a path with a space could not be given at all."""
    (tmp_path / "with space").mkdir()
    for flag, name in (
        ('--db "double.duckdb"', "double.duckdb"),
        ("--db 'single.duckdb'", "single.duckdb"),
        ('--db "with space/x.duckdb"', "with space/x.duckdb"),
        ("--db=\"it's.duckdb\"", "it's.duckdb"),
        ("--db plain.duckdb", "plain.duckdb"),
    ):
        out = _ok(loaded, f"%%sqlml {flag} -o res\nSELECT 1 AS a")
        assert out.a[0] == 1 and loaded.user_ns["res"] is out
        assert loaded.magics_manager.registry["SqlML"].database == name, flag
        assert (tmp_path / name).is_file(), flag
    assert not [p.name for p in tmp_path.iterdir() if p.name[0] in "'\""]
    out = _ok(loaded, "%sqlml --db 'with space/x.duckdb' --limit 1 SELECT 'a -o b' AS q")
    assert out.q[0] == "a -o b"


def test_bad_flag_quoting_is_one_usage_line(loaded):
    """An unclosed quote raised shlex's ValueError with a traceback; an empty --db was ignored."""
    database = loaded.magics_manager.registry["SqlML"].database
    for code, says in (
        ('%%sqlml --db "x.duckdb\nSELECT 1', "no closing quotation"),
        ('%%sqlml --db ""\nSELECT 1', "--db expects a DuckDB file path"),
    ):
        error = _run(loaded, code).error_in_exec
        assert isinstance(error, UsageError), code
        assert says in str(error) and "\n" not in str(error)
    assert loaded.magics_manager.registry["SqlML"].database == database


def test_dash_o_refuses_python_keywords(loaded):
    """``-o class`` stored the result under a name no code can read; keywords are refused
    like any other non-name, soft keywords (``match``, ``type``) are ordinary names."""
    for code in ("%%sqlml -o class\nSELECT 1 AS a", "%%sqlml -o None\nSELECT 1 AS a", "%%sqlml\nif << SELECT 1 AS a"):
        error = _run(loaded, code).error_in_exec
        assert isinstance(error, UsageError), code
        assert str(error).startswith("-o expects a Python variable name") and "keyword" in str(error)
    assert not {"class", "None", "if"} & set(loaded.user_ns)
    _ok(loaded, "%%sqlml -o match\nSELECT 1 AS a")
    assert loaded.user_ns["match"].a[0] == 1


@pytest.fixture
def shown(sql_shell, monkeypatch) -> list[dict[str, str]]:
    """Every format of what the shell displays — a cell's value (its displayhook) and
    ``display(...)`` — in order, as the frontend would receive it."""
    displayed: list[dict[str, str]] = []
    monkeypatch.setattr(sql_shell.displayhook, "write_format_data", lambda data, md=None: displayed.append(data))
    publish = sql_shell.display_pub.publish
    monkeypatch.setattr(
        sql_shell.display_pub, "publish", lambda data, *args, **kw: (displayed.append(data), publish(data, *args, **kw))[1]
    )
    return displayed


def test_the_row_limit_ends_with_the_cell(sql_shell, shown):
    """A ``-o res`` result stayed cut to the row limit whenever it was shown later (by name,
    ``display(res)``): the limit was kept for as long as the DataFrame lived. It applies to
    the %%sqlml cell's own output only."""
    sql_shell.user_ns["big"] = pd.DataFrame({"x": range(25)})
    for code in ("%%sqlml -o res\nSELECT * FROM big", "%%sqlml\nSELECT * FROM big", "%sqlml SELECT * FROM big"):
        shown.clear()
        _ok(sql_shell, code)
        (data,) = shown
        assert data["text/plain"].endswith("\n10 of 25 rows shown") and len(data["text/plain"].splitlines()) == 12, code
        assert "10 of 25 rows shown" in data["text/html"] and data["text/html"].count("<tr>") == 10, code
    _ok(sql_shell, "%%sqlml\nlater << SELECT * FROM big")
    for code in ("res", "from IPython.display import display\ndisplay(res)", "later"):
        shown.clear()
        _ok(sql_shell, code)
        (data,) = shown
        assert "rows shown" not in data["text/plain"] and len(data["text/plain"].splitlines()) == 26, code
        assert "rows shown" not in data["text/html"] and data["text/html"].count("<tr>") == 25, code  # body rows


def test_a_negative_limit_is_refused(sql_shell, shown, noted_sql: NotedSql, caplog):
    """``--limit -1`` was taken and showed every row; 0 (every row) stays allowed. The
    setting is checked alike, when set."""
    _ok(sql_shell, "%config SqlML.displaylimit = -1")
    (record,) = caplog.records
    assert record.getMessage() == "SqlML.displaylimit expects a whole number of rows, 0 or more (0 shows all); got -1"
    assert sql_shell.magics_manager.registry["SqlML"].displaylimit == 10
    sql_shell.user_ns["big"] = pd.DataFrame({"x": range(25)})
    for value, said in (("-1", "-1"), ("abc", "'abc'"), ("2.5", "'2.5'")):
        error = _run(sql_shell, f"%%sqlml --limit {value}\nSELECT * FROM big").error_in_exec
        assert isinstance(error, UsageError), value
        assert str(error) == f"--limit expects a whole number of rows, 0 or more (0 shows all); got {said}"
    assert noted_sql.activities == [] and shown == []
    _ok(sql_shell, "%%sqlml --limit 0\nSELECT * FROM big")
    (data,) = shown
    assert "rows shown" not in data["text/plain"] and len(data["text/plain"].splitlines()) == 26


def test_two_names_for_the_result_are_refused(sql_shell, noted_sql: NotedSql):
    """``-o other`` with a first line ``qq << SELECT ...`` assigned ``qq`` and dropped
    ``-o other`` without a word. Two different names are refused before anything runs;
    the same name twice is one name."""
    for code, names in (
        ("%%sqlml -o other\nqq << SELECT 2 AS b", ("-o other", "qq <<")),
        ("%%sqlml --out other qq <<\nSELECT 2 AS b", ("-o other", "qq <<")),
        ("%%sqlml qq <<\nzz << SELECT 2 AS b", ("qq <<", "zz <<")),
        ("%sqlml -o other qq << SELECT 2 AS b", ("-o other", "qq <<")),
    ):
        error = _run(sql_shell, code).error_in_exec
        assert isinstance(error, UsageError), code
        message = str(error)
        assert all(name in message for name in names) and "use one" in message and "\n" not in message, message
    assert not {"other", "qq", "zz"} & set(sql_shell.user_ns)
    assert noted_sql.activities == []
    out = _ok(sql_shell, "%%sqlml -o qq\nqq << SELECT 2 AS b")
    assert sql_shell.user_ns["qq"] is out and out.b[0] == 2


def test_an_unknown_option_is_named(sql_shell, noted_sql: NotedSql):
    """``%%sqlml -x 3`` said "unexpected text after the flags: '3'"; the mistake is ``-x``."""
    for code, option in (
        ("%%sqlml -x 3\nSELECT 1", "-x"),
        ("%%sqlml -x\nSELECT 1", "-x"),
        ("%%sqlml --limt 3\nSELECT 1", "--limt"),
        ("%%sqlml --explain --bogus=1\nSELECT 1", "--bogus"),
        ("%sqlml -x SELECT 1", "-x"),
    ):
        error = _run(sql_shell, code).error_in_exec
        assert isinstance(error, UsageError), code
        message = str(error)
        assert message.startswith(f"unknown option {option} for %%sqlml; expected:"), message
        for accepted in ("-o NAME", "--db PATH", "--limit N", "--explain", "--no-optimize", "--engine NAME"):
            assert accepted in message, message
        assert "\n" not in message
    assert noted_sql.activities == []
    error = _run(sql_shell, "%%sqlml --limit 3 SELECT 1\nSELECT 2").error_in_exec
    assert isinstance(error, UsageError) and str(error).startswith("unexpected text after the flags of %%sqlml")


class Hostile:
    """A value DuckDB cannot bind, whose every method fails: describing it must not call them."""

    def __repr__(self) -> str:
        raise RuntimeError("boom: __repr__ called")

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom: __eq__ called")

    def __hash__(self) -> int:
        raise RuntimeError("boom: __hash__ called")

    def __len__(self) -> int:
        raise RuntimeError("boom: __len__ called")

    def __iter__(self):
        raise RuntimeError("boom: __iter__ called")


class _Named(type):
    def __repr__(cls) -> str:
        return "Masked!"


class Masked(metaclass=_Named):
    """DuckDB names a value's type by ``str(type(value))``, here its metaclass's own text."""


def test_a_value_duckdb_cannot_bind_is_named(loaded, noted_sql: NotedSql):
    """``SELECT $h`` with a value DuckDB cannot bind failed with DuckDB's "Unable to transform
    python value of type '<class ...>'", naming no parameter."""
    loaded.user_ns.update(h=Hostile(), hs=[1, Hostile()], n=3)
    expected = "expected a number, string, date, bytes or a list of them"
    for code, said in (
        ("%sqlml SELECT $h AS v", "parameter $h is a Hostile; "),
        ("%sqlml SELECT $n AS a, $h AS v", "parameter $h is a Hostile; "),
        ("%sqlml SELECT $n AS a, $hs AS v", "parameter $hs is a list holding a Hostile; "),
        ("%sqlml SELECT id FROM customers WHERE predict(churn, *).output_label = $h", "parameter $h is a Hostile; "),
        ("%%sqlml --explain\nSELECT id, predict(churn, *) AS p FROM customers WHERE plan = $h", "parameter $h is a Hostile; "),
    ):
        error = _run(loaded, code).error_in_exec
        assert isinstance(error, UsageError), code
        assert str(error) == said + expected, code
    loaded.user_ns["m"] = Masked()  # told by DuckDB's text alone (its repr is not run again)
    error = _run(loaded, "%sqlml SELECT $n AS a, $m AS v").error_in_exec
    assert str(error) == f"one of the parameters $m, $n holds a value of type Masked!, which DuckDB cannot bind; {expected}"
    assert noted_sql.activities[1:] == []  # only the model's creation ran
