"""The Lineage sidebar at its default width, in a real JupyterLab: readable rows (a code
or SQL preview, errors and stale reasons on the row, no word broken across lines), a
graph that fits the panel with zoom and pan, model edges from the creating cell to the
cells that score with it, and the log re-read when the notebook is reloaded from disk.
Each test saves a screenshot of the panel into test-artifacts/."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage import notebook_meta
from tests.fixtures.kernel import kernel_env
from tests.fixtures.lab import UI_TIMEOUT_MS, Lab

pytestmark = pytest.mark.browser

PANEL = "#nbgov-lineage"

# Shaped like a pandas/scikit-learn tutorial: a frame with a long name, SQL over it, a
# failing query, a derived table, then the frame rewritten (its readers go stale).
ANALYSIS = [
    "%load_ext nbgov",
    "import pandas as pd\n"
    "customer_churn_features = pd.DataFrame({'age': [31, 45, 52, 38], 'plan': ['gold', 'basic', 'gold', 'pro'],"
    " 'monthly_charges': [70.5, 20.0, 80.25, 45.0]})",
    "%%sqlml -o by_plan\n"
    "SELECT plan, count(*) AS customers, round(avg(monthly_charges), 2) AS avg_charges\n"
    "FROM customer_churn_features GROUP BY plan ORDER BY plan",
    "%%sqlml\nSELECT plan, avg(age) FROM customers_that_do_not_exist GROUP BY plan",
    "revenue_share_by_plan = by_plan.assign(share=by_plan.avg_charges / by_plan.avg_charges.sum())",
    "customer_churn_features = customer_churn_features[customer_churn_features.age > 35]",
]

# Text nodes whose words are drawn on two lines (`pre` code blocks wrap as code does).
_JS_BROKEN_WORDS = """(root) => {
  const broken = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    if (n.parentElement.closest('pre, title, svg')) continue;
    const re = /\\S+/g;
    let m;
    while ((m = re.exec(n.textContent))) {
      range.setStart(n, m.index);
      range.setEnd(n, m.index + m[0].length);
      const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
      if (tops.size > 1) broken.push(m[0]);
    }
  }
  return broken;
}"""

# Cut-off cells and strips must carry their full text on hover.
_JS_CLIPPED_WITHOUT_TITLE = """(root) => [...root.querySelectorAll(
    '.nbgov-item-name, .nbgov-item-sub, .nbgov-snippet, .nbgov-row-problem, .nbgov-LineagePanel-notebook')]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .filter(e => !(e.title || (e.closest('[title]') && e.closest('[title]').title)))
  .map(e => e.textContent)"""


def assert_word_prefix(shown: str | None, full: str, min_words: int) -> None:
    """``shown`` is ``full``, or its first words (at least ``min_words``) and an ellipsis."""
    assert shown is not None
    if shown == full:
        return
    assert shown.endswith("…"), shown
    kept = shown[:-1]
    assert full.startswith(kept) and full[len(kept)] == " ", f"{shown!r} is not cut at a word boundary of {full!r}"
    assert len(kept.split()) >= min_words, shown


def rows(lab: Lab) -> Any:
    return lab.page.locator(f"{PANEL} .nbgov-Timeline-row")


def row(lab: Lab, count: int) -> Any:
    return rows(lab).filter(has=lab.page.locator(".nbgov-count", has_text=f"[{count}]"))


def wait_rows(lab: Lab, n: int) -> None:
    lab.page.wait_for_function(
        "(n) => document.querySelectorAll('#nbgov-lineage .nbgov-Timeline-row').length === n",
        arg=n,
        timeout=UI_TIMEOUT_MS,
    )


def run_all(lab: Lab, name: str, cells: list[str]) -> Path:
    path = lab.write_notebook(name, cells)
    lab.open_notebook(path)
    for index in range(len(cells)):
        lab.run_cell(index)
    lab.open_lineage()
    return path


def panel_width(lab: Lab) -> float:
    return float(lab.page.locator(PANEL).evaluate("n => n.getBoundingClientRect().width"))


def test_rows_and_details_are_readable_at_the_default_width_and_refit_when_wider(lab: Lab) -> None:
    run_all(lab, "analysis.ipynb", ANALYSIS)
    wait_rows(lab, 5)
    assert 200 <= panel_width(lab) <= 300, "the sidebar's default width"

    # Each strip is cut at a word boundary to the row's width; the row's tooltip has it all.
    sql = row(lab, 3)
    sql_line = "SELECT plan, count(*) AS customers, round(avg(monthly_charges), 2) AS avg_charges"
    assert_word_prefix(sql.locator(".nbgov-snippet").text_content(), sql_line, min_words=4)
    failed = row(lab, 4)
    assert_word_prefix(
        failed.locator(".nbgov-snippet").text_content(),
        "SELECT plan, avg(age) FROM customers_that_do_not_exist GROUP BY plan",
        min_words=4,
    )
    error = failed.locator(".nbgov-row-error")
    assert error.is_visible() and error.text_content().startswith("UsageError: Catalog Error: Table with")
    assert "customers_that_do_not_exist does not exist" in failed.get_attribute("title")
    stale = sql.locator(".nbgov-row-stale")
    assert stale.is_visible()
    assert_word_prefix(stale.text_content(), "stale: input customer_churn_features rewritten by [6]", min_words=2)
    assert sql_line in sql.get_attribute("title")
    assert "stale: input customer_churn_features rewritten by [6]" in sql.get_attribute("title")
    assert row(lab, 2).locator(".nbgov-row-problem").count() == 0, "the first frame ran fine and is not stale"

    panel = lab.page.locator(PANEL)
    assert panel.evaluate(_JS_BROKEN_WORDS) == []
    assert panel.evaluate(_JS_CLIPPED_WITHOUT_TITLE) == []
    overflow = panel.evaluate(
        "p => [...p.querySelectorAll('.nbgov-Timeline-row')].filter(r => r.scrollHeight > r.clientHeight + 1).length"
    )
    assert overflow == 0, "every strip of a row fits the row's computed height"
    lab.panel_screenshot("sidebar-timeline-default-width")

    # Details, compact: each value a name line and a type/summary/hash line.
    row(lab, 3).click()
    details = lab.page.locator(f"{PANEL} .nbgov-Details")
    reads = details.locator(".nbgov-items[aria-label='Reads'] .nbgov-item")
    assert reads.count() == 1
    assert reads.locator(".nbgov-item-name").text_content() == "customer_churn_features"
    assert reads.locator(".nbgov-from").text_content() == "[2]"
    assert "DataFrame" in reads.locator(".nbgov-item-sub").text_content()
    name_box = reads.locator(".nbgov-item-name").evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert name_box[0] <= name_box[1], "a 23-character name fits whole at the default width"
    assert details.evaluate("d => d.scrollWidth <= d.clientWidth + 1"), "nothing wider than the panel"
    assert panel.evaluate(_JS_BROKEN_WORDS) == []
    assert panel.evaluate(_JS_CLIPPED_WITHOUT_TITLE) == []
    lab.panel_screenshot("sidebar-details-default-width")
    row(lab, 2).click()  # the DataFrame write: "pandas.DataFrame" stays whole
    assert "DataFrame" in details.inner_text()
    assert panel.evaluate(_JS_BROKEN_WORDS) == []
    lab.panel_screenshot("sidebar-details-dataframe")

    clock = row(lab, 3).locator(".nbgov-time")
    assert not clock.is_visible(), "at the default width the clock gives way to the cell and duration"

    # Wider, as a user drags the sidebar's edge: the clock appears, rows refit their text.
    before = sql.locator(".nbgov-snippet").text_content()
    handle = lab.page.locator("#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)").last
    box = handle.bounding_box()
    assert box is not None
    lab.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    lab.page.mouse.down()
    lab.page.mouse.move(box["x"] - 250, box["y"] + box["height"] / 2, steps=8)
    lab.page.mouse.up()
    assert panel_width(lab) > 450
    clock.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    lab.page.wait_for_function(
        "(before) => document.querySelector('#nbgov-lineage .nbgov-Timeline-row[data-id$=\":3\"] .nbgov-snippet')"
        ".textContent.length > before.length",
        arg=before,
        timeout=UI_TIMEOUT_MS,
    )
    assert panel.evaluate(_JS_BROKEN_WORDS) == []
    lab.panel_screenshot("sidebar-timeline-wide")
    assert lab.page_errors == []


def graph_layer_inside_viewport(lab: Lab) -> bool:
    return bool(
        lab.page.evaluate(
            """() => {
  const vp = document.querySelector('#nbgov-lineage .nbgov-Graph-viewport').getBoundingClientRect();
  const g = document.querySelector('#nbgov-lineage .nbgov-Graph-layer').getBoundingClientRect();
  return g.left >= vp.left - 1 && g.right <= vp.right + 1 && g.top >= vp.top - 1 && g.bottom <= vp.bottom + 1;
}"""
        )
    )


def open_graph(lab: Lab) -> Any:
    """The panel's Graph tab, shown; its SVG."""
    lab.page.locator(f"{PANEL} .nbgov-tab", has_text="Graph").click()
    graph = lab.page.locator(f"{PANEL} .nbgov-Graph-svg")
    graph.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    return graph


def show_details(lab: Lab, count: int) -> Any:
    """The details of execution [count], opened from its timeline row."""
    row(lab, count).click()
    details = lab.page.locator(f"{PANEL} .nbgov-Details")
    details.locator(".nbgov-Details-title", has_text=f"Execution [{count}]").wait_for(timeout=UI_TIMEOUT_MS)
    return details


def graph_transform(lab: Lab) -> str:
    return str(lab.page.locator(f"{PANEL} .nbgov-Graph-layer").get_attribute("transform"))


MODEL_CELLS = [
    "%load_ext nbgov",
    "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
    "visits = pd.DataFrame({'age': [25., 37., 52., 61., 45., 33.], 'readmitted': [0, 0, 1, 1, 1, 0]})\n"
    "clf = LogisticRegression().fit(visits[['age']], visits.readmitted)",
    "%%sqlml\nCREATE MODEL readmission FROM $clf",
    "%%sqlml -o at_risk\nSELECT age, predict(readmission, age).label AS will_return FROM visits",
    "%%sqlml\nSELECT predict(readmission, age, age) FROM visits",
    "visits = visits.assign(age=visits.age + 1)",
]


def test_graph_fits_the_panel_zooms_pans_and_draws_model_edges(lab: Lab) -> None:
    run_all(lab, "models.ipynb", MODEL_CELLS)
    wait_rows(lab, 5)
    row(lab, 4).click()
    graph = open_graph(lab)

    # The model runs from the cell that created it to the cells that scored with it.
    edges = graph.locator(".nbgov-Graph-edge").evaluate_all(
        "ps => ps.map(p => [p.dataset.from, p.dataset.to])"
    )
    ids = graph.locator(".nbgov-Graph-node.nbgov-kind-execution").evaluate_all(
        "gs => Object.fromEntries(gs.map(g => [g.querySelector('text').textContent.match(/\\[(\\d+)\\]/)[1], 'x:' + g.dataset.id]))"
    )
    model = "m:readmission@1"
    assert [ids["3"], model] in edges, "creating cell → model"
    assert [model, ids["4"]] in edges, "model → scoring cell"
    assert [model, ids["3"]] not in edges, "the creating cell does not read its own model"
    labels = graph.locator(".nbgov-Graph-node text").all_text_contents()
    assert "readmission@1" in labels
    assert any(label.startswith("⚠ [4] SELECT age,") for label in labels), labels
    creator = graph.locator(".nbgov-Graph-node", has_text="[3] CREATE MODEL")
    assert "cell id: " in creator.locator("title").text_content(), "the cell id is on hover"

    # Failed and stale runs are styled (and marked, not by colour alone).
    failed = graph.locator(".nbgov-Graph-node.nbgov-mod-error")
    assert failed.count() == 1 and failed.locator(".nbgov-Graph-mark").text_content() == "✕ "
    stale = graph.locator(".nbgov-Graph-node.nbgov-mod-stale")
    assert stale.count() >= 1 and "⚠" in stale.first.locator("text").text_content()
    plain_stroke = graph.locator(".nbgov-Graph-node.nbgov-kind-execution:not(.nbgov-mod-error) rect").first.evaluate(
        "r => getComputedStyle(r).stroke"
    )
    assert failed.locator("rect").evaluate("r => getComputedStyle(r).stroke") != plain_stroke

    # Every label stays inside its box.
    overflowing = graph.locator(".nbgov-Graph-node").evaluate_all(
        "gs => gs.filter(g => g.querySelector('text').getBBox().width > g.querySelector('rect').width.baseVal.value)"
        ".map(g => g.querySelector('text').textContent)"
    )
    assert overflowing == []

    # Fitted at first; zoom and pan move it; Fit brings it all back.
    assert graph_layer_inside_viewport(lab)
    fitted = graph_transform(lab)
    zoom_label = lab.page.locator(f"{PANEL} .nbgov-Graph-zoom")
    before = int(zoom_label.text_content().rstrip("%"))
    lab.page.locator(f"{PANEL} .nbgov-Graph-button[aria-label='Zoom in']").click()
    assert int(zoom_label.text_content().rstrip("%")) == round(before * 1.25)
    viewport = lab.page.locator(f"{PANEL} .nbgov-Graph-viewport")
    box = viewport.bounding_box()
    assert box is not None
    lab.page.mouse.move(box["x"] + 20, box["y"] + box["height"] - 20)
    lab.page.mouse.down()
    lab.page.mouse.move(box["x"] + 120, box["y"] + box["height"] - 80, steps=5)
    lab.page.mouse.up()
    panned = graph_transform(lab)
    assert panned != fitted
    lab.page.keyboard.down("Control")
    lab.page.mouse.wheel(0, -300)
    lab.page.keyboard.up("Control")
    assert int(zoom_label.text_content().rstrip("%")) > round(before * 1.25), "Ctrl + wheel zooms in"
    lab.page.locator(f"{PANEL} .nbgov-Graph-button", has_text="Fit").click()
    assert graph_layer_inside_viewport(lab)

    # Live updates keep the user's view.
    lab.page.locator(f"{PANEL} .nbgov-Graph-button[aria-label='Zoom in']").click()
    kept = graph_transform(lab)
    lab.set_cell_source(5, "visits = visits.assign(age=visits.age + 2)")
    lab.run_cell(5)
    lab.page.wait_for_function(
        "() => document.querySelector('#nbgov-lineage .nbgov-LineagePanel-counts').textContent.startsWith('6 ')",
        timeout=UI_TIMEOUT_MS,
    )
    assert graph_transform(lab) == kept

    lab.page.locator(f"{PANEL} .nbgov-Graph-button", has_text="Fit").click()
    lab.panel_screenshot("sidebar-graph-models")
    creator.dispatch_event("pointerdown", {"button": 0, "pointerId": 1})
    creator.dispatch_event("pointerup", {"button": 0, "pointerId": 1})
    lab.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2", timeout=UI_TIMEOUT_MS
    )
    assert lab.page_errors == []


def test_a_dropped_model_is_a_removal_edge_and_its_scorer_goes_stale(lab: Lab) -> None:
    run_all(lab, "dropped.ipynb", [*MODEL_CELLS[:4], "%%sqlml\nDROP MODEL readmission"])
    wait_rows(lab, 4)
    scorer = row(lab, 4)  # [3] created the model, [4] scored with it, [5] dropped it
    assert scorer.locator(".nbgov-row-stale").inner_text().startswith("stale: model readmission@1 dropped")
    assert "model readmission@1 dropped by [5]" in scorer.locator(".nbgov-stale").get_attribute("title")
    row(lab, 5).click()
    details = lab.page.locator(f"{PANEL} .nbgov-Details")
    details.locator(".nbgov-Details-title", has_text="Execution [5]").wait_for(timeout=UI_TIMEOUT_MS)
    assert "readmission@1dropped" in str(details.text_content()).replace(" ", "")
    _assert_details_fit_the_default_width(lab)
    lab.panel_screenshot("sidebar-details-dropped-model")
    graph = open_graph(lab)
    removals = graph.locator(".nbgov-Graph-edge.nbgov-mod-removed").evaluate_all(
        "ps => ps.map(p => [p.dataset.from, p.dataset.to])"
    )
    dropper = graph.locator(".nbgov-Graph-node", has_text="[5] DROP MODEL").get_attribute("data-id")
    assert removals == [[f"x:{dropper}", "m:readmission@1"]]
    lab.page.locator(f"{PANEL} .nbgov-Graph-button", has_text="Fit").click()
    lab.panel_screenshot("sidebar-graph-dropped-model")
    assert lab.page_errors == []


def saved_kinds(path: Path) -> dict[str, int]:
    """How many entries of each kind the saved notebook's log holds (read as verify reads it)."""
    meta = notebook_meta.read_lineage(notebook_meta.read_notebook(path))
    assert meta is not None and not meta.unreadable, meta
    return dict(Counter(entry["kind"] for entry in meta.entries()))


def test_reloading_the_notebook_from_disk_rereads_its_lineage(lab: Lab) -> None:
    cells = ["%load_ext nbgov", "a = 1", "b = a + 1"]
    path = lab.write_notebook("reloaded.ipynb", cells)
    lab.open_notebook(path)
    lab.run_cell(0)
    lab.run_cell(1)
    lab.open_lineage()
    wait_rows(lab, 1)
    lab.save()

    # Someone runs the notebook headless: the file on disk now holds a second session.
    subprocess.run(
        [sys.executable, "-m", "nbgov.cli", "run", str(path)],
        check=True, capture_output=True, env=kernel_env(), timeout=300,
    )
    assert saved_kinds(path) == {"session": 2, "execution": 4}

    lab.command("docmanager:reload")  # File ▸ Reload Notebook from Disk

    wait_rows(lab, 4)
    counts = lab.page.locator(f"{PANEL} .nbgov-LineagePanel-counts")
    assert counts.text_content() == "4 executions"
    assert counts.get_attribute("title") == "6 entries: 2 sessions, 4 executions", "as nbgov show says it"
    lab.run_cell(2)  # the open kernel keeps recording into the reloaded log
    wait_rows(lab, 5)
    lab.save()
    assert saved_kinds(path) == {"session": 2, "execution": 5}
    # runs are grouped by session (the log's order): the headless session's, then this kernel's
    strips = lab.page.locator(f"{PANEL} .nbgov-row-session").all_text_contents()
    assert [strip.split(" · ")[0] for strip in strips] == ["session 2", "session 1"], strips
    lab.panel_screenshot("sidebar-after-reload-from-disk")
    assert lab.page_errors == []


def test_lineage_magic_renders_as_a_live_widget_in_jupyterlab(lab: Lab) -> None:
    path = lab.write_notebook("inline.ipynb", ["%load_ext nbgov", "a = 1", "b = a / 0", "%lineage", "c = 3"])
    lab.open_notebook(path)
    for index in range(4):
        lab.run_cell(index)
    output = lab.page.locator(".jp-Cell").nth(3).locator(".jp-OutputArea-output")
    select = output.locator("select")
    select.wait_for(timeout=UI_TIMEOUT_MS)
    header = output.locator(".widget-label").first
    lab.page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Cell')][3].querySelectorAll('select option').length === 3",
        timeout=UI_TIMEOUT_MS,
    )
    assert header.text_content() == "Lineage: 4 entries: 1 session, 3 executions · 1 failed (newest first)"
    options = [o.replace("\xa0", " ") for o in select.locator("option").all_text_contents()]  # Select pads with nbsp
    assert options[0].endswith("%lineage") and "error" in options[1] and options[2].endswith("a = 1")
    assert output.locator("table").count() == 0, "the widget, not the HTML fallback, where widgets run"

    lab.run_cell(4)  # it stays live
    lab.page.wait_for_function(
        "() => [...document.querySelectorAll('.jp-Cell')][3].querySelectorAll('select option').length === 4",
        timeout=UI_TIMEOUT_MS,
    )
    assert header.text_content().startswith("Lineage: 5 entries: 1 session, 4 executions")
    lab.screenshot("lineage-magic-widget")
    assert lab.page_errors == []


# A cell writes a file, one reads it, then one removes it: the record keeps the removal
# as a write with `removed: true` and no hash, which the sidebar must not show as a write.
REMOVAL_CELLS = [
    "%load_ext nbgov",
    "with open('data.csv', 'w') as out:\n    out.write('plan,customers\\ngold,2\\n')",
    "with open('data.csv') as src:\n    header = src.readline()",
    "import os\nos.remove('data.csv')",
]


def _assert_details_fit_the_default_width(lab: Lab) -> None:
    panel = lab.page.locator(PANEL)
    details = lab.page.locator(f"{PANEL} .nbgov-Details")
    assert details.evaluate("d => d.scrollWidth <= d.clientWidth + 1"), "nothing wider than the panel"
    assert panel.evaluate(_JS_BROKEN_WORDS) == []
    assert panel.evaluate(_JS_CLIPPED_WITHOUT_TITLE) == []
    assert 200 <= panel_width(lab) <= 300, "the sidebar's default width"


def test_a_removed_file_reads_as_removed_in_the_details_and_the_graph(lab: Lab) -> None:
    run_all(lab, "removal.ipynb", REMOVAL_CELLS)
    wait_rows(lab, 3)
    details = lab.page.locator(f"{PANEL} .nbgov-Details")
    files = details.locator(".nbgov-items[aria-label='Files'] .nbgov-item")

    row(lab, 2).click()  # the write, for contrast: its hash and size
    assert files.count() == 1
    assert files.locator(".nbgov-item-aside").text_content() == "write"
    assert " B · " in files.locator(".nbgov-item-sub").text_content()
    assert files.first.evaluate("li => li.classList.contains('nbgov-mod-removed')") is False

    row(lab, 4).click()
    details.locator(".nbgov-Details-title", has_text="Execution [4]").wait_for(timeout=UI_TIMEOUT_MS)
    assert files.count() == 1, "the removal is the cell's one file"
    removed = files.first
    assert removed.locator(".nbgov-item-name").text_content() == "data.csv"
    assert removed.locator(".nbgov-item-aside").text_content() == "removed"
    sub = removed.locator(".nbgov-item-sub").text_content()
    assert sub.startswith("removed or renamed away · ") and sub.endswith("data.csv"), sub
    assert "—" not in sub, "no empty hash shown for a removal"
    assert "line-through" in removed.locator(".nbgov-item-name").evaluate("e => getComputedStyle(e).textDecorationLine")
    _assert_details_fit_the_default_width(lab)
    lab.panel_screenshot("sidebar-details-removed-file")

    # The graph: the removal edge is dashed, the file's node drawn as gone, the writer's edge plain.
    graph = open_graph(lab)
    ids = graph.locator(".nbgov-Graph-node.nbgov-kind-execution").evaluate_all(
        "gs => Object.fromEntries(gs.map(g => [g.querySelector('text').textContent.match(/\\[(\\d+)\\]/)[1], 'x:' + g.dataset.id]))"
    )
    dash = "p => [p.classList.contains('nbgov-mod-removed'), getComputedStyle(p).strokeDasharray]"
    removal = graph.locator(f".nbgov-Graph-edge[data-from='{ids['4']}'][data-to='f:data.csv']")
    writing = graph.locator(f".nbgov-Graph-edge[data-from='{ids['2']}'][data-to='f:data.csv']")
    is_removal, removal_dash = removal.evaluate(dash)
    assert is_removal and removal_dash not in ("", "none")
    assert writing.evaluate(dash) == [False, "none"]
    node = graph.locator(".nbgov-Graph-node.nbgov-kind-file")
    assert node.count() == 1 and "nbgov-mod-removed" in str(node.get_attribute("class"))
    assert node.locator("text").text_content() == "removed data.csv", "said in words, not only by a dashed outline"
    assert node.locator(".nbgov-Graph-mark").text_content() == "removed "
    overflowing = node.evaluate("g => g.querySelector('text').getBBox().width > g.querySelector('rect').width.baseVal.value")
    assert overflowing is False
    assert node.locator("title").text_content() == "file data.csv\nremoved by [4]"
    assert node.locator("rect").evaluate("r => getComputedStyle(r).strokeDasharray") not in ("", "none")
    lab.panel_screenshot("sidebar-graph-removed-file")
    assert lab.page_errors == []


# A notebook that logs as it loads a sqlite table, as ETL notebooks do.
LOGGING_CELLS = [
    "%load_ext nbgov",
    "import logging, sqlite3\nlogging.basicConfig(level=logging.INFO)\nlogger = logging.getLogger('etl')\n"
    "con = sqlite3.connect('shop.db')",
    "logger.info('loading orders')\ncon.execute('CREATE TABLE IF NOT EXISTS orders (id, amount)')\n"
    "con.execute('INSERT INTO orders VALUES (1, 9.5)')\ncon.commit()",
]


def test_a_logger_reads_as_its_configuration_and_a_database_as_itself(lab: Lab) -> None:
    run_all(lab, "logging.ipynb", LOGGING_CELLS)
    wait_rows(lab, 2)
    details = show_details(lab, 3)

    reads = details.locator(".nbgov-items[aria-label='Reads'] .nbgov-item")
    logger = reads.filter(has=lab.page.locator(".nbgov-item-name", has_text="logger"))
    sub = logger.locator(".nbgov-item-sub").text_content() or ""
    assert sub.startswith("logging.Logger 'etl' at NOTSET, 0 handlers · "), sub
    assert "weak" not in sub, "a logger is read exactly"
    con = reads.filter(has=lab.page.locator(".nbgov-item-name", has_text="con")).locator(".nbgov-item-sub")
    assert (con.text_content() or "").startswith("sqlite3.Connection · "), "a kind with nothing more said, once"
    files = details.locator(".nbgov-items[aria-label='Files'] .nbgov-item")
    # the database, not its journal; read too, through the connection the cell before opened
    # (sqlite's page counters), before the cell wrote it
    assert files.locator(".nbgov-item-name").all_text_contents() == ["shop.db", "shop.db"], "not its journal"
    assert files.locator(".nbgov-item-aside").all_text_contents() == ["write", "read"]
    _assert_details_fit_the_default_width(lab)
    lab.panel_screenshot("sidebar-details-logger-and-database")


# DuckDB as notebooks use it: a connection to a database file opened once, queried by later cells.
DUCKDB_CELLS = [
    "%load_ext nbgov",
    "import duckdb\ncon = duckdb.connect('shop.duckdb')\n"
    "con.execute('CREATE OR REPLACE TABLE orders AS SELECT range AS id, range * 1.5 AS amount FROM range(4)')",
    "revenue = con.sql('SELECT sum(amount) AS total FROM orders').df()",
]


def test_a_query_through_an_earlier_duckdb_connection_reads_the_database(lab: Lab) -> None:
    run_all(lab, "duckdb.ipynb", DUCKDB_CELLS)
    wait_rows(lab, 2)
    details = show_details(lab, 3)
    files = details.locator(".nbgov-items[aria-label='Files'] .nbgov-item")
    assert files.locator(".nbgov-item-name").all_text_contents() == ["shop.duckdb"]
    assert files.locator(".nbgov-item-aside").all_text_contents() == ["read"]
    sub = files.locator(".nbgov-item-sub").text_content() or ""
    assert len(sub.split(" · ")[0]) == 8 and " B · " in sub, f"hashed, with its size: {sub}"
    _assert_details_fit_the_default_width(lab)
    lab.panel_screenshot("sidebar-details-duckdb-connection")
    assert lab.page_errors == []


# A notebook configured through its environment, as workshop and CI notebooks are.
ENVIRONMENT_CELLS = [
    "%load_ext nbgov",
    "import os\nos.environ['NBGOV_DEMO_SEED'] = '7'",
    "seed = int(os.environ['NBGOV_DEMO_SEED'])\nhas_token = 'NBGOV_DEMO_API_TOKEN' in os.environ",
]


def test_environment_variables_read_as_inputs_and_a_secret_shows_no_hash(lab: Lab) -> None:
    run_all(lab, "environment.ipynb", ENVIRONMENT_CELLS)
    wait_rows(lab, 2)
    details = show_details(lab, 3)
    reads = details.locator(".nbgov-items[aria-label='Reads'] .nbgov-item")
    assert reads.locator(".nbgov-item-name").all_text_contents() == [
        "os.environ['NBGOV_DEMO_SEED']", "os.environ['NBGOV_DEMO_API_TOKEN']"]
    seed, token = (reads.nth(i).locator(".nbgov-item-sub").text_content() or "" for i in (0, 1))
    assert seed.startswith("environment variable set · ") and "7" not in seed.split("·")[0], seed
    assert token.startswith("environment variable · — · weak: not fingerprinted: its name suggests"), token
    assert reads.nth(0).locator(".nbgov-item-head").text_content() == "os.environ['NBGOV_DEMO_SEED'][2]", \
        "its source: the cell that set it"
    _assert_details_fit_the_default_width(lab)
    lab.panel_screenshot("sidebar-details-environment")

    # The graph: each variable is labelled by its own name, not an `os.environ['NBG…` cut alike
    graph = open_graph(lab)
    lab.page.locator(f"{PANEL} .nbgov-Graph-button", has_text="Fit").click()
    nodes = graph.locator(".nbgov-Graph-node.nbgov-kind-variable")
    titles = {node.locator("title").text_content(): node for node in nodes.all()}
    seed_node = titles["environment variable os.environ['NBGOV_DEMO_SEED']"]
    token_node = titles["environment variable os.environ['NBGOV_DEMO_API_TOKEN']"]
    seed_label, token_label = (n.locator("text").text_content() or "" for n in (seed_node, token_node))
    assert seed_label.startswith("$NBG") and seed_label.endswith("SEED"), seed_label  # cut in the middle
    assert token_label.startswith("$NBG") and token_label.endswith("TOKEN"), token_label
    setter = graph.locator(".nbgov-Graph-node", has_text="[2] import os").get_attribute("data-id")
    edge = f"""[data-from='x:{setter}'][data-to="v:os.environ['NBGOV_DEMO_SEED']"]"""
    assert graph.locator(f".nbgov-Graph-edge{edge}").count() == 1, "the cell that set it, linked"
    lab.panel_screenshot("sidebar-graph-environment")
    assert lab.page_errors == []
