"""The Lineage sidebar in a real JupyterLab: live timeline, details, stale flags, graph,
metadata persisted on save, catch-up after reload."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage import notebook_meta
from tests.fixtures.lab import UI_TIMEOUT_MS, Lab
from tests.fixtures.replay import invoke


def logged_entries(path: Path) -> list[dict[str, Any]]:
    """The saved notebook's log, expanded from its compact lines (all of them readable)."""
    meta = notebook_meta.read_lineage(notebook_meta.read_notebook(path))
    assert meta is not None and not meta.unreadable, meta
    return meta.entries()

pytestmark = pytest.mark.browser

CELLS = ["%load_ext nbgov", "a = 10", "b = a * 2", "c = b + 1"]


def timeline(lab: Lab) -> list[str]:
    return lab.page.locator("#nbgov-lineage .nbgov-Timeline-row").all_inner_texts()


def wait_rows(lab: Lab, n: int) -> None:
    lab.page.wait_for_function(
        "(n) => document.querySelectorAll('#nbgov-lineage .nbgov-Timeline-row').length === n",
        arg=n,
        timeout=UI_TIMEOUT_MS,
    )


def row(lab: Lab, count: int) -> Any:
    return lab.page.locator("#nbgov-lineage .nbgov-Timeline-row").filter(
        has=lab.page.locator(".nbgov-count", has_text=f"[{count}]")
    )


def details(lab: Lab) -> str:
    return str(lab.page.locator("#nbgov-lineage .nbgov-Details").text_content())


def active_cell(lab: Lab) -> int:
    return int(lab.page.evaluate("() => window.jupyterapp.shell.currentWidget.content.activeCellIndex"))


def open_with_runs(lab: Lab, name: str, order: list[int], cells: list[str] = CELLS) -> Path:
    path = lab.write_notebook(name, cells)
    lab.open_notebook(path)
    for index in order:
        lab.run_cell(index)
    lab.open_lineage()
    return path


def test_timeline_lists_out_of_order_runs_newest_first_and_jumps_to_the_cell(lab: Lab) -> None:
    # c before b fails (NameError), then b and c succeed: 4 recorded executions.
    open_with_runs(lab, "order.ipynb", [0, 1, 3, 2, 3])
    wait_rows(lab, 4)

    rows = timeline(lab)
    counts = [r.split()[0] for r in rows]
    assert counts == ["[5]", "[4]", "[3]", "[2]"]
    assert ["cell 4" in rows[0], "cell 3" in rows[1], "cell 4" in rows[2], "cell 2" in rows[3]] == [True] * 4
    assert "error" in rows[2] and "ok" in rows[0]
    assert active_cell(lab) == 3, "the last run left the cursor on cell 4"

    row(lab, 4).click()

    lab.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2", timeout=UI_TIMEOUT_MS
    )
    assert "b = a * 2" in details(lab)
    assert "NameError" in row(lab, 3).locator(".nbgov-status").get_attribute("title")
    lab.screenshot("lineage-timeline")
    assert lab.page_errors == []


def test_details_show_inputs_with_their_producer_and_a_diff_once_the_cell_is_edited(lab: Lab) -> None:
    open_with_runs(lab, "details.ipynb", [0, 1, 2])
    wait_rows(lab, 2)
    lab.set_cell_source(2, "b = a * 3")

    row(lab, 3).click()

    text = details(lab)
    assert "Code as executed" in text and "b = a * 2" in text
    reads = lab.page.locator("#nbgov-lineage .nbgov-items[aria-label='Reads']").inner_text()
    assert "a" in reads and "int" in reads and "[2]" in reads, reads
    assert "Edited since this run" in text
    assert lab.page.locator("#nbgov-lineage .nbgov-diff-del").inner_text() == "- b = a * 2"
    assert lab.page.locator("#nbgov-lineage .nbgov-diff-add").inner_text() == "+ b = a * 3"
    # "from [2]" links to the producing execution.
    lab.page.locator("#nbgov-lineage .nbgov-link").first.click()
    lab.page.wait_for_function(
        "() => document.querySelector('#nbgov-lineage .nbgov-Details-title').textContent.startsWith('Execution [2]')",
        timeout=UI_TIMEOUT_MS,
    )
    lab.screenshot("lineage-details")


def test_changing_an_upstream_cell_marks_its_consumers_stale(lab: Lab) -> None:
    open_with_runs(lab, "stale.ipynb", [0, 1, 2, 3])
    wait_rows(lab, 3)
    assert lab.page.locator("#nbgov-lineage .nbgov-stale").count() == 0

    lab.set_cell_source(1, "a = 11")
    lab.run_cell(1)
    wait_rows(lab, 4)

    stale_rows = [r.split()[0] for r in timeline(lab) if "stale" in r]
    assert stale_rows == ["[4]", "[3]"], "b read the old a; c depends on b"
    assert "a" in row(lab, 3).locator(".nbgov-stale").get_attribute("title")
    assert row(lab, 3).locator(".nbgov-row-stale").inner_text() == "stale: input a rewritten by [5]"
    row(lab, 3).click()
    assert "stale:" in details(lab)
    lab.screenshot("lineage-stale")


def test_saving_writes_the_log_into_the_notebook_file(lab: Lab) -> None:
    path = open_with_runs(lab, "saved.ipynb", [0, 1, 2])
    wait_rows(lab, 2)

    lab.save()

    nb = json.loads(path.read_text())
    meta = nb["metadata"]["nbgov"]
    assert meta["schema"] == "nbgov.notebook/2"
    assert meta["sidecar"] == ".nbgov/saved.jsonl"
    assert all(isinstance(line, str) for line in meta["log"]), "one compact line per entry"
    forms = [json.loads(line) for line in meta["log"]]
    assert forms[0]["kind"] == "session" and all("kind" not in f for f in forms[1:])
    assert [f["code"] for f in forms[1:]] == ["a = 10", "b = a * 2"]
    sidecar = [json.loads(line) for line in (path.parent / ".nbgov" / "saved.jsonl").read_text().splitlines()]
    assert logged_entries(path) == sidecar, "the lines expand to the sidecar's entries exactly"
    cell_meta = [c["metadata"].get("nbgov") for c in nb["cells"]]
    assert cell_meta[0] is None and cell_meta[3] is None
    assert cell_meta[1] == {"latest": sidecar[1]["hash"][:16]}, "a cell names its latest entry by hash"
    assert cell_meta[2] == {"latest": sidecar[2]["hash"][:16]}
    verified = invoke("verify", path, "--require-sidecar")
    assert verified.exit_code == 0 and "lineage intact" in verified.output, verified.output


def test_after_a_reload_the_log_survives_without_duplicates(lab: Lab) -> None:
    path = open_with_runs(lab, "reload.ipynb", [0, 1, 2])
    wait_rows(lab, 2)
    lab.save()
    lab.run_cell(3)  # not saved: only the kernel knows this one
    wait_rows(lab, 3)

    lab.page.reload()
    lab.open_notebook(path)
    lab.open_lineage()

    wait_rows(lab, 3)  # two from the file + one caught up from the kernel, none twice
    assert [r.split()[0] for r in timeline(lab)] == ["[4]", "[3]", "[2]"]
    lab.save()
    entries = logged_entries(path)
    assert [e["body"]["execution_count"] for e in entries if e["kind"] == "execution"] == [2, 3, 4]
    assert [e["kind"] for e in entries].count("session") == 1
    lab.screenshot("lineage-after-reload")


def test_graph_view_draws_cells_and_data_and_highlights_ancestors(lab: Lab) -> None:
    open_with_runs(lab, "graph.ipynb", [0, 1, 2, 3])
    wait_rows(lab, 3)
    row(lab, 4).click()

    lab.page.locator("#nbgov-lineage .nbgov-tab", has_text="Graph").click()

    graph = lab.page.locator("#nbgov-lineage .nbgov-Graph-svg")
    graph.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
    labels = graph.locator(".nbgov-Graph-node text").all_text_contents()
    assert {"a", "b", "c"} <= set(labels)
    assert {"[2] a = 10", "[3] b = a * 2", "[4] c = b + 1"} <= set(labels)
    highlighted = graph.locator(".nbgov-Graph-node.nbgov-mod-highlighted text").all_text_contents()
    assert {"[2] a = 10", "[3] b = a * 2", "[4] c = b + 1", "a", "b"} <= set(highlighted)
    assert "c" not in highlighted
    assert graph.locator(".nbgov-Graph-edge.nbgov-mod-highlighted").count() >= 4
    lab.screenshot("lineage-graph")

    graph.locator(".nbgov-Graph-node", has_text="[3] b = a * 2").click()
    lab.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 2", timeout=UI_TIMEOUT_MS
    )
    highlighted = graph.locator(".nbgov-Graph-node.nbgov-mod-highlighted text").all_text_contents()
    assert "[4] c = b + 1" not in highlighted


def test_dark_theme_recolours_the_panel(lab: Lab) -> None:
    open_with_runs(lab, "theme.ipynb", [0, 1])
    wait_rows(lab, 1)
    panel = lab.page.locator("#nbgov-lineage")
    light = panel.evaluate("n => getComputedStyle(n).backgroundColor")

    lab.command("apputils:change-theme", {"theme": "JupyterLab Dark"})
    lab.page.wait_for_function(
        "() => document.body.dataset.jpThemeLight === 'false'", timeout=UI_TIMEOUT_MS
    )
    lab.page.wait_for_function(
        "(before) => getComputedStyle(document.querySelector('#nbgov-lineage')).backgroundColor !== before",
        arg=light,
        timeout=UI_TIMEOUT_MS,
    )
    lab.page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=UI_TIMEOUT_MS)
    row(lab, 2).click()
    lab.screenshot("lineage-dark")
    lab.command("apputils:change-theme", {"theme": "JupyterLab Light"})


def test_a_kernel_restart_starts_a_second_session_in_the_same_log(lab: Lab) -> None:
    path = open_with_runs(lab, "restart.ipynb", [0, 1], cells=["%load_ext nbgov", "a = 1", "b = 2"])
    wait_rows(lab, 1)

    lab.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.restartKernel()")
    lab.wait_kernel_idle()
    lab.run_cell(0)
    lab.run_cell(2)

    wait_rows(lab, 2)
    snippets = lab.page.locator("#nbgov-lineage .nbgov-snippet").all_text_contents()
    assert snippets == ["b = 2", "a = 1"]
    # each session's runs are headed by the session they ran in
    strips = lab.page.locator("#nbgov-lineage .nbgov-row-session").all_text_contents()
    assert [strip.split(" · ")[0] for strip in strips] == ["session 2", "session 1"], strips
    assert all(" · started " in strip for strip in strips), strips
    lab.screenshot("lineage-two-sessions")
    lab.save()
    entries = logged_entries(path)
    sessions = [e["body"]["session"] for e in entries if e["kind"] == "session"]
    assert len(sessions) == 2
    assert [e["body"]["session"] for e in entries if e["kind"] == "execution"] == sessions


def test_a_burst_of_runs_writes_the_notebook_log_a_few_times_and_a_save_holds_every_entry(lab: Lab) -> None:
    """Run All over many quick cells: every run appears at once, the notebook-level log (one
    metadata value JupyterLab copies whole on each write) is written a few times, not once
    per cell, and a save right after the last run holds every entry."""
    cells = ["%load_ext nbgov", *(f"x{i} = {i}" for i in range(40))]
    path = lab.write_notebook("burst.ipynb", cells)
    lab.open_notebook(path)
    lab.run_cell(0)
    lab.open_lineage()
    lab.page.evaluate(
        """() => {
          const model = window.jupyterapp.shell.currentWidget.context.model;
          window.nbgovLogWrites = 0;
          model.metadataChanged.connect((_, change) => { if (change.key === 'nbgov') window.nbgovLogWrites++; });
        }"""
    )
    lab.page.evaluate("() => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = 1; }")
    lab.command("notebook:run-all-below")
    lab.page.wait_for_function(  # rows are virtualized: count them in the panel's header
        "() => document.querySelector('#nbgov-lineage .nbgov-LineagePanel-counts').textContent === '40 executions'",
        timeout=UI_TIMEOUT_MS,
    )
    lab.save()  # at once: the pending write goes into what is saved
    held = lab.page.evaluate(  # each entry's comm opening is its only message: the sidebar drops its end
        """() => [...window.jupyterapp.shell.currentWidget.sessionContext.session.kernel._comms.values()]
                   .filter(c => c.targetName === 'nbgov.lineage').length"""
    )
    assert held == 0, f"{held} lineage comms still held by the frontend"
    writes = lab.page.evaluate("() => window.nbgovLogWrites")
    assert 1 <= writes < 40 // 2, f"{writes} writes of the notebook log for 40 runs"
    entries = logged_entries(path)
    assert [e["kind"] for e in entries].count("execution") == 40
    assert sorted(e["body"]["code"] for e in entries if e["kind"] == "execution") == sorted(cells[1:])
