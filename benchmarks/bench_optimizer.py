"""Raven-style benchmark of the SQL–model cross-optimizer (issues 4 and 14).

A hospital-stay-like table (1M rows, 10 mixed INTEGER/DOUBLE/BOOLEAN features), a
100-tree depth-8 gradient-boosted length-of-stay model and selective queries on
1–2 features, run three ways in the same process:

  * nbgov optimized      (pruning + projection + batching + scoring each decision
                          region of the pruned model once; the statement's plan reused)
  * nbgov --no-optimize  (the original model through the Arrow UDF)
  * raw onnxruntime      on the rows filtered in pandas before timing (its session
                          built once, default threads)

plus a logistic-regression (readmission) query over the full table where the
model is translated to SQL, against raw onnxruntime on the full numpy matrix.

The tables live in a DuckDB database file (``--storage file``, the default), stored as
DuckDB stores any table it checkpoints: strings dictionary-compressed, integers
bit-packed, which is what lets a string filter skip work. ``--storage memory`` keeps
them in an in-memory DuckDB, which stores tables uncompressed: there the string filter
of a selective pipeline query alone costs about as much as raw onnxruntime scoring the
rows it leaves (raw onnxruntime's filter is done in pandas before timing).
``--storage pandas`` and ``--storage arrow`` leave them notebook DataFrames (pandas, or
pyarrow Tables) that statements read by variable name, as in a notebook; an Arrow table's
repetitive text columns are read dictionary-encoded from the second statement on (a
pandas DataFrame is left to DuckDB's own pandas scan).

Every variant runs once per round, in a new seeded random order each round, and each
figure is the MEDIAN over rounds of the paired ratio (this round's time over the same
round's baseline), so background load hits both sides of a ratio alike. One load is not
shared alike: raw onnxruntime's session (default options) leaves its worker threads
spinning for tens of milliseconds after a run (about 30 ms of CPU), and on two cores that
slows whatever runs next. Measured on the third pipeline query: nbgov 10.5 ms alone,
15.1 ms right after raw onnxruntime, 10.7 ms after a session built without spinning; raw
onnxruntime 11.2 ms (12.3 ms without spinning). The baseline keeps its defaults here.
Targets: each tree query <= 0.8x raw onnxruntime and >= 3x faster than --no-optimize;
logistic regression <= 1.5x raw onnxruntime. Each query's first, cold run (planning,
pruning, session creation) is shown in parentheses.

    python3 benchmarks/bench_optimizer.py [--rows 1000000] [--pairs 9]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

from benchmarks.pairs import median_ratio, paired
from nbgov.sqlml.engine import Engine
from nbgov.sqlml.models.runtime import strip_zipmap

FEATURES = (
    "age",
    "is_emergency",
    "num_lab_procedures",
    "num_medications",
    "comorbidities",
    "bmi",
    "glucose",
    "blood_pressure",
    "prior_visits",
    "heart_rate",
)
# 1-2 selective predicates, 2-8% of the rows each: (SQL, the same rows in pandas)
TREE_QUERIES: tuple[tuple[str, Callable[[pd.DataFrame], pd.Series]], ...] = (
    ("age >= 90", lambda f: f.age >= 90),
    ("age BETWEEN 70 AND 74", lambda f: f.age.between(70, 74)),
    ("is_emergency = true AND comorbidities = 4", lambda f: f.is_emergency & (f.comorbidities == 4)),
    ("comorbidities >= 5 AND age < 40", lambda f: (f.comorbidities >= 5) & (f.age < 40)),
)


def hospital_stays(n: int, seed: int = 0) -> pd.DataFrame:
    """Synthetic admissions: length of stay and readmission driven by a few features."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "age": rng.integers(18, 96, n).astype(np.int32),
            "is_emergency": rng.random(n) < 0.3,
            "num_lab_procedures": rng.poisson(40, n).astype(np.int32),
            "num_medications": rng.poisson(15, n).astype(np.int32),
            "comorbidities": rng.binomial(10, 0.25, n).astype(np.int32),
            "bmi": rng.normal(27, 5, n).round(1),
            "glucose": rng.gamma(9, 13, n).round(0),
            "blood_pressure": rng.normal(125, 18, n).round(0),
            "prior_visits": rng.poisson(2, n).astype(np.int32),
            "heart_rate": rng.normal(78, 12, n).round(0),
        }
    )
    # Length of stay follows a risk-score structure (as in Raven's hospital-stay data,
    # a few drivers dominate): age band, admission type and comorbidity burden; the
    # labs and vitals do not change it (they do drive readmission).
    band = np.digitize(frame.age.to_numpy(), [45, 65, 80])
    stay = np.array([1.0, 2.0, 3.5, 5.0])[band] * np.where(
        frame.is_emergency, 1.6, 1.0
    ) + 0.9 * frame.comorbidities * np.where(band >= 2, 1.5, 1.0)
    frame["length_of_stay"] = 2 + stay
    risk = (
        stay
        + 1.5 * (frame.glucose > 180)
        + 0.1 * np.abs(frame.bmi - 25)
        + 0.2 * frame.prior_visits
    )
    frame["readmitted"] = (risk + rng.normal(0, 1.5, n) > 6.0).astype(np.int64)
    return frame


def train_models(frame: pd.DataFrame, train_rows: int) -> tuple[bytes, bytes]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sample = frame.sample(train_rows, random_state=1)
    X = sample[list(FEATURES)].astype(np.float32)
    gbm = GradientBoostingRegressor(
        n_estimators=100, max_depth=8, min_impurity_decrease=1e-6, random_state=0
    ).fit(X, sample.length_of_stay)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        X, sample.readmitted
    )
    initial = [("input", FloatTensorType([None, len(FEATURES)]))]
    opsets = {"": 17, "ai.onnx.ml": 3}
    gb_onnx = convert_sklearn(
        gbm, initial_types=initial, target_opset=opsets
    ).SerializeToString()
    lr_onnx = convert_sklearn(
        logreg, initial_types=initial, target_opset=opsets
    ).SerializeToString()
    return gb_onnx, lr_onnx


def tree_scenario(engine: Engine, frame: pd.DataFrame, gb_onnx: bytes, rounds: int) -> bool:
    """The four selective tree queries against --no-optimize and raw onnxruntime."""
    raw_gb = ort.InferenceSession(gb_onnx, ort.SessionOptions(), providers=["CPUExecutionProvider"])
    cols = ", ".join(FEATURES)
    engine.execute(f"SELECT count(predict(los, {cols})) FROM stays WHERE id < 10000")  # warm the pools
    print(f"\n== tree ensemble: 100 trees, depth 8, {len(frame):,} rows; medians of {rounds} paired rounds ==")
    print(f"{'predicate':42} {'rows':>7} {'opt ms':>7} {'raw ms':>7} {'opt/raw':>8} {'noopt/opt':>10}  nodes kept")
    ok = True
    for where, rows in TREE_QUERIES:
        sql = f"SELECT avg(predict(los, {cols})) AS mean_los, count(*) AS n FROM stays WHERE {where}"
        cold_start = time.perf_counter()
        engine.execute(sql)
        cold = time.perf_counter() - cold_start
        X = frame.loc[rows(frame), list(FEATURES)].to_numpy(np.float32)  # filtered before timing
        times, values = paired(
            rounds,
            {
                "opt": partial(result, engine, sql),
                "noopt": partial(result, engine, sql, optimize=False),
                "raw": partial(raw_gb.run, None, {"input": X}),
            },
        )
        fields = _stats(engine.explain(sql))
        opt, plain, raw = values["opt"], values["noopt"], values["raw"][0]
        same = bool(np.isclose(opt.mean_los[0], plain.mean_los[0], rtol=1e-6)) and bool(
            np.isclose(float(raw.mean()), opt.mean_los[0], rtol=1e-5)
        ) and int(opt.n[0]) == len(X)
        vs_raw, vs_plain = median_ratio(times["opt"], times["raw"]), median_ratio(times["noopt"], times["opt"])
        ok &= vs_raw <= 0.8 and vs_plain >= 3 and same
        print(
            f"{where:42} {len(X):>7,} {np.median(times['opt']) * 1000:>7.1f} {np.median(times['raw']) * 1000:>7.1f}"
            f" {vs_raw:>7.2f}x {vs_plain:>9.1f}x  {int(fields['nodes_after']):,}/{int(fields['nodes_before']):,}"
            f" inputs {fields['inputs_after']}/{fields['inputs_before']}"
            f"{'' if same else '  RESULTS DIFFER'} (cold {cold * 1000:.0f} ms)"
        )
    print("targets: opt/raw <= 0.8x, noopt/opt >= 3x, per query")
    return ok


def linear_scenario(engine: Engine, frame: pd.DataFrame, lr_onnx: bytes, rounds: int) -> bool:
    """Logistic regression over the full table, translated to SQL, against raw onnxruntime."""
    # ZipMap (a Python dict per row) removed, as the engine does: a fair, fast baseline
    raw_lr = ort.InferenceSession(strip_zipmap(lr_onnx), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    cols = ", ".join(FEATURES)
    print(f"\n== logistic regression (model -> SQL), full table of {len(frame):,} rows; medians of {rounds} paired rounds ==")
    sql = f"WITH scored AS (SELECT id, predict(readmit, {cols}) AS p FROM stays) SELECT avg(p.output_probability[2]) AS p FROM scored"
    inline = f"SELECT avg(predict(readmit, {cols}).output_probability[2]) AS p FROM stays"
    engine.execute(sql)
    engine.execute(inline)
    X = frame[list(FEATURES)].to_numpy(np.float32)
    times, values = paired(
        rounds,
        {
            "opt": partial(result, engine, sql),
            "inline": partial(result, engine, inline),
            "noopt": partial(result, engine, sql, optimize=False),
            "raw": partial(raw_lr.run, None, {"input": X}),
        },
    )
    raw_mean = float(np.asarray(values["raw"][1])[:, 1].mean())
    same = all(np.isclose(values[k].p[0], raw_mean, rtol=1e-4) for k in ("opt", "inline", "noopt"))
    ratio = median_ratio(times["opt"], times["raw"])
    note = next(line for line in engine.explain(sql).splitlines() if line.startswith("predict(readmit"))
    print(
        f"optimized / raw ORT = {ratio:.2f}x (target <= 1.5x); --no-optimize / optimized = "
        f"{median_ratio(times['noopt'], times['opt']):.1f}x{'' if same else '  RESULTS DIFFER'}"
    )
    print(f"  {note}")
    print(
        f"  (same query with predict() inside avg(): {median_ratio(times['inline'], times['raw']):.2f}x raw ORT; "
        "both forms compute only output_probability[2]: output projection)"
    )
    return ratio <= 1.5 and same


def result(engine: Engine, sql: str, optimize: bool = True) -> pd.DataFrame | None:
    """The last statement's result frame."""
    return engine.execute(sql, optimize=optimize)[-1].df


def _stats(explain: str) -> dict[str, str]:
    """The optimizer's stats line of an EXPLAIN, as fields."""
    line = next(l for l in explain.splitlines() if l.strip().startswith("stats:") and "nodes_before" in l)
    return dict(part.split("=") for part in line.split("stats:")[1].strip().split(", "))


# -- pipeline scenario (issue 14): a ColumnTransformer in front of gradient boosting -----------

PIPELINE_NUMERIC = ("age", "visits", "income", "balance", "is_member")
PIPELINE_STRINGS = ("plan", "region")
# selective, 2-6% of the rows: (SQL filter, the same filter in pandas, threshold when the
# query also filters on the prediction)
PIPELINE_QUERIES: tuple[tuple[str, Callable[[pd.DataFrame], Any], float | None], ...] = (
    ("plan = 'gold' AND age >= 70", lambda f: (f.plan == "gold") & (f.age >= 70), None),
    (
        "region = 'north' AND plan = 'platinum' AND visits <= 2",
        lambda f: (f.region == "north") & (f.plan == "platinum") & (f.visits <= 2),
        None,
    ),
    (
        "age BETWEEN 25 AND 29 AND is_member = true AND plan = 'basic'",
        lambda f: f.age.between(25, 29) & f.is_member & (f.plan == "basic"),
        None,
    ),
    ("plan = 'silver' AND age >= 75", lambda f: (f.plan == "silver") & (f.age >= 75), 0.5),
)


def churn_customers(n: int, seed: int = 0) -> pd.DataFrame:
    """Customers with float, integer, boolean and string columns; plan and age drive churn
    (as in Raven's scenarios, a few features dominate), the rest only a little."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "id": np.arange(n, dtype=np.int64),
            "age": rng.integers(18, 90, n).astype(np.int32),
            "visits": rng.poisson(3, n).astype(np.int32),
            "income": rng.normal(52_000, 16_000, n).round(2),
            "balance": rng.gamma(2.0, 600.0, n).round(2),
            "is_member": rng.random(n) < 0.35,
            "plan": rng.choice(np.array(["basic", "silver", "gold", "platinum"], dtype=object), n, p=[0.45, 0.3, 0.17, 0.08]),
            "region": rng.choice(np.array(["north", "south", "east", "west"], dtype=object), n),
        }
    )
    band = np.digitize(frame.age.to_numpy(), [30, 45, 60, 75])
    score = (
        np.array([-1.2, -0.4, 0.2, 0.9, 1.6])[band]
        + frame.plan.map({"basic": 0.9, "silver": 0.1, "gold": -0.8, "platinum": -1.6}).to_numpy(dtype=float)
        + 0.25 * np.minimum(frame.visits.to_numpy(), 6)
        - 0.7 * frame.is_member.to_numpy()
        + 0.2 * (frame.region == "south").to_numpy()
        - 0.000004 * (frame.income.to_numpy() - 52_000)
    )
    frame["churned"] = (score + rng.normal(0, 0.8, n) > 0.4).astype(np.int64)
    return frame


def train_pipelines(frame: pd.DataFrame, train_rows: int) -> tuple[Any, Any]:
    """The scikit-learn documentation's mixed-types shape: ColumnTransformer(OneHotEncoder on
    strings, StandardScaler on numbers) in front of gradient boosting and of a logistic regression."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def preprocess() -> ColumnTransformer:
        return ColumnTransformer(
            [
                ("cat", OneHotEncoder(handle_unknown="ignore"), list(PIPELINE_STRINGS)),
                ("num", StandardScaler(), list(PIPELINE_NUMERIC)),
            ]
        )

    sample = frame.sample(train_rows, random_state=1)
    X = sample[list(PIPELINE_NUMERIC + PIPELINE_STRINGS)]
    gbc = Pipeline([("pre", preprocess()), ("clf", GradientBoostingClassifier(n_estimators=100, max_depth=6, random_state=0))])
    logreg = Pipeline([("pre", preprocess()), ("clf", LogisticRegression(max_iter=1000))])
    return gbc.fit(X, sample.churned), logreg.fit(X, sample.churned)


def raw_feeds(session: ort.InferenceSession, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """What a user hands onnxruntime for the pipeline: one [N, 1] column per input, of the
    input's declared type (double numbers for a tree pipeline nbgov converted, float else)."""
    types = {"tensor(string)": object, "tensor(double)": np.float64, "tensor(float)": np.float32}
    return {i.name: frame[i.name].to_numpy().astype(types[i.type]).reshape(-1, 1) for i in session.get_inputs()}


def pipeline_scenario(engine: Engine, frame: pd.DataFrame, args: argparse.Namespace) -> bool:
    """Selective queries, full-table scoring and a logistic pipeline inlined as SQL, each
    against --no-optimize and raw onnxruntime (session built once, input filtered in pandas
    before timing); median of paired ratios over seeded, interleaved rounds."""
    print(f"training the pipelines on {args.train_rows:,} rows ...", flush=True)
    gbc, logreg = train_pipelines(frame, args.train_rows)
    engine.execute("CREATE MODEL churn FROM $gbc; CREATE MODEL churn_lr FROM $lr", params={"gbc": gbc, "lr": logreg})
    payload = engine.catalog.resolve("churn").onnx_bytes
    lr_payload = engine.catalog.resolve("churn_lr").onnx_bytes
    raw = ort.InferenceSession(strip_zipmap(payload), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    raw_lr = ort.InferenceSession(strip_zipmap(lr_payload), ort.SessionOptions(), providers=["CPUExecutionProvider"])
    rounds = max(args.pairs, 7)
    ok = True
    print(f"\n== pipeline: OneHotEncoder + StandardScaler -> GradientBoosting (100 trees, depth 6), {len(frame):,} rows ==")
    print(
        f"{'predicate':62} {'rows':>7} {'opt ms':>7} {'raw ms':>7} {'opt/noopt':>10} {'opt/raw':>8} {'same':>5} "
        f"{'vs sklearn':>11}  plan"
    )
    vs_raw: list[float] = []
    sklearn_ok = True
    for where, mask, threshold in PIPELINE_QUERIES:
        if threshold is None:
            sql = f"SELECT avg(predict(churn, *).probabilities[2]) AS p, count(*) AS n FROM customers WHERE {where}"
        else:
            sql = f"SELECT count(*) AS n FROM customers WHERE {where} AND predict(churn, *).probabilities[2] > {threshold}"
        subset = frame[mask(frame)]
        feeds = raw_feeds(raw, subset)
        engine.execute(sql)
        engine.execute(sql, optimize=False)

        def raw_run(feeds: dict[str, np.ndarray] = feeds, threshold: float | None = threshold) -> Any:
            p = raw.run(["probabilities"], feeds)[0][:, 1]
            return (p > threshold).sum() if threshold is not None else p.mean()

        times, values = paired(
            rounds,
            {
                "opt": lambda sql=sql: engine.execute(sql)[-1].df,
                "noopt": lambda sql=sql: engine.execute(sql, optimize=False)[-1].df,
                "raw": raw_run,
            },
        )
        opt, noopt = values["opt"], values["noopt"]
        # "same": every row identical to --no-optimize (and the aggregate to raw onnxruntime;
        # its float sum order may vary between runs)
        rows_sql = f"SELECT id, predict(churn, *).probabilities[2] AS p FROM customers WHERE {where} ORDER BY id"
        scored = engine.execute(rows_sql)[-1].df
        same = scored.equals(engine.execute(rows_sql, optimize=False)[-1].df)
        same &= bool(np.isclose(float(opt.iloc[0, 0]), float(values["raw"]), rtol=1e-6))
        # scikit-learn itself, row by row (the ONNX conversion's own fidelity)
        expected = gbc.predict_proba(subset.sort_values("id")[list(PIPELINE_NUMERIC + PIPELINE_STRINGS)])[:, 1]
        off = np.abs(scored.p.to_numpy(dtype=float) - expected)
        sklearn_ok &= bool(off.max() <= 1e-5)
        speedup, ratio = median_ratio(times["noopt"], times["opt"]), median_ratio(times["opt"], times["raw"])
        vs_raw.append(ratio)
        ok &= speedup >= 5 and same
        parts = engine.explain(sql).replace("\n", "; ").split("; ")
        note = next((p.strip() for p in parts if p.strip().startswith(("pruned ", "output predicate"))), "")
        label = where + ("" if threshold is None else f" AND p > {threshold}")
        print(
            f"{label:62} {len(subset):>7,} {np.median(times['opt']) * 1000:>7.1f} {np.median(times['raw']) * 1000:>7.1f} "
            f"{speedup:>9.1f}x {ratio:>7.2f}x {'yes' if same else 'NO':>5} "
            f"{int((off > 1e-5).sum()):>5} rows  {note}"
        )
    median_vs_raw = float(np.median(vs_raw))
    ok &= median_vs_raw <= 0.8 and sklearn_ok
    print(f"median over the queries: {median_vs_raw:.2f}x raw onnxruntime on the pre-filtered rows (target <= 0.8x; each >= 5x vs --no-optimize)")
    print(
        "vs sklearn: rows whose probability differs from scikit-learn's by more than 1e-5 (target: none)"
        + ("" if sklearn_ok else " (TARGET MISSED)")
    )

    full = "SELECT avg(predict(churn, *).probabilities[2]) AS p FROM customers"
    all_feeds = raw_feeds(raw, frame)
    all_lr_feeds = raw_feeds(raw_lr, frame)
    engine.execute(full)
    times, values = paired(
        max(args.pairs, 5),
        {
            "opt": lambda: engine.execute(full)[-1].df,
            "raw": lambda: raw.run(["probabilities"], all_feeds)[0][:, 1].mean(),
        },
    )
    ratio = median_ratio(times["opt"], times["raw"])
    same = abs(float(values["opt"].p[0]) - float(values["raw"])) < 1e-5
    ok &= ratio <= 1.1 and same
    print(f"\nfull-table scoring, {len(frame):,} rows: {ratio:.2f}x raw onnxruntime (target <= 1.1x){'' if same else '  RESULTS DIFFER'}")

    linear = "SELECT avg(predict(churn_lr, *).probabilities[2]) AS p FROM customers"
    engine.execute(linear)
    times, values = paired(
        max(args.pairs, 7),
        {
            "opt": lambda: engine.execute(linear)[-1].df,
            "raw": lambda: raw_lr.run(["probabilities"], all_lr_feeds)[0][:, 1].mean(),
        },
    )
    ratio = median_ratio(times["opt"], times["raw"])
    expected = float(logreg.predict_proba(frame[list(PIPELINE_NUMERIC + PIPELINE_STRINGS)])[:, 1].mean())
    same = abs(float(values["opt"].p[0]) - expected) < 1e-5
    inlined = any("inlined as SQL" in l for l in engine.explain(linear).splitlines())
    ok &= ratio <= 0.7 and same and inlined
    print(
        f"scaler + logistic pipeline {'inlined as SQL' if inlined else 'NOT inlined'}: {ratio:.2f}x raw onnxruntime "
        f"(target <= 0.7x){'' if same else '  RESULTS DIFFER from scikit-learn'}"
    )
    return ok


class FrameEngine(Engine):
    """An in-memory engine whose statements read the scenario's tables as notebook
    DataFrames, by variable name, as ``%%sqlml`` reads a notebook's (``--storage pandas``
    or ``arrow``)."""

    def __init__(self, arrow: bool) -> None:
        super().__init__(":memory:", progress_bar=False)
        self.arrow = arrow
        self.frames: dict[str, Any] = {}

    def execute(self, sql: str, **kwargs: Any) -> Any:
        return super().execute(sql, frames=self.frames, **kwargs)

    def explain(self, sql: str, **kwargs: Any) -> str:
        return super().explain(sql, frames=self.frames, **kwargs)


def open_engine(storage: str, folder: str) -> Engine:
    """An engine on a DuckDB database file in ``folder``, in memory, or reading DataFrames
    (see the docstring)."""
    if storage in ("pandas", "arrow"):
        return FrameEngine(arrow=storage == "arrow")
    return Engine(str(Path(folder) / "bench.duckdb") if storage == "file" else ":memory:", progress_bar=False)


def load_table(engine: Engine, name: str, frame: pd.DataFrame) -> None:
    """``frame`` copied into a table of the engine's database, then checkpointed (stored
    as DuckDB stores it on disk: compressed); with ``--storage pandas``/``arrow`` it stays a
    notebook DataFrame."""
    if isinstance(engine, FrameEngine):
        engine.frames[name] = pa.Table.from_pandas(frame, preserve_index=False) if engine.arrow else frame
        return
    engine.con.register(f"{name}_df", frame)
    engine.con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_df").fetchall()
    engine.con.unregister(f"{name}_df")
    engine.con.execute("CHECKPOINT").fetchall()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--pairs", type=int, default=9, help="paired rounds per query (at least 7)")
    parser.add_argument("--scenario", choices=("all", "trees", "pipeline"), default="all")
    parser.add_argument("--storage", choices=("file", "memory", "pandas", "arrow"), default="file", help="where the tables live (see above)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nbgov-bench-") as folder:
        run(args, folder)


def run(args: argparse.Namespace, folder: str) -> None:
    """The chosen scenarios on tables in ``folder`` (or in memory)."""
    rounds = max(args.pairs, 7)
    if args.scenario == "pipeline":
        engine = open_engine(args.storage, folder)
        print(f"generating {args.rows:,} customers ...", flush=True)
        customers = churn_customers(args.rows)
        load_table(engine, "customers", customers)
        ok = pipeline_scenario(engine, customers, args)
        print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
        engine.close()
        return

    print(f"generating {args.rows:,} hospital stays and training models ...", flush=True)
    frame = hospital_stays(args.rows)
    gb_onnx, lr_onnx = train_models(frame, args.train_rows)
    engine = open_engine(args.storage, folder)
    load_table(engine, "stays", frame)
    engine.execute("CREATE MODEL los FROM $gb; CREATE MODEL readmit FROM $lr", params={"gb": gb_onnx, "lr": lr_onnx})
    all_ok = tree_scenario(engine, frame, gb_onnx, rounds)
    all_ok &= linear_scenario(engine, frame, lr_onnx, rounds)
    if args.scenario == "all":
        customers = churn_customers(args.rows)
        load_table(engine, "customers", customers)
        all_ok &= pipeline_scenario(engine, customers, args)
    print("\nall targets met" if all_ok else "\nSOME TARGETS MISSED")
    engine.close()


if __name__ == "__main__":
    main()
