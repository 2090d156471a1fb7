"""fanotify beside inotify: which process touched a watched folder's files (real OS calls),
the recorder's rules for sharing a file with another process, and the signs of a cell's
child processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.fanotify import Fanotify, Origin, Origins, open_fanotify
from nbgov.lineage.file_origins import own_touches
from nbgov.lineage.inotify import (IN_CLOSE_NOWRITE, IN_CLOSE_WRITE, IN_CREATE, IN_DELETE, IN_ISDIR, IN_MODIFY,
                                   IN_OPEN, Inotify, Touch)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify and fanotify are Linux's")

WROTE = IN_OPEN | IN_MODIFY | IN_CLOSE_WRITE
READ = IN_OPEN | IN_CLOSE_NOWRITE


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Inotify, Fanotify, Path]]:
    folder = Path(os.path.realpath(tmp_path))
    inotify, fanotify = Inotify(), open_fanotify()
    assert fanotify is not None, "fanotify is needed here (Linux 5.13+, not forbidden)"
    inotify.watch(str(folder))
    fanotify.follow(inotify.watches)
    yield inotify, fanotify, folder
    fanotify.close()
    inotify.close()


def test_this_process_and_its_threads_are_told_from_other_processes(watched: tuple[Inotify, Fanotify, Path]) -> None:
    _inotify, fanotify, folder = watched
    (folder / "mine.txt").write_text("m")
    thread = threading.Thread(target=(folder / "thread.txt").write_text, args=("t",))
    thread.start()
    thread.join()
    subprocess.run(["sh", "-c", "echo o > other.txt; cat mine.txt > /dev/null"], cwd=folder, check=True)
    origins = fanotify.collect()
    assert origins.complete
    assert origins.of(str(folder), "mine.txt") == Origin(own=WROTE | IN_CREATE, other=READ)
    assert origins.of(str(folder), "thread.txt") == Origin(own=WROTE | IN_CREATE)
    assert origins.of(str(folder), "other.txt") == Origin(other=WROTE | IN_CREATE)
    assert fanotify.collect().files == {}  # read once


def test_a_folder_replaced_under_its_name_is_followed(watched: tuple[Inotify, Fanotify, Path]) -> None:
    inotify, fanotify, folder = watched
    data = folder / "data"
    data.mkdir()
    inotify.watch(str(data))
    fanotify.follow(inotify.watches)
    data.rename(folder / "old")
    data.mkdir()  # another folder, same name
    inotify.start([str(folder), str(data)])  # a new watch descriptor for the name
    fanotify.follow(inotify.watches)
    fanotify.drop()
    (data / "new.txt").write_text("n")
    assert fanotify.collect().of(str(data), "new.txt") == Origin(own=WROTE | IN_CREATE)


def test_dropped_events_make_every_origin_unknown(watched: tuple[Inotify, Fanotify, Path]) -> None:
    _inotify, fanotify, folder = watched
    limit = int(Path("/proc/sys/fs/fanotify/max_queued_events").read_text())
    for i in range(limit + 10):  # one event each: more than the queue holds
        os.close(os.open(folder / f"f{i}", os.O_CREAT | os.O_WRONLY, 0o600))
    origins = fanotify.collect()
    assert not origins.complete
    assert origins.of(str(folder), "f0") is None


def test_events_of_a_folder_no_longer_followed_are_not_reported(watched: tuple[Inotify, Fanotify, Path]) -> None:
    _inotify, fanotify, folder = watched
    fanotify.follow({})
    (folder / "late.txt").write_text("l")
    assert fanotify.collect().files == {}


# -- the rules (own_touches), on touches as inotify reports them ---------------------------

FOLDER = "/data"


def _touch(name: str, mask: int, read_first: bool = False, opened_first: bool = False) -> Touch:
    return Touch(FOLDER, name, mask, read_first, opened_first)


def _origins(**files: Origin) -> Origins:
    return Origins({(FOLDER, name.replace("_", ".")): origin for name, origin in files.items()}, True)


def _never() -> bool:
    raise AssertionError("asked about child processes though no other process touched a file")


def test_files_only_another_process_touched_are_left_out_and_named() -> None:
    touches = [_touch("a.csv", READ), _touch("b.log", WROTE), _touch("mine.txt", WROTE | IN_CREATE)]
    own = own_touches(touches, _origins(a_csv=Origin(other=READ), b_log=Origin(other=WROTE),
                                        mine_txt=Origin(own=WROTE | IN_CREATE)), lambda: False, FOLDER)
    assert own.touches == [touches[2]]
    assert own.notes == ("not recorded, opened only by another process while the cell ran (the cell started no "
                         "process): a.csv, b.log",)


def test_with_child_processes_possible_everything_stays_and_the_record_says_why() -> None:
    touches = [_touch("out.txt", WROTE | IN_CREATE)]
    own = own_touches(touches, _origins(out_txt=Origin(other=WROTE | IN_CREATE)), lambda: True, "/elsewhere")
    assert own.touches == touches
    assert own.notes == ("recorded as the cell's, though another process opened them while it ran (a process the "
                         "cell started is not told from others): /data/out.txt",)


def test_a_file_the_cell_read_and_another_process_wrote_is_a_read_of_unknown_content() -> None:
    touches = [_touch("data.csv", READ | IN_MODIFY | IN_CLOSE_WRITE, read_first=True, opened_first=True)]
    own = own_touches(touches, _origins(data_csv=Origin(own=READ, other=WROTE)), lambda: False, FOLDER)
    assert own.touches == [_touch("data.csv", READ, read_first=True, opened_first=True)]
    assert own.read_then_changed == {"/data/data.csv"} and own.notes == ()


def test_a_file_both_wrote_stays_written_with_a_note() -> None:
    touches = [_touch("out.csv", WROTE)]
    own = own_touches(touches, _origins(out_csv=Origin(own=WROTE, other=WROTE)), lambda: False, FOLDER)
    assert own.touches == touches and own.read_then_changed == frozenset()
    assert own.notes == ("also written by another process while the cell ran, so what they hold after it may not "
                         "be the cell's alone: out.csv",)


def test_another_processs_read_claims_nothing_for_the_cell() -> None:
    # the cell wrote the file; an indexer opened it before the write: no read by the cell
    touches = [_touch("out.csv", WROTE | IN_CLOSE_NOWRITE, read_first=True, opened_first=True)]
    own = own_touches(touches, _origins(out_csv=Origin(own=IN_MODIFY | IN_CLOSE_WRITE, other=READ)),
                      lambda: False, FOLDER)
    assert own.touches == [_touch("out.csv", IN_MODIFY | IN_CLOSE_WRITE)]
    assert own.notes == () and own.read_then_changed == frozenset()


def test_a_folder_another_process_made_is_not_the_cells() -> None:
    touches = [_touch("part", IN_CREATE | IN_ISDIR), _touch("mine", IN_CREATE | IN_ISDIR)]
    own = own_touches(touches, _origins(part=Origin(own=IN_OPEN, other=IN_CREATE),
                                        mine=Origin(own=IN_CREATE, other=IN_OPEN)), lambda: False, FOLDER)
    assert own.touches == [touches[1]]


def test_unknown_origins_keep_everything_and_ask_nothing() -> None:
    touches = [_touch("a.csv", READ), _touch("gone.txt", IN_DELETE)]
    assert own_touches(touches, None, _never, FOLDER).touches == touches
    assert own_touches(touches, Origins({}, True), _never, FOLDER).touches == touches  # not reported
    incomplete = Origins({(FOLDER, "a.csv"): Origin(other=READ)}, False)
    assert own_touches(touches, incomplete, _never, FOLDER).touches == touches


def test_many_left_out_files_are_counted_past_five() -> None:
    touches = [_touch(f"f{i}.log", WROTE) for i in range(8)]
    own = own_touches(touches, Origins({(FOLDER, t.name): Origin(other=WROTE) for t in touches}, True),
                      lambda: False, FOLDER)
    assert own.touches == [] and own.notes[0].endswith("f0.log, f1.log, f2.log, f3.log, f4.log and 3 more")


# -- child processes: in a fresh interpreter, so that this test process's own children
# (kernels, a Spark JVM other tests started) do not count --------------------------------

CHILDREN = """
import os, subprocess, sys
from nbgov.lineage import files
from nbgov.lineage.child_processes import ChildWatch
files._active.append(files.FileWatcher())  # a cell is watched: spawns are counted
files._ensure_hook()
watch = ChildWatch.start()
print(watch.possible())
{action}
print(watch.possible())
"""


@pytest.mark.parametrize(("action", "after"), [
    ("pass", False),
    ("subprocess.run(['true'])", True),  # started through Python: an audit event
    ("import ctypes; ctypes.CDLL(None).system(b'true')", True),  # by native code: its CPU time is added
    # one alive (started before the cell: a Spark JVM, say); it ends with this interpreter
    ("child = subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'], stdin=subprocess.PIPE, "
     "stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); watch = ChildWatch.start()", True),
])
def test_the_signs_of_child_processes(action: str, after: bool) -> None:
    out = subprocess.run([sys.executable, "-c", CHILDREN.format(action=action)], capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    assert out.split() == ["False", str(after)]


def test_a_failing_fanotify_costs_the_origins_only_once(recording: Any) -> None:
    recording.run("x = 1").raise_error()
    origins = recording.rec._native._origins
    assert origins is not None
    with open(os.devnull, "rb") as null:  # the group's descriptor now answers nothing it asks
        os.dup2(null.fileno(), origins.fd)
    recording.run("open('out.txt', 'w').write('o')").raise_error()
    body = recording.body()
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("out.txt", "write")]
    assert len(body["notes"]) == 1 and body["notes"][0].startswith("which process opened a file cannot be told any "
                                                                    "more (OSError: ")
    recording.run("open('two.txt', 'w').write('t')").raise_error()
    body = recording.body()
    assert [(f["path"], f["mode"]) for f in body["files"]] == [("two.txt", "write")] and body["notes"] == []
