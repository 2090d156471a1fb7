"""The sidebar treats notebook metadata as untrusted text, and stays usable at scale."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nbgov.lineage.store import make_entry
from tests.fixtures.lab import UI_TIMEOUT_MS, Lab

pytestmark = pytest.mark.browser

SESSION = "5e55" * 8
ZERO = "0" * 32
SCRIPT = "<script>window.__nbgov_xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__nbgov_xss='img'\">"


def fp(summary: str, hash_: str = "ab" * 16) -> dict[str, Any]:
    return {"kind": "builtins.int", "hash": hash_, "weak": False, "summary": summary}


def body(n: int, code: str, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema": "nbgov.record/1", "id": f"{SESSION}:{n}", "session": SESSION, "execution_count": n,
        "cell_id": None, "code": code, "code_hash": "cd" * 16, "started": "2026-11-21T06:00:00+00:00",
        "duration_s": 0.01, "status": "ok", "error": None, "reads": [], "writes": [], "deletes": [],
        "files": [], "models": [], "sql": [], "packages_added": {},
    }
    record.update(extra)
    return record


def chain(bodies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sessions, log) as real hash-chained entries."""
    session = make_entry(0, ZERO, "session", {"schema": "nbgov.session/1", "session": SESSION, "started": "x"})
    log, prev = [], session["hash"]
    for i, b in enumerate(bodies, start=1):
        entry = make_entry(i, prev, "execution", b)
        log.append(entry)
        prev = entry["hash"]
    return [session], log


def lineage_meta(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    sessions, log = chain(bodies)
    return {"nbgov": {"schema": "nbgov.notebook/1", "sidecar": ".nbgov/x.jsonl", "sessions": sessions, "log": log}}


def test_script_and_html_in_the_log_show_as_text_and_never_run(lab: Lab) -> None:
    hostile = body(
        1,
        f"{SCRIPT}\n{IMG}",
        status="error",
        error={"type": "<b>Err</b>", "message": IMG},
        reads=[{"name": IMG, "fingerprint": fp(SCRIPT), "source": None}],
        writes=[{"name": SCRIPT, "fingerprint": fp("<i>1</i>"), "mutated": False}],
        files=[{"path": IMG, "abspath": "/tmp/x", "mode": "read", "size": 1, "hash": "<svg onload=alert(1)>", "source": None}],
        models=[{"name": SCRIPT, "version": 1, "sha256": "ee" * 32, "producer": IMG, "opset": 15, "source": None}],
        sql=[{"statement": f"SELECT '{SCRIPT}'", "kind": "select", "tables_read": [IMG], "tables_written": [],
              "files_read": [], "files_written": [], "models": []}],
    )
    path = lab.write_notebook("hostile.ipynb", ["1"], metadata=lineage_meta([hostile]))
    lab.open_notebook(path, wait_kernel=False)
    panel = lab.open_lineage()
    lab.page.locator("#nbgov-lineage .nbgov-Timeline-row").first.click()

    text = lab.page.locator("#nbgov-lineage .nbgov-Details").text_content()
    for payload in (SCRIPT, IMG, "<b>Err</b>", "<i>1</i>", f"SELECT '{SCRIPT}'"):
        assert payload in text, payload
    assert panel.locator("script, img, b, i, svg[onload]").count() == 0
    lab.page.locator("#nbgov-lineage .nbgov-tab", has_text="Graph").click()
    lab.page.locator("#nbgov-lineage .nbgov-Graph-svg").wait_for(timeout=UI_TIMEOUT_MS)
    titles = lab.page.locator("#nbgov-lineage .nbgov-Graph-node title").all_text_contents()
    assert IMG in titles and SCRIPT in titles
    assert panel.locator("script, img, foreignObject").count() == 0
    assert lab.page.evaluate("() => window.__nbgov_xss === undefined")
    lab.screenshot("lineage-xss-as-text")
    assert lab.page_errors == []


def test_foreign_metadata_is_ignored_with_a_notice_and_left_untouched(lab: Lab) -> None:
    foreign = {"nbgov": {"schema": "someone-else/2", "payload": SCRIPT}}
    path = lab.write_notebook("foreign.ipynb", ["%load_ext nbgov", "q = 1"], metadata=foreign)
    lab.open_notebook(path)
    panel = lab.open_lineage()
    assert "ignored" in panel.locator(".nbgov-notice").first.text_content()

    lab.run_cell(0)
    lab.run_cell(1)
    lab.page.locator("#nbgov-lineage .nbgov-Timeline-row").first.wait_for(timeout=UI_TIMEOUT_MS)
    lab.command("docmanager:save")
    lab.page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.context.model.dirty", timeout=UI_TIMEOUT_MS
    )

    assert json.loads(path.read_text())["metadata"]["nbgov"] == foreign["nbgov"]
    assert lab.page_errors == []


def test_malformed_entries_are_skipped_with_a_notice(lab: Lab) -> None:
    meta = lineage_meta([body(1, "x = 1"), body(2, "y = 2")])
    meta["nbgov"]["log"].insert(1, {"seq": "one", "kind": "execution"})
    meta["nbgov"]["log"].append(42)
    meta["nbgov"]["log"].append({**meta["nbgov"]["log"][0], "body": {"code": 7}})
    path = lab.write_notebook("malformed.ipynb", ["1"], metadata=meta)
    lab.open_notebook(path, wait_kernel=False)
    panel = lab.open_lineage()

    assert panel.locator(".nbgov-Timeline-row").count() == 2
    assert "3 malformed lineage entries ignored" in panel.locator(".nbgov-notice").first.text_content()
    assert lab.page_errors == []


def test_a_thousand_executions_are_paged(lab: Lab) -> None:
    bodies = [
        body(n, f"v{n} = v{n - 1} + 1" if n > 1 else "v1 = 0",
             reads=[{"name": f"v{n - 1}", "fingerprint": fp(str(n)), "source": f"{SESSION}:{n - 1}"}] if n > 1 else [],
             writes=[{"name": f"v{n}", "fingerprint": fp(str(n)), "mutated": False}])
        for n in range(1, 1001)
    ]
    path = lab.write_notebook("big.ipynb", ["1"], metadata=lineage_meta(bodies))
    lab.open_notebook(path, wait_kernel=False)
    panel = lab.open_lineage()
    rows = panel.locator(".nbgov-Timeline-row")

    assert rows.count() == 100
    assert rows.first.locator(".nbgov-count").text_content() == "[1000]"
    assert "1000 executions" in panel.locator(".nbgov-LineagePanel-notebook").text_content()
    panel.locator(".nbgov-more").click()
    assert rows.count() == 200
    assert rows.nth(199).locator(".nbgov-count").text_content() == "[801]"

    rows.first.click()
    panel.locator(".nbgov-tab", has_text="Graph").click()
    panel.locator(".nbgov-Graph-svg").wait_for(timeout=UI_TIMEOUT_MS)
    assert "showing only" in panel.locator(".nbgov-Graph .nbgov-notice").text_content()
    lab.screenshot("lineage-1000")
    assert lab.page_errors == []
