"""Benchmark: opening a ``--db`` file that holds many models, listing them, and the first
query of one of them, against the catalog as it was at a baseline commit, in one process.

    python3 benchmarks/bench_catalog_open.py [--models 20] [--pairs 9] [--baseline REV]

The file holds ``--models`` scikit-learn models (forests, boosted trees, logistic
pipelines, MLPs and a mixed-type pipeline, each kind with several seeds), written by the
current catalog. The baseline is ``nbgov/sqlml/catalog/catalog.py`` as of ``REV``
(default: the parent of the commit that introduced ``runtime.declared_signature``, the
catalog that read every version's signature from a session), loaded from git and used in
place of the current one for its variants; everything else (DuckDB, the executor,
onnxruntime) is shared.

Each variant opens a new engine on the file (every catalog starts knowing nothing):

- open: ``Engine(file)`` and close;
- open + SHOW MODELS;
- open + DESCRIBE MODEL of one model: a first use that reads its signature and scores
  nothing (what compiling a query on it or EXPLAIN pays too);
- open + first query: ``SELECT sum(predict(m, ...))`` of one model, unoptimized, on
  1,000 rows (the baseline checked the model with a session, then scored with another).

Every variant runs once per round, in a new seeded random order each round, after an
untimed run of itself (``pairs.paired``); each ratio is the median over rounds of
current / baseline in the same round. onnxruntime sessions made are counted once per
variant, outside the timed rounds.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import types
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pairs import median_ratio, paired
from nbgov.sqlml import engine as engine_module
from nbgov.sqlml.catalog.catalog import ModelCatalog
from nbgov.sqlml.engine import Engine
from nbgov.sqlml.models import runtime

FEATURES = ["age", "income", "tenure", "visits", "balance"]


def make_data(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 90, rows).astype(np.float64),
            "income": rng.normal(50_000, 15_000, rows).round(2),
            "tenure": rng.integers(0, 20, rows).astype(np.float64),
            "visits": rng.poisson(4, rows).astype(np.float64),
            "balance": rng.normal(1_000, 400, rows).round(2),
            "plan": rng.choice(np.array(["basic", "silver", "gold"], dtype=object), rows),
        }
    )
    frame["churned"] = ((frame.age - 50) * 0.04 - (frame.income - 50_000) * 3e-5 + frame.visits * 0.2 > 0).astype(int)
    return frame


def estimators(count: int) -> list[tuple[str, object]]:
    """``count`` fitted models, kinds in turn, each kind's seeds differing."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data = make_data(4_000)
    kinds: list[tuple[str, Callable[[int], object], list[str]]] = [
        ("forest", lambda s: RandomForestClassifier(n_estimators=100, max_depth=10, random_state=s), FEATURES),
        ("boosted", lambda s: GradientBoostingClassifier(n_estimators=100, max_depth=4, random_state=s), FEATURES),
        ("logistic", lambda s: make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / (s + 1))), FEATURES),
        ("mlp", lambda s: make_pipeline(StandardScaler(), MLPClassifier((32, 16), max_iter=200, random_state=s)), FEATURES),
        ("mixed", lambda s: Pipeline([
            ("pre", ColumnTransformer([("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
                                       ("num", StandardScaler(), FEATURES)])),
            ("clf", LogisticRegression(C=1.0 / (s + 1))),
        ]), ["plan", *FEATURES]),
    ]
    fitted = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(count):
            kind, make, columns = kinds[i % len(kinds)]
            seed = i // len(kinds)
            fitted.append((f"{kind}_{seed}", make(seed).fit(data[columns], data.churned)))
    return fitted


def baseline_catalog(rev: str) -> type:
    """``ModelCatalog`` from ``catalog.py`` as of ``rev``."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:nbgov/sqlml/catalog/catalog.py"],
        check=True, capture_output=True, text=True,
    ).stdout
    module = types.ModuleType("nbgov_baseline_catalog")
    module.__file__ = f"<catalog.py at {rev}>"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module.ModelCatalog  # type: ignore[no-any-return]


def default_baseline() -> str:
    """The parent of the commit that introduced ``declared_signature``."""
    found = subprocess.run(
        ["git", "-C", str(ROOT), "log", "--format=%H", "-S", "def declared_signature", "--", "nbgov/sqlml/models/runtime.py"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return f"{found[-1]}^" if found else "HEAD"


def opened(database: str, catalog: type) -> Engine:
    """An engine on ``database`` whose catalog is ``catalog``."""
    engine_module.ModelCatalog = catalog  # type: ignore[misc]
    try:
        return Engine(database, progress_bar=False)
    finally:
        engine_module.ModelCatalog = ModelCatalog  # type: ignore[misc]


class Counting:
    """Counts onnxruntime sessions made while it is entered."""

    def __enter__(self) -> Counting:
        self.made = 0
        self._original = runtime.ort.InferenceSession

        def counting(*args: object, **kwargs: object) -> object:
            self.made += 1
            return self._original(*args, **kwargs)

        runtime.ort.InferenceSession = counting  # type: ignore[misc]
        return self

    def __exit__(self, *exc: object) -> None:
        runtime.ort.InferenceSession = self._original  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--baseline", default=None, help="git revision of the baseline catalog.py")
    args = parser.parse_args()
    rev = args.baseline or default_baseline()
    before = baseline_catalog(rev)
    rows = make_data(1_000, seed=1)
    with tempfile.TemporaryDirectory() as folder:
        database = str(Path(folder) / "models.duckdb")
        fitted = estimators(args.models)
        with Engine(database, progress_bar=False) as writer:
            for name, estimator in fitted:
                writer.execute(f"CREATE MODEL {name} FROM $e", params={"e": estimator})
        size = Path(database).stat().st_size
        scored = fitted[0][0]  # a 100-tree forest
        query = f"SELECT sum(predict({scored}, {', '.join(FEATURES)}).probabilities[2]) AS s FROM r"

        def just_open(catalog: type) -> Callable[[], object]:
            return lambda: opened(database, catalog).close()

        def show(catalog: type) -> Callable[[], object]:
            def run() -> object:
                with opened(database, catalog) as engine:
                    return engine.execute("SHOW MODELS")[0].df
            return run

        def describe(catalog: type) -> Callable[[], object]:
            def run() -> object:
                with opened(database, catalog) as engine:
                    return engine.execute(f"DESCRIBE MODEL {scored}")[0].df
            return run

        def first_query(catalog: type) -> Callable[[], object]:
            def run() -> object:
                with opened(database, catalog) as engine:
                    return engine.execute(query, frames={"r": rows}, optimize=False)[0].df.s.iloc[0]
            return run

        scenarios = {
            "open": just_open,
            "open + SHOW MODELS": show,
            f"open + DESCRIBE MODEL {scored}": describe,
            f"open + first query of {scored}": first_query,
        }
        variants = {f"{label} [{side}]": make(catalog)
                    for label, make in scenarios.items() for side, catalog in (("baseline", before), ("current", ModelCatalog))}
        sessions = {}
        for name, run in variants.items():
            with Counting() as counted:
                run()
            sessions[name] = counted.made
        times, values = paired(args.pairs, variants)
        for label in scenarios:
            if "SHOW" in label or "DESCRIBE" in label:
                assert values[f"{label} [baseline]"].equals(values[f"{label} [current]"]), "listings differ"
            if "query" in label:
                assert abs(values[f"{label} [baseline]"] - values[f"{label} [current]"]) < 1e-3

    print(f"{args.models} models in a {size / 1e6:.1f} MB DuckDB file; baseline catalog.py at {rev}; "
          f"{args.pairs} paired rounds, seeded order")
    print(f"{'scenario':<44} {'baseline':>10} {'current':>10} {'sessions':>9} {'current/baseline':>17}")
    for label in scenarios:
        base, current = times[f"{label} [baseline]"], times[f"{label} [current]"]
        made = f"{sessions[f'{label} [baseline]']} -> {sessions[f'{label} [current]']}"
        print(f"{label:<44} {np.median(base) * 1e3:>8.1f}ms {np.median(current) * 1e3:>8.1f}ms {made:>9} "
              f"{median_ratio(current, base):>16.3f}x")


if __name__ == "__main__":
    main()
