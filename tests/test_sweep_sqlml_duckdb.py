"""%%sqlml on DuckDB as a new data scientist writes it: notebook values, pandas
categoricals, DuckDB-only statements and CTEs around ML.PREDICT, each compared with
scikit-learn and with --no-optimize (real DuckDB, onnxruntime and fitted models)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMBERS = ["age", "income"]
COLUMNS = ["plan", "region", *NUMBERS]


def _people(n: int = 120, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "age": rng.integers(18, 80, n).astype(np.float64),
            "income": rng.normal(50_000, 15_000, n).round(2),
            "plan": rng.choice(["basic", "silver", "gold"], n),
            "region": rng.choice(["north", "south", "east"], n),
        }
    )
    frame["tier"] = np.where(frame.income > 55_000, "hi", np.where(frame.income > 45_000, "mid", "lo"))
    frame["churned"] = ((frame.age > 50) ^ (frame.plan == "gold") ^ (rng.random(n) < 0.2)).astype(np.int64)
    return frame


@pytest.fixture(scope="module")
def people() -> pd.DataFrame:
    return _people()


@pytest.fixture(scope="module")
def linear(people: pd.DataFrame) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(people[NUMBERS], people.churned)


@pytest.fixture(scope="module")
def boosted(people: pd.DataFrame) -> Pipeline:
    """Trees behind a ColumnTransformer: scored by onnxruntime over a batched relation."""
    features = ColumnTransformer([("cat", OneHotEncoder(), ["plan", "region"]), ("num", StandardScaler(), NUMBERS)])
    model = Pipeline([("ct", features), ("gb", GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0))])
    return model.fit(people[COLUMNS], people.churned)


def _ok(shell: Any, code: str) -> Any:
    result = shell.run_cell(code)
    result.raise_error()
    return result.result


@pytest.fixture
def shell(sql_shell: Any, people: pd.DataFrame, linear: LogisticRegression, boosted: Pipeline) -> Any:
    sql_shell.user_ns.update(people=people, linear=linear, boosted=boosted)
    _ok(sql_shell, "%%sqlml\nCREATE MODEL churn FROM $linear;\nCREATE MODEL trees FROM $boosted")
    return sql_shell


def _both(shell: Any, sql: str) -> pd.DataFrame:
    """The result with the optimizer, checked equal to --no-optimize's."""
    optimized = _ok(shell, f"%%sqlml\n{sql}")
    plain = _ok(shell, f"%%sqlml --no-optimize\n{sql}")
    pd.testing.assert_frame_equal(optimized, plain, check_exact=False, rtol=1e-6)
    return optimized


# --- $name binds numpy numbers as the numbers they are ------------------------------------


def test_numpy_scalars_bind_as_parameters(shell: Any, people: pd.DataFrame, linear: LogisticRegression) -> None:
    """``oldest = people.age.max()`` style values (np.int64, np.float32, np.bool_, and a list
    of np.int64 from ``list(series)``) bind like Python numbers; DuckDB's client refused them."""
    shell.user_ns.update(
        min_age=np.int64(60), cut=np.float32(0.5), flag=np.bool_(True), ids=list(people.id[:3]), small=np.uint8(3)
    )
    out = _both(shell, "SELECT count(*) AS n FROM people WHERE age >= $min_age AND $flag")
    assert out.n.tolist() == [int((people.age >= 60).sum())]
    out = _both(shell, "SELECT id FROM people WHERE list_contains($ids, id) AND id < $small ORDER BY id")
    assert out.id.tolist() == [0, 1, 2]
    out = _both(shell, "SELECT id FROM people WHERE predict(churn, age, income).probabilities[2] > $cut ORDER BY id")
    expected = people.id[linear.predict_proba(people[NUMBERS])[:, 1] > 0.5]
    assert out.id.tolist() == expected.tolist()
    out = _both(shell, "SELECT predict(churn, $min_age, 50000.0).probabilities[2] AS p")
    single = pd.DataFrame({"age": [60.0], "income": [50_000.0]})
    assert out.p.iloc[0] == pytest.approx(linear.predict_proba(single)[0, 1], abs=1e-5)


# --- an ordered pandas categorical keeps its order through a scored relation --------------


def test_categorical_columns_keep_their_type_through_scoring(shell: Any, people: pd.DataFrame, boosted: Pipeline) -> None:
    """The batched relation (ML.PREDICT, and predict(...) with the optimizer) came back with
    the categorical as VARCHAR: ORDER BY sorted 'hi' < 'lo' < 'mid' as text, where
    --no-optimize sorted by the categories' order (DuckDB's ENUM)."""
    frame = people.copy()
    frame["tier"] = pd.Categorical(frame.tier, categories=["lo", "mid", "hi"], ordered=True)
    frame["plan"] = frame.plan.astype("category")
    shell.user_ns["graded"] = frame
    expected = frame.assign(p=boosted.predict_proba(frame[COLUMNS].astype({"plan": str}))[:, 1])
    expected = expected.sort_values(["tier", "id"])
    out = _both(shell, "SELECT id, tier, predict(trees, *).probabilities[2] AS p FROM graded ORDER BY tier, id")
    assert out.id.tolist() == expected.id.tolist()
    assert isinstance(out.tier.dtype, pd.CategoricalDtype) and list(out.tier.dtype.categories) == ["lo", "mid", "hi"]
    np.testing.assert_allclose(out.p.to_numpy(float), expected.p.to_numpy(float), atol=1e-5)
    out = _both(shell, "SELECT id, tier, plan, typeof(tier) AS t FROM ML.PREDICT(MODEL trees, TABLE graded) ORDER BY tier, id")
    assert out.id.tolist() == expected.id.tolist()
    assert set(out.t) == {"ENUM('lo', 'mid', 'hi')"}
    assert isinstance(out.plan.dtype, pd.CategoricalDtype)


# --- DuckDB's PIVOT shows its table ---------------------------------------------------------


def test_pivot_statement_returns_its_table(shell: Any, people: pd.DataFrame, boosted: Pipeline, capsys: Any) -> None:
    """DuckDB types a PIVOT over the data's own values as MULTI; %%sqlml printed
    'MULTI: ok' and returned nothing."""
    out = _both(shell, "PIVOT people ON plan USING count(*) GROUP BY region ORDER BY region")
    expected = pd.crosstab(people.region, people.plan)
    assert out.region.tolist() == expected.index.tolist()
    assert out.gold.tolist() == expected["gold"].tolist()
    assert "MULTI" not in capsys.readouterr().out
    out = _both(
        shell,
        "PIVOT (SELECT region, predicted_label FROM ML.PREDICT(MODEL trees, TABLE people))"
        " ON predicted_label USING count(*) GROUP BY region ORDER BY region",
    )
    counts = pd.crosstab(people.region, boosted.predict(people[COLUMNS]))
    assert out["1"].tolist() == counts[1].tolist()


def test_statement_sqlglot_reads_as_a_command_sees_notebook_frames(shell: Any, people: pd.DataFrame) -> None:
    """sqlglot keeps ``CREATE TABLE ... AS PIVOT`` as an opaque Command, so the frame it
    reads was never made visible: 'Table with name people does not exist!'."""
    _ok(shell, "%%sqlml\nCREATE TABLE by_region AS PIVOT people ON plan USING count(*) GROUP BY region")
    out = _ok(shell, "%%sqlml\nSELECT region, basic FROM by_region ORDER BY region")
    expected = pd.crosstab(people.region, people.plan)
    assert out.basic.tolist() == expected["basic"].tolist()


def test_valid_duckdb_statements_print_no_sqlglot_warning(shell: Any, caplog: Any) -> None:
    """sqlglot's "contains unsupported syntax. Falling back to parsing as a 'Command'" was
    shown in red under valid DuckDB statements nbgov only parses to look at."""
    caplog.set_level(logging.WARNING, logger="sqlglot")
    _ok(shell, "%%sqlml\nCREATE TYPE mood AS ENUM ('sad', 'ok');\nCALL pragma_version()")
    out = _ok(shell, "%%sqlml\nSELECT 'ok'::mood AS m")
    assert out.m.astype(str).tolist() == ["ok"]
    assert not [r for r in caplog.records if r.name.startswith("sqlglot")], caplog.text


# --- ML.PREDICT reads the statement's CTEs ------------------------------------------------


def test_ml_predict_reads_the_statements_ctes(
    shell: Any, people: pd.DataFrame, linear: LogisticRegression, boosted: Pipeline
) -> None:
    """``WITH recent AS (...) SELECT * FROM ML.PREDICT(MODEL m, TABLE recent)`` failed with
    'Table with name recent does not exist!': the relation was compiled without the WITH."""
    old = people[people.age > 60]
    out = _both(
        shell,
        "WITH old AS (SELECT * FROM people WHERE age > 60), rich AS (SELECT * FROM old WHERE income > 40000)\n"
        "SELECT id, predicted_label, predicted_probabilities[2] AS p FROM ML.PREDICT(MODEL trees, TABLE rich) ORDER BY id",
    )
    rich = old[old.income > 40_000]
    assert out.id.tolist() == rich.id.tolist()
    assert out.predicted_label.tolist() == boosted.predict(rich[COLUMNS]).tolist()
    np.testing.assert_allclose(out.p.to_numpy(float), boosted.predict_proba(rich[COLUMNS])[:, 1], atol=1e-5)
    out = _both(
        shell,
        "WITH scored AS (SELECT id, plan, region, age, income, predict(churn, age, income).label AS l FROM people)\n"
        "SELECT id, predicted_label FROM ML.PREDICT(MODEL trees, (SELECT * FROM scored WHERE l = 1)) ORDER BY id",
    )
    chosen = people[linear.predict(people[NUMBERS]) == 1]
    assert out.id.tolist() == chosen.id.tolist()
    assert out.predicted_label.tolist() == boosted.predict(chosen[COLUMNS]).tolist()
    out = _both(shell, "WITH old AS (SELECT * FROM people WHERE age > 60)\nSELECT count(*) AS n FROM ML.PREDICT(MODEL churn, TABLE old)")
    assert out.n.tolist() == [len(old)]


def test_ml_predict_over_a_cte_of_another_ml_predict_is_one_line(shell: Any) -> None:
    for flags in ("", " --no-optimize"):
        with pytest.raises(UsageError) as raised:
            shell.run_cell(
                f"%%sqlml{flags}\nWITH s AS (SELECT * FROM ML.PREDICT(MODEL churn, TABLE people))\n"
                "SELECT count(*) FROM ML.PREDICT(MODEL trees, TABLE s)"
            ).raise_error()
        assert str(raised.value) == (
            "ML.PREDICT(MODEL trees) reads the CTE 's', which itself reads ML.PREDICT; "
            "create a table from the inner ML.PREDICT first"
        )


# --- a CASE that keeps unknown categories away from the model works optimized too ---------


def test_predict_guarded_by_case_scores_only_the_rows_it_reaches(
    shell: Any, people: pd.DataFrame, boosted: Pipeline
) -> None:
    """``CASE WHEN plan IN (...) THEN predict(m, *) END`` keeps a category the encoder
    refuses away from the model: --no-optimize (a UDF DuckDB calls for the rows that reach
    the branch) returned NULL for them; the optimizer batched the whole relation and failed
    on the unknown category."""
    frame = people.copy()
    frame.loc[::7, "plan"] = "platinum"
    shell.user_ns["mixed"] = frame
    known = (frame.plan != "platinum").to_numpy()
    expected = np.full(len(frame), np.nan)
    expected[known] = boosted.predict_proba(frame[known][COLUMNS])[:, 1]
    for sql in (
        "SELECT id, CASE WHEN plan IN ('basic', 'silver', 'gold') THEN predict(trees, *).probabilities[2] END AS p"
        " FROM mixed ORDER BY id",
        "SELECT id, CASE WHEN plan = 'platinum' THEN NULL ELSE predict(trees, *).probabilities[2] END AS p FROM mixed ORDER BY id",
        "SELECT id, IF(plan <> 'platinum', predict(trees, *).probabilities[2], NULL) AS p FROM mixed ORDER BY id",
    ):
        out = _both(shell, sql)
        np.testing.assert_allclose(out.p.to_numpy(float), expected, atol=1e-5)
    with pytest.raises(UsageError, match="input 'plan' holds a category the model's OneHotEncoder does not know"):
        shell.run_cell("%%sqlml\nSELECT id, predict(trees, *).probabilities[2] AS p FROM mixed").raise_error()


# --- ML.PREDICT over a relation that already has a predicted_<output> column --------------


@pytest.mark.parametrize("flags", ["", " --no-optimize"])
def test_ml_predict_refuses_a_column_named_like_a_prediction(
    shell: Any, people: pd.DataFrame, linear: LogisticRegression, flags: str
) -> None:
    """ML.PREDICT returns every input column: a relation column named ``predicted_label``
    was silently replaced by the prediction (its values lost); now one line names it and
    asks to rename it, with or without the optimizer, and renamed it is kept."""
    frame = people[["id", "age", "income"]].assign(predicted_label=9, note="x")
    shell.user_ns["rescored"] = frame
    for sql in (
        "SELECT * FROM ML.PREDICT(MODEL churn, TABLE rescored) ORDER BY id",
        "SELECT id, predicted_label FROM ML.PREDICT(MODEL churn, TABLE rescored) WHERE predicted_label = 1",
    ):
        with pytest.raises(UsageError) as raised:
            shell.run_cell(f"%%sqlml{flags}\n{sql}").raise_error()
        assert str(raised.value) == (
            "ML.PREDICT(MODEL churn@1): the relation's column 'predicted_label' is named like the column(s) "
            "ML.PREDICT adds for the model's outputs; rename it in the relation (SELECT ..., predicted_label "
            "AS predicted_label_input ...) or leave it out"
        )
    out = _both(shell, "SELECT * FROM ML.PREDICT(MODEL churn, (SELECT * RENAME (predicted_label AS mine) FROM rescored)) ORDER BY id")
    assert list(out.columns) == ["id", "age", "income", "mine", "note", "predicted_label", "predicted_probabilities"]
    assert out.mine.tolist() == [9] * len(frame)
    assert out.predicted_label.tolist() == linear.predict(frame[NUMBERS]).tolist()


# --- a view cannot hold a model call ---------------------------------------------------------


@pytest.mark.parametrize("flags", ["", " --no-optimize"])
def test_create_view_with_a_model_call_is_refused_in_one_line(shell: Any, flags: str) -> None:
    """``CREATE VIEW v AS SELECT predict(...)`` said "CREATE: ok", then every read of ``v``
    failed on nbgov's per-statement helpers ('Table with name nbgov_batch_1 does not exist!',
    'Scalar Function with name nbgov_udf_1 does not exist!'); nothing is created now."""
    _ok(shell, "%%sqlml\nCREATE TABLE stored AS SELECT * FROM people")
    for sql in (
        "CREATE VIEW v AS SELECT id, predict(trees, plan, region, age, income).label AS l FROM stored",
        "CREATE OR REPLACE VIEW v AS SELECT id, predict(churn, age, income).label AS l FROM stored",
        "CREATE VIEW v AS SELECT * FROM ML.PREDICT(MODEL trees, TABLE stored)",
    ):
        with pytest.raises(UsageError) as raised:
            shell.run_cell(f"%%sqlml{flags}\n{sql}").raise_error()
        assert str(raised.value) == (
            "CREATE VIEW cannot call predict() or ML.PREDICT: models are scored when a statement runs; "
            "use CREATE TABLE ... AS SELECT to keep the predictions, or call predict() in the query that reads it"
        )
    out = _ok(shell, "%%sqlml\nSELECT count(*) AS n FROM duckdb_views() WHERE view_name = 'v'")
    assert out.n.tolist() == [0]


# --- a view over a notebook frame keeps reading the frame -----------------------------------


def test_view_over_a_notebook_frame_reads_it_in_later_statements(
    shell: Any, people: pd.DataFrame, boosted: Pipeline
) -> None:
    """``CREATE VIEW old AS SELECT * FROM people WHERE ...`` worked, then every statement
    reading ``old`` failed with 'Table with name people does not exist!'."""
    _ok(shell, "%%sqlml\nCREATE VIEW old AS SELECT * FROM people WHERE age > 60;\nCREATE VIEW old_gold AS SELECT * FROM old WHERE plan = 'gold'")
    chosen = people[(people.age > 60) & (people.plan == "gold")]
    out = _both(shell, "SELECT id, predict(trees, *).probabilities[2] AS p FROM old_gold ORDER BY id")
    assert out.id.tolist() == chosen.id.tolist()
    np.testing.assert_allclose(out.p.to_numpy(float), boosted.predict_proba(chosen[COLUMNS])[:, 1], atol=1e-5)
    out = _both(shell, "SELECT count(*) AS n FROM ML.PREDICT(MODEL trees, TABLE old)")
    assert out.n.tolist() == [int((people.age > 60).sum())]
    shell.user_ns["people"] = people.head(10)  # the view reads the frame as it is now
    out = _ok(shell, "%%sqlml\nSELECT count(*) AS n FROM old")
    assert out.n.tolist() == [int((people.head(10).age > 60).sum())]


# --- errors of the query around ML.PREDICT are the same with and without the optimizer ------


def _error(shell: Any, code: str) -> str:
    with pytest.raises(UsageError) as raised:
        shell.run_cell(code).raise_error()
    return str(raised.value)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM ML.PREDICT(MODEL churn, TABLE people) WHERE predicted_label = 'yes'",
        "SELECT * FROM ML.PREDICT(MODEL churn, TABLE people) WHERE predicted_nope = 1",
    ],
)
def test_ml_predict_query_errors_do_not_depend_on_the_optimizer(shell: Any, sql: str) -> None:
    """A model inlined as SQL added '; expected churn@1(...)' (or '; model inputs: ...') to a
    mistake in the query around ML.PREDICT, which --no-optimize (ONNX scoring) did not."""
    optimized = _error(shell, f"%%sqlml\n{sql}")
    assert optimized == _error(shell, f"%%sqlml --no-optimize\n{sql}")
    assert "\n" not in optimized and "churn@1" not in optimized


def test_pandas_series_binds_as_a_list_and_a_frame_parameter_is_one_line(
    shell: Any, people: pd.DataFrame, linear: LogisticRegression
) -> None:
    """``top = people.nlargest(3, "income").id`` then ``WHERE id IN $top`` failed with DuckDB's
    'Unable to transform python value of type pandas.Series', naming no parameter."""
    top = people.nlargest(3, "income").id
    shell.user_ns.update(top=top, few=pd.Index([0, 1]), whole=people.head(2))
    out = _both(shell, "SELECT id, predict(churn, age, income).label AS l FROM people WHERE id IN $top ORDER BY id")
    chosen = people[people.id.isin(top)].sort_values("id")
    assert out.id.tolist() == chosen.id.tolist()
    assert out.l.tolist() == linear.predict(chosen[NUMBERS]).tolist()
    assert _both(shell, "SELECT count(*) AS n FROM people WHERE list_contains($few, id)").n.tolist() == [2]
    message = _error(shell, "%%sqlml\nSELECT $whole AS w")
    assert message == (
        "parameter $whole is a DataFrame, a table: read it by name (FROM whole); "
        "$name binds a number, string, date or a list of them"
    )


# --- a model file under the home folder ------------------------------------------------------


def test_create_model_from_a_path_under_home(
    shell: Any, people: pd.DataFrame, linear: LogisticRegression, tmp_path: Any, monkeypatch: Any
) -> None:
    """``CREATE MODEL m FROM '~/models/m.onnx'`` said "model file not found" for a file that
    is there: ``~`` was not expanded, as DuckDB expands it in its own file paths."""
    from skl2onnx import to_onnx

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    onx = to_onnx(linear, people[NUMBERS].to_numpy(np.float32)[:1], options={"zipmap": False})
    (home / "models" / "m.onnx").write_bytes(onx.SerializeToString())
    monkeypatch.setenv("HOME", str(home))
    _ok(shell, "%%sqlml\nCREATE MODEL from_home FROM '~/models/m.onnx'")
    out = _both(shell, "SELECT id, predict(from_home, age, income).probabilities[2] AS p FROM people ORDER BY id")
    np.testing.assert_allclose(out.p.to_numpy(float), linear.predict_proba(people[NUMBERS])[:, 1], atol=1e-5)


def test_drop_model_if_exists_of_a_missing_model_says_nothing_was_dropped(shell: Any, capsys: Any) -> None:
    """It printed 'model ghost dropped (0 version(s))'."""
    capsys.readouterr()
    _ok(shell, "%%sqlml\nDROP MODEL IF EXISTS ghost")
    assert capsys.readouterr().out.strip() == "model ghost does not exist; nothing dropped"
    _ok(shell, "%%sqlml\nDROP MODEL IF EXISTS churn")
    assert capsys.readouterr().out.strip() == "model churn dropped (1 version(s))"


def test_ml_predict_reads_a_recursive_cte(shell: Any, linear: LogisticRegression) -> None:
    """The copied CTE lost WITH RECURSIVE: 'Circular reference to CTE "r", use WITH RECURSIVE'."""
    out = _both(
        shell,
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5)\n"
        "SELECT n, predicted_probabilities[2] AS p FROM ML.PREDICT(MODEL churn, (SELECT n, n * 10.0 AS age, 50000.0 AS income FROM r)) ORDER BY n",
    )
    grid = pd.DataFrame({"age": np.arange(1, 6) * 10.0, "income": 50_000.0})
    assert out.n.tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(out.p.to_numpy(float), linear.predict_proba(grid)[:, 1], atol=1e-5)


# --- ML.PREDICT written as BigQuery users write it, wrongly ---------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            "SELECT * FROM ML.PREDICT(MODEL churn, TABLE people, STRUCT(0.5 AS threshold))",
            "ML.PREDICT takes two arguments, the model and the relation (options such as BigQuery's STRUCT(...) "
            "third argument are not supported); usage: ML.PREDICT(MODEL name, (query) | TABLE name)",
        ),
        (
            "SELECT * FROM ML.PREDICT(MODEL churn, (SELECT * FROM people), STRUCT(0.5 AS threshold))",
            "ML.PREDICT takes two arguments, the model and the relation (options such as BigQuery's STRUCT(...) "
            "third argument are not supported); usage: ML.PREDICT(MODEL name, (query) | TABLE name)",
        ),
    ],
)
def test_ml_predict_third_argument_is_said_in_terms_of_what_was_written(shell: Any, sql: str, expected: str) -> None:
    """A third argument failed with a parse error positioned in nbgov's own SQL ('syntax error
    at or near "AS" (line 1, column 30)')."""
    assert _error(shell, f"%%sqlml\n{sql}") == expected
    assert _error(shell, f"%%sqlml --no-optimize\n{sql}") == expected


def test_ml_predict_in_a_select_list_says_it_is_a_table(shell: Any) -> None:
    """It named nbgov's placeholder: 'Referenced column "nbgov_mlp_0_0" was not found because
    the FROM clause is missing'."""
    expected = (
        "ML.PREDICT(MODEL churn, ...) is a table, not a value: read it in FROM or JOIN "
        "(SELECT * FROM ML.PREDICT(MODEL m, TABLE t)), or call predict(m, ...) for a value per row"
    )
    for flags in ("", " --no-optimize"):
        assert _error(shell, f"%%sqlml{flags}\nSELECT ML.PREDICT(MODEL churn, TABLE people)") == expected


def test_create_model_if_not_exists(shell: Any, people: pd.DataFrame, linear: LogisticRegression, boosted: Pipeline, capsys: Any) -> None:
    """BigQuery ML's and DuckDB's ``CREATE ... IF NOT EXISTS`` read "IF" as the model name and
    failed with 'expected FROM after the model name'."""
    capsys.readouterr()
    _ok(shell, "%%sqlml\nCREATE MODEL IF NOT EXISTS churn FROM $boosted")
    assert capsys.readouterr().out.strip() == "model churn already exists; nothing registered (IF NOT EXISTS)"
    versions = _ok(shell, "%%sqlml\nSHOW MODELS")
    assert versions[versions.name == "churn"].version.tolist() == [1]
    out = _ok(shell, "%%sqlml\nSELECT predict(churn, age, income).probabilities[2] AS p FROM people ORDER BY id")
    np.testing.assert_allclose(out.p.to_numpy(float), linear.predict_proba(people[NUMBERS])[:, 1], atol=1e-5)
    capsys.readouterr()
    _ok(shell, "%%sqlml\nCREATE MODEL IF NOT EXISTS fresh FROM $boosted")
    assert capsys.readouterr().out.startswith("model fresh version 1 registered")
    assert _error(shell, "%%sqlml\nCREATE OR REPLACE MODEL IF NOT EXISTS fresh FROM $boosted") == (
        "OR REPLACE and IF NOT EXISTS cannot both be given; "
        "usage: CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name FROM 'path' | $variable"
    )


# --- DuckDB's own EXPLAIN -------------------------------------------------------------------


def test_duckdb_explain_reads_notebook_frames(shell: Any) -> None:
    """sqlglot keeps ``EXPLAIN SELECT ...`` as a command with the query as one string, so the
    frame it reads was never made visible: 'Table with name people does not exist!'."""
    for sql in ("EXPLAIN SELECT * FROM people WHERE age > 60", "EXPLAIN ANALYZE SELECT count(*) FROM people"):
        out = _ok(shell, f"%%sqlml\n{sql}")
        assert list(out.columns) == ["explain_key", "explain_value"]
        assert "SCAN" in str(out.explain_value.iloc[0]).upper()


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN SELECT id, predict(trees, *).label FROM people",
        "EXPLAIN ANALYZE SELECT predict(churn, age, income) FROM people",
        "EXPLAIN SELECT * FROM ML.PREDICT(MODEL trees, TABLE people)",
    ],
)
def test_duckdb_explain_of_a_model_call_points_to_dash_dash_explain(shell: Any, sql: str) -> None:
    """The model calls inside DuckDB's EXPLAIN were never rewritten: 'Scalar Function with name
    predict does not exist!', or a syntax error at the model name for ML.PREDICT."""
    expected = (
        "EXPLAIN cannot plan predict() or ML.PREDICT: run the statement with %%sqlml --explain to see "
        "DuckDB's plan and what the optimizer did with each model call"
    )
    assert _error(shell, f"%%sqlml\n{sql}") == expected
    assert _error(shell, f"%%sqlml --no-optimize\n{sql}") == expected
