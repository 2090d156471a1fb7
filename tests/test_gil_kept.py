"""The recorder's per-cell system calls made keeping the GIL: the same results and errors
as the os and fcntl calls they stand for."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from nbgov.lineage import gil_kept


def test_getcwd_is_os_getcwd_even_for_undecodable_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    odd = os.fsencode(str(tmp_path)) + b"/caf\xe9 \xff folder"  # not UTF-8: surrogate-escaped, as os does
    os.mkdir(odd)
    monkeypatch.chdir(os.fsdecode(odd))
    assert gil_kept.getcwd() == os.getcwd()
    assert os.fsencode(gil_kept.getcwd()) == odd


def test_getcwd_of_a_removed_folder_raises_as_os_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with pytest.raises(FileNotFoundError):
        gil_kept.getcwd()


def test_size_and_write_all_append(tmp_path: Path) -> None:
    path = tmp_path / "log"
    path.write_bytes(b"first\n")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        assert gil_kept.size(fd) == 6
        data = b"x" * 300_000 + b"\n"
        gil_kept.write_all(fd, data)
        assert gil_kept.size(fd) == os.fstat(fd).st_size == 6 + len(data)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"first\n" + data


def test_write_errors_raise_oserror(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "read-only", os.O_RDONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError) as raised:
            gil_kept.write_all(fd, b"no")
        assert raised.value.errno == errno.EBADF
        with pytest.raises(OSError):
            gil_kept.size(-1)
    finally:
        os.close(fd)


def test_a_lock_held_elsewhere_is_waited_for(tmp_path: Path) -> None:
    """Another open file description holds the lock: ``lock`` waits (the blocking call)
    and gets it once released, as fcntl.flock would."""
    path = tmp_path / "log"
    path.write_bytes(b"")
    holder = os.open(path, os.O_RDWR)
    waiter = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        got = threading.Event()

        def take() -> None:
            gil_kept.lock(waiter, fcntl.LOCK_EX)
            got.set()

        thread = threading.Thread(target=take)
        thread.start()
        time.sleep(0.2)
        assert not got.is_set()  # still waiting, and this thread still runs (the GIL was released)
        fcntl.flock(holder, fcntl.LOCK_UN)
        assert got.wait(5)
        thread.join(5)
        with pytest.raises(BlockingIOError):
            fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        gil_kept.lock(waiter, fcntl.LOCK_UN)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(holder)
        os.close(waiter)


@pytest.mark.parametrize("libc", ["kept", "none"])
def test_queued_says_what_waits_on_a_descriptor(libc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if libc == "none":
        monkeypatch.setattr(gil_kept, "_LIBC", None)
    read_end, write_end = os.pipe()
    try:
        assert gil_kept.queued(read_end) == 0
        os.write(write_end, b"abc")
        assert gil_kept.queued(read_end) == 3
    finally:
        os.close(read_end)
        os.close(write_end)
    with pytest.raises(OSError):
        gil_kept.queued(read_end)  # closed


def test_threads_each_get_their_own_answers_from_the_reused_buffers(tmp_path: Path) -> None:
    """getcwd and queued reuse a buffer per thread: threads asking at once never read each
    other's answers (each pipe holds a different count; the working folder is shared)."""
    pipes = [os.pipe() for _ in range(4)]
    wrong: list[str] = []
    try:
        for n, (_, write_end) in enumerate(pipes):
            os.write(write_end, b"x" * (n + 1))

        def ask(n: int) -> None:
            for _ in range(2000):
                if gil_kept.queued(pipes[n][0]) != n + 1:
                    wrong.append(f"pipe {n}")
                if gil_kept.getcwd() != os.getcwd():
                    wrong.append("cwd")

        threads = [threading.Thread(target=ask, args=(n,)) for n in range(len(pipes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)
    assert wrong == []


@pytest.mark.parametrize("lstat", ["kept", "none"])
def test_identity_is_what_lstat_says_and_none_for_nothing_there(
    lstat: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if lstat == "none":
        monkeypatch.setattr(gil_kept, "_LSTAT", None)
    else:
        assert gil_kept._LSTAT is not None  # 64-bit Linux with glibc 2.33+: the kept call is the one tested
    data = tmp_path / "data.jsonl"
    data.write_text("x")
    link = tmp_path / "link"
    os.symlink(data, link)
    for path in (data, link, tmp_path):
        info = os.lstat(path)
        assert gil_kept.identity(path) == (info.st_dev, info.st_ino)
    assert gil_kept.identity(link) != gil_kept.identity(data)  # a final link is not followed
    assert gil_kept.identity(tmp_path / "missing") is None
    assert gil_kept.identity(data / "below a file") is None  # ENOTDIR, as lstat's FileNotFound
    replaced = tmp_path / "new"
    replaced.write_text("y")
    before = gil_kept.identity(data)
    os.replace(replaced, data)
    assert gil_kept.identity(data) not in (None, before)
