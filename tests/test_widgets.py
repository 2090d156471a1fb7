"""`%lineage`: the inline ipywidgets view of the session's lineage (real shell, real recorder)."""

from __future__ import annotations

from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbgov import widgets
from tests.fixtures.lineage import count_sidecar_reads


def run(shell: InteractiveShell, code: str) -> Any:
    result = shell.run_cell(code, store_history=True)
    return result


def lineage_views(shell: InteractiveShell) -> list[widgets.LineageWidget]:
    installed = [p for p in shell._nbgov_installed if isinstance(p, widgets.InstalledLineageMagic)]  # type: ignore[attr-defined]
    assert len(installed) == 1
    return installed[0].widgets


def test_lineage_shows_a_newest_first_timeline_and_the_selected_details(shell: InteractiveShell) -> None:
    run(shell, "a = 10")
    run(shell, "b = a * 2")
    assert run(shell, "%lineage").success
    view = lineage_views(shell)[-1]

    labels = [label for label, _ in view.timeline.options]
    assert len(labels) == 3, "the %lineage cell itself is recorded once it finishes"
    assert "%lineage" in labels[0] and "b = a * 2" in labels[1] and "a = 10" in labels[2]
    assert view.timeline.value == view.timeline.options[1][1], "the newest run when shown stays selected"
    assert "b = a * 2" in view.details.value
    assert "a: " in view.details.value and "from [1]" in view.details.value, view.details.value

    view.timeline.value = view.timeline.options[2][1]
    assert "a = 10" in view.details.value


def test_the_widget_updates_live_as_cells_run(shell: InteractiveShell) -> None:
    run(shell, "x = 1")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    before = len(view.timeline.options)

    run(shell, "y = x + 1")

    assert len(view.timeline.options) == before + 1
    assert "y = x + 1" in view.timeline.options[0][0]


def test_errors_and_stale_runs_are_marked(shell: InteractiveShell) -> None:
    run(shell, "a = 1")
    run(shell, "b = a + 1")
    run(shell, "a = 5")
    run(shell, "1 / 0")
    run(shell, "%lineage")
    labels = [label for label, _ in lineage_views(shell)[-1].timeline.options]

    assert "1 / 0" in labels[1] and "ERROR" in labels[1]
    assert "b = a + 1" in labels[3] and "STALE" in labels[3]
    assert "a = 5" in labels[2] and "STALE" not in labels[2]


def test_open_widgets_mark_new_stale_runs_without_rereading_the_sidecar(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(shell, "a = 1")
    run(shell, "b = a + 1")
    for _ in range(3):
        run(shell, "%lineage")
    rec = lineage_views(shell)[-1]._recorder
    reads = count_sidecar_reads(rec.store, monkeypatch)  # type: ignore[attr-defined]
    run(shell, "a = 5")
    run(shell, "c = 3")

    for view in lineage_views(shell):
        labels = [label for label, _ in view.timeline.options]
        assert "c = 3" in labels[0] and "b = a + 1" in labels[-2] and "STALE" in labels[-2], labels
    assert reads[0] == 0, "live updates come from the recorder's memory, not the file"


def test_notebook_content_is_escaped_in_the_details(shell: InteractiveShell) -> None:
    run(shell, "s = '<script>alert(1)</script><img src=x onerror=alert(2)>'")
    run(shell, "%lineage")
    html = lineage_views(shell)[-1].details.value

    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "<script>" not in html and "<img" not in html


def test_only_the_newest_widgets_keep_updating(shell: InteractiveShell) -> None:
    for _ in range(widgets.MAX_LIVE + 1):
        run(shell, "%lineage")
    oldest, newest = lineage_views(shell)[0], lineage_views(shell)[-1]
    frozen, live = len(oldest.timeline.options), len(newest.timeline.options)

    run(shell, "w = 1")

    assert len(oldest.timeline.options) == frozen
    assert len(newest.timeline.options) == live + 1


def test_last_limits_the_timeline(shell: InteractiveShell) -> None:
    for i in range(3):
        run(shell, f"v{i} = {i}")
    run(shell, "%lineage --last 2")
    assert len(lineage_views(shell)[-1].timeline.options) == 2


@pytest.mark.parametrize("args", ["--last", "--last 0", "--bogus", "--last two", "'unclosed"])
def test_bad_arguments_are_a_one_line_usage_error(shell: InteractiveShell, args: str) -> None:
    result = run(shell, f"%lineage {args}")
    assert isinstance(result.error_in_exec, UsageError)
    message = str(result.error_in_exec)
    assert "\n" not in message and "%lineage [--last N]" in message


def test_unload_removes_the_magic_and_stops_the_widgets(shell: InteractiveShell) -> None:
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    run(shell, "%unload_ext nbgov")

    assert shell.magics_manager is not None
    assert "lineage" not in shell.magics_manager.magics["line"]
    count = len(view.timeline.options)
    run(shell, "z = 1")
    assert len(view.timeline.options) == count


def test_text_helpers_handle_a_record_without_optional_parts() -> None:
    from nbgov.lineage.record import ExecutionRecord

    record = ExecutionRecord("s", 1, None, "", "", "bad", 0.0, "ok")
    rows = widgets.timeline_rows([record], {})
    assert rows == [("[1]  bad  0 ms  ok  ", "s:1")]
    assert "code as executed:" in widgets.details_text(record, {}, [])
