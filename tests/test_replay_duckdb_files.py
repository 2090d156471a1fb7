"""A DuckDB database file is never byte-for-byte the same across runs (its blocks, checksums
and header counters are its own), so replay compares what the step wrote into it by the
tables its SQL wrote (their content fingerprints), not by the file's hash: equal tables are
a note, a differing table a divergence named by the table, and a change no table
fingerprint covers is unverifiable, never "nondeterministic output".

Recorded and replayed for real (``nbgov run``'s kernel, then ``replay``'s kernels), in a
folder without the recorded run's database, as a reviewer's checkout is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nbgov.replay import compare
from nbgov.replay.replayer import DIVERGED, REPRODUCED, UNVERIFIABLE, replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import record

CREATE = "%%sqlml --db shop.duckdb\nCREATE TABLE orders AS SELECT range AS id, range * 2 AS amount FROM range(1000)"
INSERT = "%%sqlml\nINSERT INTO orders VALUES (5000, 1)"


def _fresh(folder: Path) -> None:
    for made in folder.glob("*.duckdb*"):
        made.unlink()


@pytest.mark.kernel
def test_tables_that_reproduce_make_a_duckdb_file_reproduce_with_a_note(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", CREATE, INSERT,
                  "%%sqlml -o total\nSELECT sum(amount) AS s FROM orders",
                  "with open('shop.duckdb', 'rb') as f:\n    magic = f.read(12)[8:]")
    _fresh(tmp_path)
    result = replay(load_log(path))
    assert [s.status for s in result.steps] == [REPRODUCED] * 4, [c.text() for s in result.steps for c in s.causes]
    create, insert, _, reader = result.steps
    for step in (create, insert):
        assert [(n.kind, n.name) for n in step.verdict.notes] == [(compare.DATABASE_BYTES, "shop.duckdb")]
        assert "the tables this step wrote reproduced (orders)" in step.verdict.notes[0].detail
    # a read of the file its SQL wrote: its bytes differ, its writer's tables reproduced
    assert [(n.kind, n.name) for n in reader.verdict.notes] == [(compare.DATABASE_BYTES, "shop.duckdb")]
    assert result.exit_code == 0


@pytest.mark.kernel
def test_a_table_that_differs_is_the_divergence_and_a_change_no_table_covers_is_unverifiable(
        tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "%%sqlml --db lab.duckdb\nCREATE TABLE draws AS SELECT random() AS x",
                  "import duckdb\nother = duckdb.connect('side.duckdb')\n"
                  "other.execute('CREATE TABLE t AS SELECT 1 AS x')\nother.close()")
    _fresh(tmp_path)
    result = replay(load_log(path))
    draws, side = result.steps
    assert draws.status == DIVERGED
    assert [(c.kind, c.name) for c in draws.causes] == [(compare.NONDETERMINISTIC, "table draws")], \
        [c.text() for c in draws.causes]
    assert "lab.duckdb" not in draws.causes[0].detail, "the table is what differs, not the file's bytes"
    # written through Python's duckdb API: no table fingerprint, so not compared, and not blamed
    assert side.status == UNVERIFIABLE, [c.text() for c in side.causes]
    assert any("side.duckdb" in why and "table by table" in why for why in side.verdict.unverifiable)
