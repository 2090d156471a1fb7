"""The recorder through a real IPython shell: one record per execution, exact and safe."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import xxhash

from nbgov.lineage import files as files_mod
from nbgov.lineage import recorder as recorder_mod
from nbgov.lineage.files import FileHasher
from nbgov.lineage.stale import StaleTracker, stale_cells, stale_flags
from nbgov.lineage.store import SidecarStore, read_entries, verify_chain
from nbgov.replay.export import datasets
from nbgov.replay.graph import build_graph
from tests.fixtures.lineage import (
    FullDisk,
    RecordingShell,
    count_sidecar_reads,
    read_sidecar,
    writes,
)


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["name"] for i in items]


def test_a_record_per_execution_with_reads_writes_and_sources(recording: RecordingShell, tmp_path: Path) -> None:
    recording.run("x = 21", cell_id="cell-a")
    recording.run("y = x * 2", cell_id="cell-b")
    a, b = recording.body(0), recording.body(1)
    assert a["id"] == f"{recording.rec.session_id}:1" and a["execution_count"] == 1
    assert a["cell_id"] == "cell-a" and a["code"] == "x = 21"
    assert a["code_hash"] == xxhash.xxh3_128_hexdigest(b"x = 21")
    assert a["status"] == "ok" and a["error"] is None and a["duration_s"] >= 0
    assert writes(a) == {"x": False} and a["reads"] == []
    assert names(b["reads"]) == ["x"] and b["reads"][0]["source"] == a["id"]
    assert b["reads"][0]["fingerprint"] == a["writes"][0]["fingerprint"]  # same value, same hash
    assert writes(b) == {"y": False}
    assert b["writes"][0]["fingerprint"]["kind"] == "int"


def test_out_of_order_reexecution_and_edited_cells(recording: RecordingShell) -> None:
    run = recording.run
    run("x = 1", cell_id="A")
    run("y = x + 1", cell_id="B")
    run("x = 5", cell_id="A")  # cell A edited and re-run after B
    run("y = x + 1", cell_id="B")
    r = [recording.body(i) for i in range(4)]
    assert r[0]["code_hash"] != r[2]["code_hash"] and r[0]["cell_id"] == r[2]["cell_id"] == "A"
    assert r[1]["reads"][0]["source"] == r[0]["id"]
    assert r[3]["reads"][0]["source"] == r[2]["id"]  # the execution that *last* wrote x
    assert r[1]["reads"][0]["fingerprint"]["hash"] != r[3]["reads"][0]["fingerprint"]["hash"]
    assert recording.rec.stale(now_files=False) == {}, "latest runs are fresh; the first B run is superseded"
    tracker = StaleTracker(recording.rec.entries())
    assert tracker.reasons(r[1]["id"]) == ["input x rewritten by [3]"]
    assert tracker.reasons(r[3]["id"]) == []
    assert stale_cells(recording.rec.entries()) == {}


def test_a_cell_is_stale_when_its_input_is_rewritten_and_staleness_flows_downstream(
    recording: RecordingShell,
) -> None:
    run = recording.run
    run("base = 10", cell_id="A")
    run("mid = base * 2", cell_id="B")
    run("top = mid + 1", cell_id="C")
    run("base = 11", cell_id="D")
    cells = stale_cells(recording.rec.entries())
    assert cells == {"B": ["input base rewritten by [4]"], "C": ["input mid comes from stale [2]"]}


def test_deleted_variables(recording: RecordingShell) -> None:
    recording.run("tmp = [1, 2]")
    recording.run("del tmp")
    body = recording.body()
    assert body["deletes"] == ["tmp"] and body["writes"] == []
    recording.run("tmp = 3")
    assert writes(recording.body()) == {"tmp": False}


@pytest.mark.filterwarnings("ignore:The inplace keyword")
def test_in_place_mutations_count_as_writes_whatever_api_did_them(recording: RecordingShell) -> None:
    run = recording.run
    run(
        "import numpy as np, pandas as pd\n"
        "from sklearn.linear_model import LinearRegression\n"
        "df = pd.DataFrame({'a': [1, 2, 3], 'b': [4.0, 5.0, 6.0]})\n"
        "lst = [1]\n"
        "model = LinearRegression()\n"
        "X = np.arange(6.0).reshape(3, 2); yv = np.array([1.0, 2.0, 3.0])"
    )
    created = recording.body()
    assert {"df", "lst", "model", "X", "yv"} <= set(writes(created))
    assert "np" not in writes(created)  # modules are not data
    for code, name in [
        ("df.drop(columns=['a'], inplace=True)", "df"),
        ("lst.append(2)", "lst"),
        ("model.fit(X, yv)", "model"),
        ("X.sort(axis=0)\nX[0, 0] = 99", "X"),
    ]:
        run(code)
        body = recording.body()
        assert body["status"] == "ok", body["error"]
        assert writes(body) == {name: True}, code
        assert name in names(body["reads"])
        assert body["writes"][0]["fingerprint"]["hash"] != body["reads"][0]["fingerprint"]["hash"]
    run("n = len(df) + len(lst)")
    assert writes(recording.body()) == {"n": False}  # reading is not writing


def test_functions_that_mutate_globals_are_seen_through_their_code(recording: RecordingShell) -> None:
    recording.run("items = []\ndef add(v):\n    items.append(v)\n")
    recording.run("add(3)")
    body = recording.body()
    assert writes(body) == {"items": True}
    assert set(names(body["reads"])) == {"add", "items"}


def test_files_read_and_written_with_size_hash_and_source(recording: RecordingShell, tmp_path: Path) -> None:
    recording.run("with open('data.txt', 'w') as fh:\n    fh.write('a,b\\n1,2\\n')")
    w = recording.body()
    content = b"a,b\n1,2\n"
    assert [(f["path"], f["mode"], f["size"], f["hash"]) for f in w["files"]] == [
        ("data.txt", "write", len(content), xxhash.xxh3_128_hexdigest(content))
    ]
    assert w["files"][0]["abspath"] == str(tmp_path / "data.txt")
    recording.run("import pandas as pd\nframe = pd.read_csv('data.txt')")
    r = recording.body()
    reads = [f for f in r["files"] if f["mode"] == "read"]
    assert [(f["path"], f["hash"], f["source"]) for f in reads] == [
        ("data.txt", xxhash.xxh3_128_hexdigest(content), w["id"])
    ]
    assert stale_flags(recording.rec.entries(), FileHasher()) == {}
    (tmp_path / "data.txt").write_text("a,b\n9,9\n")
    assert stale_flags(recording.rec.entries(), FileHasher())[r["id"]] == ["file data.txt changed on disk since read"]



def test_a_write_through_a_shared_memory_map_is_a_write_of_its_file(recording: RecordingShell, tmp_path: Path) -> None:
    """Writes through a shared writable map reach the file with no system call (inotify sees
    none, and a page already dirty moves no time stamp): the cell that changed the mapped
    array wrote the file, hashed after the cell, and is the source of its next reader. A
    read-only or private map writes nothing."""
    import numpy as np

    def file_hash() -> str:
        return xxhash.xxh3_128_hexdigest((tmp_path / "arr.npy").read_bytes())

    def written() -> list[tuple[str, str | None]]:
        return [(f["path"], f["hash"]) for f in recording.body()["files"] if f["mode"] == "write"]

    np.save(tmp_path / "arr.npy", np.arange(4.0))
    recording.run("import mmap\nimport numpy as np\nm = np.load('arr.npy', mmap_mode='r+')\n"
                  "fh = open('arr.npy', 'r+b')\nraw = np.frombuffer(mmap.mmap(fh.fileno(), 0), dtype=np.uint8)\n"
                  "private = np.load('arr.npy', mmap_mode='c')")
    recording.run("m[0] = 99\nm.flush()")
    writer = recording.body()
    assert written() == [("arr.npy", file_hash())]
    recording.run("back = np.load('arr.npy')")
    assert [(f["mode"], f["hash"], f["source"]) for f in recording.body()["files"]] == [
        ("read", file_hash(), writer["id"])]
    recording.run("m[1] = 5")  # no flush: the page stays dirty,
    first = file_hash()
    recording.run("m[2] = 6")  # so this write changes no time stamp
    assert written() == [("arr.npy", file_hash())] and file_hash() != first
    recording.run("raw[-1] = 1")  # an array made on a writable mmap.mmap of the file
    assert written() == [("arr.npy", file_hash())]
    recording.run("private[0] = -1")
    assert writes(recording.body()) == {"private": True} and written() == []

def test_imports_and_the_interpreter_are_not_files_of_the_notebook(recording: RecordingShell) -> None:
    recording.run("import json.tool, email.mime.text\nv = 1")
    assert recording.body()["files"] == []


def test_errors_are_recorded_with_what_happened_before_them(recording: RecordingShell) -> None:
    result = recording.run("partial = 1\n1 / 0")
    assert not result.success
    body = recording.body()
    assert body["status"] == "error"
    assert body["error"] == {"type": "ZeroDivisionError", "message": "division by zero"}
    assert writes(body) == {"partial": False}
    recording.run("x = (")
    body = recording.body()
    assert body["status"] == "error" and body["error"]["type"] == "SyntaxError"


def test_session_entry_sidecar_location_chain_and_schema(
    recording: RecordingShell, tmp_path: Path, lineage_schema: Any
) -> None:
    recording.run("import numpy as np\nv = np.arange(3)")
    recording.run("w = v + 1", cell_id="c2")
    rec = recording.rec
    assert rec.store is not None and rec.store.path == tmp_path / ".nbgov" / "test.jsonl"
    on_disk = read_sidecar(rec.store.path)
    assert on_disk == [e.raw for e in rec.entries()]
    assert [e["kind"] for e in on_disk] == ["session", "execution", "execution"]
    session = on_disk[0]["body"]
    assert session["session"] == rec.session_id and session["notebook"] == str(tmp_path / "test.ipynb")
    assert session["python"] == ".".join(map(str, sys.version_info[:3]))
    assert "hash_seed" in session
    assert session["cwd"] == str(tmp_path)
    assert session["packages"]["IPython"]
    assert verify_chain(on_disk) == []
    for entry in on_disk:
        lineage_schema.validate(entry)
    recording.run("z = 1")
    assert sum(1 for e in read_sidecar(rec.store.path) if e["kind"] == "session") == 1


def test_packages_added_names_modules_first_imported_by_the_cell(
    recording: RecordingShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "lib" / "nbgov_probe_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '4.5.6'\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.delitem(sys.modules, "nbgov_probe_pkg", raising=False)
    recording.run("a = 1")
    recording.run("import nbgov_probe_pkg")
    assert recording.body()["packages_added"] == {"nbgov_probe_pkg": "4.5.6"}
    recording.run("import nbgov_probe_pkg as again")
    assert recording.body()["packages_added"] == {}


def test_notebook_name_falls_back_to_untitled_in_the_cwd(bare_shell: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JPY_SESSION_NAME")
    bare_shell.user_ns.pop("__session__", None)
    rec = recorder_mod.install(bare_shell)
    try:
        bare_shell.run_cell("q = 1", store_history=True)
        assert rec.store is not None and rec.store.path == tmp_path / ".nbgov" / "untitled.jsonl"
        assert rec.session_entry is not None and rec.session_entry.raw["body"]["notebook"] is None
    finally:
        rec.uninstall()


def test_subscribers_get_every_entry_in_order_and_can_leave(recording: RecordingShell) -> None:
    seen: list[Any] = []
    unsubscribe = recording.rec.subscribe(seen.append)
    recording.run("a = 1")
    recording.run("b = a")
    assert [e.kind for e in seen] == ["session", "execution", "execution"]
    assert seen[1:] == recording.rec.records and seen[0] == recording.rec.session_entry
    unsubscribe()
    recording.run("c = b")
    assert len(seen) == 3


def test_record_is_on_disk_before_the_cell_returns(recording: RecordingShell) -> None:
    seen_on_disk: list[int] = []

    def check(entry: Any) -> None:
        assert recording.rec.store is not None
        seen_on_disk.append(len(read_sidecar(recording.rec.store.path)))

    recording.rec.subscribe(check)
    recording.run("a = 1")
    recording.run("b = 2")
    assert seen_on_disk == [1, 2, 3]


def _one_warning(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("nbgov: ") and "Traceback" not in err
    return lines[0]


def test_a_hashing_failure_is_one_warning_line_and_the_cell_result_is_unchanged(
    recording: RecordingShell, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken:
        def fingerprint(self, obj: Any) -> Any:
            raise MemoryError("hashing exploded")

    recording.run("v = 41")
    capsys.readouterr()
    recording.rec.fingerprinter = Broken()  # type: ignore[assignment]
    result = recording.run("v + 1")
    assert result.success and result.result == 42
    assert "hashing exploded" in _one_warning(capsys.readouterr().err)
    assert recording.shell.user_ns["v"] == 41


def test_a_read_only_folder_is_one_warning_line_and_records_stay_in_memory(
    bare_shell: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if os.geteuid() == 0:
        notebook = "/proc/self/nbgov-readonly/nb.ipynb"  # root ignores chmod; procfs refuses mkdir
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        notebook = str(folder / "nb.ipynb")
    rec = recorder_mod.Recorder(bare_shell, notebook=notebook)
    rec.register()
    try:
        seen: list[Any] = []
        rec.subscribe(seen.append)
        result = bare_shell.run_cell("7 * 6", store_history=True)
        assert result.success and result.result == 42
        line = _one_warning(capsys.readouterr().err)
        assert "lineage not saved" in line and "nb.jsonl" in line
        assert [e.kind for e in seen] == ["session", "execution"]  # the sidebar still gets them
        assert verify_chain([e.raw for e in seen]) == []
    finally:
        rec.uninstall()


def test_a_full_disk_is_one_warning_line_no_torn_log_and_recording_resumes(
    recording: RecordingShell, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = FullDisk()
    path = tmp_path / ".nbgov" / "test.jsonl"
    recording.rec.store = SidecarStore(path, opener=disk)
    recording.run("a = 1")
    disk.full = True
    capsys.readouterr()
    result = recording.run("b = a + 1\nb")
    assert result.success and result.result == 2
    assert "No space left on device" in _one_warning(capsys.readouterr().err)
    entries, problems = read_entries(path)
    assert problems == [] and len(entries) == 2  # session + first cell; no torn line
    disk.full = False
    recording.run("c = b + 1")
    entries, problems = read_entries(path)
    assert problems == [] and verify_chain(entries) == []
    assert [e["body"].get("code") for e in entries[1:]] == ["a = 1", "c = b + 1"]
    assert capsys.readouterr().err == ""


def test_a_sidecar_removed_by_a_cell_is_one_warning_line_and_recording_goes_on(
    recording: RecordingShell, capsys: pytest.CaptureFixture[str]
) -> None:
    recording.run("a = 1")
    store = recording.rec.store
    assert store is not None
    recording.shell.user_ns["sidecar"] = str(store.path)
    capsys.readouterr()
    result = recording.run("import os; os.remove(sidecar); b = a + 1")
    assert result.success
    assert "was removed while recording" in _one_warning(capsys.readouterr().err)
    recording.run("c = b + 1")
    assert capsys.readouterr().err == ""  # said once
    entries, problems = read_entries(store.path)
    assert problems == []
    assert [e["body"].get("code") for e in entries] == ["import os; os.remove(sidecar); b = a + 1", "c = b + 1"]
    assert [str(p) for p in verify_chain(entries)] == ["entries 0-1 missing (deleted)"]


def test_a_failing_subscriber_is_one_warning_line(recording: RecordingShell, capsys: pytest.CaptureFixture[str]) -> None:
    def bad(entry: Any) -> None:
        raise RuntimeError("frontend gone")

    recording.rec.subscribe(bad)
    result = recording.run("5")
    assert result.success and result.result == 5
    assert "frontend gone" in _one_warning(capsys.readouterr().err)
    assert len(recording.rec.records) == 1


def test_uninstall_removes_the_callbacks_and_stops_watching_files(bare_shell: Any) -> None:
    rec = recorder_mod.install(bare_shell)
    assert rec.pre_run_cell in bare_shell.events.callbacks["pre_run_cell"]
    bare_shell.run_cell("a = 1", store_history=True)
    rec.uninstall()
    assert rec.pre_run_cell not in bare_shell.events.callbacks["pre_run_cell"]
    assert rec.post_run_cell not in bare_shell.events.callbacks["post_run_cell"]
    bare_shell.run_cell("open('after.txt', 'w').close()", store_history=True)
    assert len(rec.records) == 1
    assert files_mod._active == []


def _register_test_sql_magic(recording: RecordingShell, model: Any, csv: Path) -> None:
    """A minimal stand-in for %%sqlml's reporting: runs real DuckDB and reports like the magic."""
    rec = recording.rec
    shell = recording.shell

    def testsql(line: str, cell: str) -> Any:
        frame = shell.user_ns["customers"]
        con = duckdb.connect()
        con.register("customers", frame)
        out = con.execute(cell).df()
        con.close()
        sha = hashlib.sha256(model.onnx).hexdigest()
        rec.note_sql(
            {
                "statement": cell.strip(),
                "kind": "select",
                "tables_read": ["customers"],
                "tables_written": [],
                "files_read": [csv.name],
                "files_written": [],
                "models": [{"name": "churn", "version": 1, "sha256": sha, "producer": "skl2onnx", "opset": 17}],
                "frames": ["customers"],
                "params": ["limit"],
            }
        )
        return out

    shell.register_magic_function(testsql, "cell", "testsql")


def test_sql_reports_become_reads_files_models_and_statements(
    recording: RecordingShell, onnx_models: Any, tmp_path: Path
) -> None:
    model = onnx_models.get("logreg")
    csv = tmp_path / "extra.csv"
    csv.write_text("id\n1\n")
    recording.run("import pandas as pd\ncustomers = pd.DataFrame({'age': [30, 70]})\nlimit = 1")
    writer = recording.body()
    _register_test_sql_magic(recording, model, csv)
    recording.run("%%testsql\nSELECT count(*) AS n FROM customers, read_csv('extra.csv')")
    body = recording.body()
    assert body["status"] == "ok", body["error"]
    assert {r["name"]: r["source"] for r in body["reads"]} == {"customers": writer["id"], "limit": writer["id"]}
    customers_fp = body["reads"][0]["fingerprint"]
    assert body["sql"] == [
        {
            "statement": "SELECT count(*) AS n FROM customers, read_csv('extra.csv')",
            "kind": "select",
            "engine": "duckdb",
            "tables_read": ["customers"],
            "tables_written": [],
            "files_read": ["extra.csv"],
            "files_written": [],
            "models": ["churn@1"],
            "tables": [{"name": "customers", "mode": "read", "origin": "notebook", "fingerprint": customers_fp}],
        }
    ]
    assert customers_fp == writer["writes"][0]["fingerprint"], "the frame read is the value the writer wrote"
    assert body["models"] == [
        {
            "name": "churn",
            "version": 1,
            "sha256": hashlib.sha256(model.onnx).hexdigest(),
            "producer": "skl2onnx",
            "opset": 17,
            "source": None,
            "role": "input",
        }
    ]
    assert [(f["path"], f["mode"], f["hash"]) for f in body["files"]] == [
        ("extra.csv", "read", xxhash.xxh3_128_hexdigest(b"id\n1\n"))
    ]


def test_sql_reported_outside_a_cell_is_attached_to_the_next_one(recording: RecordingShell) -> None:
    recording.rec.note_sql({"statement": "SELECT 1", "kind": "select"})
    recording.run("x = 1")
    assert [s["statement"] for s in recording.body()["sql"]] == ["SELECT 1"]
    recording.run("y = 2")
    assert recording.body()["sql"] == []


def test_a_later_model_version_makes_users_of_the_old_one_stale(recording: RecordingShell) -> None:
    sha1, sha2 = "1" * 64, "2" * 64

    def report(version: int, sha: str, kind: str) -> None:
        recording.rec.note_sql(
            {
                "statement": f"-- v{version}",
                "kind": kind,
                "models": [{"name": "churn", "version": version, "sha256": sha, "producer": None, "opset": None}],
            }
        )

    report(1, sha1, "create_model")
    recording.run("m1 = 1")
    report(1, sha1, "select")
    recording.run("s1 = 1")
    scoring = recording.body()
    assert scoring["models"][0]["source"] == recording.body(0)["id"]
    creator = recording.body(0)
    assert [(f"{m['name']}@{m['version']}", m["role"]) for m in creator["models"]] == [
        ("churn@1", "output")
    ]
    report(2, sha2, "create_model")
    recording.run("m2 = 1")
    flags = stale_flags(recording.rec.entries())
    assert flags[scoring["id"]] == ["model churn changed: version 2 registered by [3]"]
    assert creator["id"] not in flags, "the cell that created version 1 wrote it: a newer version does not make it stale"


def test_records_json_round_trip_through_the_dataclass(recording: RecordingShell) -> None:
    from nbgov.lineage.record import ExecutionRecord, SessionInfo

    recording.run("import pandas as pd\ndf = pd.DataFrame({'a': [1]})\ndf['b'] = 2")
    body = recording.body()
    assert ExecutionRecord.from_json(body).to_json() == body
    assert recording.rec.session_entry is not None
    session = recording.rec.session_entry.raw["body"]
    assert SessionInfo.from_json(session).to_json() == session
    json.dumps(body)  # plain JSON, nothing exotic


def test_cells_run_from_inside_a_cell_are_covered_by_the_outer_record(recording: RecordingShell) -> None:
    recording.run("get_ipython().run_cell('inner = 1', store_history=True)\nouter = inner + 1")
    assert len(recording.rec.records) == 1
    assert writes(recording.body()) == {"inner": False, "outer": False}


def test_big_values_used_only_as_operands_are_not_rehashed_but_aliases_still_count(
    recording: RecordingShell,
) -> None:
    fper = recording.rec.fingerprinter
    recording.run("import numpy as np\nbig = np.ones(1_000_000)\nview = big[:10]\nholder = {'b': big}")
    work = fper.hashed_bytes
    recording.run("out = big * 2 + 1")
    body = recording.body()
    assert [r["name"] for r in body["reads"]] == ["big"] and writes(body) == {"out": False}
    # big: before-hash reused from the last cell (probe unchanged), after-hash skipped
    # (pure operand use); out: hashed once
    assert fper.hashed_bytes - work == 8_000_000
    recording.run("out = big * 2\nview[0] = -1")  # a view of big changes it, and what holds big
    body = recording.body()
    assert writes(body) == {"out": False, "big": True, "view": True, "holder": True}
    recording.run("out = big * 3\nholder['b'][1] = -2")  # so does a container holding it
    assert writes(recording.body()) == {"out": False, "big": True, "holder": True, "view": True}


def test_a_change_between_cells_is_not_hidden_by_the_reused_fingerprint(recording: RecordingShell) -> None:
    recording.run("import numpy as np\narr = np.zeros(1_000_000)")
    first = recording.body()["writes"][0]["fingerprint"]
    recording.shell.user_ns["arr"][:] = 1.0  # e.g. a widget callback or a thread, outside any cell
    recording.run("total = arr.sum()")
    read = recording.body()["reads"][0]["fingerprint"]
    assert read["hash"] != first["hash"]
    from nbgov.lineage.fingerprint import fingerprint

    assert read["hash"] == fingerprint(recording.shell.user_ns["arr"]).hash


def test_imported_code_is_neither_data_nor_a_file_but_a_local_module_file_is(
    recording: RecordingShell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "helpers_for_lineage.py").write_text("def double(v):\n    return v * 2\n")  # notebook folder
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "vendored_for_lineage.py").write_text("def triple(v):\n    return v * 3\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.syspath_prepend(str(tmp_path))
    for mod in ("helpers_for_lineage", "vendored_for_lineage"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    recording.run("from collections import OrderedDict\nfrom json import dumps\ndef mine():\n    return 1")
    assert writes(recording.body()) == {"mine": False}  # the notebook's own function is data
    recording.run("from vendored_for_lineage import triple\nfrom helpers_for_lineage import double")
    body = recording.body()
    assert writes(body) == {}
    assert [(f["abspath"], f["mode"]) for f in body["files"]] == [
        (str(tmp_path / "helpers_for_lineage.py"), "read")
    ]


def test_subscribers_see_the_entry_already_in_rec_records(recording: RecordingShell) -> None:
    states: list[tuple[str, bool]] = []

    def check(entry: Any) -> None:
        rec = recording.rec
        present = entry is rec.session_entry if entry.kind == "session" else rec.records[-1] is entry
        states.append((entry.kind, present))

    recording.rec.subscribe(check)
    recording.run("a = 1")
    recording.run("b = 2")
    assert states == [("session", True), ("execution", True), ("execution", True)]


def test_capture_magic_runs_a_nested_cell_recorded_once(recording: RecordingShell) -> None:
    recording.run("%%capture captured\nprint('hi')\ninside = 1")
    assert len(recording.rec.records) == 1
    assert set(writes(recording.body())) == {"captured", "inside"}


def test_timeit_reads_the_names_its_code_uses_and_binds_none_of_its_own(recording: RecordingShell) -> None:
    # `%timeit` (in pandas' and numpy's docs) runs its code in a function of its own, with the
    # notebook's names as globals: it reads them, may change them in place, binds nothing
    recording.run("import numpy as np\nrows = np.arange(1000.0)\nlog = []\nk = 3")
    recording.run("%timeit -n 2 -r 1 rows.sum() * k")
    assert sorted(names(recording.body()["reads"])) == ["k", "rows"] and writes(recording.body()) == {}
    recording.run("%timeit -n 2 -r 3 log.append(k)")  # six appends to the notebook's list
    assert recording.shell.user_ns["log"] == [3] * 6
    assert sorted(names(recording.body()["reads"])) == ["k", "log"]
    assert writes(recording.body()) == {"log": True}
    recording.run("%%timeit -n 1 -r 1 scaled = rows * k\ntotal = scaled.sum()")
    assert sorted(names(recording.body()["reads"])) == ["k", "rows"]
    assert writes(recording.body()) == {} and "total" not in recording.shell.user_ns  # its own local
    recording.run("%timeit -x rows")  # an option the magic refuses: nothing ran, nothing read
    assert recording.body()["reads"] == []


def test_prun_runs_its_code_in_the_notebooks_namespace_and_is_recorded_so(recording: RecordingShell) -> None:
    recording.run("import numpy as np\nrows = np.arange(1000.0)\nk = 3")
    recording.run("%prun -q total = rows.sum() * k")
    assert sorted(names(recording.body()["reads"])) == ["k", "rows"]
    assert writes(recording.body()) == {"total": False} and recording.shell.user_ns["total"] == 499500.0 * 3


def test_the_nesting_count_sees_each_running_cell(recording: RecordingShell) -> None:
    recording.run("from nbgov.lineage.recorder import _running_cells\n"
                  "depth = _running_cells()\n"
                  "get_ipython().run_cell('inner_depth = _running_cells()')")
    ns = recording.shell.user_ns
    assert (ns["depth"], ns["inner_depth"]) == (1, 2)
    assert recorder_mod._running_cells() == 0  # outside any cell


_frame_reads: list[str] = []
_counting = [False]


def _count_frame_reads(event: str, args: tuple[Any, ...]) -> None:
    if _counting[0] and event == "object.__getattr__":
        _frame_reads.append(str(args[1]))


def test_the_nesting_count_fires_no_audit_event_per_frame() -> None:
    """Reading ``frame.f_code`` is audited: every audit hook (nbgov's among them) would run
    once per frame of a 30-frame kernel stack, twice per cell."""
    sys.addaudithook(_count_frame_reads)  # process-wide and permanent: it counts only while asked

    def deep(levels: int) -> int:
        return deep(levels - 1) if levels else recorder_mod._running_cells()

    recorder_mod._running_cells()  # its first call reads run_cell_async's code once (cached): not per frame
    _counting[0] = True
    try:
        assert deep(40) == 0
    finally:
        _counting[0] = False
    assert _frame_reads == []


def test_a_lost_post_run_cell_does_not_stop_recording(recording: RecordingShell) -> None:
    from IPython.core.interactiveshell import ExecutionInfo

    recording.rec.pre_run_cell(ExecutionInfo("lost = 1", False, False, True, None))  # no post ever comes
    recording.run("after = 2")
    assert [r.raw["body"]["code"] for r in recording.rec.records] == ["after = 2"]


def test_two_recorded_shells_keep_their_own_files(tmp_path: Path) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    first, second = InteractiveShell(), InteractiveShell()
    recs = [recorder_mod.Recorder(s, notebook=str(tmp_path / f"nb{i}.ipynb")) for i, s in enumerate((first, second))]
    for rec in recs:
        rec.register()
    try:
        first.run_cell(f"open({str(tmp_path / 'one.txt')!r}, 'w').close()", store_history=True)
        second.run_cell(f"open({str(tmp_path / 'two.txt')!r}, 'w').close()", store_history=True)
        assert [f["path"] for f in recs[0].records[-1].raw["body"]["files"]] == [str(tmp_path / "one.txt")]
        assert [f["path"] for f in recs[1].records[-1].raw["body"]["files"]] == [str(tmp_path / "two.txt")]
    finally:
        for rec in recs:
            rec.uninstall()
    assert files_mod._active == []


def test_reset_deletes_everything_and_recording_goes_on(
    recording: RecordingShell, capsys: pytest.CaptureFixture[str]
) -> None:
    recording.run("a = 1\nb = [2]")
    recording.run("%reset -f")
    assert set(recording.body()["deletes"]) >= {"a", "b"}
    recording.run("c = 3")
    assert writes(recording.body()) == {"c": False}
    assert "nbgov:" not in capsys.readouterr().err


def _count_sidecar_reads(recording: RecordingShell, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    assert recording.rec.store is not None
    return count_sidecar_reads(recording.rec.store, monkeypatch)


def test_stale_answers_follow_the_sidecar_without_rereading_it(
    recording: RecordingShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording.run("base = 1")
    reads = _count_sidecar_reads(recording, monkeypatch)
    assert recording.rec.stale(now_files=False) == {}
    assert reads[0] == 1, "the first question reads the sidecar"
    for i in range(12):
        recording.run(["mid = base + 1", "out = mid * 2", f"base = {i}"][i % 3])
        recording.rec.stale(now_files=False)
    store = recording.rec.store
    assert store is not None
    on_disk = read_sidecar(store.path)
    assert recording.rec.stale(now_files=False) == stale_flags(on_disk)
    assert recording.rec.stale(now_files=True) == stale_flags(on_disk, FileHasher())
    assert recording.rec.stale(now_files=False), "base was rewritten: something is stale"
    assert reads[0] == 1, "own appends are followed in memory, never by reading the file again"


def test_an_append_by_another_writer_makes_stale_read_the_sidecar_again(
    recording: RecordingShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording.run("x = 1")
    recording.run("y = x + 1")
    reads = _count_sidecar_reads(recording, monkeypatch)
    reader = recording.body()["id"]
    assert reader not in recording.rec.stale(now_files=False)
    store = recording.rec.store
    assert store is not None
    other = SidecarStore(store.path, background_fsync=False)  # e.g. a second kernel on this notebook
    try:
        first = recording.body(0)
        rewrite = dict(first["writes"][0], fingerprint=dict(first["writes"][0]["fingerprint"], hash="9" * 32))
        other_session = "f" * 32
        body = dict(first, session=other_session, id=f"{other_session}:1", execution_count=1, reads=[],
                    writes=[rewrite])
        other.append("execution", body)
    finally:
        other.close()
    stale = recording.rec.stale(now_files=False)
    assert stale[reader] == ["input x rewritten by [1]"]
    assert stale == stale_flags(read_sidecar(store.path))
    assert reads[0] == 2
    recording.run("z = y")  # after a foreign append, our own next append is not assumed to be the only change
    assert recording.rec.stale(now_files=False) == stale_flags(read_sidecar(store.path))


def test_session_stale_is_this_sessions_answer_kept_current(recording: RecordingShell) -> None:
    assert recording.rec.session_stale() == {}
    for code in ["a = 1", "b = a + 1", "c = b + 1", "a = 2", "d = c", "b = a"]:
        recording.run(code)
        assert recording.rec.session_stale() == stale_flags(recording.rec.entries())
    assert set(recording.rec.session_stale()) == {recording.body(i)["id"] for i in (1, 2, 4)}


def test_the_displayed_result_is_fingerprinted_like_a_written_value(recording: RecordingShell) -> None:
    recording.run("import numpy as np\nrng = np.random.default_rng()")
    recording.run("rng.random(3)", cell_id="draw")
    first = recording.body()["result"]
    recording.run("rng.random(3)", cell_id="draw")
    second = recording.body()["result"]
    assert first["kind"] == second["kind"] == "numpy.ndarray" and first["weak"] is False
    assert first["hash"] != second["hash"], "an unseeded draw shows up in Out[n]"
    recording.run("total = 41 + 1\ntotal")
    body = recording.body()
    assert body["result"] == body["writes"][0]["fingerprint"], "the same object: one fingerprint"
    recording.run("total")
    assert recording.body()["result"] == body["writes"][0]["fingerprint"]
    recording.run("total;")
    assert recording.body()["result"] is None, "a suppressed result is not displayed"
    recording.run("quiet = 1")
    assert recording.body()["result"] is None


def test_a_change_made_through_another_name_is_a_write_of_both(recording: RecordingShell) -> None:
    recording.run("a = [1, 2]\nconfig = {'layers': [3]}")
    recording.run("b = a\nlayers = config['layers']")
    recording.run("b.append(3)")
    assert writes(recording.body()) == {"a": True, "b": True}
    recording.run("layers.append(4)")
    assert writes(recording.body()) == {"config": True, "layers": True}
    recording.run("total = len(a)")
    body = recording.body()
    assert {r["name"]: r["source"] for r in body["reads"]} == {"a": recording.body(-3)["id"]}



def test_an_array_made_on_another_objects_buffer_changes_with_it(recording: RecordingShell) -> None:
    """``np.frombuffer`` keeps a memoryview of the exporter as the array's base: a write
    through the bytearray (or the map, or a memoryview of it) is a write of the array too,
    and the array's earlier reader is stale."""
    recording.run("import mmap\nimport numpy as np\nbuf = bytearray(4)\nv = np.frombuffer(buf, dtype=np.uint8)\n"
                  "view = memoryview(buf)\nmm = mmap.mmap(-1, 8)\nw = np.frombuffer(mm, dtype=np.uint8)[2:]",
                  cell_id="make")
    recording.run("total = int(v.sum())", cell_id="read")
    recording.run("buf[0] = 7", cell_id="write")
    assert writes(recording.body()) == {"buf": True, "v": True, "view": True}
    assert stale_cells(recording.rec.entries()) == {"read": ["input v rewritten by [3]"]}
    recording.run("view[1] = 9")
    assert writes(recording.body()) == {"buf": True, "v": True, "view": True}
    recording.run("mm[3] = 1")
    assert writes(recording.body()) == {"mm": True, "w": True}


def test_names_read_through_globals_or_eval_are_reads_or_the_record_says_it_may_miss_some(
    recording: RecordingShell,
) -> None:
    """A constant key or code (``globals()['thr']``, ``eval('thr + 1')``) is a read like
    ``thr + 1``: rewriting thr makes the cell stale. A name known only at run time is not
    known to the record, which says so."""
    run = recording.run
    run("thr = 2\nname = 'thr'\ndef scaled():\n    return eval('thr * 2')", cell_id="setup")
    run("g = globals()['thr'] * 10", cell_id="subscript")
    assert names(recording.body()["reads"]) == ["thr"] and recording.body()["notes"] == []
    run("e = eval('thr + 1')", cell_id="eval")
    assert names(recording.body()["reads"]) == ["thr"] and recording.body()["notes"] == []
    run("d = globals()[name]", cell_id="by-name")
    assert names(recording.body()["reads"]) == ["name"]
    assert recording.body()["notes"] == [
        "the cell reads names dynamically (globals()): its inputs may be incomplete"]
    run("s = scaled()", cell_id="called")  # the function's eval text is not in its bytecode
    assert recording.body()["notes"] == ["the cell reads names dynamically (eval): its inputs may be incomplete"]
    run("thr = 3", cell_id="rewrite")
    stale = stale_cells(recording.rec.entries())
    assert stale["subscript"] == stale["eval"] == ["input thr rewritten by [6]"]

def test_the_code_ipython_transformed_is_analysed_without_transforming_it_again(
    recording: RecordingShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPython hands the cell it transformed to pre_run_cell: the recorder reads what that
    code names (here a magic's, so every name is compared) and transforms nothing itself."""
    shell = recording.shell
    calls: list[str] = []
    original = type(shell).transform_cell

    def counting(self: Any, raw_cell: str) -> str:
        calls.append(raw_cell)
        return str(original(self, raw_cell))

    monkeypatch.setattr(type(shell), "transform_cell", counting)
    recording.run("x = [1]")
    recording.run("x.append(2)\nfound = %who_ls")
    assert calls == ["x = [1]", "x.append(2)\nfound = %who_ls"]  # IPython's own, once each
    assert {w["name"]: w["mutated"] for w in recording.body()["writes"]} == {"found": False, "x": True}


def test_a_dynamic_cell_looks_at_the_notebook_names_not_at_ipythons_history(
    recording: RecordingShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    """IPython binds one or two names per cell run (``_i7``, ``_7``): after thousands of cells
    they are most of the namespace. A magic or exec cell compares the names notebook code
    bound, so what it costs does not grow with the history; what it rebinds, creates and
    deletes is recorded as before, whichever way the names came."""
    from nbgov.lineage import namespace

    ns = recording.ns()
    recording.run("a = [1]\nb = [2]\ngone = 3")
    ns.update({f"_i{i}": f"x = {i}" for i in range(1000, 6000)})  # a long session's history
    ns.update({f"_{i}": i for i in range(1000, 3000)})
    ns["between"] = [4]  # bound between cells (a thread, a widget)
    looked_at = {"values": 0}
    plain = namespace._identity

    def counting(value: Any) -> int:
        looked_at["values"] += 1
        return plain(value)

    monkeypatch.setattr(namespace, "_identity", counting)
    ns["code"] = "a = [1]\nbetween = 5\nmade = 6\ndel gone"  # known only when it runs
    recording.run("exec(code)")
    body = recording.body()
    assert {w["name"] for w in body["writes"]} == {"a", "between", "made"}
    assert body["deletes"] == ["gone"]
    assert looked_at["values"] < 200, looked_at  # not one per name of the history
    recording.run("%time b = [2]")
    assert {w["name"] for w in recording.body()["writes"]} == {"b"}


def test_a_dynamic_cell_compares_every_name_without_an_audited_call_per_name(recording: RecordingShell) -> None:
    """A magic or exec may rebind any name, so the recorder compares the identity of every
    name before and after: by object's own pointer hash, not id() (an audit event, which runs
    nbgov's file hook in Python each time). Rebinding to objects whose class and metaclass
    define a raising __hash__, or none (a list), is still seen, and none of their code runs."""
    import sys as _sys

    counting = {"on": False, "ids": 0}

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if counting["on"] and event == "builtins.id":
            counting["ids"] += 1

    _sys.addaudithook(hook)  # for the whole test process; it counts only while "on"
    ns = recording.ns()
    recording.run("class Meta(type):\n    def __hash__(cls):\n        raise RuntimeError('metaclass hash ran')\n"
                  "class Hostile(metaclass=Meta):\n    def __hash__(self):\n        raise RuntimeError('hash ran')\n"
                  "a = [1]\nb = Hostile()\nc = Hostile")
    ns.update({f"filler{i}": [i] for i in range(2000)})
    ns["code"] = "a = [1]\nb = Hostile()\nc = Meta('C', (), {})"  # known only when it runs
    counting["on"] = True
    try:
        recording.run("exec(code)")
    finally:
        counting["on"] = False
    assert {w["name"] for w in recording.body()["writes"]} == {"a", "b", "c"}
    assert counting["ids"] < 200, counting  # not one per name of the namespace


def test_start_times_read_as_datetime_writes_them_across_second_boundaries() -> None:
    """A cell's ``started`` keeps the text up to the second per second: for over a second of
    asking, each answer is datetime's own millisecond ISO text of a moment between the clock
    readings around it (a stale second would fall outside)."""
    import re
    from datetime import datetime, timedelta, timezone

    from nbgov.lineage.recorder import _now_iso

    end = time.monotonic() + 1.2
    while time.monotonic() < end:
        before = datetime.now(timezone.utc) - timedelta(milliseconds=2)
        text = _now_iso()
        after = datetime.now(timezone.utc) + timedelta(milliseconds=1)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text), text
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        assert before <= moment <= after, (before, text, after)
        assert moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") == text


def test_an_earlier_result_read_through_ipythons_history_is_an_input_from_the_execution_that_displayed_it(
    recording: RecordingShell,
) -> None:
    """``_``, ``__``, ``_3``, ``Out[3]`` and ``Out.get(3)`` hold what an earlier execution displayed:
    the read is ``Out[3]`` with the value's fingerprint, its source that execution."""
    shown = recording.run("[1, 2, 3]", cell_id="show")
    assert shown.success
    count = shown.execution_count
    displayed = recording.record()
    assert displayed.result is not None
    recording.run("n = 5", cell_id="quiet")  # displays nothing: `_` is still Out[count]
    recording.run("y = _", cell_id="reader")
    read = recording.record()
    assert [(r.name, r.source) for r in read.reads] == [(f"Out[{count}]", displayed.id)]
    assert read.reads[0].fingerprint == displayed.result  # the value that execution displayed
    assert read.reads[0].displayed == count
    assert read.writes[0].fingerprint == displayed.result
    assert not any("output history" in n for n in read.notes), read.notes
    # exported lineage: the reader's input is the very dataset the displaying run output
    assert [(d.name, d.output) for d in datasets(displayed, "nb.ipynb")] == [(f"Out[{count}]", True)]
    assert (f"Out[{count}]", False) in [(d.name, d.output) for d in datasets(read, "nb.ipynb")]
    for code in (f"z = Out[{count}] + _{count}", f"z = Out.get({count})", f"z = _oh[{count}]"):
        recording.run(code)
        assert [(r.name, r.source) for r in recording.record().reads] == [(f"Out[{count}]", displayed.id)], code
    second = recording.run("'second'")
    recording.run("pair = (_, __)")
    assert [(r.name, r.source) for r in recording.record().reads] == [
        (f"Out[{count}]", displayed.id), (f"Out[{second.execution_count}]", recording.record(-2).id)]
    for code in ("for _ in range(2):\n    w = _", "_, v = 1, 2", "q = [_ for _ in range(3)]", "u = y + [4]"):
        recording.run(code)
        assert not any(r.displayed for r in recording.record().reads), code
        assert not any("output history" in n for n in recording.record().notes), code


def test_a_cell_that_read_a_displayed_result_is_stale_when_that_cell_displays_another(
    recording: RecordingShell,
) -> None:
    """IPython keeps Out[1] as it was, but the cell that displayed it ran again and shows another
    value now: what was computed from the old one is stale. Equal content again is not."""
    run = recording.run
    run("[1, 2, 3]", cell_id="S")
    run("total = sum(_)", cell_id="R")
    run("later = total + 1", cell_id="T")
    assert recording.rec.stale(now_files=False) == {}
    records = [recording.record(i) for i in range(3)]
    graph = build_graph(records)  # the displaying execution feeds the reader through Out[1]
    assert graph.edges[(records[0].id, records[1].id)] == ["Out[1]"]
    run("[1, 2, 3]", cell_id="S")  # the same result again
    assert recording.rec.stale(now_files=False) == {}
    run("[4, 5]", cell_id="S")
    reader = recording.record(1).id
    # the journal's tracker judged R already (fresh): the re-run marks it for judging again
    assert recording.rec.stale(now_files=False)[reader] == ["input Out[1]: its cell displayed another result as [5]"]
    flags = stale_cells(recording.rec.entries())
    assert flags == {"R": ["input Out[1]: its cell displayed another result as [5]"],
                     "T": ["input total comes from stale [2]"]}
    run("total = sum(_)", cell_id="R")  # reads Out[5] now
    assert recording.record().reads[0].name == "Out[5]"
    assert stale_cells(recording.rec.entries()) == {"T": ["input total rewritten by [6]"]}
    run("shown = 1", cell_id="S")  # the cell now displays nothing
    assert stale_cells(recording.rec.entries())["R"] == ["input Out[5]: its cell ran again as [7] and displayed nothing"]


def test_a_history_read_nbgov_cannot_resolve_keeps_the_note(recording: RecordingShell) -> None:
    """A computed index, the whole ``Out``, or a ``_`` the user bound: no input is named, the note
    says so; ``_9`` never displayed reads nothing (the cell fails), and needs no note."""
    first = recording.run("[1]").execution_count
    recording.run(f"i = {first}")
    for code, spelled in (("z = Out[i]", "`Out`"), ("k = len(Out)", "`Out`"), ("z = _oh.get(i)", "`_oh`")):
        recording.run(code)
        record = recording.record()
        assert not record.reads or [r.name for r in record.reads] == ["i"], code
        assert any(f"earlier results through {spelled} (IPython's output history)" in n for n in record.notes), code
    recording.run("_ = 'mine'")
    recording.run("z = _")
    assert [r.displayed for r in recording.record().reads] == []
    assert any("through `_` (IPython's output history)" in n for n in recording.record().notes)
    assert not recording.run("z = _999").success
    assert recording.record().reads == () and not any("output history" in n for n in recording.record().notes)


def test_a_result_displayed_before_recording_began_is_read_with_no_source(bare_shell: Any) -> None:
    """Out[1] from before nbgov was loaded: the read is named, with a note that no record holds
    the execution that displayed it."""
    bare_shell.run_cell("'before'", store_history=True)
    rec = recorder_mod.install(bare_shell)
    try:
        bare_shell.run_cell("y = _1", store_history=True)
        record = rec.records[-1].record
        assert record is not None
        assert [(r.name, r.source) for r in record.reads] == [("Out[1]", None)]
        assert any("`Out[1]` was displayed by execution 1, which this session's log does not hold" in n
                   for n in record.notes)
    finally:
        rec.uninstall()


def test_a_displayed_result_changed_in_place_since_is_noted(recording: RecordingShell) -> None:
    recording.run("x = [1]")
    shown = recording.run("x")
    recording.run("x.append(2)")
    recording.run(f"y = _{shown.execution_count}")
    record = recording.record()
    assert [r.name for r in record.reads] == [f"Out[{shown.execution_count}]"]
    assert any(f"holds other content than [{shown.execution_count}] displayed" in n for n in record.notes)


def test_a_file_written_in_an_earlier_session_links_to_its_writer_while_its_content_is_the_same(
    bare_shell: Any, tmp_path: Path
) -> None:
    """Restarting the kernel (a new recorder on the same log) keeps the link from a read to the
    execution that wrote the file, when the file holds what that execution wrote; a file
    changed between sessions links to no one."""
    first = recorder_mod.install(bare_shell)
    bare_shell.run_cell("open('shared.txt', 'w').write('one')", store_history=True)
    writer = first.records[-1].record
    assert writer is not None and [f.mode for f in writer.files] == ["write"]
    first.uninstall()

    second = recorder_mod.install(bare_shell)
    try:
        assert second.session_id != first.session_id
        bare_shell.run_cell("text = open('shared.txt').read()", store_history=True)
        read = second.records[-1].record
        assert read is not None and [(f.mode, f.source) for f in read.files] == [("read", writer.id)]
        (tmp_path / "shared.txt").write_text("changed between the cells, by no cell")
        bare_shell.run_cell("again = open('shared.txt').read()", store_history=True)
        changed = second.records[-1].record
        assert changed is not None and [(f.mode, f.source) for f in changed.files] == [("read", None)]
    finally:
        second.uninstall()
