"""The HTML replay report, read as a reviewer reads it: in a real Chromium at a laptop's width.

A replay of a DuckDB notebook has all three kinds of step text a report carries: a note
(the database's bytes differ, its tables reproduced), a divergence (a table of random
draws) and a value that could not be compared (an open file held in a name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.lab import ARTIFACTS
from tests.fixtures.replay import invoke, record

pytestmark = [pytest.mark.browser, pytest.mark.kernel]

CREATE = "%%sqlml --db shop.duckdb\nCREATE TABLE orders AS SELECT range AS id, range * 2 AS amount FROM range(1000)"
DRAWS = "%%sqlml\nCREATE TABLE draws AS SELECT random() AS x FROM range(3)"
HELD = "log = open('run.log', 'w')\nlog.write('<b>started</b>\\n')"


def test_the_replay_report_reads_at_a_laptops_width(chromium: Any, tmp_path: Path) -> None:
    path = record(tmp_path / "shop.ipynb", CREATE, DRAWS, HELD)
    for made in tmp_path.glob("*.duckdb*"):
        made.unlink()  # a reviewer's checkout: no database from the recorded run
    report = tmp_path / "report.html"
    assert invoke("replay", path, "--report", report).exit_code == 1
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(report.as_uri())
        body = page.locator("body")
        assert body.get_by_text("First divergence: step 2").is_visible()
        assert body.get_by_text("the tables this step wrote reproduced (orders)").first.is_visible()
        assert body.get_by_text("table draws").first.is_visible()
        assert body.get_by_text("? not compared: `log`").is_visible()
        assert "<b>started</b>" in body.inner_text(), "the cell's markup is shown as text"
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), \
            "the report scrolls sideways at 1280 px"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "replay-report-duckdb.png"), full_page=True)
    finally:
        page.close()
