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

    assert panel.get_by_text("Lineage", exact=False).first.is_visible()
    assert "smoke.ipynb" in panel.inner_text()
    lab.screenshot("lineage-panel-smoke")
    assert lab.page_errors == []
