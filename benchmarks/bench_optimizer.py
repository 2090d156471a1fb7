"""Raven-style benchmark of the SQL–model cross-optimizer (issue 4).

A hospital-stay-like table (1M rows, 10 mixed INTEGER/DOUBLE/BOOLEAN features), a
100-tree depth-8 gradient-boosted length-of-stay model and selective queries on
1–2 features, run three ways in the same process:

  * nbgov optimized      (pruning + projection + batching + scoring each decision
                          region of the pruned model once; warm pruned-model cache)
  * nbgov --no-optimize  (the original model through the Arrow UDF)
  * raw onnxruntime      on the pre-filtered numpy rows (filtering not timed)

plus a logistic-regression (readmission) query over the full table where the
model is translated to SQL, against raw onnxruntime on the full numpy matrix.

Targets: trees ≥3x faster than --no-optimize and faster than raw ORT on the
filtered rows; logistic regression within 1.5x of raw ORT.

Times are the best of several warm runs, as for the baselines (whose onnxruntime
session is created once): the engine then reuses the statement's plan and pruned
model. Each query's first, cold run (planning, pruning, session creation) is shown
in parentheses.

    python3 benchmarks/bench_optimizer.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd

sys.path.insert(
    0, str(Path(__file__).resolve().parents[1])
)  # run from a checkout without installing

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
TREE_QUERIES = (  # 1-2 selective predicates, 4-8% of the rows each
    "age >= 90",
    "age BETWEEN 70 AND 74",
    "is_emergency = true AND comorbidities = 4",
    "comorbidities >= 5 AND age < 40",
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


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def interleaved(repeat: int, *variants: Callable[[], Any]) -> list[tuple[float, Any]]:
    """Best time (and last value) of each variant, run in rounds so that background
    load on the machine hits every variant alike, in a new (seeded) order each round:
    a variant run right after raw onnxruntime (whose idle intra-op threads keep
    spinning for a while) or after DuckDB's workers is slowed by them, and a fixed
    order would always charge that to the same variant."""
    best = [(float("inf"), None)] * len(variants)
    order = random.Random(0)
    for _ in range(repeat):
        for i in order.sample(range(len(variants)), len(variants)):
            seconds, value = best_of(1, variants[i])
            best[i] = (min(best[i][0], seconds), value)
    return best


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


def paired(rounds: int, variants: dict[str, Callable[[], Any]], seed: int = 0) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Every variant once per round, in a new seeded random order each round (background
    load and warm-up hit each alike); the times per round, and each variant's last value."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    values: dict[str, Any] = {}
    order = random.Random(seed)
    names = list(variants)
    for _ in range(rounds):
        for name in order.sample(names, len(names)):
            start = time.perf_counter()
            values[name] = variants[name]()
            times[name].append(time.perf_counter() - start)
    return times, values


def median_ratio(numerator: list[float], denominator: list[float]) -> float:
    """The median over rounds of numerator / denominator (paired by round)."""
    return float(np.median([a / b for a, b in zip(numerator, denominator)]))


def raw_feeds(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """What a user hands onnxruntime for the pipeline: one [N, 1] column per input."""
    feeds = {}
    for name in PIPELINE_NUMERIC:
        feeds[name] = frame[name].to_numpy().astype(np.float32).reshape(-1, 1)
    for name in PIPELINE_STRINGS:
        feeds[name] = frame[name].to_numpy().astype(object).reshape(-1, 1)
    return feeds


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
    rounds = max(args.repeat, 7)
    ok = True
    print(f"\n== pipeline: OneHotEncoder + StandardScaler -> GradientBoosting (100 trees, depth 6), {len(frame):,} rows ==")
    print(f"{'predicate':62} {'rows':>7} {'opt/noopt':>10} {'opt/raw':>8} {'same':>5} {'vs sklearn':>11}  plan")
    vs_raw: list[float] = []
    sklearn_ok = True
    for where, mask, threshold in PIPELINE_QUERIES:
        if threshold is None:
            sql = f"SELECT avg(predict(churn, *).probabilities[2]) AS p, count(*) AS n FROM customers WHERE {where}"
        else:
            sql = f"SELECT count(*) AS n FROM customers WHERE {where} AND predict(churn, *).probabilities[2] > {threshold}"
        subset = frame[mask(frame)]
        feeds = raw_feeds(subset)
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
            f"{label:62} {len(subset):>7,} {speedup:>9.1f}x {ratio:>7.2f}x {'yes' if same else 'NO':>5} "
            f"{int((off > 1e-5).sum()):>5} rows  {note}"
        )
    median_vs_raw = float(np.median(vs_raw))
    ok &= median_vs_raw <= 0.8
    print(f"median over the queries: {median_vs_raw:.2f}x raw onnxruntime on the pre-filtered rows (target <= 0.8x; each >= 5x vs --no-optimize)")
    print(
        "vs sklearn: rows whose probability differs from scikit-learn's by more than 1e-5 — the same for raw "
        "onnxruntime and --no-optimize: skl2onnx stores the trees' float64 thresholds as float32"
        + ("" if sklearn_ok else " (TARGET MISSED: a conversion matter, not the optimizer's)")
    )

    full = "SELECT avg(predict(churn, *).probabilities[2]) AS p FROM customers"
    all_feeds = raw_feeds(frame)
    engine.execute(full)
    times, values = paired(
        max(args.repeat, 5),
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
        max(args.repeat, 7),
        {
            "opt": lambda: engine.execute(linear)[-1].df,
            "raw": lambda: raw_lr.run(["probabilities"], all_feeds)[0][:, 1].mean(),
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--scenario", choices=("all", "trees", "pipeline"), default="all")
    args = parser.parse_args()
    if args.scenario == "pipeline":
        engine = Engine(progress_bar=False)
        print(f"generating {args.rows:,} customers ...", flush=True)
        customers = churn_customers(args.rows)
        engine.con.register("customers_df", customers)
        engine.con.execute("CREATE TABLE customers AS SELECT * FROM customers_df").fetchall()
        engine.con.unregister("customers_df")
        ok = pipeline_scenario(engine, customers, args)
        print("\nall targets met" if ok else "\nSOME TARGETS MISSED")
        engine.close()
        return

    print(
        f"generating {args.rows:,} hospital stays and training models ...", flush=True
    )
    frame = hospital_stays(args.rows)
    gb_onnx, lr_onnx = train_models(frame, args.train_rows)
    engine = Engine(progress_bar=False)
    engine.con.register("stays_df", frame)
    engine.con.execute("CREATE TABLE stays AS SELECT * FROM stays_df").fetchall()
    engine.con.unregister("stays_df")
    engine.execute(
        "CREATE MODEL los FROM $gb; CREATE MODEL readmit FROM $lr",
        params={"gb": gb_onnx, "lr": lr_onnx},
    )
    raw_options = (
        ort.SessionOptions()
    )  # onnxruntime defaults: one intra-op thread per core
    raw_gb = ort.InferenceSession(
        gb_onnx, raw_options, providers=["CPUExecutionProvider"]
    )
    # ZipMap (a Python dict per row) removed, as the engine does: a fair, fast baseline
    raw_lr = ort.InferenceSession(
        strip_zipmap(lr_onnx), raw_options, providers=["CPUExecutionProvider"]
    )
    cols = ", ".join(FEATURES)
    all_ok = True

    engine.execute(
        f"SELECT count(predict(los, {cols})) FROM stays WHERE id < 10000"
    )  # warm the pools
    print(f"\n== tree ensemble: 100 trees, depth 8, {args.rows:,} rows ==")
    header = f"{'predicate':40} {'rows':>8} {'opt s':>7} {'noopt s':>8} {'rawORT s':>8} {'vs noopt':>9} {'vs raw':>7}  nodes kept"
    print(header)
    for where in TREE_QUERIES:
        label = where
        sql = f"SELECT avg(predict(los, {cols})) AS mean_los, count(*) AS n FROM stays WHERE {where}"
        cold_start = time.perf_counter()
        engine.execute(sql)
        cold = time.perf_counter() - cold_start
        subset = engine.con.execute(
            f"SELECT {cols} FROM stays WHERE {where}"
        ).fetchnumpy()
        X = np.column_stack([np.asarray(subset[c], dtype=np.float32) for c in FEATURES])
        (t_opt, opt), (t_plain, plain), (t_raw, raw) = interleaved(
            max(args.repeat, 9),  # quick queries: more rounds, less noise
            lambda sql=sql: engine.execute(sql)[-1].df,
            lambda sql=sql: engine.execute(sql, optimize=False)[-1].df,
            lambda X=X: raw_gb.run(None, {"input": X})[0],
        )
        explain = engine.explain(sql)
        stats = next(
            l
            for l in explain.splitlines()
            if l.strip().startswith("stats:") and "nodes_before" in l
        )
        fields = dict(
            part.split("=") for part in stats.split("stats:")[1].strip().split(", ")
        )
        same = bool(
            np.isclose(opt.mean_los[0], plain.mean_los[0], rtol=1e-6)
        ) and np.isclose(float(raw.mean()), opt.mean_los[0], rtol=1e-5)
        vs_plain, vs_raw = t_plain / t_opt, t_raw / t_opt
        all_ok &= vs_plain >= 3 and vs_raw > 1 and same
        print(
            f"{label:40} {len(X):>8,} {t_opt:>7.3f} {t_plain:>8.3f} {t_raw:>8.3f} {vs_plain:>8.1f}x {vs_raw:>6.2f}x"
            f"  {int(fields['nodes_after']):,}/{int(fields['nodes_before']):,}"
            f" inputs {fields['inputs_after']}/{fields['inputs_before']}"
            f"{'' if same else '  RESULTS DIFFER'} (cold {cold:.3f}s)"
        )

    print(
        f"\n== logistic regression (model -> SQL), full table of {args.rows:,} rows =="
    )
    sql = (
        f"WITH scored AS (SELECT id, predict(readmit, {cols}) AS p FROM stays) "
        "SELECT avg(p.output_probability[2]) AS p FROM scored"
    )
    engine.execute(sql)
    full = engine.con.execute(f"SELECT {cols} FROM stays").fetchnumpy()
    X_full = np.column_stack([np.asarray(full[c], dtype=np.float32) for c in FEATURES])
    (t_opt, opt), (t_plain, plain), (t_raw, raw) = interleaved(
        max(args.repeat, 7),  # cheap queries: more rounds, less noise
        lambda: engine.execute(sql)[-1].df,
        lambda: engine.execute(sql, optimize=False)[-1].df,
        lambda: raw_lr.run(None, {"input": X_full}),
    )
    raw_mean = float(np.asarray(raw[1])[:, 1].mean())
    same = bool(np.isclose(opt.p[0], raw_mean, rtol=1e-4)) and bool(
        np.isclose(opt.p[0], plain.p[0], rtol=1e-4)
    )
    ratio = t_opt / t_raw
    all_ok &= ratio <= 1.5 and same
    note = next(
        l for l in engine.explain(sql).splitlines() if l.startswith("predict(readmit")
    )
    print(
        f"optimized {t_opt:.3f}s  --no-optimize {t_plain:.3f}s  raw ORT on numpy {t_raw:.3f}s"
    )
    print(
        f"optimized / raw ORT = {ratio:.2f}x (target <= 1.5x); vs --no-optimize {t_plain / t_opt:.1f}x faster"
        f"{'' if same else '  RESULTS DIFFER'}"
    )
    print(f"  {note}")
    inline = (
        f"SELECT avg(predict(readmit, {cols}).output_probability[2]) AS p FROM stays"
    )
    engine.execute(inline)
    t_inline, _ = best_of(max(args.repeat, 7), lambda: engine.execute(inline)[-1].df)
    print(
        f"  (same query with predict() inside avg(): {t_inline:.3f}s = {t_inline / t_raw:.2f}x raw ORT; "
        "both forms compute only output_probability[2]: output projection)"
    )
    if args.scenario == "all":
        customers = churn_customers(args.rows)
        engine.con.register("customers_df", customers)
        engine.con.execute("CREATE TABLE customers AS SELECT * FROM customers_df").fetchall()
        engine.con.unregister("customers_df")
        all_ok &= pipeline_scenario(engine, customers, args)
    print("\nall targets met" if all_ok else "\nSOME TARGETS MISSED")
    engine.close()


if __name__ == "__main__":
    main()
