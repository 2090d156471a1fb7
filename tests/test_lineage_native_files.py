"""Files opened by native code (pyarrow, polars, DuckDB) are recorded when they are opened.

Python's audit hook sees only ``open`` calls made through Python; these tests use
readers and writers that bypass it, through a real IPython shell with ``%load_ext nbgov``.
A file is an input only when it was opened: naming it is not reading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xxhash
from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage import native_files
from nbgov.lineage.analysis import analyze
from nbgov.lineage.files import FileHasher
from nbgov.lineage.native_files import NativeWatch, PathProbe
from nbgov.lineage.stale import stale_flags
from tests.fixtures.lineage import installed_recorder, run_recorded

run = run_recorded
recorder = installed_recorder


def files(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(f["path"], f["mode"]) for f in body["files"]]


def digest(path: Path) -> str:
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


def test_parquet_written_by_pandas_then_read_in_a_later_cell_names_its_writer(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    w = run(shell, "import pandas as pd\nframe = pd.DataFrame({'a': [1, 2, 3]})\nframe.to_parquet('data.parquet')")
    out = tmp_path / "data.parquet"
    assert files(w) == [("data.parquet", "write")]
    assert w["files"][0]["abspath"] == str(out)
    assert (w["files"][0]["size"], w["files"][0]["hash"]) == (out.stat().st_size, digest(out))

    r = run(shell, "back = pd.read_parquet('data.parquet')")
    assert [(f["path"], f["mode"], f["hash"], f["source"]) for f in r["files"]] == [
        ("data.parquet", "read", digest(out), w["id"])
    ]
    assert shell.user_ns["back"].equals(shell.user_ns["frame"])


def test_a_path_held_in_a_variable_and_path_joins(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    run(shell, "from pathlib import Path\nimport pyarrow as pa, pyarrow.parquet as pq\npath = 'sub/t.parquet'")
    w = run(shell, "pq.write_table(pa.table({'x': [1.5, 2.5]}), path)")
    assert files(w) == [("sub/t.parquet", "write")]
    r = run(shell, "t = pq.read_table(Path('sub') / 't.parquet')")
    assert [(f["path"], f["mode"], f["source"]) for f in r["files"]] == [("sub/t.parquet", "read", w["id"])]
    assert r["files"][0]["abspath"] == str(tmp_path / "sub" / "t.parquet")
    # a PathLike value counts as well
    run(shell, "where = Path('sub') / 't.parquet'")
    r2 = run(shell, "t2 = pq.read_table(where)")
    assert files(r2) == [("sub/t.parquet", "read")]


def test_a_file_rewritten_natively_between_cells_makes_its_reader_stale(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    run(shell, "import pandas as pd\npd.DataFrame({'a': [1]}).to_parquet('in.parquet')")
    reader = run(shell, "total = int(pd.read_parquet('in.parquet')['a'].sum())")
    rec = recorder(shell)
    assert reader["id"] not in stale_flags(rec.entries(), FileHasher())
    # rewritten by a recorded cell: the reader is stale because of that cell
    writer = run(shell, "pd.DataFrame({'a': [5, 6]}).to_parquet('in.parquet')")
    assert files(writer) == [("in.parquet", "write")]
    reasons = stale_flags(rec.entries(), FileHasher())[reader["id"]]
    assert reasons == [f"file in.parquet rewritten by [{writer['execution_count']}]"]
    # run again, it reads the new content: that run is not stale
    again = run(shell, "total = int(pd.read_parquet('in.parquet')['a'].sum())")
    assert again["id"] not in stale_flags(rec.entries(), FileHasher())
    # rewritten behind the notebook's back: seen on disk
    pd.DataFrame({"a": [7, 8, 9]}).to_parquet(tmp_path / "in.parquet")
    assert stale_flags(rec.entries(), FileHasher())[again["id"]] == ["file in.parquet changed on disk since read"]


def test_numpy_save_and_load(shell: InteractiveShell, tmp_path: Path) -> None:
    w = run(shell, "import numpy as np\nnp.save('arr.npy', np.arange(5))")
    assert files(w) == [("arr.npy", "write")]
    assert w["files"][0]["hash"] == digest(tmp_path / "arr.npy")
    r = run(shell, "arr = np.load('arr.npy')")
    assert [(f["path"], f["mode"], f["source"]) for f in r["files"]] == [("arr.npy", "read", w["id"])]
    np.testing.assert_array_equal(shell.user_ns["arr"], np.arange(5))


def test_duckdb_outside_sqlml_reads_and_writes(shell: InteractiveShell, tmp_path: Path) -> None:
    pd.DataFrame({"v": [1, 2, 3]}).to_parquet(tmp_path / "src.parquet")
    body = run(
        shell,
        "import duckdb\n"
        "con = duckdb.connect()\n"
        "con.sql(\"COPY (SELECT v * 2 AS v FROM 'src.parquet') TO 'dst.parquet' (FORMAT parquet)\")",
    )
    # the file names are inside one SQL string, yet DuckDB opened both: the OS saw it
    assert sorted(files(body)) == [("dst.parquet", "write"), ("src.parquet", "read")]
    assert {f["path"]: f["hash"] for f in body["files"]}["src.parquet"] == digest(tmp_path / "src.parquet")
    body = run(
        shell,
        "src, dst = 'src.parquet', 'dst2.parquet'\n"
        "con.execute('COPY (SELECT v * 2 AS v FROM read_parquet(?)) TO ' + repr(dst), [src])",
    )
    assert sorted(files(body)) == [("dst2.parquet", "write"), ("src.parquet", "read")]


def test_polars_and_pyarrow_reads_in_a_named_folder_and_in_the_working_folder(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    pd.DataFrame({"a": [1.5, 2.5]}).to_parquet(tmp_path / "data" / "part.parquet")
    pd.DataFrame({"a": [3]}).to_parquet(tmp_path / "local.parquet")
    body = run(shell, "import polars as pl\nframe = pl.read_parquet('data/part.parquet')")
    assert files(body) == [("data/part.parquet", "read")]
    assert body["files"][0]["hash"] == digest(tmp_path / "data" / "part.parquet")
    # a name the code builds at run time: the working folder is always watched
    body = run(shell, "import pyarrow.parquet as pq\nt = pq.read_table(''.join(['loc', 'al.parquet']))")
    assert files(body) == [("local.parquet", "read")]


def test_naming_a_file_is_not_reading_it(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "out.txt").write_text("already here")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.parquet").write_bytes(b"PAR1")
    body = run(shell, "fname = 'out.txt'\nfolder = 'data/table.parquet'\nlabel = fname.upper()")
    assert body["files"] == []
    body = run(shell, "size = len(fname) + len(folder)")
    assert body["files"] == []


def test_strings_that_are_not_existing_files_record_nothing(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    body = run(
        shell,
        "label = 'missing.parquet'\n"
        "cols = ['a', 'b', 'folder', 'http://example.com/x.csv', 'x' * 5000]\n"
        "note = 'line one\\nline two'\n"
        "text = f'{label} not here'",
    )
    assert body["files"] == []
    body = run(shell, "n = len(label) + len(cols)")
    assert body["files"] == []


def test_nbgov_own_files_and_notebooks_are_not_files_of_the_notebook(shell: InteractiveShell, tmp_path: Path) -> None:
    run(shell, "x = 1")  # creates the sidecar
    sidecar = ".nbgov/test.jsonl"
    assert (tmp_path / sidecar).is_file()
    body = run(shell, f"name = '{sidecar}'\nsize = len(name)")
    assert body["files"] == []


def test_system_files_read_by_libraries_are_not_data(shell: InteractiveShell) -> None:
    body = run(shell, "import platform\nrelease = platform.freedesktop_os_release().get('ID', '')")
    assert body["files"] == []  # /etc/os-release: the interpreter's and libraries' own reading


def test_without_inotify_writes_are_still_seen_and_the_record_says_reads_are_not(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: Any
) -> None:
    rec = recorder(shell)
    monkeypatch.setattr(native_files, "open_inotify", lambda: None)
    rec._native = NativeWatch(rec._watcher.ignored)  # noqa: SLF001 - as on a system without inotify
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "in.parquet")
    body = run(shell, "import pyarrow.parquet as pq\nt = pq.read_table('in.parquet')\npq.write_table(t, 'out.parquet')")
    assert files(body) == [("out.parquet", "write")]
    assert native_files.NO_INOTIFY in body["notes"]


def test_the_fallback_probe_is_bounded_skips_what_it_ignores_and_claims_only_writes(tmp_path: Path) -> None:
    for i in range(80):
        (tmp_path / f"f{i}.csv").write_text("x")
    paths = [str(tmp_path / f"f{i}.csv") for i in range(80)]
    probe = PathProbe.start(paths, lambda p: p.endswith("f0.csv"), limit=64)
    assert probe is not None
    assert len(probe.before) == 64 and str(tmp_path / "f0.csv") not in probe.before
    (tmp_path / "f5.csv").write_text("changed")
    assert [(Path(e.abspath).name, e.mode) for e in probe.writes()] == [("f5.csv", "write")]
    assert PathProbe.start([], lambda p: False) is None


def test_constant_path_joins_are_candidates() -> None:
    names = analyze(
        "import os\nfrom pathlib import Path\n"
        "a = Path('data') / 'raw' / 'x.parquet'\n"
        "b = os.path.join('out', 'y.csv')\n"
        "c = 'line\\nbreak'\n"
    )
    assert {"data/raw/x.parquet", "out/y.csv", "data", "x.parquet"} <= set(names.strings)
    assert "line\nbreak" not in names.strings


def test_checking_that_a_file_exists_is_not_reading_it(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "flag").write_text("present")
    body = run(
        shell,
        "import os\nfrom pathlib import Path\n"
        "here = os.path.exists('flag') and Path('flag').is_file()\nsize = os.path.getsize('flag')",
    )
    assert body["files"] == []
    body = run(shell, "content = Path('flag').read_bytes()")  # Python open: the audit hook sees it
    assert files(body) == [("flag", "read")]


def test_a_failing_native_check_is_one_warning_line_and_the_record_is_kept(
    shell: InteractiveShell, tmp_path: Path, monkeypatch: Any, capsys: Any
) -> None:
    (tmp_path / "in.csv").write_text("a\n1\n")

    def broken(self: NativeWatch) -> list[Any]:
        raise OSError("inotify exploded")

    monkeypatch.setattr(NativeWatch, "stop", broken)
    result = shell.run_cell("name = 'in.csv'\nanswer = 42", store_history=True)
    assert result.success and shell.user_ns["answer"] == 42
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "native file opens not recorded: OSError: inotify exploded" in err[0]
    body = dict(recorder(shell).records[-1].raw["body"])
    assert body["status"] == "ok" and [w["name"] for w in body["writes"]] == ["answer", "name"]
    assert "native file opens not recorded: OSError: inotify exploded" in body["notes"]


def test_native_opens_between_cells_belong_to_no_cell(shell: InteractiveShell, tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "between.parquet")
    run(shell, "x = 1")
    pd.read_parquet(tmp_path / "between.parquet")  # outside any cell (another process, or the server)
    body = run(shell, "y = 2")
    assert files(body) == [], "an open between two cells is not a read by the next one"
    body = run(shell, "import pandas as pd\nn = len(pd.read_parquet('between.parquet'))")
    assert files(body) == [("between.parquet", "read")]


def test_naming_the_working_folder_does_not_watch_its_parent(tmp_path: Path) -> None:
    """`write_example_data(".")` names the working folder, which is watched anyway: its parent
    (other notebooks' folders, /tmp) is not, so what others write there is no file of the cell.
    A named folder elsewhere still has its parent watched (it may be made or removed there)."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    cwd = str(work)
    never = lambda path: False  # noqa: E731 - nothing ignored
    assert native_files._folders(cwd, [cwd], never) == [cwd]
    named = native_files._folders(cwd, [str(work / "data")], never)
    assert named[:2] == [cwd, str(work / "data")]
    assert str(tmp_path) not in native_files._folders(cwd, [cwd, str(work / "data" / "x.csv")], never)
