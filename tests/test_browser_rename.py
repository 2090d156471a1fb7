"""Recording follows a notebook that JupyterLab renames (real JupyterLab, real kernel, Chromium)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fixtures.lab import UI_TIMEOUT_MS, Lab
from tests.fixtures.replay import invoke

pytestmark = pytest.mark.browser


def executions(sidecar: Path) -> list[str]:
    lines = [json.loads(line) for line in sidecar.read_text().splitlines() if line.strip()]
    return [e["body"]["code"] for e in lines if e["kind"] == "execution"]


def test_renaming_untitled_on_first_save_moves_the_log_and_recording_goes_on(lab: Lab) -> None:
    path = lab.write_notebook("Untitled.ipynb", ["%load_ext nbgov", "x = 1", "y = x + 1"])
    lab.open_notebook(path)
    lab.run_cell(0)
    lab.run_cell(1)
    old_sidecar = path.parent / ".nbgov" / "Untitled.jsonl"
    assert executions(old_sidecar) == ["x = 1"]

    new_rel = lab.rel(path.with_name("analysis.ipynb"))
    lab.page.evaluate(
        "([a, b]) => window.jupyterapp.serviceManager.contents.rename(a, b)", [lab.rel(path), new_rel]
    )
    lab.page.wait_for_function(
        "(p) => window.jupyterapp.shell.currentWidget.context.path === p", arg=new_rel, timeout=UI_TIMEOUT_MS
    )
    new_sidecar = path.parent / ".nbgov" / "analysis.jsonl"
    # the sidebar's message reaches the kernel on the shell channel before the next execute request
    lab.run_cell(2)
    assert not old_sidecar.exists()
    assert executions(new_sidecar) == ["x = 1", "y = x + 1"], "one log, nothing lost, chained on"

    lab.save()
    saved = json.loads(path.with_name("analysis.ipynb").read_text())
    assert saved["metadata"]["nbgov"]["sidecar"] == ".nbgov/analysis.jsonl"
    verified = invoke("verify", path.with_name("analysis.ipynb"))
    assert verified.exit_code == 0, verified.output


def test_a_notebook_renamed_while_no_kernel_ran_continues_its_log(lab: Lab) -> None:
    path = lab.write_notebook("draft.ipynb", ["%load_ext nbgov", "a = 1", "b = 2"])
    lab.open_notebook(path)
    lab.run_cell(0)
    lab.run_cell(1)
    lab.save()
    lab.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    lab.command("application:close-all")
    final = path.with_name("final.ipynb")
    lab.page.evaluate(
        "([a, b]) => window.jupyterapp.serviceManager.contents.rename(a, b)", [lab.rel(path), lab.rel(final)]
    )
    assert executions(path.parent / ".nbgov" / "draft.jsonl") == ["a = 1"]

    lab.open_notebook(final)  # a new kernel, which only knows the new name
    lab.run_cell(0)  # loading nbgov greets the sidebar, which names the old log
    lab.run_cell(2)
    assert not (path.parent / ".nbgov" / "draft.jsonl").exists()
    assert executions(path.parent / ".nbgov" / "final.jsonl") == ["a = 1", "b = 2"]
    lab.save()
    verified = invoke("verify", final)
    assert verified.exit_code == 0, verified.output
