"""What reviewers read: terminal output escaped and fitted, HTML and SVG well-formed for any
content, `show` with previews, errors and stale reasons, graphs with model edges."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path
from typing import Any

import nbformat
import pytest
from click.testing import CliRunner

from nbgov.cli import cli
from nbgov.lineage.store import SidecarStore, sidecar_path
from nbgov.replay import compare
from nbgov.replay.graph import build_graph, to_dot, to_svg
from nbgov.replay.replayer import ReplayResult, StepResult
from nbgov.replay.report import replay_html
from nbgov.replay.safe_text import for_terminal, for_xml, preview
from nbgov.replay.source import load_log
from tests.fixtures.kernel import REPO_ROOT, make_notebook

HOSTILE = "x = 1  # \x1b[2J\x1b[31mRED\x1b]0;title\x07 \x00 \ud800 ]]> </script><script>alert(1)</script> \u202e gnp.exe"
SESSION = "a" * 32


def _fp(h: str) -> dict[str, Any]:
    return {"kind": "int", "hash": h * 32, "weak": False, "summary": "int"}


def _execution(count: int, code: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "nbgov.record/1", "id": f"{SESSION}:{count}", "session": SESSION, "execution_count": count,
        "cell_id": f"cell-{count}", "code": code, "code_hash": "0" * 32, "started": "2026-01-01T00:00:00Z",
        "duration_s": 0.01, "status": "ok", "error": None, "reads": [], "writes": [], "deletes": [],
        "files": [], "models": [], "sql": [], "packages_added": {},
    }
    body.update(extra)
    return body


def forged_notebook(folder: Path, bodies: list[dict[str, Any]]) -> Path:
    """A notebook whose sidecar holds these records, chained as the store writes them."""
    path = folder / "review.ipynb"
    nbformat.write(make_notebook("x = 1"), str(path))
    store = SidecarStore(sidecar_path(path), background_fsync=False)
    store.append("session", {"schema": "nbgov.session/1", "session": SESSION, "started": "2026-01-01T00:00:00Z",
                             "notebook": str(path), "python": "3.11", "platform": "linux", "packages": {},
                             "cwd": str(folder)})
    for body in bodies:
        store.append("execution", body)
    store.close()
    return path


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    return forged_notebook(tmp_path, [
        _execution(1, HOSTILE, writes=[{"name": "x\x1b[1A", "fingerprint": _fp("1"), "mutated": False}]),
        _execution(2, "%%sqlml\nSELECT id, predict(churn, *) AS p\nFROM customers", status="error",
                   error={"type": "SqlError", "message": "no table \x1b[31mcustomers"},
                   reads=[{"name": "x\x1b[1A", "fingerprint": _fp("1"), "source": f"{SESSION}:1"}]),
        _execution(3, "x = 2", writes=[{"name": "x\x1b[1A", "fingerprint": _fp("2"), "mutated": False}]),
    ])


def run(*args: Any, width: int = 80) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"COLUMNS": str(width)}, catch_exceptions=False)
    return result.exit_code, result.output


RAW = ("\x1b", "\x00", "\x07", "\u202e", "\ud800")


def test_safe_text_shows_controls_as_escapes_and_keeps_code_lines() -> None:
    assert for_terminal("a\x1b[2Jb\n\tc\u202e") == "a\\x1b[2Jb\n\tc\\u202e"
    assert for_terminal("a\nb", keep_newlines=False) == "a\\nb"
    assert for_xml("<a>&\x00\ud800") == "&lt;a&gt;&amp;\\x00\\ud800"
    assert preview("%%sqlml -o out\n\nSELECT 1 AS one\nFROM t") == "%%sqlml -o out SELECT 1 AS one"


@pytest.mark.parametrize("command", [("show",), ("show", "--json"), ("verify",), ("graph",)])
def test_no_raw_control_character_reaches_the_terminal(hostile: Path, command: tuple[str, ...]) -> None:
    code, out = run(command[0], hostile, *command[1:])
    assert code == 0, out
    if command == ("show", "--json"):
        out = json.dumps(json.loads(out)["executions"], ensure_ascii=False)  # the summary, not raw entries
    for raw in RAW:
        assert raw not in out, (raw, out)


def test_errors_about_hostile_paths_are_escaped(tmp_path: Path) -> None:
    code, out = run("show", tmp_path / "\x1b[31mred.ipynb")
    assert code == 2 and "\x1b" not in out and "\\x1b[31mred.ipynb: no such file" in out


@pytest.mark.parametrize("width", [80, 200])
def test_show_fits_the_terminal_with_previews_errors_and_stale_reasons(hostile: Path, width: int) -> None:
    code, out = run("show", hostile, width=width)
    assert code == 0
    assert max(len(line) for line in out.splitlines()) <= width
    assert "review.ipynb — 4 entries: 1 session, 3 executions" in out
    flat = " ".join(out.split())
    assert "%%sqlml SELECT" in flat  # a %%sqlml cell shows its SQL, not just "%%sqlml"
    assert "SqlError" in flat
    assert "stale" in flat
    if width == 200:
        assert "stale: input x" in flat


def test_show_json_carries_counts_previews_and_stale_reasons(hostile: Path) -> None:
    code, out = run("show", hostile, "--json")
    data = json.loads(out)
    assert code == 0 and data["counts"] == "4 entries: 1 session, 3 executions"
    second = data["executions"][1]
    assert second["preview"].startswith("%%sqlml SELECT id, predict(churn, *) AS p")
    assert second["error"] == {"type": "SqlError", "message": "no table \x1b[31mcustomers"}
    assert second["stale"] == ["input x\x1b[1A rewritten by [3]"]
    assert data["executions"][2]["stale"] == []
    assert [e["kind"] for e in data["entries"]] == ["session", "execution", "execution", "execution"]


def test_show_names_the_weak_values_a_cell_wrote_and_why(tmp_path: Path) -> None:
    """A weak written value cannot be compared on replay: `show` must not let its row look exact."""
    connection = {"kind": "Connection", "hash": None, "weak": True, "summary": "sqlite3.Connection",
                  "reason": "state held natively by sqlite3.Connection: not readable without running its code"}
    generator = {"kind": "generator", "hash": None, "weak": True, "summary": "generator",
                 "reason": "a generator: its remaining items exist only by running it"}
    path = forged_notebook(tmp_path, [
        _execution(1, "con = sqlite3.connect(':memory:')",
                   writes=[{"name": "con", "fingerprint": connection, "mutated": False}]),
        _execution(2, "gen = (i for i in range(3))", writes=[{"name": "gen", "fingerprint": generator,
                                                             "mutated": False}]),
        _execution(3, "x = 1", writes=[{"name": "x", "fingerprint": _fp("1"), "mutated": False}]),
    ])
    code, out = run("show", path, width=240)
    assert code == 0
    rows = [line for line in out.splitlines() if line.lstrip()[:1].isdigit()]
    assert "unverifiable: con (state held natively by sqlite3.Connection" in rows[0]
    assert "unverifiable: gen (a generator)" in rows[1]
    assert "unverifiable" not in rows[2]
    code, out = run("show", path, "--json")
    executions = json.loads(out)["executions"]
    assert [e["weak"] for e in executions] == [[{"name": "con", "reason": connection["reason"]}],
                                               [{"name": "gen", "reason": generator["reason"]}], []]
    assert all(e["notes"] == [] and e["stale"] == [] for e in executions)  # the existing keys are as they were


def test_counts_in_the_output_are_singular_for_one(tmp_path: Path) -> None:
    path = forged_notebook(tmp_path, [_execution(1, "x = 1")])
    sidecar_path(path).unlink()
    code, out = run("verify", "--require-sidecar", path)
    assert code == 1 and "(1 problem)" in out and "problems" not in out


def test_the_report_and_the_svg_are_well_formed_xml_for_hostile_content(hostile: Path) -> None:
    log = load_log(hostile)
    records = log.execution_records()
    steps = [StepResult(i, r, 0.01, compare.Comparison(causes=[compare.Cause(compare.CELL_FAILED, r.code)]))
             for i, r in enumerate(records, start=1)]
    result = ReplayResult(hostile, steps, 1.0, 0.5, len(records), log, unverified="entry 1 \x1b[31m edited")
    page = replay_html(result)
    doc = xml.dom.minidom.parseString(page.encode("utf-8"))  # raises on anything not well-formed
    assert doc.documentElement.tagName == "html"
    assert doc.getElementsByTagName("script") == []
    assert "<script>alert" not in page and "\x1b" not in page and "\x00" not in page
    assert "failed when recorded: SqlError: no table \\x1b[31mcustomers" in page
    assert "⚠ stale: input x\\x1b[1A rewritten by [3]" in page
    svg = to_svg(build_graph(records, {records[0].id: ["input rewritten \x1b"]}))
    assert xml.dom.minidom.parseString(svg.encode("utf-8")).documentElement.tagName == "svg"
    for raw in RAW:
        assert raw not in to_dot(build_graph(records))


def _model(name: str, role: str | None, source: str | None = None) -> dict[str, Any]:
    return {"name": name, "version": 1, "sha256": "f" * 64, "producer": "skl2onnx", "opset": 17,
            "source": source, **({"role": role} if role else {})}


def test_model_edges_run_from_the_creating_cell_through_the_model_to_its_users(tmp_path: Path) -> None:
    path = forged_notebook(tmp_path, [
        _execution(1, "%%sqlml\nCREATE MODEL churn FROM 'm.onnx'", models=[_model("churn", "output")]),
        _execution(2, "%%sqlml\nSELECT predict(churn, *) FROM t",
                   models=[_model("churn", "input", f"{SESSION}:1")]),
        _execution(3, "%%sqlml\nSELECT predict(churn, *) FROM u", models=[_model("churn", None, f"{SESSION}:1")],
                   status="error", error={"type": "SqlError", "message": "boom"}),
    ])
    graph = build_graph(load_log(path).execution_records())
    model = "model:churn@1"
    assert graph.edges[(f"{SESSION}:1", model)] == ["creates"]
    assert graph.edges[(model, f"{SESSION}:2")] == ["uses"]
    assert graph.edges[(model, f"{SESSION}:3")] == ["uses"]
    assert (model, f"{SESSION}:1") not in graph.edges
    node = graph.nodes[f"{SESSION}:1"]
    assert node.label == "[1] %%sqlml CREATE MODEL churn FROM 'm.onnx'" and "cell-1" in node.title
    assert graph.nodes[f"{SESSION}:3"].failed
    svg = to_svg(graph)
    assert "✗ failed" in svg and "usecreates" not in svg.replace(" ", "")


OUTPUTS = [("export", "--format", "prov", "-o"), ("graph", "--format", "svg", "-o"), ("replay", "--report")]


@pytest.mark.parametrize("command", OUTPUTS, ids=lambda c: c[0])
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_outputs_are_never_written_through_a_symlink(hostile: Path, command: tuple[str, ...],
                                                     dangling: bool) -> None:
    """A link planted in a shared folder would have nbgov overwrite (or create) a file of the
    link's choosing, outside the folder: refused, one line naming the path and why, exit 2."""
    elsewhere = hostile.parent.parent / f"{hostile.parent.name}-elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.txt"
    if not dangling:
        victim.write_text("ORIGINAL")
    link = hostile.parent / "out.file"
    link.symlink_to(victim)
    code, out = run(command[0], hostile, *command[1:], link)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, out
    assert lines[0].startswith("nbgov: error: ") and "out.file: is a symlink" in lines[0]
    assert "does not write through a symlink" in lines[0]
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert sorted(p.name for p in elsewhere.iterdir()) == ([] if dangling else ["victim.txt"])
    if not dangling:
        assert victim.read_text() == "ORIGINAL"


def _files(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (links not followed) and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("command", OUTPUTS, ids=lambda c: c[0])
@pytest.mark.parametrize(("spelling", "over"), [
    ("review.ipynb", "notebook"), ("sub/../review.ipynb", "notebook"), ("alias/review.ipynb", "notebook"),
    ("hard-link.ipynb", "notebook"), (".nbgov/review.jsonl", "lineage"), ("alias/.nbgov/review.jsonl", "lineage"),
    (".nbgov/review.signatures/head-1.txt", "lineage"),
], ids=lambda v: str(v))
def test_outputs_never_replace_the_notebook_or_its_lineage(hostile: Path, command: tuple[str, ...], spelling: str,
                                                           over: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped -o/--report named the notebook under review or its sidecar and replaced it
    with DOT, JSON or HTML (exit 0): refused in one line, exit 2, nothing written, whichever
    spelling names it (relative, through `..` or a linked folder, another hard link)."""
    folder = hostile.parent
    (folder / "sub").mkdir()
    (folder / "alias").symlink_to(folder)
    os.link(hostile, folder / "hard-link.ipynb")
    monkeypatch.chdir(folder)
    before = _files(folder)
    code, out = run(command[0], hostile, *command[1:], spelling)
    lines = [line for line in out.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, out
    what = {"export": "the export", "graph": "the graph", "replay": "the report"}[command[0]]
    if over == "notebook":
        assert lines[0] == (f"nbgov: error: will not write {what} over the notebook being reviewed "
                            "(review.ipynb); choose another path")
    else:
        assert lines[0].startswith(f"nbgov: error: will not write {what} into {folder / '.nbgov'}/, the lineage "
                                   "folder of review.ipynb (its sidecar and signatures)")
    assert _files(folder) == before


def test_outputs_replace_a_regular_file_keeping_its_mode(hostile: Path) -> None:
    """The output is written beside the old file and renamed over it: a hard link to it keeps
    the old content, the file keeps its permissions, and no temporary file stays behind."""
    out = hostile.parent / "prov.json"
    out.write_text("OLD")
    out.chmod(0o600)
    other_name = hostile.parent / "hard-link.json"
    os.link(out, other_name)
    code, text = run("export", hostile, "--format", "prov", "-o", out)
    assert code == 0, text
    assert "wrote " in text and json.loads(out.read_text())["prefix"]
    assert other_name.read_text() == "OLD"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert not [p.name for p in hostile.parent.iterdir() if p.name.endswith(".tmp")]
    fifo = hostile.parent / "fifo.svg"
    os.mkfifo(fifo)
    code, text = run("graph", hostile, "--format", "svg", "-o", fifo)
    assert code == 2 and "fifo.svg: is a FIFO (named pipe)" in text, text


def _file(folder: Path, name: str, mode: str) -> dict[str, Any]:
    return {"path": name, "abspath": str(folder / name), "mode": mode, "size": 3, "hash": "1" * 32, "source": None}


@pytest.fixture
def unholdable_paths(tmp_path: Path) -> Path:
    """A log naming files no file system can hold (a lone surrogate; a Linux name that is not
    UTF-8 decodes to \\udc80-\\udcff, never to \\ud800): a forged or corrupted log, not a crash."""
    return forged_notebook(tmp_path, [
        _execution(1, "x = 1", files=[_file(tmp_path, "in\ud800.txt", "read")]),
        _execution(2, "y = 2", files=[_file(tmp_path, "out\ud800.txt", "write")]),
    ])


@pytest.mark.parametrize("command", [("show",), ("show", "--json"), ("graph",), ("graph", "--format", "svg")])
def test_recorded_paths_no_file_system_holds_are_shown_not_a_crash(unholdable_paths: Path,
                                                                   command: tuple[str, ...]) -> None:
    code, out = run(command[0], unholdable_paths, *command[1:], width=200)
    assert code == 0 and "UnicodeEncodeError" not in out, out
    assert "\ud800" not in out and "in\\ud800.txt" in out.replace("\\\\", "\\")  # dot doubles a backslash


@pytest.mark.kernel
def test_replay_of_recorded_paths_no_file_system_holds_names_them_missing(unholdable_paths: Path) -> None:
    report = unholdable_paths.parent / "report.html"
    code, out = run("replay", unholdable_paths, "--report", report, width=200)
    assert code == 1 and "UnicodeEncodeError" not in out, out
    assert "input file changed: in\\ud800.txt: missing" in out and "\ud800" not in out
    page = xml.dom.minidom.parse(str(report)).documentElement  # raises on anything not well-formed
    assert page is not None and page.tagName == "html"


def _nbgov_process(*args: Any, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """`nbgov` as a real process whose stdout and stderr are pipes (as in CI), its kernels
    inheriting them, and run as outside pytest: ipykernel forwards what is written to its
    fd 1 over the kernel protocol (it does not when PYTEST_CURRENT_TEST is set)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_CURRENT_TEST", "FORCE_COLOR")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "nbgov.cli", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, timeout=300, check=False)


# ipykernel forwards what reaches its fd 1 to the protocol from a thread, with no wait at the end
# of a cell: the sleep lets that happen within the cell, so the notebook check below is not a race
FD_WRITE = "import os, time; os.write(1, b'\\x1b[31mRED\\x1b[0m\\nall 99 steps reproduced\\n'); time.sleep(1)"


@pytest.mark.kernel
def test_what_a_kernel_writes_to_its_own_stdout_never_reaches_the_terminal(tmp_path: Path) -> None:
    """The kernel process's fd 1 was nbgov's: a cell's os.write put raw escape sequences and a
    forged status line into the terminal or CI log of `run` and `replay`. The text still reaches
    the notebook, over the kernel protocol."""
    path = tmp_path / "nb.ipynb"
    nbformat.write(make_notebook(FD_WRITE, "x = 1"), str(path))
    ran = _nbgov_process("run", path, cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    replayed = _nbgov_process("replay", path, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    for done in (ran, replayed):
        printed = done.stdout + done.stderr
        assert b"\x1b" not in printed, printed
        assert not [line for line in printed.splitlines() if line.startswith(b"all 99 steps")], printed
    assert b"all 2 steps reproduced" in replayed.stdout
    assert b"os.write(1, b'\\x1b[31mRED" in replayed.stdout  # the code, shown as the text it is
    outputs = nbformat.read(str(path), as_version=4).cells[0].outputs
    assert "".join(o.get("text", "") for o in outputs) == "\x1b[31mRED\x1b[0m\nall 99 steps reproduced\n"


@pytest.mark.kernel
def test_the_load_line_of_run_shows_a_hostile_notebook_name_escaped(tmp_path: Path) -> None:
    """Loading nbgov in the kernel prints where the log goes, naming the notebook: jupyter_client
    wrote it to the terminal raw, so a file name could recolour or ring the reviewer's terminal."""
    path = tmp_path / "r\x1b[31md\x07.ipynb"
    nbformat.write(make_notebook("x = 1"), str(path))
    code, out = run("run", path)
    assert code == 0, out
    assert not [c for c in RAW if c in out], out
    assert "nbgov: recording lineage to .nbgov/r\\x1b[31md\\x07.jsonl." in out.splitlines()[0]
