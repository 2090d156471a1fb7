"""Benchmark: scoring 1M rows with nbgov's predict / ML.PREDICT against the baselines
of issues 3 and 14, in one process, printed as ratios to raw onnxruntime on a numpy matrix.

    python3 benchmarks/bench_sqlml.py [--rows 1000000] [--pairs 7] [--naive-rows 100000]

Baselines: raw onnxruntime on numpy (the floor), scikit-learn predict, a naive
row-at-a-time DuckDB Python UDF (measured on --naive-rows rows and scaled, it is
slow), a hand-written DuckDB Arrow UDF. nbgov: predict (optimized, the default),
predict --no-optimize, and ML.PREDICT. Those SQL variants sum the positive-class
probability over all rows, so every variant scores every row and returns one number;
the raw onnxruntime floor returns the probabilities as numpy, with the float32 input
matrix built before timing. The optimized logistic regression is inlined as SQL and, as
the query reads only probabilities[2], computes only that value (EXPLAIN says "output
projection"). ML.PREDICT follows the same plan: inlined as SQL or ONNX scoring in Arrow
batches; its note says which.

The whole result of a classifier (issue 14): ``SELECT id, predict(m, *) AS p`` returns
every row with a STRUCT of the label and the probabilities, against raw onnxruntime
producing the same two outputs as numpy arrays; the values are checked equal.

Every variant runs once per round, in a new seeded random order each round; each figure
is the MEDIAN over rounds of the variant's time over the same round's floor.
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.pairs import median_ratio, paired
from nbgov.sqlml.engine import Engine

FEATURES = ["age", "income", "tenure", "visits", "balance"]


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows).astype(np.float64),
            "income": rng.normal(50_000, 15_000, rows).round(2),
            "tenure": rng.integers(0, 20, rows).astype(np.float64),
            "visits": rng.poisson(4, rows).astype(np.float64),
            "balance": rng.normal(1_000, 400, rows).round(2),
        }
    )


def train(kind: str, data: pd.DataFrame):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sample = data.head(20_000)
    target = ((sample.age - 50) * 0.04 - (sample.income - 50_000) * 3e-5 + sample.visits * 0.2 > 0).astype(int)
    estimator = {
        "random forest (50 trees, depth 8)": lambda: RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0),
        "logistic regression": lambda: LogisticRegression(max_iter=1000),
        "MLP (32, 16)": lambda: make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(32, 16), max_iter=300, random_state=0)),
    }[kind]()
    return estimator.fit(sample[FEATURES], target)


def bench_model(kind: str, data: pd.DataFrame, args: argparse.Namespace) -> list[tuple[str, float, float, str]]:
    """Each variant's median time and median ratio to the floor, with a note."""
    estimator = train(kind, data)
    engine = Engine(progress_bar=False)
    engine.execute("CREATE MODEL m FROM $est", params={"est": estimator})
    engine.execute("CREATE TABLE t AS SELECT row_number() OVER () AS id, * FROM data", frames={"data": data})
    model = engine.catalog.resolve("m")
    matrix = data[FEATURES].to_numpy(np.float32)
    raw = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    out_name = "probabilities"
    con = engine.con  # same DuckDB, same table, for the hand-written UDFs

    def hand_arrow(*cols: pa.Array) -> pa.Array:
        feed = np.column_stack([c.to_numpy() for c in cols]).astype(np.float32)
        return pa.array(raw.run([out_name], {"input": feed})[0][:, 1])

    hand_arrow.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"a{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(FEATURES))]
    )

    def naive_row(a: float, b: float, c: float, d: float, e: float) -> float:
        feed = np.array([[a, b, c, d, e]], dtype=np.float32)
        return float(raw.run([out_name], {"input": feed})[0][0, 1])

    double = duckdb.sqltype("DOUBLE")
    con.create_function("hand_arrow", hand_arrow, [double] * 5, duckdb.sqltype("FLOAT"), type="arrow")
    con.create_function("naive_row", naive_row, [double] * 5, double)
    cols = ", ".join(FEATURES)
    naive_rows = min(args.naive_rows, len(data))

    score = f"SELECT sum(predict(m, {cols}).probabilities[2]) FROM t"
    ml = "SELECT sum(predicted_probabilities[2]) FROM ML.PREDICT(MODEL m, TABLE t)"
    whole = "SELECT id, predict(m, *) AS p FROM t"
    chunks = [matrix[i : i + 65_536] for i in range(0, len(matrix), 65_536)]
    chunked = ort.SessionOptions()
    chunked.intra_op_num_threads = 1
    single = ort.InferenceSession(model.onnx_bytes, sess_options=chunked, providers=["CPUExecutionProvider"])
    pool = engine._threadpool()

    variants: dict[str, tuple[Callable[[], object], str]] = {
        "raw onnxruntime on numpy (floor)": (lambda: raw.run([out_name], {"input": matrix}), "one run, default threads"),
        "raw onnxruntime, 64k chunks, 2 thr": (lambda: list(pool.map(lambda c: single.run([out_name], {"input": c}), chunks)), "informative"),
        "scikit-learn predict_proba": (lambda: estimator.predict_proba(data[FEATURES]), ""),
        "hand-written DuckDB Arrow UDF": (lambda: con.execute(f"SELECT sum(hand_arrow({cols})) FROM t").fetchall(), ""),
        "nbgov predict (optimized)": (lambda: engine.execute(score), _strategy(engine, score)),
        "nbgov predict --no-optimize": (lambda: engine.execute(score, optimize=False), "Arrow UDF, original model"),
        "nbgov ML.PREDICT": (lambda: engine.execute(ml), _strategy(engine, ml, ("ML.PREDICT(",))),
        "raw onnxruntime, label + probabilities": (lambda: raw.run(None, {"input": matrix}), "both outputs as numpy"),
        "nbgov whole result, id + STRUCT": (lambda: engine.execute(whole)[0].df, "SELECT id, predict(m, *): every row"),
    }
    rounds = args.pairs if "forest" in kind else max(args.pairs, 15)  # cheap models: more rounds, less noise
    times, values = paired(rounds, {name: run for name, (run, _) in variants.items()})
    _check_whole(values["nbgov whole result, id + STRUCT"], values["raw onnxruntime, label + probabilities"])
    floor = times["raw onnxruntime on numpy (floor)"]
    results = [(name, float(np.median(times[name])), median_ratio(times[name], floor), note) for name, (_, note) in variants.items()]
    whole_ratio = median_ratio(times["nbgov whole result, id + STRUCT"], times["raw onnxruntime, label + probabilities"])
    results.append(("  whole result / raw label + probabilities", float("nan"), whole_ratio, "target <= 1.1x"))
    start = time.perf_counter()
    con.execute(f"SELECT sum(naive_row({cols})) FROM (SELECT * FROM t LIMIT {naive_rows})").fetchall()
    naive = (time.perf_counter() - start) * len(data) / naive_rows
    results.insert(3, ("naive row-at-a-time DuckDB UDF", naive, naive / float(np.median(floor)), f"measured once on {naive_rows:,} rows, scaled"))
    check = engine.execute(score)[0].df.iloc[0, 0], engine.execute(ml)[0].df.iloc[0, 0]
    expected = float(raw.run([out_name], {"input": matrix})[0][:, 1].sum())
    assert all(abs(v - expected) <= 1e-3 * max(1.0, abs(expected)) for v in check), (check, expected)
    con.remove_function("hand_arrow")
    con.remove_function("naive_row")
    engine.close()
    return results


def _check_whole(frame: pd.DataFrame, raw: list[np.ndarray]) -> None:
    """The whole result holds onnxruntime's own label and probabilities, row for row."""
    label, probabilities = raw
    scored = frame.sort_values("id").p
    assert np.array_equal(scored.struct.field("label").to_numpy(), label), "labels differ"
    got = np.array(scored.struct.field("probabilities").to_list(), dtype=np.float32)
    np.testing.assert_allclose(got, probabilities, rtol=1e-5, atol=1e-6)  # float32 sums in another order


def _strategy(engine: Engine, sql: str, prefixes: tuple[str, ...] = ("predict(", "batching:")) -> str:
    notes = engine.explain(sql).splitlines()
    picked = [n for n in notes if n.startswith(prefixes)]
    return " | ".join(p[:90] for p in picked)


# --- compiled tree ensembles (issue 17) -------------------------------------------------
#
#     python3 benchmarks/bench_sqlml.py --trees [--rows 1000000] [--rounds 5]
#
# Full-table scoring of a [rows, 10] float32 matrix: nbgov's compiled kernel (2 threads,
# library cached) against raw onnxruntime on the same model -- one run with its default
# threads (the floor) and the better of its configurations here, 64k-row chunks
# on a 2-thread pool of single-threaded sessions -- and against lleaves (LightGBM's own
# model file, compiled with LLVM) when lightgbm, onnxmltools and lleaves are installed.
# Variants run interleaved in a seeded random order each round; each figure is the
# median over rounds of the paired ratio. "first run" compiles from an empty cache.

TREE_FEATURES = 10


def tree_data(rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, TREE_FEATURES)).astype(np.float32)
    X[:, 7] = rng.integers(0, 12, rows)
    return X


def _tree_target(X: np.ndarray) -> np.ndarray:
    return X[:, 0] + X[:, 1] * X[:, 2] - X[:, 3] ** 2 + 0.2 * X[:, 7] + np.sin(3 * X[:, 4])


def tree_models(folder: Path) -> dict[str, tuple[bytes, Path | None]]:
    """name -> (ONNX bytes, LightGBM model file for lleaves or None)."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier

    X = tree_data(20_000, seed=1)
    y = _tree_target(X) + np.random.default_rng(2).normal(size=len(X)) * 0.3
    forest = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, (y > 0).astype(int))
    boosted = GradientBoostingRegressor(n_estimators=100, max_depth=8, random_state=0).fit(X, y)
    models: dict[str, tuple[bytes, Path | None]] = {
        "random forest 50 x depth 8 (classifier)": (
            to_onnx(forest, X[:1], options={id(forest): {"zipmap": False}}, target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString(),
            None,
        ),
        "gradient boosting 100 x depth 8 (regressor)": (
            to_onnx(boosted, X[:1], target_opset={"": 17, "ai.onnx.ml": 3}).SerializeToString(),
            None,
        ),
    }
    try:
        import lightgbm
        from onnxmltools import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType
    except ImportError:
        print("  (lightgbm/onnxmltools not installed: no LightGBM model)")
        return models
    booster = lightgbm.LGBMRegressor(n_estimators=100, num_leaves=256, min_child_samples=5, verbose=-1, random_state=0).fit(X, y)
    text = folder / "lightgbm.txt"
    booster.booster_.save_model(str(text))
    converted = convert_lightgbm(booster, initial_types=[("X", FloatTensorType([None, TREE_FEATURES]))], target_opset=15)
    models["LightGBM 100 trees x 256 leaves (regressor)"] = (converted.SerializeToString(), text)
    return models


def paired_medians(variants: dict[str, Callable[[], object]], baseline: str, rounds: int, seed: int = 0) -> dict[str, float]:
    """Median over paired, interleaved rounds of (variant time / baseline time); under
    "<name> [s]" the median seconds."""
    times, _ = paired(rounds, variants, seed)
    return {name: median_ratio(times[name], times[baseline]) for name in variants} | {
        f"{name} [s]": float(np.median(times[name])) for name in variants
    }


def bench_trees(args: argparse.Namespace) -> None:
    import tempfile

    X = tree_data(args.rows)
    pool = ThreadPoolExecutor(2)
    print(
        f"compiled tree scoring: {args.rows:,} rows x {TREE_FEATURES} float32 features, median of {args.rounds} "
        f"interleaved paired ratios, onnxruntime {ort.__version__}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for name, (payload, lightgbm_file) in tree_models(Path(folder)).items():
            _bench_tree_model(name, payload, lightgbm_file, X, pool, Path(folder), args.rounds)
    pool.shutdown()


def _bench_tree_model(
    name: str, payload: bytes, lightgbm_file: Path | None, X: np.ndarray, pool: ThreadPoolExecutor, folder: Path, rounds: int
) -> None:
    from nbgov.sqlml.execution.compiled.build import compile_session
    from nbgov.sqlml.execution.compiled.cache import ArtifactCache
    from nbgov.sqlml.models.runtime import open_session

    input_name = ort.InferenceSession(payload, providers=["CPUExecutionProvider"]).get_inputs()[0].name
    raw = ort.InferenceSession(payload, providers=["CPUExecutionProvider"])
    single = open_session(payload)
    chunks = [X[i : i + 65_536] for i in range(0, len(X), 65_536)]
    compiled, artifact = compile_session(payload, ArtifactCache(folder / "warm"), threads=2)
    exact = all(np.array_equal(a, b) for a, b in zip(single.run(None, {input_name: X[:200_000]}), compiled.run(None, {input_name: X[:200_000]})))
    RAW, CHUNKED, COMPILED = "raw onnxruntime, default threads", "raw onnxruntime, 64k chunks on 2 threads", "nbgov compiled, 2 threads (cached)"
    variants: dict[str, Callable[[], object]] = {
        RAW: lambda: raw.run(None, {input_name: X}),
        CHUNKED: lambda: list(pool.map(lambda c: single.run(None, {input_name: c}), chunks)),
        COMPILED: lambda: compiled.run(None, {input_name: X}),
    }
    variants.update(_engine_variants(payload, X, folder / "warm"))
    lleaves_compile = ""
    if lightgbm_file is not None:
        lleaves_model, lleaves_compile = _lleaves(lightgbm_file, folder)
        if lleaves_model is not None:
            X64 = X.astype(np.float64)
            variants["lleaves, 2 threads"] = lambda: lleaves_model.predict(X64, n_jobs=2)  # type: ignore[attr-defined]
    warm = paired_medians(variants, RAW, rounds)
    chunked = paired_medians({k: v for k, v in variants.items() if k != RAW}, CHUNKED, rounds, seed=1)
    first = paired_medians({RAW: variants[RAW], **_first_runs(payload, input_name, chunks, pool, folder)}, RAW, max(2, rounds // 2), seed=2)
    print(
        f"\n== {name}: {compiled.kernel.tree_count} trees; compile {artifact.info.compile_seconds:.2f} s (generate + gcc); "
        f"results equal single-threaded onnxruntime bit for bit: {exact}"
    )
    for label in variants:
        extra = f"   {chunked[label]:5.2f}x of chunked onnxruntime" if label in chunked else ""
        print(f"  {label:<52} {warm[label + ' [s]'] * 1000:9.1f} ms  {warm[label]:5.2f}x of raw onnxruntime{extra}")
    for label in first:
        if label != RAW and not label.endswith("[s]"):
            print(f"  {label:<52} {first[label + ' [s]'] * 1000:9.1f} ms  {first[label]:5.2f}x of raw onnxruntime")
    if "lleaves, 2 threads" in variants:
        versus = paired_medians({k: variants[k] for k in (COMPILED, "lleaves, 2 threads")}, "lleaves, 2 threads", rounds, seed=3)
        print(f"  nbgov compiled / lleaves (paired): {versus[COMPILED]:.2f}x   ({lleaves_compile})")
    compiled.close()


def _engine_variants(payload: bytes, X: np.ndarray, cache: Path) -> dict[str, Callable[[], object]]:
    """Full-table scoring through nbgov (batched predict over a DuckDB table), with the
    compiled kernel already in the cache, and with compiled scoring off."""
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(TREE_FEATURES)])
    engines = {}
    for label, enabled in (("nbgov predict over a table (compiled, cached)", True), ("nbgov predict over a table, compile_trees off", False)):
        engine = Engine(progress_bar=False, compile_trees=enabled, tree_cache=cache)
        engine.execute("CREATE MODEL m FROM $payload", params={"payload": payload})
        engine.execute("CREATE TABLE t AS SELECT * FROM frame", frames={"frame": frame})
        engines[label] = engine
    outputs = [o.name for o in ort.InferenceSession(payload, providers=["CPUExecutionProvider"]).get_outputs()]
    read = "predict(m, {}).probabilities[2]" if "probabilities" in outputs else "predict(m, {})"
    sql = f"SELECT sum({read.format(', '.join(frame.columns))}) FROM t"
    for engine in engines.values():
        engine.execute(sql)  # plan cached; the compiled one loads the kernel from the cache
    return {label: (lambda engine=engine: engine.execute(sql)) for label, engine in engines.items()}


def _first_runs(
    payload: bytes, input_name: str, chunks: list[np.ndarray], pool: ThreadPoolExecutor, folder: Path
) -> dict[str, Callable[[], object]]:
    """Scoring every row the first time a model is seen (an empty cache each run)."""
    import tempfile

    from nbgov.sqlml.execution.compiled.build import compile_session
    from nbgov.sqlml.execution.compiled.cache import ArtifactCache
    from nbgov.sqlml.execution.compiled.policy import AdaptiveSession, TreeCompiler
    from nbgov.sqlml.models.runtime import open_session

    def compile_then_score() -> object:
        session, _ = compile_session(payload, ArtifactCache(Path(tempfile.mkdtemp(dir=folder))), threads=2)
        return [session.run(None, {input_name: c}) for c in chunks]

    def policy() -> object:
        trees = TreeCompiler(ArtifactCache(Path(tempfile.mkdtemp(dir=folder))))
        adaptive = trees.session("bench", payload, open_session(payload))
        assert isinstance(adaptive, AdaptiveSession)
        adaptive.expect(sum(len(c) for c in chunks))
        result = list(pool.map(lambda c: adaptive.run(None, {input_name: c}), chunks))
        trees.close()
        return result

    return {
        "first run: compile (blocking), then score": compile_then_score,
        "first run: onnxruntime until compiled (nbgov's policy)": policy,
    }


def _lleaves(model_file: Path, folder: Path) -> tuple[object | None, str]:
    """lleaves' model for the LightGBM file, compiled once and kept (lleaves' LLVM -O3
    takes minutes on 100 trees x 256 leaves) in the user cache, by the file's hash."""
    try:
        import lleaves
    except ImportError:
        print("  (lleaves not installed: no lleaves baseline)")
        return None, ""
    import xxhash

    from nbgov.sqlml.execution.compiled.cache import default_directory

    kept = default_directory().parent / "bench-lleaves"
    kept.mkdir(parents=True, exist_ok=True)
    cache = kept / f"{xxhash.xxh3_64_hexdigest(model_file.read_bytes())}.o"
    cached = cache.exists()
    model = lleaves.Model(model_file=str(model_file))
    start = time.perf_counter()
    model.compile(cache=str(cache))
    took = time.perf_counter() - start
    return model, ("lleaves loaded from its cache" if cached else f"lleaves compile {took:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=7, help="paired rounds (at least 15 for the cheap models)")
    parser.add_argument("--naive-rows", type=int, default=100_000)
    parser.add_argument("--models", nargs="*", default=["random forest (50 trees, depth 8)", "logistic regression", "MLP (32, 16)"])
    parser.add_argument("--trees", action="store_true", help="compiled tree ensembles against onnxruntime and lleaves (issue 17)")
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds for --trees")
    args = parser.parse_args()
    if args.trees:
        bench_trees(args)
        return
    data = make_data(args.rows)
    print(
        f"nbgov SQLML benchmark: {args.rows:,} rows, medians of {args.pairs} paired rounds (at least 15 for the cheap "
        f"models), interleaved, duckdb {duckdb.__version__}, onnxruntime {ort.__version__}"
    )
    for kind in args.models:
        results = bench_model(kind, data, args)
        print(f"\n== {kind}")
        for name, seconds, ratio, note in results:
            shown = "" if seconds != seconds else f"{seconds * 1000:10.1f} ms"
            print(f"  {name:<42} {shown:>13}   {ratio:7.2f}x   {note}")


if __name__ == "__main__":
    main()
