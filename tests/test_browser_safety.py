"""The sidebar treats notebook metadata as untrusted text, and stays usable at scale."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from nbgov.lineage.store import make_entry
from tests.fixtures.lab import ARTIFACTS, UI_TIMEOUT_MS, Lab

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
    titles = "\n".join(lab.page.locator("#nbgov-lineage .nbgov-Graph-node title").all_text_contents())
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


CELLS = 40
EXECUTIONS = 10_000

# Frames are sampled in interleaved blocks, idle then scrolling, so machine load hits
# both alike; the check is on the median of the per-round ratios.
_JS_FRAME_TIMES = """async ({rounds, frames, step}) => {
  const list = document.querySelector('#nbgov-lineage .nbgov-Timeline');
  const frame = () => new Promise(resolve => requestAnimationFrame(resolve));
  const median = xs => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const block = async scroll => {
    const deltas = [];
    let last = await frame();
    for (let i = 0; i < frames; i++) {
      if (scroll) list.scrollTop += step;
      const now = await frame();
      deltas.push(now - last);
      last = now;
      maxRows = Math.max(maxRows, list.querySelectorAll('.nbgov-Timeline-row').length);
    }
    return deltas;
  };
  let maxRows = 0;
  const ratios = [], idle = [], scrolling = [];
  for (let r = 0; r < rounds; r++) {
    const i = await block(false);
    const s = await block(true);
    idle.push(...i);
    scrolling.push(...s);
    ratios.push(median(s) / median(i));
  }
  return {ratios, idle, scrolling, maxRows, top: list.scrollTop, height: list.scrollHeight};
}"""


def big_log(cell_ids: list[str]) -> list[dict[str, Any]]:
    """10,000 runs of 40 cells, as a long interactive session produces: Python and
    %%sqlml cells re-run over and over, each reading what the previous one wrote,
    with a failure now and then."""
    bodies = []
    for n in range(1, EXECUTIONS + 1):
        cell = n % CELLS
        sql = cell % 4 == 0
        code = (
            f"%%sqlml -o t{cell}\nSELECT plan, count(*) AS n FROM frame_{cell - 1} GROUP BY plan"
            if sql
            else f"frame_{cell} = frame_{cell - 1}.assign(step={n})"
        )
        extra: dict[str, Any] = {
            "cell_id": cell_ids[cell],
            "reads": [{"name": f"frame_{cell - 1}", "fingerprint": fp("DataFrame", f"{n - 1:032x}"),
                       "source": f"{SESSION}:{n - 1}"}] if n > 1 else [],
            "writes": [{"name": f"t{cell}" if sql else f"frame_{cell}", "fingerprint": fp("DataFrame", f"{n:032x}"),
                        "mutated": False}],
        }
        if n % 97 == 0:
            extra.update(status="error", error={"type": "KeyError", "message": f"'column_{n}'"})
        bodies.append(body(n, code, **extra))
    return bodies


def test_ten_thousand_executions_scroll_smoothly_in_a_virtualized_list(lab: Lab) -> None:
    path = lab.write_notebook("big.ipynb", [f"# cell {i}" for i in range(CELLS)])
    nb = json.loads(path.read_text())
    cell_ids = [cell["id"] for cell in nb["cells"]]
    nb["metadata"].update(lineage_meta(big_log(cell_ids)))
    path.write_text(json.dumps(nb))

    lab.open_notebook(path)
    started = time.monotonic()
    panel = lab.open_lineage()
    rows = panel.locator(".nbgov-Timeline-row")
    rows.first.wait_for(timeout=UI_TIMEOUT_MS)
    shown_after = time.monotonic() - started

    assert shown_after < 5, f"{shown_after:.1f} s to show the sidebar"
    assert panel.locator(".nbgov-LineagePanel-counts").text_content() == "10,000 executions · 103 failed"
    assert rows.first.locator(".nbgov-count").text_content() == "[10000]"
    assert rows.count() < 60, f"{rows.count()} rows in the DOM: the list is not virtualized"
    assert rows.first.locator(".nbgov-snippet").text_content().startswith("SELECT plan, count(*)")
    assert rows.nth(1).locator(".nbgov-snippet").text_content().startswith("frame_39 = frame_38.assign(")

    timings = lab.page.evaluate(_JS_FRAME_TIMES, {"rounds": 6, "frames": 30, "step": 400})
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timeline-10000-frame-times.json").write_text(json.dumps(timings))
    ratios = sorted(timings["ratios"])
    scrolling, idle = sorted(timings["scrolling"]), sorted(timings["idle"])
    median_ratio = ratios[len(ratios) // 2]
    p95, idle_p95 = (frames[int(len(frames) * 0.95)] for frames in (scrolling, idle))
    print(f"frame time while scrolling / idle: median ratio {median_ratio:.2f}, "
          f"median {scrolling[len(scrolling) // 2]:.1f} ms, p95 {p95:.1f} ms (idle p95 {idle_p95:.1f} ms)")
    assert timings["top"] >= 6 * 30 * 400 * 0.9, "it really scrolled"
    assert timings["maxRows"] < 60, "scrolling never puts more than a screenful (plus margin) in the DOM"
    # Frames come in vsync steps (16.7 ms, 33.3 ms, ...): on an idle machine scrolling keeps
    # every frame (ratio 1); on a shared 2-core CI box at full load it may drop one frame
    # in two (ratio 2); a list that is not virtualized is caught by maxRows above.
    assert median_ratio < 2.5, f"scrolling frames take {median_ratio:.2f}x idle ones"
    # The slow tail, against idle frames measured under the same machine load, and never
    # a visible stutter.
    assert p95 < max(100, 4 * idle_p95), f"95th percentile frame {p95:.0f} ms while scrolling, {idle_p95:.0f} ms idle"
    assert p95 < 250, f"95th percentile frame {p95:.0f} ms while scrolling"

    # Keyboard: End selects the oldest run and brings it into view.
    panel.locator(".nbgov-Timeline").focus()
    lab.page.keyboard.press("End")
    lab.page.wait_for_function(
        "() => document.querySelector('#nbgov-lineage .nbgov-Details-title').textContent.startsWith('Execution [1] ')",
        timeout=UI_TIMEOUT_MS,
    )
    selected = panel.locator(".nbgov-Timeline-row.nbgov-mod-selected")
    assert selected.locator(".nbgov-count").text_content() == "[1]"
    assert selected.is_visible()
    lab.page.keyboard.press("ArrowUp")
    assert panel.locator(".nbgov-Timeline-row.nbgov-mod-selected .nbgov-count").text_content() == "[2]"
    lab.panel_screenshot("sidebar-10000-executions")

    # Live: a new run appears at the top at once, and the notebook metadata takes it.
    lab.set_cell_source(0, "%load_ext nbgov")
    lab.run_cell(0)
    lab.set_cell_source(1, "fresh = 1")
    started = time.monotonic()
    lab.run_cell(1)
    lab.page.wait_for_function(
        "() => document.querySelector('#nbgov-lineage .nbgov-LineagePanel-counts').textContent"
        ".startsWith('10,001 executions')",
        timeout=UI_TIMEOUT_MS,
    )
    live_after = time.monotonic() - started
    assert live_after < 5, f"{live_after:.1f} s from running a cell to its row"
    # the compact form (nbgov.notebook/2) keeps one line per entry, sessions included: the
    # loaded session and its executions, the live kernel's session and its new execution
    # (written within a moment of the entry: the notebook-level log is written once per burst)
    lab.page.wait_for_function(
        "(n) => window.jupyterapp.shell.currentWidget.context.model.getMetadata('nbgov').log.length === n",
        arg=1 + EXECUTIONS + 1 + 1,
        timeout=UI_TIMEOUT_MS,
    )
    panel.locator(".nbgov-Timeline").focus()
    lab.page.keyboard.press("Home")
    assert panel.locator(".nbgov-Timeline-row.nbgov-mod-selected .nbgov-snippet").text_content() == "fresh = 1"

    panel.locator(".nbgov-tab", has_text="Graph").click()
    panel.locator(".nbgov-Graph-svg").wait_for(timeout=UI_TIMEOUT_MS)
    assert panel.locator(".nbgov-Graph-node.nbgov-kind-execution").count() <= 80
    assert lab.page_errors == []
