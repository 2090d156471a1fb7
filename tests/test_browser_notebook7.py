"""The same Lineage panel in Notebook 7's right sidebar."""

from __future__ import annotations


import pytest

from nbgov.lineage import notebook_meta
from tests.fixtures.lab import UI_TIMEOUT_MS, Lab

pytestmark = pytest.mark.browser


def test_notebook7_shows_the_lineage_panel_and_saves_the_log(notebook7: Lab) -> None:
    lab = notebook7
    path = lab.write_notebook("nb7.ipynb", ["%load_ext nbgov", "a = 1", "b = a + 1"])
    lab.page.goto(f"{lab.server.url}/notebooks/{lab.rel(path)}?token={lab.server.token}")
    lab.page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " return !!w && !!w.context && w.context.isReady; }",
        timeout=UI_TIMEOUT_MS,
    )
    assert lab.page.evaluate("() => window.jupyterapp.name") == "Jupyter Notebook"
    lab.wait_kernel_idle()
    for index in range(3):
        lab.run_cell(index)

    panel = lab.open_lineage()
    rows = panel.locator(".nbgov-Timeline-row")
    lab.page.wait_for_function(
        "() => document.querySelectorAll('#nbgov-lineage .nbgov-Timeline-row').length === 2", timeout=UI_TIMEOUT_MS
    )
    assert rows.first.locator(".nbgov-count").text_content() == "[3]"
    rows.nth(1).click()
    lab.page.wait_for_function(
        "() => window.jupyterapp.shell.currentWidget.content.activeCellIndex === 1", timeout=UI_TIMEOUT_MS
    )
    assert "a = 1" in (panel.locator(".nbgov-Details").text_content() or "")
    lab.screenshot("lineage-notebook7")

    lab.save()
    meta = notebook_meta.read_lineage(notebook_meta.read_notebook(path))
    assert meta is not None and [e["body"]["code"] for e in meta.log] == ["a = 1", "b = a + 1"]
