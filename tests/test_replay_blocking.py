"""A step that read a FIFO, a device or a socket: replay names it and stops before running it,
never waiting out --timeout; the recorder keeps such a read (with no content) and says why."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage.placement import Placement
from nbgov.lineage.record import ExecutionRecord, FileAccess
from nbgov.replay import blocking
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.lineage import run_recorded
from tests.fixtures.replay import invoke, record

TIMEOUT = 8  # --timeout of the replays below: a run that waited it out failed to stop first
CELLS = ("text = open('in.txt').read()", "n = len(text)", "after = 1")


def flat(text: str) -> str:
    """Output without whitespace: the terminal's width may wrap a long path anywhere."""
    return "".join(text.split())


def timed_replay(path: Path) -> tuple[float, int, str]:
    """(seconds, exit code, output) of `nbgov replay PATH --timeout TIMEOUT`."""
    t0 = time.perf_counter()
    result = invoke("replay", path, "--timeout", TIMEOUT)
    return time.perf_counter() - t0, result.exit_code, result.output


def recorded_reading_in_txt(tmp_path: Path) -> Path:
    (tmp_path / "in.txt").write_text("hello\n")
    return record(tmp_path / "nb.ipynb", *CELLS)


# -- the check itself: stat only, never an open ------------------------------------------------

def test_what_blocks_is_told_by_stat_alone(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    (tmp_path / "linked").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock"))
        assert blocking.blocking_kind(tmp_path / "sock") == ("a socket", "it holds no file's content", None, False)
    fifo = ("a FIFO (named pipe)", "opening it waits for a writer")
    assert blocking.blocking_kind(tmp_path / "pipe") == (*fifo, None, False)
    assert blocking.blocking_kind(tmp_path / "link") == (*fifo, str(tmp_path / "pipe"), True)
    assert blocking.blocking_kind(tmp_path / "linked" / "pipe") == (*fifo, str(tmp_path / "pipe"), False)
    assert blocking.blocking_kind(Path("/dev/null"))[:1] == ("a character device",)  # type: ignore[index]
    for other in ("file", "folder", "dangling", "missing"):
        assert blocking.blocking_kind(tmp_path / other) is None, other
    assert blocking.blocking_kind(Path("bad\0name")) is None


def test_reads_and_fifo_writes_are_looked_at_and_named_as_the_cell_named_them(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    def access(path: str, mode: str) -> FileAccess:
        return FileAccess(path, str(tmp_path / path), mode)  # type: ignore[arg-type]
    def step(*accesses: FileAccess) -> ExecutionRecord:
        return ExecutionRecord(session="s" * 32, execution_count=1, cell_id="c", code="", code_hash="h",
                               started="", duration_s=0.0, status="ok", files=accesses)
    # a write to a device takes the write (or fails) at once: only a FIFO's open waits
    record_ = step(access("/dev/null", "write"), access("missing", "read"), access("pipe", "read"))
    found = blocking.first_blocking(record_, Placement(None, tmp_path))
    assert found is not None and found.file is record_.files[2]
    assert found.text() == "pipe is a FIFO (named pipe): opening it waits for a writer"
    written = blocking.first_blocking(step(access("pipe", "write")), Placement(None, tmp_path))
    assert written is not None and written.text() == "pipe is a FIFO (named pipe): opening it to write waits for a reader"
    assert blocking.first_blocking(record_, Placement(None, tmp_path), lambda f: f.path == "pipe") is None
    through = blocking.BlockingInput(record_.files[2], "sub/pipe", *found_kind(tmp_path / "pipe"))
    assert through.text() == "sub/pipe is a FIFO (named pipe): opening it waits for a writer"
    folder = blocking.BlockingInput(record_.files[2], "sub/pipe", "a FIFO (named pipe)", "w", "/x/pipe", False)
    assert folder.text() == "sub/pipe (through a symlinked folder: /x/pipe) is a FIFO (named pipe): w"


def found_kind(path: Path) -> tuple[str, str, str | None, bool]:
    found = blocking.blocking_kind(path)
    assert found is not None
    return found


# -- replay on real kernels ----------------------------------------------------------------------

@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_fifo_where_a_file_was_read_stops_the_replay_at_once(tmp_path: Path) -> None:
    """Before: the step ran, its open waited for a writer until --timeout, then the next steps
    ran on. Now the step is not run: one line names the file and what it is, exit 1 (what the
    step read is not what was recorded: a divergence, "input file changed")."""
    path = recorded_reading_in_txt(tmp_path)
    (tmp_path / "in.txt").unlink()
    os.mkfifo(tmp_path / "in.txt")
    seconds, code, output = timed_replay(path)
    assert code == 1, output
    assert seconds < TIMEOUT / 2, (seconds, output)
    assert "Timeout" not in output
    assert flat("stopped at step 1 of 3: in.txt is a FIFO (named pipe): opening it waits for a writer; "
                "step 1 was not run, nor the 2 after it") in flat(output)
    assert flat("first divergence: step 1 ([1]): input file changed: in.txt is a FIFO (named pipe)") in flat(output)
    result = replay(load_log(path), timeout=TIMEOUT)
    assert [s.status for s in result.steps] == ["diverged"] and result.steps[0].replay_record is None
    assert result.exit_code == 1 and result.stopped is not None
    assert invoke("replay", path, "--allow-unverifiable").exit_code == 1  # not run: no flag makes it pass
    html = tmp_path / "report.html"
    assert invoke("replay", path, "--report", html).exit_code == 1
    assert ("Stopped at step 1 of 3: in.txt is a FIFO (named pipe): opening it waits for a writer"
            in html.read_text(encoding="utf-8"))


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_symlink_to_a_fifo_is_named_with_where_it_leads(tmp_path: Path) -> None:
    """Hostile: in.txt is a link, not itself a FIFO. The link is followed to see what it leads
    to (stat, no open) and the line says it is a link and where it points."""
    path = recorded_reading_in_txt(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.mkfifo(elsewhere / "pipe")
    (tmp_path / "in.txt").unlink()
    (tmp_path / "in.txt").symlink_to(elsewhere / "pipe")
    seconds, code, output = timed_replay(path)
    assert code == 1, output
    assert seconds < TIMEOUT / 2, (seconds, output)
    assert flat(f"stopped at step 1 of 3: in.txt is a symlink to {elsewhere / 'pipe'}, which is a FIFO "
                "(named pipe): opening it waits for a writer") in flat(output)


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_later_step_reading_a_device_stops_there_after_the_earlier_ones_ran(tmp_path: Path) -> None:
    """A character device (here /dev/null, through a link) gives no file's content: the step
    would run and read nothing. The steps before it are replayed and reproduce; it is not run."""
    (tmp_path / "in.txt").write_text("hello\n")
    path = record(tmp_path / "nb.ipynb", "first = 1", *CELLS)
    (tmp_path / "in.txt").unlink()
    (tmp_path / "in.txt").symlink_to("/dev/null")
    result = replay(load_log(path), timeout=TIMEOUT)
    assert [s.status for s in result.steps] == ["reproduced", "diverged"]
    assert result.steps[1].replay_record is None and result.exit_code == 1
    assert result.stopped == ("in.txt is a symlink to /dev/null, which is a character device: reading it waits "
                              "for input or gives no file's content; step 2 was not run, nor the 2 after it")


def fed_fifo(folder: Path, name: str = "pipe", data: str = "hi") -> subprocess.Popen[bytes]:
    """A FIFO in ``folder`` and a writer process that feeds it ``data`` once a reader opens it."""
    os.mkfifo(folder / name)
    return subprocess.Popen(["sh", "-c", f"printf {data} > {name}"], cwd=folder)


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_fifo_read_while_recording_is_recorded_and_replay_will_not_run_it(tmp_path: Path) -> None:
    """Before: the recorder dropped a read it could not hash (as a failed open), so the log said
    the cell read nothing, and replay ran it into the FIFO until --timeout."""
    writer = fed_fifo(tmp_path)
    path = record(tmp_path / "nb.ipynb", "text = open('pipe').read()", "n = len(text)")
    assert writer.wait(timeout=30) == 0
    log = load_log(path)
    first = log.execution_records()[0]
    assert [(f.path, f.size, f.hash) for f in first.files if f.mode == "read"] == [("pipe", None, None)]
    assert any("pipe is a FIFO (named pipe), not a file" in note for note in first.notes), first.notes
    assert not [n for n in first.notes if "changed by another process" in n], first.notes
    seconds, code, output = timed_replay(path)
    assert code == 1, output
    assert seconds < TIMEOUT / 2, (seconds, output)
    assert flat("input is no file: pipe is a FIFO (named pipe): opening it waits for a writer; the recording has "
                "no content of it either") in flat(output)
    assert flat("stopped at step 1 of 2") in flat(output)


@pytest.mark.kernel
@pytest.mark.timeout(120)
def test_a_recorded_fifo_read_that_is_a_file_now_is_never_called_reproduced(tmp_path: Path) -> None:
    """The recording has no content for what the cell read from the FIFO: the file there now
    may hold anything, so the step runs but cannot be compared (exit 1 unless allowed)."""
    writer = fed_fifo(tmp_path)
    path = record(tmp_path / "nb.ipynb", "text = open('pipe').read()")
    assert writer.wait(timeout=30) == 0
    (tmp_path / "pipe").unlink()
    (tmp_path / "pipe").write_text("hi")
    result = replay(load_log(path), timeout=TIMEOUT)
    assert [s.status for s in result.steps] == ["unverifiable"]
    assert result.stopped is None
    assert "`pipe` (read): recorded with no content" in result.steps[0].verdict.unverifiable[0]
    assert invoke("replay", path).exit_code == 1
    assert invoke("replay", path, "--allow-unverifiable").exit_code == 0


# -- the recorder, in process ----------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_the_recorder_keeps_a_fifo_read_with_no_content_and_says_why(shell: InteractiveShell,
                                                                     tmp_path: Path) -> None:
    writer = fed_fifo(tmp_path, data="abc")
    body = run_recorded(shell, "got = open('pipe').read()")
    assert writer.wait(timeout=30) == 0
    assert shell.user_ns["got"] == "abc"
    reads = [f for f in body["files"] if f["mode"] == "read"]
    assert [(f["path"], f["size"], f["hash"]) for f in reads] == [("pipe", None, None)]
    # (the writer's open may be noted too: another process opened it while the cell ran)
    assert ("file pipe is a FIFO (named pipe), not a file: what the cell read from it has no content to hash, so "
            "this step cannot be compared or replayed") in body["notes"]
    assert not [n for n in body["notes"] if "changed by another process" in n], body["notes"]
    # a failed open still records nothing: the special case is only what is there
    missing = run_recorded(shell, "try:\n    open('absent.txt')\nexcept FileNotFoundError:\n    pass")
    assert missing["files"] == [] and not [n for n in missing["notes"] if "absent" in n]


@pytest.mark.timeout(60)
def test_the_recorder_says_a_write_went_to_a_fifo(shell: InteractiveShell, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    reader = subprocess.Popen(["sh", "-c", "cat pipe > /dev/null"], cwd=tmp_path)
    body = run_recorded(shell, "with open('pipe', 'w') as sink:\n    sink.write('abc')")
    assert reader.wait(timeout=30) == 0
    writes = [f for f in body["files"] if f["mode"] == "write"]
    assert [(f["path"], f["size"], f["hash"]) for f in writes] == [("pipe", None, None)]
    assert ("file pipe is a FIFO (named pipe), not a file: what the cell wrote to it is kept nowhere nbgov could "
            "hash, so it cannot be compared") in body["notes"]


@pytest.mark.kernel
def test_a_fifo_where_a_step_wrote_a_file_stops_the_replay_at_once(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "open('out.txt', 'w').write('a,b\\n')", "after = 1")
    (tmp_path / "out.txt").unlink()
    os.mkfifo(tmp_path / "out.txt")
    seconds, code, output = timed_replay(path)
    assert code == 1, output
    assert seconds < TIMEOUT / 2, (seconds, output)
    assert flat("stopped at step 1 of 2: out.txt is a FIFO (named pipe): opening it to write waits for a reader; "
                "step 1 was not run, nor the one after it") in flat(output), output
