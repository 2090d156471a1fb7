"""`%lineage`: the inline view of the notebook's lineage (real shell, real recorder, real kernel).

The view is a live ipywidgets timeline for widget frontends, and carries HTML and text
representations of the same snapshot for frontends without widgets; every one of them
says the same counts as the rows it lists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from nbgov import widgets
from nbgov.lineage.record import ExecutionRecord, Fingerprint, parse_entry
from nbgov.lineage.store import ZERO_HASH, make_entry
from tests.fixtures.kernel import NotebookRunner, make_notebook
from tests.fixtures.lineage import count_sidecar_reads

# The one wording `nbgov show` and `nbgov verify` use too: "15 entries: 1 session, 14 executions".
HEADLINE = re.compile(r"Lineage: (?P<entries>\d+) entr(?:y|ies)(?P<parts>(?::| ·| \()[^(·]*)")


def run(shell: InteractiveShell, code: str) -> Any:
    return shell.run_cell(code, store_history=True)


def lineage_views(shell: InteractiveShell) -> list[widgets.LineageView]:
    installed = [p for p in shell._nbgov_installed if isinstance(p, widgets.InstalledLineageMagic)]  # type: ignore[attr-defined]
    assert len(installed) == 1
    return installed[0].views


def labels(view: widgets.LineageView) -> list[str]:
    return [label for label, _ in view.timeline.options]


def bundle(shell: InteractiveShell, view: widgets.LineageView) -> dict[str, Any]:
    data, _metadata = shell.display_formatter.format(view)
    return dict(data)


def headline_counts(text: str) -> tuple[int, int]:
    """(executions, sessions) from a view's headline, checking they add up to its entries."""
    found = HEADLINE.search(text)
    assert found, text
    parts = dict(
        (kind, int(n)) for n, kind in re.findall(r"(\d+) (session|execution)s?", found.group("parts"))
    )
    executions, sessions = parts.get("execution", 0), parts.get("session", 0)
    assert executions + sessions == int(found.group("entries")), text
    return executions, sessions


def test_lineage_shows_a_newest_first_timeline_and_the_selected_details(shell: InteractiveShell) -> None:
    run(shell, "a = 10")
    run(shell, "b = a * 2")
    assert run(shell, "%lineage").success
    view = lineage_views(shell)[-1]

    rows = labels(view)
    assert len(rows) == 3, "a, b, and the %lineage cell itself once it finished"
    assert "%lineage" in rows[0] and "b = a * 2" in rows[1] and "a = 10" in rows[2]
    assert view.timeline.value == view.timeline.options[1][1], "the newest run when shown stays selected"
    assert "b = a * 2" in view.details.value
    assert "a: " in view.details.value and "from [1]" in view.details.value, view.details.value

    view.timeline.value = view.timeline.options[2][1]
    assert "a = 10" in view.details.value


def test_the_headline_counts_exactly_the_rows_listed(shell: InteractiveShell) -> None:
    for i in range(3):
        run(shell, f"v{i} = {i}")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]

    executions, sessions = headline_counts(view.header.value)
    assert executions == len(labels(view)) == 4 and sessions == 1
    text = bundle(shell, view)["text/plain"]
    assert headline_counts(text) == (4, 1)
    assert len(re.findall(r"^\s+\[\d+\]", text, re.MULTILINE)) == 4


def test_outside_a_widget_frontend_it_shows_html_and_text_not_a_widget_repr(shell: InteractiveShell) -> None:
    run(shell, "import math")
    run(shell, "r = math.sqrt(2)")
    run(shell, "1 / 0")
    run(shell, "%lineage")
    data = bundle(shell, lineage_views(shell)[-1])

    assert set(data) >= {"text/plain", "text/html", widgets.WIDGET_VIEW_MIME}
    text, page = data["text/plain"], data["text/html"]
    assert "VBox" not in text and "Label(" not in text and "VBox" not in page
    assert "r = math.sqrt(2)" in text and "ERROR" in text and "ZeroDivisionError: division by zero" in text
    assert "<table>" in page and "r = math.sqrt(2)" in page and "ZeroDivisionError" in page
    assert headline_counts(page) == headline_counts(text) == (4, 1)
    assert "1 failed" in text and "1 failed" in page


def test_the_repr_methods_agree_with_the_bundle(shell: InteractiveShell) -> None:
    run(shell, "x = 1")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    assert repr(view) == bundle(shell, view)["text/plain"]
    assert view._repr_html_() == bundle(shell, view)["text/html"]
    from IPython.lib.pretty import pretty

    assert pretty(view) == repr(view)


def test_the_widget_updates_live_as_cells_run(shell: InteractiveShell) -> None:
    run(shell, "x = 1")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    before = len(view.timeline.options)

    run(shell, "y = x + 1")

    assert len(view.timeline.options) == before + 1
    assert "y = x + 1" in labels(view)[0]
    assert headline_counts(view.header.value)[0] == before + 1
    assert "y = x + 1" in repr(view), "the text form follows too"


def test_errors_and_stale_runs_are_marked(shell: InteractiveShell) -> None:
    run(shell, "a = 1")
    run(shell, "b = a + 1")
    run(shell, "a = 5")
    run(shell, "1 / 0")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    rows = labels(view)

    assert "1 / 0" in rows[1] and "error" in rows[1]
    assert "b = a + 1" in rows[3] and "stale" in rows[3]
    assert "a = 5" in rows[2] and "stale" not in rows[2]
    text = repr(view)
    assert re.search(r"\[2\].*STALE.*b = a \+ 1\n\s+stale: input a rewritten by \[3\]", text), text


def test_sql_cells_preview_their_first_sql_line(shell: InteractiveShell) -> None:
    run(shell, "%%sqlml\nSELECT 41 + 1 AS answer")
    run(shell, "%%sqlml -o t\n\nCREATE TABLE t AS SELECT 1 AS x;\nSELECT * FROM t")
    run(shell, "%lineage")
    rows = labels(lineage_views(shell)[-1])

    assert rows[1].endswith("CREATE TABLE t AS SELECT 1 AS x;"), rows[1]
    assert rows[2].endswith("SELECT 41 + 1 AS answer"), rows[2]


def test_a_restarted_kernel_shows_the_notebooks_earlier_sessions(bare_shell: InteractiveShell) -> None:
    run(bare_shell, "%load_ext nbgov")
    run(bare_shell, "first = 1")
    run(bare_shell, "%unload_ext nbgov")  # a restart: the next load starts a new session
    run(bare_shell, "%load_ext nbgov")
    run(bare_shell, "second = 2")
    run(bare_shell, "%lineage")
    view = lineage_views(bare_shell)[-1]

    # first = 1 (session 1); second = 2 and the %lineage cell (session 2). A cell that
    # loads or unloads the extension is not itself recorded.
    assert headline_counts(view.header.value) == (3, 2)
    assert labels(view)[2].endswith("first = 1")


def test_open_widgets_mark_new_stale_runs_without_rereading_the_sidecar(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(shell, "a = 1")
    run(shell, "b = a + 1")
    for _ in range(3):
        run(shell, "%lineage")
    rec = lineage_views(shell)[-1].feed._source
    reads = count_sidecar_reads(rec.store, monkeypatch)  # type: ignore[attr-defined]
    run(shell, "a = 5")
    run(shell, "c = 3")

    for view in lineage_views(shell):
        rows = labels(view)
        (b_row,) = [row for row in rows if row.endswith("b = a + 1")]
        assert "c = 3" in rows[0] and "stale" in b_row, rows
    assert reads[0] == 0, "live updates come from the recorder's memory, not the file"


def test_notebook_content_is_escaped_in_html_and_neutralised_in_text(shell: InteractiveShell) -> None:
    run(shell, "s = '<script>alert(1)</script><img src=x onerror=alert(2)>'")
    run(shell, "t = 1  # \x1b[2J\x1b]0;owned\x07 \u202egnp.exe")
    run(shell, "raise ValueError('<b>bold</b>\\x1b[31m')")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    data = bundle(shell, view)

    for page in (view.details.value, data["text/html"]):
        assert "<script>" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;" in data["text/html"]
    view.timeline.value = view.timeline.options[3][1]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.details.value
    text = data["text/plain"]
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "\\u202e" in text and "\\x1b[31m" in text


def test_only_the_newest_widgets_keep_updating(shell: InteractiveShell) -> None:
    for _ in range(widgets.MAX_LIVE + 1):
        run(shell, "%lineage")
    oldest, newest = lineage_views(shell)[0], lineage_views(shell)[-1]
    frozen, live = len(oldest.timeline.options), len(newest.timeline.options)

    run(shell, "w = 1")

    assert len(oldest.timeline.options) == frozen
    assert len(newest.timeline.options) == live + 1


def test_last_limits_the_timeline_and_says_so(shell: InteractiveShell) -> None:
    for i in range(3):
        run(shell, f"v{i} = {i}")
    run(shell, "%lineage --last 2")
    view = lineage_views(shell)[-1]
    assert len(view.timeline.options) == 2
    assert "newest 2 shown" in view.header.value
    assert headline_counts(view.header.value)[0] == 4


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


def test_an_empty_log_says_so(bare_shell: InteractiveShell) -> None:
    # %load_ext and %lineage in one cell: nothing is recorded before the view is built.
    run(bare_shell, "%load_ext nbgov\n%lineage")
    view = lineage_views(bare_shell)[-1]
    assert headline_counts(repr(view)) == (0, 0)
    assert "No executions recorded yet." in repr(view) and "No executions recorded yet." in view._repr_html_()
    assert view.timeline.options == ()


def test_load_ext_prints_one_line_naming_the_sidecar(
    bare_shell: InteractiveShell, capsys: pytest.CaptureFixture[str]
) -> None:
    run(bare_shell, "%load_ext nbgov")
    out = capsys.readouterr().out
    assert out == "nbgov: recording lineage to .nbgov/test.jsonl. %%sqlml and %lineage are ready.\n"
    run(bare_shell, "x = 1")
    assert (Path.cwd() / ".nbgov" / "test.jsonl").exists(), "the message named the real place"
    run(bare_shell, "%unload_ext nbgov")
    run(bare_shell, "%load_ext nbgov")
    assert capsys.readouterr().out.count("\n") == 1, "loading again prints the line again, once"


def test_load_ext_without_a_known_notebook_says_where_the_log_will_go(
    bare_shell: InteractiveShell, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME")
    run(bare_shell, "%load_ext nbgov")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "decided at the first cell" in out
    assert "(default .nbgov/untitled.jsonl)" in out
    run(bare_shell, "x = 1")
    assert (Path.cwd() / ".nbgov" / "untitled.jsonl").exists()


def test_in_a_real_kernel_the_saved_output_lists_the_lineage_cell_itself(
    run_notebook: NotebookRunner, tmp_path: Path
) -> None:
    nb = run_notebook(make_notebook("%load_ext nbgov", "a = 1", "b = a + 1", "%lineage"))

    load_outputs = nb.cells[0].outputs
    assert [o.get("text") for o in load_outputs] == [
        "nbgov: recording lineage to .nbgov/nb.jsonl. %%sqlml and %lineage are ready.\n"
    ]
    (shown,) = nb.cells[3].outputs
    assert shown.output_type == "display_data"
    data = shown.data
    assert widgets.WIDGET_VIEW_MIME in data
    # a, b and %lineage (the cell that loads nbgov is not itself recorded): the snapshot
    # was refreshed once the %lineage cell's own record existed
    assert headline_counts(data["text/plain"]) == (3, 1)
    assert headline_counts(data["text/html"]) == (3, 1)
    assert "%lineage" in data["text/plain"].splitlines()[1]
    written = nbformat.read(str(tmp_path / "nb.ipynb"), as_version=4)
    assert written.cells[3].outputs[0].data["text/plain"] == data["text/plain"]


def test_plural() -> None:
    assert widgets.plural(1, "entry", "entries") == "1 entry"
    assert widgets.plural(1200, "entry", "entries") == "1,200 entries"
    assert widgets.plural(2, "failure") == "2 failures"


def test_a_weak_fingerprint_says_why_in_the_details(shell: InteractiveShell) -> None:
    run(shell, "gen = (i for i in range(3))")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]
    view.timeline.value = view.timeline.options[1][1]
    (written,) = [line.strip() for line in view.details.value.splitlines() if line.strip().startswith("gen:")]
    assert written.startswith("gen: generator")
    assert "— (weak: a generator: its remaining items exist only by running it)" in written, written


def test_details_show_the_displayed_value_and_each_models_role(shell: InteractiveShell) -> None:
    run(
        shell,
        "import pandas as pd\nfrom sklearn.linear_model import LogisticRegression\n"
        "d = pd.DataFrame({'x': [0., 1., 2., 3.], 'y': [0, 0, 1, 1]})\n"
        "clf = LogisticRegression().fit(d[['x']], d.y)",
    )
    run(shell, "%%sqlml\nCREATE MODEL m FROM $clf")
    run(shell, "%%sqlml -o scored\nSELECT x, predict(m, x).label AS p FROM d")
    run(shell, "len(scored)")
    run(shell, "%lineage")
    view = lineage_views(shell)[-1]

    def details_of(count: int) -> str:
        (rid,) = [rid for label, rid in view.timeline.options if label.startswith(f"[{count}]")]
        view.timeline.value = rid
        return str(view.details.value)

    assert "m@1 created sha256" in details_of(2)
    assert "m@1 used sha256" in details_of(3)


def test_details_list_the_displayed_value_as_out_n() -> None:
    result = Fingerprint(kind="builtins.int", hash="ab" * 16, summary="4")
    record = ExecutionRecord(
        session="s", execution_count=4, cell_id=None, code="len(scored)", code_hash="c" * 32,
        started="2026-12-02T10:00:00+00:00", duration_s=0.01, status="ok", result=result,
    )
    text = widgets.details_text(record, widgets.NotebookLog(), [])
    assert "writes:\n  Out[4]: builtins.int 4 abababab" in text


def test_text_helpers_handle_a_record_without_optional_parts() -> None:
    record = ExecutionRecord("s", 1, None, "", "", "bad", 0.0, "ok")
    (row,) = widgets.snapshot(log_of(record), {}).rows
    assert widgets.row_label(row) == "[1]  bad  0 ms  ok  "
    assert "code as executed:" in widgets.details_text(record, widgets.NotebookLog(), [])


def log_of(*records: ExecutionRecord) -> widgets.NotebookLog:
    """A NotebookLog of hand-made records, chained as the recorder stores them."""
    log = widgets.NotebookLog()
    prev = ZERO_HASH
    for seq, record in enumerate(records):
        raw = make_entry(seq, prev, "execution", record.to_json())
        log.add(parse_entry(raw))
        prev = raw["hash"]
    return log


def test_a_hand_edited_sidecar_entry_is_counted_unreadable_never_shown(bare_shell: InteractiveShell) -> None:
    run(bare_shell, "%load_ext nbgov")
    run(bare_shell, "x = 1")
    sidecar = Path.cwd() / ".nbgov" / "test.jsonl"
    last = json.loads(sidecar.read_text().splitlines()[-1])
    forged = {"seq": last["seq"] + 1, "prev": last["hash"], "hash": "f" * 32, "kind": "execution",
              "body": {"code": "<forged>", "execution_count": "not a number"}}
    with sidecar.open("a") as fh:
        fh.write(json.dumps(forged) + "\n")
    run(bare_shell, "%lineage")
    text = repr(lineage_views(bare_shell)[-1])

    assert "1 unreadable entry" in text.splitlines()[0], text
    assert "<forged>" not in text and "x = 1" in text
