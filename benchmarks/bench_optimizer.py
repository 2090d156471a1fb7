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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

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
    print("\nall targets met" if all_ok else "\nSOME TARGETS MISSED")
    engine.close()


if __name__ == "__main__":
    main()
