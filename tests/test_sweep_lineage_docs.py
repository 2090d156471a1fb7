"""Lineage of notebooks shaped like library documentation (pandas' "10 minutes",
scikit-learn's examples, file round trips): what the record says must be what the code
did, and replay must say "reproduced" exactly when the values are the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xxhash
from IPython.core.interactiveshell import InteractiveShell
from rich.console import Console

from nbgov.lineage.files import FileHasher
from nbgov.lineage.fingerprint import fingerprint
from nbgov.lineage.stale import stale_flags
from nbgov.replay.replayer import replay
from nbgov.replay.report import print_replay
from nbgov.replay.source import load_log
from tests.fixtures.lineage import RecordingShell, installed_recorder, run_recorded
from tests.fixtures.replay import record


def _files(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["path"], f["mode"]): f for f in body["files"]}


def _digest(data: bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def _poked(arr: np.ndarray, byte: int, value: int) -> np.ndarray:
    """A copy of ``arr`` with one raw byte of its buffer set."""
    copy = arr.copy()
    copy.view("u1").reshape(-1)[byte] = value
    return copy


def test_structured_padding_is_not_content() -> None:
    # sklearn's Tree nodes: an aligned struct with 7 padding bytes after an u1 field
    aligned = np.dtype([("flag", "u1"), ("value", "<f8")], align=True)
    plain = np.zeros(3, aligned)
    padded = _poked(plain, 1, 0x79)  # byte 1: padding between flag and value
    assert fingerprint(padded).hash == fingerprint(plain).hash
    assert fingerprint(padded[0]).hash == fingerprint(plain[0]).hash
    changed = _poked(plain, 8, 1)  # byte 8: the first value
    assert fingerprint(changed).hash != fingerprint(plain).hash
    assert fingerprint(changed[0]).hash != fingerprint(plain[0]).hash
    nested = np.zeros(2, [("pairs", aligned, (2,)), ("n", "<i4")])
    assert fingerprint(_poked(nested, 17, 3)).hash == fingerprint(nested).hash
    assert fingerprint(_poked(nested, 16, 3)).hash != fingerprint(nested).hash


def test_long_double_padding_is_not_content() -> None:
    if np.finfo(np.longdouble).nmant != 63 or np.dtype(np.longdouble).itemsize <= 10:
        pytest.skip("no x87 long double with padding here")
    values = np.array([1.5, 2.5], dtype=np.longdouble)
    size = values.itemsize
    assert fingerprint(_poked(values, size - 1, 0x79)).hash == fingerprint(values).hash
    assert fingerprint(_poked(values, 9, 0x40)).hash != fingerprint(values).hash
    assert fingerprint(_poked(values, size - 1, 9)[0]).hash == fingerprint(values[0]).hash
    complex_values = np.array([1 + 2j], dtype=np.clongdouble)
    assert fingerprint(_poked(complex_values, 2 * size - 1, 3)).hash == fingerprint(complex_values).hash
    assert fingerprint(_poked(complex_values, size + 9, 3)).hash != fingerprint(complex_values).hash


@pytest.mark.kernel
def test_a_model_loaded_with_joblib_is_reproduced(tmp_path: Path) -> None:
    # unpickled trees keep allocator leftovers in their node padding: it differed per kernel
    path = record(
        tmp_path / "models.ipynb",
        "import joblib\nfrom sklearn.datasets import load_iris\n"
        "from sklearn.ensemble import RandomForestClassifier\n"
        "X, y = load_iris(return_X_y=True)\n"
        "joblib.dump(RandomForestClassifier(n_estimators=5, random_state=1).fit(X, y), 'rf.joblib')",
        "loaded = joblib.load('rf.joblib')\npred = loaded.predict(X)",
    )
    result = replay(load_log(path))
    assert [s.status for s in result.steps] == ["reproduced", "reproduced"], [
        c.detail for s in result.steps for c in s.causes
    ]
    assert result.exit_code == 0


UPDATES_IN_PLACE = {
    "pandas": "import pandas as pd\ndf = pd.read_csv('a.csv')\ndf['a'] += 1\ndf.to_csv('a.csv', index=False)",
    "open r then w": "text = open('a.csv').read()\nopen('a.csv', 'w').write(text + '3\\n')",
    "r+": "with open('a.csv', 'r+') as f:\n    text = f.read()\n    f.seek(0)\n    f.write(text.upper())",
    "a+": "with open('a.csv', 'a+') as f:\n    f.seek(0)\n    text = f.read()\n    f.write('3\\n')",
    "atomic save": "import os\ntext = open('a.csv').read()\nopen('a.tmp', 'w').write(text + 'x')\n"
                   "os.replace('a.tmp', 'a.csv')",
}


@pytest.mark.parametrize("code", UPDATES_IN_PLACE.values(), ids=UPDATES_IN_PLACE.keys())
def test_a_file_read_then_rewritten_by_the_cell_is_read_as_it_was(
    shell: InteractiveShell, tmp_path: Path, code: str
) -> None:
    # the read used to be hashed after the cell: content the file never had when read
    (tmp_path / "a.csv").write_text("a\n1\n2\n")
    before = _digest((tmp_path / "a.csv").read_bytes())
    body = run_recorded(shell, code)
    seen = _files(body)
    after = _digest((tmp_path / "a.csv").read_bytes())
    assert after != before
    assert seen[("a.csv", "read")]["hash"] == before and seen[("a.csv", "read")]["size"] == 6
    assert seen[("a.csv", "write")]["hash"] == after
    assert body["notes"] == []
    flags = stale_flags(installed_recorder(shell).entries(), FileHasher())
    assert flags.get(body["id"], []) == []  # moved on by itself, as `x = x + 1`
    (tmp_path / "a.csv").write_text("changed elsewhere\n")
    flags = stale_flags(installed_recorder(shell).entries(), FileHasher())
    assert flags[body["id"]] == ["file a.csv changed on disk since read"]


def test_a_file_written_then_read_by_the_cell_is_not_an_input(shell: InteractiveShell, tmp_path: Path) -> None:
    # the read was recorded with the hash after the cell ('two', never what was read) and
    # replay in a folder without the file called the cell's own output a missing input
    body = run_recorded(shell, "open('b.txt', 'w').write('one')\nx = open('b.txt').read()\n"
                               "open('b.txt', 'w').write('two')")
    assert [(f["path"], f["mode"], f["hash"]) for f in body["files"]] == [("b.txt", "write", _digest(b"two"))]
    body = run_recorded(shell, "import numpy as np\nnp.save('a.npy', np.arange(3))\nback = np.load('a.npy')\n"
                               "for i in range(3):\n    with open('log.txt', 'a') as fh:\n        fh.write(str(i))")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("a.npy", "write"), ("log.txt", "write")]


def test_a_file_native_code_reads_then_rewrites_has_no_claimed_content(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    # pyarrow opens the file itself: the read was lost and only the write recorded
    run_recorded(shell, "import pandas as pd\npd.DataFrame({'a': [1, 2]}).to_parquet('p.parquet')")
    body = run_recorded(shell, "p = pd.read_parquet('p.parquet')\np['a'] += 1\np.to_parquet('p.parquet')")
    seen = _files(body)
    read = seen[("p.parquet", "read")]
    assert read["hash"] is None and read["source"] is not None
    assert seen[("p.parquet", "write")]["hash"] == _digest((tmp_path / "p.parquet").read_bytes())
    assert "file p.parquet was read, then overwritten by the cell: its content when read is not known" in body["notes"]
    saved = run_recorded(shell, "p.to_parquet('q.parquet')\nback = pd.read_parquet('q.parquet')")
    assert [(f["path"], f["mode"]) for f in saved["files"]] == [("q.parquet", "write")] and saved["notes"] == []


@pytest.mark.kernel
def test_a_csv_updated_in_place_replays_as_reproduced(tmp_path: Path) -> None:
    path = record(
        tmp_path / "update.ipynb",
        "import pandas as pd\npd.DataFrame({'a': [1, 2]}).to_csv('a.csv', index=False)",
        "df = pd.read_csv('a.csv')\ndf['a'] += 1\ndf.to_csv('a.csv', index=False)",
        "with open('a.csv') as f:\n    text = f.read()\nwith open('a.csv', 'a') as f:\n    f.write('9\\n')",
    )
    result = replay(load_log(path))
    assert [s.status for s in result.steps][:2] == ["reproduced", "reproduced"], [
        c.detail for s in result.steps for c in s.causes
    ]
    assert not any(c.kind for c in result.steps[2].causes)


def test_appending_reads_what_was_there(shell: InteractiveShell, tmp_path: Path) -> None:
    # the appended file's content is what was there plus the line: the first part is an input
    body = run_recorded(shell, "with open('log.txt', 'a') as fh:\n    fh.write('one\\n')")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("log.txt", "write")]  # nothing was there
    body = run_recorded(shell, "import os\nfd = os.open('log.txt', os.O_WRONLY | os.O_APPEND)\n"
                               "os.write(fd, b'two\\n')\nos.close(fd)")
    seen = _files(body)
    assert seen[("log.txt", "read")]["hash"] == _digest(b"one\n")
    assert seen[("log.txt", "read")]["source"] is not None
    assert seen[("log.txt", "write")]["hash"] == _digest(b"one\ntwo\n")


@pytest.mark.kernel
def test_replaying_appends_in_the_recorded_folder_blames_the_file_not_the_handle(tmp_path: Path) -> None:
    # the folder keeps what the recording appended: the first append now reads it
    path = record(
        tmp_path / "appends.ipynb",
        "with open('hist.txt', 'a') as fh:\n    fh.write('1\\n')",
        "with open('hist.txt', 'a') as fh:\n    fh.write('2\\n')",
        "hist = open('hist.txt').read().split()",
        "import random\nwith open('r.txt', 'w') as fh:\n    r = random.random()",
    )
    first, second, reader, unseeded = replay(load_log(path)).steps
    # a handle the cell wrote (closed, uncomparable) is no input: it explains nothing; the
    # unseeded draw does (the random module's state is a recorded value: it was
    # "nondeterministic output: `r`")
    assert [c.kind for c in unseeded.causes] == ["unseeded random state"]
    assert unseeded.causes[0].name == "random (global state)"
    assert [c.text() for c in first.causes] == ["input file changed: hist.txt: read now, not in the recording"]
    assert [c.text() for c in second.causes] == ["upstream divergence: hist.txt written differently at step 1"]
    assert [c.text() for c in reader.causes] == ["upstream divergence: hist.txt written differently at step 2"]
    assert all("could not be compared" not in c.detail for s in (first, second) for c in s.causes)


def test_a_class_attribute_read_through_an_instance_reads_the_class(recording: RecordingShell) -> None:
    recording.run("class Cfg:\n    rate = 1\n    @property\n    def doubled(self):\n        return self.rate * 2\n"
                  "c = Cfg()\nd = Cfg()\nd.rate = 5")
    recording.run("r = c.rate")
    assert [r["name"] for r in recording.body()["reads"]] == ["Cfg", "c"]
    recording.run("own = d.rate")  # d's own value hides the class's
    assert [r["name"] for r in recording.body()["reads"]] == ["d"]
    recording.run("twice = c.doubled")  # code is followed to the globals it names, as before
    assert [r["name"] for r in recording.body()["reads"]] == ["c"]
    recording.run("Cfg.rate = 2")
    flags = stale_flags(recording.rec.entries(), FileHasher())
    assert flags[recording.body(1)["id"]] == [f"input Cfg rewritten by [{recording.body()['execution_count']}]"]
    assert flags.get(recording.body(2)["id"], []) == []


def test_a_closed_file_is_read_exactly_and_an_open_one_is_not(tmp_path: Path) -> None:
    # `with open(...) as f` leaves f closed in the namespace: every such cell was unverifiable
    target = tmp_path / "t.txt"
    with open(target, "w") as written:
        written.write("a\r\n")
    with open(target, "w") as same:
        same.write("other content: not the file object's")
    assert not fingerprint(written).weak and fingerprint(written).hash == fingerprint(same).hash
    with open(target, newline=None) as saw_crlf:
        saw_crlf.read()
    target.write_text("a\n")
    with open(target) as saw_lf:
        saw_lf.read()
    with open(target, "rb") as binary:
        binary.read()
    hashes = {fingerprint(v).hash for v in (written, saw_crlf, saw_lf, binary)}
    assert len(hashes) == 4 and not any(fingerprint(v).weak for v in (saw_crlf, saw_lf, binary))
    with open(tmp_path / "u.txt", "w") as elsewhere:
        pass
    assert fingerprint(elsewhere).hash != fingerprint(written).hash
    opened = open(target)  # noqa: SIM115 - an open file is not a value
    assert fingerprint(opened).weak
    opened.close()
    assert not fingerprint(opened).weak
    opened.note = "x"  # type: ignore[attr-defined]
    assert fingerprint(opened).hash != fingerprint(saw_lf).hash
    with open(target, newline="\n") as fixed:
        fixed.read()
    assert fingerprint(fixed).weak  # its codec's decoder would be asked what it saw


@pytest.mark.kernel
def test_cells_using_with_open_replay_as_reproduced(tmp_path: Path) -> None:
    path = record(
        tmp_path / "files.ipynb",
        "with open('notes.txt', 'w') as f:\n    f.write('hello\\n')",
        "with open('notes.txt') as f:\n    text = f.read()",
        "import gzip\nwith gzip.open('n.gz', 'wt') as g:\n    g.write(text)",
    )
    result = replay(load_log(path))
    assert [s.status for s in result.steps][:2] == ["reproduced", "reproduced"]
    assert any("`g`: an open file or stream" in u for u in result.steps[2].verdict.unverifiable)  # gzip's stream


@pytest.mark.kernel
def test_a_replay_with_only_unverifiable_steps_says_where_to_look_not_a_cause_it_does_not_know(
        tmp_path: Path) -> None:
    path = record(tmp_path / "open.ipynb", "log = open('run.log', 'w')\nlog.write('start\\n')")
    result = replay(load_log(path))
    assert [s.status for s in result.steps] == ["unverifiable"]
    console = Console(record=True, width=200)
    print_replay(result, console)
    lines = console.export_text().splitlines()
    assert any(line.startswith("  ? not compared: `log`") for line in lines), lines
    # the summary once blamed "values with weak fingerprints" whatever the '?' lines said
    assert "1 step: 0 reproduced, 0 diverged, 1 unverifiable (the '? not compared' lines say what could not be " \
           "compared exactly, and why)" in lines, lines


def test_closing_a_file_kept_in_a_name_is_a_write(recording: RecordingShell) -> None:
    recording.run("open('x.txt', 'w').write('a')")
    recording.run("f = open('x.txt')")
    recording.run("t = f.read()\nf.close()")
    closing = recording.body()
    assert [(w["name"], w["mutated"]) for w in closing["writes"]] == [("t", False), ("f", True)]
    recording.run("n = f.name")
    assert recording.body()["reads"][0]["source"] == closing["id"]


def test_native_writes_into_a_folder_the_cell_made_are_recorded(shell: InteractiveShell, tmp_path: Path) -> None:
    # the folder did not exist when the cell's folders were watched: its files went unseen
    body = run_recorded(shell, "import os, pyarrow as pa, pyarrow.parquet as pq\nos.makedirs('out/deep')\n"
                               "pq.write_table(pa.table({'a': [1]}), 'out/deep/t.parquet')")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("out/deep/t.parquet", "write")]
    assert body["files"][0]["hash"] == _digest((tmp_path / "out" / "deep" / "t.parquet").read_bytes())


def test_a_partitioned_dataset_is_read_and_written_file_by_file(shell: InteractiveShell, tmp_path: Path) -> None:
    written = run_recorded(shell, "import pandas as pd\npd.DataFrame({'y': [1, 2], 'v': [3, 4]})"
                                  ".to_parquet('ds', partition_cols=['y'])")
    parts = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "ds").rglob("*.parquet"))
    assert len(parts) == 2
    assert sorted(f["path"] for f in written["files"] if f["mode"] == "write") == parts
    read = run_recorded(shell, "back = pd.read_parquet('ds')")
    assert sorted(f["path"] for f in read["files"] if f["mode"] == "read") == parts
    assert {f["source"] for f in read["files"]} == {written["id"]}


@pytest.mark.kernel
def test_a_native_write_into_a_new_folder_replays_as_reproduced(tmp_path: Path) -> None:
    # the replay's folder already has it: recorded now, the writes were "not in the recording"
    path = record(
        tmp_path / "folders.ipynb",
        "import os, polars as pl\nos.makedirs('pq', exist_ok=True)\npl.DataFrame({'a': [1]}).write_parquet('pq/a.parquet')",
        "back = pl.read_parquet('pq/*.parquet')",
    )
    result = replay(load_log(path))
    assert [s.status for s in result.steps] == ["reproduced", "reproduced"], [
        c.detail for s in result.steps for c in s.causes
    ]


@pytest.mark.kernel
def test_a_cell_reading_back_its_own_file_replays_in_a_clean_folder(tmp_path: Path) -> None:
    path = record(tmp_path / "own.ipynb", "import numpy as np\nnp.save('a.npy', np.arange(3))\nback = np.load('a.npy')")
    (tmp_path / "a.npy").unlink()  # a reviewer's checkout without outputs
    step = replay(load_log(path)).steps[0]
    assert step.status == "reproduced", [c.detail for c in step.verdict.causes]


def test_a_cache_missing_then_written_by_the_cell_is_not_read(shell: InteractiveShell, tmp_path: Path) -> None:
    # the failed open was a "read" of what the cell then wrote there
    code = ("try:\n    cached = open('cache.txt').read()\nexcept FileNotFoundError:\n    cached = 'computed'\n"
            "    open('cache.txt', 'w').write(cached)")
    body = run_recorded(shell, code)
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("cache.txt", "write")] and body["notes"] == []
    body = run_recorded(shell, code)  # now it is there: read, not written
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("cache.txt", "read")]


READ_THEN_OVERWRITTEN = "file {} was read, then overwritten by the cell: its content when read is not known"


def test_a_cache_missing_then_written_by_native_code_is_not_read(shell: InteractiveShell, tmp_path: Path) -> None:
    # pyarrow writes the file itself: the failed Python open was a "read" of what it wrote
    code = ("import pandas as pd\ntry:\n    open('cache.parquet').close()\nexcept FileNotFoundError:\n"
            "    pd.DataFrame({'a': [1]}).to_parquet('cache.parquet')")
    body = run_recorded(shell, code)
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("cache.parquet", "write")] and body["notes"] == []
    body = run_recorded(shell, code)  # now it is there: read, not written
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("cache.parquet", "read")]
    # a Python read, then a native rewrite: what was read is not what is there after
    body = run_recorded(shell, "open('cache.parquet', 'rb').close()\n"
                               "pd.DataFrame({'a': [2]}).to_parquet('cache.parquet')")
    seen = _files(body)
    assert seen[("cache.parquet", "read")]["hash"] is None
    assert seen[("cache.parquet", "write")]["hash"] == _digest((tmp_path / "cache.parquet").read_bytes())
    assert READ_THEN_OVERWRITTEN.format("cache.parquet") in body["notes"]
    # a Python read of what native code just made reads the cell's own output: no input
    body = run_recorded(shell, "pd.DataFrame({'a': [3]}).to_parquet('fresh.parquet')\n"
                               "back = open('fresh.parquet', 'rb').read()")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("fresh.parquet", "write")] and body["notes"] == []


def test_a_native_read_handle_open_while_the_cell_rewrites_the_file_is_a_read(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    # the OS merges the reader's and the writer's opens into one event: only its close after
    # the write (with no open after it) shows a read-only handle was opened before the write
    run_recorded(shell, "import pyarrow as pa, pyarrow.parquet as pq\n"
                        "pq.write_table(pa.table({'a': [1]}), 'h.parquet')")
    body = run_recorded(shell, "f = pa.OSFile('h.parquet', 'rb')\nhead = f.read(4)\n"
                               "pq.write_table(pa.table({'a': [2]}), 'h.parquet')\nf.close()")
    seen = _files(body)
    assert seen[("h.parquet", "read")]["hash"] is None and seen[("h.parquet", "read")]["source"] is not None
    assert seen[("h.parquet", "write")]["hash"] == _digest((tmp_path / "h.parquet").read_bytes())
    assert body["notes"] == [READ_THEN_OVERWRITTEN.format("h.parquet")]
    # a pure rewrite reads nothing
    body = run_recorded(shell, "pq.write_table(pa.table({'a': [3]}), 'h.parquet')")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("h.parquet", "write")] and body["notes"] == []
    # a handle an earlier cell opened and this one closes after its write read nothing in it
    body = run_recorded(shell, "g = pa.OSFile('h.parquet', 'rb')")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("h.parquet", "read")]
    body = run_recorded(shell, "pq.write_table(pa.table({'a': [4]}), 'h.parquet')\ng.close()")
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("h.parquet", "write")]
    assert [n for n in body["notes"] if "h.parquet" in n] == []  # (closing `g`, which nbgov cannot read, is noted)
