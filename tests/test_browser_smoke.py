"""The labextension is installed and alive: a real JupyterLab shows the Lineage panel."""

from __future__ import annotations

import pytest

from tests.fixtures.lab import Lab

pytestmark = pytest.mark.browser


def test_lineage_panel_renders_for_the_active_notebook(lab: Lab) -> None:
    path = lab.write_notebook("smoke.ipynb", ["1 + 1"])
    lab.open_notebook(path)
    assert lab.run_cell(0) == 1

    panel = lab.open_lineage()

    tab = lab.page.locator(".jp-SideBar .lm-TabBar-tab", has_text="Lineage")
    assert tab.is_visible(), "the right sidebar has a Lineage tab"
    assert "smoke.ipynb" in panel.inner_text()
    assert "No executions recorded yet" in panel.inner_text(), "nbgov is not loaded in this kernel"
    lab.screenshot("lineage-panel-smoke")
    assert lab.page_errors == []
