"""Files a cell removes or renames (no ``open`` at all) are writes: the removed path is
recorded as removed, a renamed file's new path with its content, so readers of the old
content are flagged stale and a replay that does not remove it again diverges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import xxhash
from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage import compact
from nbgov.lineage.files import FileHasher
from nbgov.lineage.record import ExecutionRecord, FileAccess, RecordError, parse_entry
from nbgov.lineage.stale import stale_flags
from nbgov.replay.export import openlineage_events, prov_document
from nbgov.replay.graph import build_graph
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.lineage import entry_validator, installed_recorder, run_recorded
from tests.fixtures.replay import record


run = run_recorded
recorder = installed_recorder


def files(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(f["path"], f["mode"]): f for f in body["files"]}


def digest(path: Path) -> str:
    return xxhash.xxh3_128_hexdigest(path.read_bytes())


REMOVALS = {
    "os.remove": "import os\nos.remove('a.txt')",
    "os.unlink": "import os\nos.unlink('a.txt')",
    "Path.unlink": "from pathlib import Path\nPath('a.txt').unlink()",
    "bytes path": "import os\nos.remove(b'a.txt')",
}
RENAMES = {
    "os.rename": "import os\nos.rename('a.txt', 'b.txt')",
    "os.replace": "import os\nos.replace('a.txt', 'b.txt')",
    "shutil.move": "import shutil\nshutil.move('a.txt', 'b.txt')",
    "Path.rename": "from pathlib import Path\nPath('a.txt').rename('b.txt')",
    "Path.replace": "from pathlib import Path\nPath('a.txt').replace(Path('b.txt'))",
}


@pytest.mark.parametrize("code", REMOVALS.values(), ids=REMOVALS.keys())
def test_a_removed_file_is_a_write_recorded_as_removed(shell: InteractiveShell, tmp_path: Path, code: str) -> None:
    (tmp_path / "a.txt").write_text("data")
    body = run(shell, code)
    removed = files(body)[("a.txt", "write")]
    assert removed["removed"] is True and removed["hash"] is None and removed["size"] is None
    assert removed["abspath"] == str(tmp_path / "a.txt")
    entry_validator().validate(recorder(shell).records[-1].raw)


@pytest.mark.parametrize("code", RENAMES.values(), ids=RENAMES.keys())
def test_a_renamed_file_is_two_writes(shell: InteractiveShell, tmp_path: Path, code: str) -> None:
    (tmp_path / "a.txt").write_text("data")
    (tmp_path / "b.txt").write_text("old content, replaced")
    body = run(shell, code)
    seen = files(body)
    assert seen[("a.txt", "write")]["removed"] is True
    moved = seen[("b.txt", "write")]
    assert moved["hash"] == digest(tmp_path / "b.txt") and "removed" not in moved


def test_rmtree_removes_each_file_by_its_full_path(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "x.csv").write_text("1")
    (tmp_path / "d" / "e" / "y.csv").write_text("2")
    body = run(shell, "import shutil\nshutil.rmtree('d')")
    removed = {f["abspath"] for f in body["files"] if f.get("removed")}
    assert removed == {str(tmp_path / "d" / "x.csv"), str(tmp_path / "d" / "e" / "y.csv")}


def test_truncate_and_new_links_are_writes(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    body = run(shell, "import os\nos.truncate('a.txt', 2)\nos.link('a.txt', 'hard.txt')\nos.symlink('a.txt', 'soft.txt')")
    seen = files(body)
    assert seen[("a.txt", "write")]["hash"] == digest(tmp_path / "a.txt")
    assert seen[("hard.txt", "write")]["hash"] == seen[("soft.txt", "write")]["hash"] == digest(tmp_path / "a.txt")


@pytest.mark.parametrize(
    "code",
    [
        "import os, tempfile\nfd, p = tempfile.mkstemp(dir='.')\nos.write(fd, b'x')\nos.close(fd)\nos.remove(p)",
        "import tempfile\nwith tempfile.NamedTemporaryFile(dir='.') as t:\n    t.write(b'x')",
        "import os\nopen('scratch.txt', 'w').write('x')\nos.remove('scratch.txt')",
        "import os\nopen('out.tmp', 'w').write('x')\nos.replace('out.tmp', 'out.txt')",
    ],
    ids=["mkstemp", "NamedTemporaryFile", "write-then-remove", "atomic-write"],
)
def test_a_file_the_cell_made_and_took_away_is_no_claim(shell: InteractiveShell, tmp_path: Path, code: str) -> None:
    """Nothing was there before the cell and nothing is after (often under a random name a
    replay cannot repeat): a write without content, not a removal replay must repeat."""
    body = run(shell, code)
    assert not [f for f in body["files"] if f.get("removed")], body["files"]
    written = {f["path"]: f for f in body["files"] if f["mode"] == "write" and f["hash"]}
    assert set(written) == ({"out.txt"} if "out.txt" in code else set())


def test_a_removal_that_fails_changes_nothing_and_is_not_recorded(shell: InteractiveShell, tmp_path: Path) -> None:
    body = run(shell, "import os\ntry:\n    os.remove('never.txt')\nexcept FileNotFoundError:\n    pass\n"
                      "try:\n    os.rename('never.txt', 'b.txt')\nexcept FileNotFoundError:\n    pass")
    assert body["files"] == []


def test_a_file_read_then_removed_keeps_its_read_and_says_why_it_has_no_hash(
    shell: InteractiveShell, tmp_path: Path
) -> None:
    (tmp_path / "a.txt").write_text("data")
    body = run(shell, "import os\ntext = open('a.txt').read()\nos.remove('a.txt')")
    seen = files(body)
    assert seen[("a.txt", "read")]["hash"] is None and "removed" not in seen[("a.txt", "read")]
    assert seen[("a.txt", "write")]["removed"] is True
    assert any("a.txt was read, then removed or renamed" in note for note in body["notes"])


def test_the_hook_runs_no_user_path_code(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    run(shell, "import os\ncalls = []\nclass P:\n    def __fspath__(self):\n        calls.append(1)\n"
               "        return 'a.txt'\nos.remove(P())")
    assert shell.user_ns["calls"] == [1]  # os.remove's own call, none by nbgov
    assert not (tmp_path / "a.txt").exists()


def test_a_reader_of_a_removed_file_is_stale_because_of_the_removal(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    reader = run(shell, "text = open('a.txt').read()")
    remover = run(shell, "import os\nos.remove('a.txt')")
    reasons = stale_flags(recorder(shell).entries(), FileHasher())[reader["id"]]
    assert reasons == [f"file a.txt removed by [{remover['execution_count']}]"]


def test_removed_is_read_back_exactly_and_old_entries_are_unchanged(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    run(shell, "open('a.txt').read()")
    run(shell, "import os\nos.remove('a.txt')")
    entries = [dict(e.raw) for e in recorder(shell).entries()]
    typed = [parse_entry(e) for e in entries]
    removed = [f for e in typed for f in getattr(e.body, "files", ()) if f.removed]
    assert len(removed) == 1 and removed[0].to_json()["removed"] is True
    # the compact form the notebook carries gives back the exact entry (chain hash intact)
    compactor, lookup = compact.Compactor(), compact.Lookup()
    for entry in entries:
        line = compactor.compact(entry)
        assert compact.expand(line, lookup) == entry
        lookup.add(entry)
    # a file access without the key is as before: not removed, and written without the key
    plain = FileAccess.from_json({"path": "x", "abspath": "/x", "mode": "write", "size": None, "hash": None,
                                  "source": None})
    assert not plain.removed and "removed" not in plain.to_json()


def test_exports_and_the_graph_say_a_file_was_removed(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    run(shell, "import os\nos.remove('a.txt')")
    entries = recorder(shell).entries()
    outputs = openlineage_events("test.ipynb", entries)[-1]["outputs"]
    dropped = [o for o in outputs if o["name"] == str(tmp_path / "a.txt")]
    assert dropped[0]["facets"]["lifecycleStateChange"]["lifecycleStateChange"] == "DROP"
    prov = prov_document("test.ipynb", entries)
    assert prov["entity"][f"file:{tmp_path / 'a.txt'}/removed"]["nbgov:removed"] == "true"
    records = [e.body for e in entries if isinstance(e.body, ExecutionRecord)]
    edges = build_graph(records).edges
    assert [labels for (_, dst), labels in edges.items() if dst.endswith("a.txt")] == [["removes"]]


@pytest.mark.parametrize(
    "data",
    [
        {"removed": "yes"},
        {"removed": True, "hash": "0" * 32, "size": 4},
        {"removed": True, "mode": "read"},
        {"removed": False},
    ],
)
def test_a_removed_marker_that_contradicts_the_entry_is_refused(data: dict[str, Any]) -> None:
    base = {"path": "x", "abspath": "/x", "mode": "write", "size": None, "hash": None, "source": None}
    with pytest.raises(RecordError):
        FileAccess.from_json({**base, **data})


@pytest.mark.kernel
def test_replay_checks_a_removal_like_any_write(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / name).write_text("data")
    path = record(
        tmp_path / "removals.ipynb",
        "import os\nos.remove('a.txt')\nos.rename('c.txt', 'd.txt')",
        "if not os.path.exists('keep'):\n    os.remove('b.txt')",
    )
    for name in ("a.txt", "c.txt"):
        (tmp_path / name).write_text("data")
    (tmp_path / "d.txt").unlink()
    (tmp_path / "keep").touch()  # the second cell will not remove b.txt this time
    (tmp_path / "b.txt").write_text("data")
    result = replay(load_log(path))
    done, skipped = result.steps
    assert done.status == "reproduced", [c.detail for c in done.causes]
    assert skipped.status == "diverged" and "not removed again" in skipped.causes[0].detail
    assert result.exit_code == 1


@pytest.mark.kernel
def test_a_scratch_folder_cleaned_at_the_start_replays_as_reproduced(tmp_path: Path) -> None:
    """``shutil.rmtree(scratch, ignore_errors=True)`` at the top of a notebook found nothing
    when it was recorded and, on replay, the files that run left: the path is absent after
    the step in both runs, so it is a note, not a divergence; a removal that leaves the file
    in place is still one (above)."""
    path = record(
        tmp_path / "scratch.ipynb",
        "import os, shutil\nshutil.rmtree('scratch', ignore_errors=True)\nos.makedirs('scratch')",
        "open('scratch/out.txt', 'w').write('result')",
    )
    assert (tmp_path / "scratch" / "out.txt").exists()  # what the recorded run left
    result = replay(load_log(path))
    clean, write = result.steps
    assert clean.status == "reproduced", [c.detail for c in clean.causes]
    assert [n.kind for n in clean.verdict.notes] == ["absent after the step in both runs"]
    assert "scratch/out.txt: removed now" in clean.verdict.notes[0].detail
    assert write.status == "reproduced" and result.exit_code == 0


NATIVE = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"  # C calls: no Python audit event
NATIVE_REMOVALS = {
    "unlink": NATIVE + "assert libc.unlink(b'a.txt') == 0",
    "rename": NATIVE + "assert libc.rename(b'a.txt', b'b.txt') == 0",
    "pyarrow": "import pyarrow.fs as fs\nfs.LocalFileSystem().delete_file('a.txt')",
}


@pytest.mark.parametrize("code", NATIVE_REMOVALS.values(), ids=NATIVE_REMOVALS.keys())
def test_a_file_native_code_removes_is_recorded_as_removed(shell: InteractiveShell, tmp_path: Path, code: str) -> None:
    """Removed by C code (libc, pyarrow's filesystem), which Python's audit hook never sees:
    the OS's removal event in the watched folder records it as Python's own removal does."""
    (tmp_path / "a.txt").write_text("data")
    body = run(shell, code)
    assert not (tmp_path / "a.txt").exists()
    removed = files(body)[("a.txt", "write")]
    assert removed["removed"] is True and removed["hash"] is None
    assert removed["abspath"] == str(tmp_path / "a.txt")
    if "rename" in code:
        assert files(body)[("b.txt", "write")]["hash"] == digest(tmp_path / "b.txt")
    entry_validator().validate(recorder(shell).records[-1].raw)


def test_a_file_native_code_reads_then_removes_keeps_its_read(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    body = run(shell, NATIVE + "fd = libc.open(b'a.txt', 0)\nassert fd >= 0 and libc.close(fd) == 0\n"
                      "assert libc.unlink(b'a.txt') == 0")
    seen = files(body)
    assert seen[("a.txt", "read")]["hash"] is None and seen[("a.txt", "write")]["removed"] is True
    assert any("a.txt was read, then removed or renamed" in note for note in body["notes"])


def test_a_file_native_code_made_and_removed_is_no_claim(shell: InteractiveShell, tmp_path: Path) -> None:
    body = run(shell, NATIVE + "fd = libc.open(b'scratch.bin', 0o101, 0o644)\nassert fd >= 0\n"
                      "assert libc.write(fd, b'x', 1) == 1 and libc.close(fd) == 0\nassert libc.unlink(b'scratch.bin') == 0")
    assert not [f for f in body["files"] if f.get("removed")], body["files"]


def test_a_python_removal_seen_by_both_watches_is_one_removal(shell: InteractiveShell, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("data")
    body = run(shell, "import os\nos.remove('a.txt')")
    assert [(f["path"], f["mode"], f.get("removed")) for f in body["files"]] == [("a.txt", "write", True)]
