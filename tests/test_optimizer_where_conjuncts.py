"""A predict() in a WHERE is pruned by that WHERE's other top-level conjuncts (a row failing
one is discarded whatever the call returns), never by a filter OR-ed or NOT-ed with the
call, nor by an outer join's ON (its rejected rows come back NULL-extended).

The model's value jumps with age (100 above 60, about 0 below), so a call pruned by
``age > 65`` where that is unsound returns about 100 on every row and selects rows it
should not: each query is checked against pandas and against --no-optimize.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest

from nbgov.sqlml.engine import Engine
from tests.fixtures.sqlml import unwrapped


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(11)
    n = 2000
    people = pd.DataFrame({"id": np.arange(n), "age": rng.integers(18, 90, n).astype(float), "income": rng.normal(50, 15, n).round(1)})
    people.loc[people.index % 13 == 0, "income"] = np.nan  # NULL: predict is NULL, the row never passes
    target = np.where(people.age > 60, 100.0, 0.0) + people.income.fillna(50) / 10
    model = GradientBoostingRegressor(n_estimators=15, max_depth=3, learning_rate=0.5, random_state=0)
    model.fit(people[["age", "income"]].fillna(50).to_numpy(np.float32), target)
    payload = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 2]))]).SerializeToString()
    orders = pd.DataFrame({"order_id": np.arange(0, n, 3), "person": np.arange(0, n, 3)})
    with Engine(progress_bar=False) as made:
        made.execute("CREATE MODEL m FROM $p", params={"p": payload})
        made.execute("CREATE TABLE people AS SELECT * FROM f", frames={"f": people})
        made.execute("CREATE TABLE orders AS SELECT * FROM f", frames={"f": orders})
        yield made


def scores(engine: Engine) -> pd.DataFrame:
    """Every person's prediction, unoptimized (the reference)."""
    return engine.execute("SELECT id, age, income, predict(m, age, income) AS p FROM people ORDER BY id", optimize=False)[-1].df


SHAPES: dict[str, tuple[str, Callable[[pd.DataFrame], pd.Series], bool]] = {
    # name: (WHERE, the same rows in pandas from (age, income, p), whether pruning is sound)
    "AND": ("age > 65 AND predict(m, age, income) < 105", lambda s: (s.age > 65) & (s.p < 105), True),
    "AND, call under NOT": ("age > 65 AND NOT predict(m, age, income) >= 105", lambda s: (s.age > 65) & ~(s.p >= 105), True),
    "OR": ("age > 65 OR predict(m, age, income) > 5", lambda s: (s.age > 65) | (s.p > 5), False),
    "AND under OR": ("(age > 65 AND predict(m, age, income) < 105) OR income < 30", lambda s: ((s.age > 65) & (s.p < 105)) | (s.income < 30), False),
    "AND under NOT": ("NOT (age > 65 AND predict(m, age, income) > 105)", lambda s: ~((s.age > 65) & (s.p > 105)), False),
    "OR beside an AND": ("income > 40 AND (age > 65 OR predict(m, age, income) > 5)", lambda s: (s.income > 40) & ((s.age > 65) | (s.p > 5)), False),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_where_shapes_select_the_rows_pandas_selects(engine: Engine, shape: str) -> None:
    where, rows, sound = SHAPES[shape]
    # nullable dtypes: pandas then follows SQL's three-valued logic (a NULL prediction, from
    # a NULL income, makes a comparison unknown; NOT unknown is unknown)
    reference = scores(engine).astype({"age": "Float64", "income": "Float64", "p": "Float64"})
    wanted = reference[rows(reference).fillna(False).astype(bool)]
    sql = f"SELECT id FROM people WHERE {where} ORDER BY id"
    fast = engine.execute(sql)[-1].df
    plain = engine.execute(sql, optimize=False)[-1].df
    assert fast.id.tolist() == plain.id.tolist() == wanted.id.tolist()
    assert 0 < len(fast) < len(reference)
    explained = unwrapped(engine.explain(sql))
    assert ("tree nodes using age > 65" in explained) is sound, explained


def test_an_outer_joins_on_does_not_prune_a_where_call(engine: Engine) -> None:
    """``LEFT JOIN people ON ... AND age > 65``: rows of younger people come back as NULLs,
    so age > 65 says nothing about the rows the WHERE's call sees."""
    sql = (
        "SELECT o.order_id, p.id FROM orders o LEFT JOIN people p ON p.id = o.person AND p.age > 65 "
        "WHERE p.id IS NULL OR predict(m, p.age, p.income) > 105 ORDER BY o.order_id"
    )
    fast = engine.execute(sql)[-1].df
    plain = engine.execute(sql, optimize=False)[-1].df
    pd.testing.assert_frame_equal(fast, plain)
    assert "tree nodes using" not in engine.explain(sql)
    inner = sql.replace("LEFT JOIN", "JOIN").replace("p.id IS NULL OR ", "")
    fast = engine.execute(inner)[-1].df
    assert fast.order_id.tolist() == engine.execute(inner, optimize=False)[-1].df.order_id.tolist() and len(fast) > 0
    assert "tree nodes using p.age > 65" in unwrapped(engine.explain(inner))  # an inner join's ON holds on every row
