"""A CASE (IF, COALESCE, OR) that keeps a row from predict() keeps it from everything the
optimizer computes in SQL for that call, on Spark as on DuckDB.

The optimizer lowers a scikit-learn pipeline's OneHotEncoder/StandardScaler in front of a
forest kept as ONNX to SQL computed before the model, with a ``raise_error`` for a category
the encoder does not know. DuckDB computes a CASE branch, the model's arguments included,
only for the rows that take it; Spark computes a Python UDF's arguments for every row, below
the CASE, so the optimized statement failed on a row the CASE sent elsewhere while DuckDB
and --no-optimize returned it. Each computed argument now reads under the call's reach
condition (``spark/guards.py``), nested conditions composed as DuckDB evaluates them; a
row that does reach the model still fails, alike, and the workers of the failed task print
no traceback into the cell (``spark/daemon.py``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from nbgov.errors import NbgovError
from tests.fixtures.spark import QUICK_JVM_CONF, engine_on, module_database
from tests.fixtures.sqlml import register, unwrapped

pytestmark = pytest.mark.spark

NUMBERS = ["age", "income", "tenure", "score"]
REFUSED = (
    "predict(rf@1): input 'plan' holds a category the model's OneHotEncoder does not know "
    "(it refuses unknown categories); known: basic, max, pro"
)


@pytest.fixture(scope="module")
def cust() -> pd.DataFrame:
    X, _ = make_classification(n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=NUMBERS)
    frame["plan"] = np.random.default_rng(0).choice(["basic", "pro", "max"], len(frame))
    frame["id"] = np.arange(len(frame))
    return frame


@pytest.fixture(scope="module")
def rf(cust: pd.DataFrame) -> Pipeline:
    """The audit's pipeline: one-hot + scaler in front of a forest the optimizer keeps as
    ONNX on Spark, its featurizer lowered to SQL."""
    _, y = make_classification(n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=0)
    features = ColumnTransformer([("cat", OneHotEncoder(), ["plan"]), ("num", StandardScaler(), NUMBERS)])
    model = Pipeline([("prep", features), ("clf", RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0))])
    return model.fit(cust, y)


@pytest.fixture
def small(cust: pd.DataFrame) -> pd.DataFrame:
    frame = cust.head(6).copy()
    frame.loc[[1, 3], "plan"] = "zzz"  # unknown to the encoder
    return frame


@pytest.fixture(scope="module")
def spark_rf_database(spark: Any, rf: Pipeline) -> Iterator[str]:
    with module_database(spark, "nbgov_test_reach_guards", lambda engine: register(engine, "rf", rf)) as name:
        yield name


@pytest.fixture
def engines(engine: Any, spark: Any, spark_rf_database: str, rf: Pipeline) -> Iterator[tuple[Any, Any]]:
    """DuckDB and Spark engines with the pipeline registered as ``rf``."""
    register(engine, "rf", rf)
    with engine_on(spark, spark_rf_database) as spark_engine:
        yield engine, spark_engine


def _outcome(engine: Any, sql: str, frames: dict[str, pd.DataFrame], optimize: bool) -> str | list[Any]:
    """The last column of the result as a list (a whole prediction: its label), or the
    error's one line."""
    try:
        df = engine.execute(sql, frames=frames, optimize=optimize)[-1].df
    except NbgovError as exc:
        return str(exc)
    assert df is not None
    column = df.iloc[:, -1]
    if isinstance(column.dtype, pd.ArrowDtype) and pa.types.is_struct(column.dtype.pyarrow_dtype):
        column = column.struct.field("label")
    return [None if pd.isna(v) else int(v) for v in column]


KEPT_AWAY = [
    "SELECT id, CASE WHEN plan <> 'zzz' THEN predict(rf, *).label ELSE -1 END AS l FROM small ORDER BY id",
    "SELECT id, CASE WHEN plan IN ('basic', 'pro', 'max') THEN predict(rf, *).label ELSE -1 END AS l FROM small ORDER BY id",
    "SELECT id, CASE WHEN id IN (0, 2, 4, 5) THEN predict(rf, *).label ELSE -1 END AS l FROM small ORDER BY id",
    "SELECT id, CASE WHEN plan = 'zzz' THEN -1 ELSE predict(rf, *).label END AS l FROM small ORDER BY id",
    "SELECT id, CASE WHEN plan <> 'zzz' THEN predict(rf, *) END AS p FROM small ORDER BY id",
    "SELECT id, CASE plan WHEN 'zzz' THEN -1 ELSE predict(rf, *).label END AS l FROM small ORDER BY id",
    "SELECT id, IF(plan <> 'zzz', predict(rf, *).label, -1) AS l FROM small ORDER BY id",
    "SELECT id, COALESCE(CASE WHEN plan = 'zzz' THEN -1 END, predict(rf, *).label) AS l FROM small ORDER BY id",
    "SELECT id FROM small WHERE plan = 'zzz' OR predict(rf, *).label = 1 ORDER BY id",
]


@pytest.mark.parametrize("sql", KEPT_AWAY)
def test_rows_a_condition_keeps_from_predict_skip_its_lowered_encoder_on_spark(
    engines: tuple[Any, Any], small: pd.DataFrame, rf: Pipeline, sql: str
) -> None:
    """The audit's repro and its siblings: Spark optimized failed on the 'zzz' rows with the
    OneHotEncoder's refusal; now it gives what DuckDB and --no-optimize give."""
    duck, spark = engines
    frames = {"small": small}
    outcomes = {
        (name, optimize): _outcome(engine, sql, frames, optimize)
        for name, engine in (("duckdb", duck), ("spark", spark)) for optimize in (True, False)
    }
    expected = outcomes["duckdb", False]
    assert isinstance(expected, list), expected
    assert outcomes == dict.fromkeys(outcomes, expected)
    known = (small.plan != "zzz").to_numpy()
    labels = rf.predict(small.loc[known])
    if "WHERE" in sql:
        assert expected == sorted([*small.id[~known], *small.id[known][labels == 1]])
    else:
        assert [v for v, k in zip(expected, known) if k] == labels.tolist()
        assert [v for v, k in zip(expected, known) if not k] in ([-1, -1], [None, None])


NESTED = [
    "SELECT id, CASE WHEN plan <> 'zzz' THEN CASE WHEN CAST(code AS INTEGER) > 0 THEN predict(rf, *).label ELSE -2 END "
    "ELSE -1 END AS l FROM coded ORDER BY id",
    "SELECT id, CASE WHEN plan <> 'zzz' THEN CASE WHEN CAST(code AS INTEGER) > 0 THEN 1 ELSE predict(rf, *).label END "
    "ELSE -1 END AS l FROM coded ORDER BY id",
    "SELECT id, CASE WHEN plan <> 'zzz' THEN CASE WHEN predict(rf, *).label = 1 THEN predict(rf, *).probabilities[2] "
    "ELSE 2 END ELSE -1 END AS l FROM coded ORDER BY id",
    "SELECT id, IF(plan <> 'zzz', COALESCE(CASE WHEN CAST(code AS INTEGER) > 0 THEN 5 END, predict(rf, *).label), -1) AS l "
    "FROM coded ORDER BY id",
    "SELECT id FROM coded WHERE plan = 'zzz' OR (CAST(code AS INTEGER) > 0 AND predict(rf, *).label = 1) ORDER BY id",
]


@pytest.mark.parametrize("sql", NESTED)
def test_a_condition_inside_a_guarded_branch_is_evaluated_only_where_the_outer_one_lets_it(
    engines: tuple[Any, Any], small: pd.DataFrame, sql: str
) -> None:
    """Nested guards compose: the inner CASE's WHEN (a cast of text that fails, an inner
    predict() the encoder refuses) is evaluated, as on DuckDB, only on the rows the outer
    CASE / OR lets through. Spark computed the call's reach condition ``inner AND outer``
    on every row, inner first (and left a call under a WHEN that scores a model unguarded),
    so 'x' failed the cast, or 'zzz' the encoder, on rows DuckDB never evaluated them for."""
    coded = small.assign(code=["1", "x", "-2", "y", "0", "3"])  # 'x' / 'y' only where plan is 'zzz'
    duck, spark = engines
    outcomes = {
        (name, optimize): _outcome(engine, sql, {"coded": coded}, optimize)
        for name, engine in (("duckdb", duck), ("spark", spark)) for optimize in (True, False)
    }
    expected = outcomes["duckdb", False]
    assert isinstance(expected, list) and len(expected) > 0, expected
    assert outcomes == dict.fromkeys(outcomes, expected)


def test_a_row_that_reaches_predict_with_an_unknown_category_still_fails_alike(
    engines: tuple[Any, Any], small: pd.DataFrame
) -> None:
    """Only the rows the CASE keeps away are spared: the same CASE letting row 1 ('zzz')
    through fails with the encoder's one-line refusal on both engines, with and without
    the optimizer, while the one keeping rows 1 and 3 away returns. On Spark the pipeline's
    featurizer is SQL computed in the arguments of the model's Arrow UDF."""
    frames = {"small": small}
    spared = "SELECT id, CASE WHEN id IN (0, 2, 4, 5) THEN predict(rf, *).label ELSE -1 END AS l FROM small ORDER BY id"
    reached = "SELECT id, CASE WHEN id IN (0, 1, 2) THEN predict(rf, *).label ELSE -1 END AS l FROM small ORDER BY id"
    text = unwrapped(engines[1].explain(spared, frames=frames))
    assert "lowered to trees over 7 SQL column(s) of the inputs" in text
    assert "kept as ONNX" in text and "Arrow UDF" in text
    for engine in engines:
        for optimize in (True, False):
            assert isinstance(_outcome(engine, spared, frames, optimize), list), (engine, optimize)
            assert _outcome(engine, reached, frames, optimize) == REFUSED, (engine, optimize)


def test_each_computed_argument_is_computed_only_on_the_rows_reaching_the_call() -> None:
    from nbgov.sqlml.spark.guards import guarded_calls

    cases = [
        # a computed argument (a cast, the optimizer's error()) reads under the reach condition
        ("SELECT CASE WHEN a THEN f(x, CAST(y AS FLOAT), error('no')) END",
         "SELECT CASE WHEN a THEN F(COALESCE(a, FALSE), x, CASE WHEN COALESCE(a, FALSE) THEN CAST(y AS REAL) END, "
         "CASE WHEN COALESCE(a, FALSE) THEN ERROR('no') END) END"),
        ("SELECT 1 FROM t WHERE a OR f(x, y + 1) > 0",
         "SELECT 1 FROM t WHERE a OR F(NOT COALESCE(a, FALSE), x, CASE WHEN NOT COALESCE(a, FALSE) THEN y + 1 END) > 0"),
        # columns and constants cannot raise; a call every row reaches is left as it was
        ("SELECT COALESCE(b, f((x), 1, $p))", "SELECT COALESCE(b, F(b IS NULL, (x), 1, $p))"),
        ("SELECT f(CAST(y AS FLOAT))", "SELECT F(TRUE, CAST(y AS REAL))"),
        # nested guards compose, outermost first: an inner condition only where the outer holds
        ("SELECT CASE WHEN p THEN CASE WHEN CAST(c AS INT) > 0 THEN f(x, y + 1) END END",
         "SELECT CASE WHEN p THEN CASE WHEN CAST(c AS INT) > 0 THEN F(CASE WHEN COALESCE(p, FALSE) THEN "
         "COALESCE(CAST(c AS INT) > 0, FALSE) END, x, CASE WHEN CASE WHEN COALESCE(p, FALSE) THEN "
         "COALESCE(CAST(c AS INT) > 0, FALSE) END THEN y + 1 END) END END"),
        ("SELECT 1 FROM t WHERE p OR (CAST(c AS INT) > 0 AND f(x) = 1)",
         "SELECT 1 FROM t WHERE p OR (CAST(c AS INT) > 0 AND F(CASE WHEN NOT COALESCE(p, FALSE) THEN "
         "COALESCE(CAST(c AS INT) > 0, TRUE) END, x) = 1)"),
        # a WHEN that scores a model is left out, the conditions around it kept
        ("SELECT CASE WHEN p THEN CASE WHEN f(x) = 1 THEN f(z) END END",
         "SELECT CASE WHEN p THEN CASE WHEN F(COALESCE(p, FALSE), x) = 1 THEN F(COALESCE(p, FALSE), z) END END"),
    ]
    for sql, guarded in cases:
        assert guarded_calls(sqlglot.parse_one(sql, read="duckdb"), ["f"]).sql("duckdb") == guarded


# --- a failed task's workers print no traceback into the cell ----------------------------------


def test_a_refusal_in_a_spark_worker_prints_no_traceback(tmp_path: Path, rf: Pipeline) -> None:
    """onnxruntime refusing a value in one worker fails the task; Spark then hangs up on the
    workers still talking to it and PySpark's daemon printed each one's BrokenPipeError as a
    multi-line traceback on the JVM's stderr, the kernel's: in the failing cell and, late,
    in the next. Run in a fresh process whose stderr is read whole (the shared session's
    JVM writes to the test run's capture)."""
    import pickle

    model = tmp_path / "rf.pkl"
    model.write_bytes(pickle.dumps(rf))
    script = tmp_path / "refuse.py"
    script.write_text(textwrap.dedent("""
        import json, pickle, sys, time
        import numpy as np, pandas as pd
        from nbgov.errors import NbgovError
        from nbgov.sqlml.spark.engine import SparkEngine
        from nbgov.sqlml.spark.session import spark_session
        handle = spark_session("local[2]", {"spark.sql.warehouse.dir": sys.argv[1], **json.loads(sys.argv[2])})
        engine = SparkEngine(session=handle.session)
        engine.execute("CREATE MODEL rf FROM $rf", params={"rf": pickle.loads(open(sys.argv[3], "rb").read())})
        rng = np.random.default_rng(1)
        frame = pd.DataFrame(rng.normal(size=(40, 4)), columns=["age", "income", "tenure", "score"])
        frame["plan"], frame["id"] = "pro", np.arange(40)
        frame.loc[[1, 30], "plan"] = "zzz"
        sql = "SELECT id, predict(rf, *).label AS l FROM small"
        for _ in range(2):
            try:
                engine.execute(sql, frames={"small": frame}, optimize=False)
            except NbgovError as error:
                print(error, flush=True)
        print(engine.execute("SELECT count(*) AS n FROM small", frames={"small": frame})[-1].df.n[0], flush=True)
        time.sleep(2)  # what the workers print reaches stderr late
        engine.close()
        handle.session.stop()
    """))
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "warehouse"), _json(QUICK_JVM_CONF), str(model)],
        capture_output=True, text=True, timeout=400, env=_env(),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines() == [REFUSED, REFUSED, "40"], run.stdout
    assert "Traceback" not in run.stderr and "BrokenPipeError" not in run.stderr, run.stderr


def _json(conf: dict[str, str]) -> str:
    import json

    return json.dumps(conf)


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


class _Exited(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


@pytest.mark.parametrize(("raised", "printed"), [
    (BrokenPipeError(32, "Broken pipe"), False),
    (ConnectionResetError(104, "Connection reset by peer"), False),
    (ValueError("a worker's own failure"), True),
])
def test_the_daemon_quiets_only_a_worker_whose_jvm_hung_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], raised: Exception, printed: bool
) -> None:
    """nbgov's daemon is PySpark's with one change: a worker failing to reach a JVM that
    closed its connection exits (status 1, as the daemon makes it) without a traceback;
    any other error still reaches stderr as PySpark's daemon prints it."""
    import os

    import pyspark.daemon

    from nbgov.sqlml.spark import daemon

    def worker(sock: Any, authenticated: bool) -> int:
        raise raised

    def manager() -> None:  # the forked child's part of PySpark's manager
        try:
            pyspark.daemon.worker(None, True)
        except _Exited:
            raise
        except BaseException:
            traceback.print_exc()
            raise _Exited(1) from None

    def exit_(code: int) -> None:
        raise _Exited(code)

    monkeypatch.setattr(pyspark.daemon, "worker", worker)
    monkeypatch.setattr(pyspark.daemon, "manager", manager)
    monkeypatch.setattr(os, "_exit", exit_)
    with pytest.raises(_Exited) as exited:
        daemon.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert ("Traceback" in err) == printed, err


def test_sessions_nbgov_starts_on_a_local_master_run_its_daemon(spark: Any) -> None:
    assert spark.conf.get("spark.python.daemon.module") == "nbgov.sqlml.spark.daemon"
