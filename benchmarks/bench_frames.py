"""Notebook DataFrames read by %%sqlml: text columns dictionary-encoded, polars text as views.

The pipeline benchmark's 1M customers (``bench_optimizer.churn_customers``: two text
columns of four values each) as a pyarrow Table, a polars DataFrame and a pandas DataFrame,
queried by variable name as in a notebook, against the code before:

  * pyarrow:  text dictionaries on (the engine's default) vs off (``executor.texts = None``:
              every text value read as it is, as before);
  * polars:   the frame itself (its text exported as Arrow string views, then encoded) vs
              ``frame.to_arrow()`` made inside each timed run and read without dictionaries
              (what the code before did for every statement);
  * pandas:   text dictionaries on (a frame whose read text is encoded is handed over as
              Arrow) vs off (DuckDB's own pandas scan, as before).

Each query's result is checked equal between the two. Figures are medians of paired,
interleaved rounds (seeded order) of new/before.

    python3 benchmarks/bench_frames.py [--rows 1000000] [--rounds 11]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from benchmarks.bench_optimizer import churn_customers, train_pipelines
from benchmarks.pairs import median_ratio, paired
from nbgov.sqlml.engine import Engine

QUERIES = (
    "SELECT plan, count(*) AS n, avg(income) AS m FROM customers GROUP BY plan ORDER BY plan",
    "SELECT count(*) AS n FROM customers WHERE plan = 'gold' AND region = 'north'",
    "SELECT avg(income) AS m FROM customers WHERE age > 80",
    "SELECT avg(predict(churn, *).probabilities[2]) AS p, count(*) AS n FROM customers "
    "WHERE region = 'north' AND plan = 'platinum' AND visits <= 2",
    "SELECT avg(predict(churn, *).probabilities[2]) AS p, count(*) AS n FROM customers "
    "WHERE age BETWEEN 25 AND 29 AND is_member = true AND plan = 'basic'",
)


def engine_with(model: Any, dictionaries: bool) -> Engine:
    engine = Engine(progress_bar=False)
    engine.execute("CREATE MODEL churn FROM $m", params={"m": model})
    if not dictionaries:
        engine.executor.texts = None  # type: ignore[assignment]  # the code before: text read as it is
    return engine


def compare(label: str, new: Callable[[str], pd.DataFrame], before: Callable[[str], pd.DataFrame], rounds: int) -> None:
    print(f"\n== {label}: new / before (median of {rounds} paired rounds) ==")
    for sql in QUERIES:
        new(sql), before(sql)  # warm: plans cached, text seen once and encoded on the next read
        times, values = paired(rounds, {"new": lambda: new(sql), "before": lambda: before(sql)}, seed=27)
        same = _same(values["new"], values["before"])
        print(
            f"{median_ratio(times['new'], times['before']):6.2f}x  {np.median(times['new']) * 1e3:6.1f} ms vs "
            f"{np.median(times['before']) * 1e3:6.1f} ms{'' if same else '  RESULTS DIFFER'}  {sql[:90]}"
        )


def _same(new: pd.DataFrame, before: pd.DataFrame) -> bool:
    """Equal values, NULLs and dtypes; floats to 1e-9 (a parallel sum's order varies)."""
    try:
        pd.testing.assert_frame_equal(new, before, check_exact=False, rtol=1e-9)
    except AssertionError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    customers = churn_customers(args.rows)
    model, _ = train_pipelines(customers, 20_000)
    table = pa.Table.from_pandas(customers, preserve_index=False)
    frame = pl.from_arrow(table)
    on, off = engine_with(model, True), engine_with(model, False)

    def run(engine: Engine, value: Callable[[], Any]) -> Callable[[str], pd.DataFrame]:
        return lambda sql: engine.execute(sql, frames={"customers": value()})[-1].df

    compare("pyarrow Table", run(on, lambda: table), run(off, lambda: table), args.rounds)
    compare("polars DataFrame", run(on, lambda: frame), run(off, frame.to_arrow), args.rounds)
    compare("pandas DataFrame", run(on, lambda: customers), run(off, lambda: customers), args.rounds)
    on.close()
    off.close()


if __name__ == "__main__":
    main()
