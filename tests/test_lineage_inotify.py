"""The inotify wrapper on the real kernel: what is reported, when, and what is not."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbgov.lineage import gil_kept
from nbgov.lineage import inotify as inotify_module
from nbgov.lineage.inotify import MAX_KEPT_WATCHES, SLEEP_MASK, WATCH_MASK, Inotify, open_inotify


@pytest.fixture
def inotify() -> Inotify:
    found = open_inotify()
    assert found is not None, "Linux: inotify is available"
    return found


def test_native_reads_and_writes_are_reported_only_while_awake(inotify: Inotify, tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "in.parquet")
    (tmp_path / "named.txt").write_text("x")
    assert inotify.watch(str(tmp_path))
    inotify.collect()
    pq.read_table(tmp_path / "in.parquet")
    pq.write_table(pa.table({"b": [3]}), tmp_path / "out.parquet")
    os.stat(tmp_path / "named.txt")  # looking at a file is not opening it
    touches, overflow = inotify.collect()
    assert not overflow
    assert {t.name: t.written for t in touches} == {"in.parquet": False, "out.parquet": True}
    inotify.start([])  # a cell that reaches no folder: the awake ones sleep
    pq.read_table(tmp_path / "in.parquet")
    assert inotify.collect() == ([], False), "asleep between cells"
    inotify.watch(str(tmp_path))
    (tmp_path / "named.txt").read_text()
    assert [t.name for t in inotify.collect()[0]] == ["named.txt"]
    inotify.close()


def test_a_file_opened_before_the_cell_and_closed_in_it_is_not_read_by_the_cell(inotify: Inotify, tmp_path: Path) -> None:
    """A library may close a handle later (on an I/O thread, or when its object is
    collected): that close is not an open by the cell it lands in."""
    (tmp_path / "early.txt").write_text("x")
    handle = open(tmp_path / "early.txt", "rb")  # noqa: SIM115 - closed in the "next cell"
    assert inotify.watch(str(tmp_path))
    inotify.collect()
    handle.close()
    assert inotify.collect() == ([], False)
    (tmp_path / "early.txt").read_bytes()  # an open in the cell still is
    assert [(t.name, t.written) for t in inotify.collect()[0]] == [("early.txt", False)]
    inotify.close()


def test_a_flood_of_events_is_reported_as_an_overflow(inotify: Inotify, tmp_path: Path) -> None:
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    inotify.watch(str(tmp_path))
    for i in range(limit // 3 + 200):  # create + open + close-write each
        (tmp_path / f"f{i}").write_bytes(b"")
    touches, overflow = inotify.collect()
    assert overflow and touches
    inotify.close()


def test_a_writer_that_never_pauses_cannot_keep_collect_reading(inotify: Inotify, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``strace -o trace.log`` in the notebook's folder writes a line for each read of the
    inotify descriptor, which queues a new event: collect reads what was queued when it
    began, so it returns, and the cell's own events are all there."""
    assert inotify.watch(str(tmp_path))
    (tmp_path / "data.csv").write_text("a\n1\n")
    (tmp_path / "data.csv").read_text()
    log = open(tmp_path / "trace.log", "ab", buffering=0)  # noqa: SIM115 - closed below
    reads = 0
    plain_read = inotify_module.read_waiting

    def traced_read(fd: int, size: int) -> bytes:
        nonlocal reads
        reads += 1
        if reads > 1000:
            raise AssertionError("collect kept reading the events its own reads caused")
        data = plain_read(fd, size)
        log.write(b"read(...)\n")  # what the tracer writes for this very call
        return data

    monkeypatch.setattr(inotify_module, "read_waiting", traced_read)
    try:
        touches, overflow = inotify.collect()
    finally:
        log.close()
    assert not overflow
    assert reads == 1
    assert {t.name: t.written for t in touches} == {"data.csv": True, "trace.log": True}
    assert gil_kept.queued(inotify.fd) > 0, "the tracer's own lines wait for the next collect"
    inotify.close()


def test_watches_beyond_the_bound_are_removed_oldest_first(inotify: Inotify, tmp_path: Path) -> None:
    folders = [tmp_path / f"d{i}" for i in range(MAX_KEPT_WATCHES + 5)]
    for folder in folders:
        folder.mkdir()
    inotify.start([str(folder) for folder in folders])
    assert len(inotify._folders) == MAX_KEPT_WATCHES  # noqa: SLF001
    assert str(folders[0]) not in inotify._folders.values() and str(folders[-1]) in inotify._folders.values()  # noqa: SLF001
    assert not inotify.watch(str(tmp_path / "missing"))
    inotify.close()


def _kernel_masks(inotify: Inotify) -> list[int]:
    """The masks the kernel holds for this instance's watches (``/proc/self/fdinfo``)."""
    lines = Path(f"/proc/self/fdinfo/{inotify.fd}").read_text().splitlines()
    return [int(part.split(":")[1], 16) for line in lines if line.startswith("inotify")
            for part in line.split() if part.startswith("mask:")]


def test_a_sleeping_watch_still_asks_for_a_rare_file_event_so_waking_it_walks_no_folder(
    inotify: Inotify, tmp_path: Path
) -> None:
    """A watch that starts asking for its files' events makes the kernel mark every entry it
    has cached for the folder (milliseconds in a busy /tmp, growing with it): asleep, it asks
    for attribute changes only, and what that reports between cells is for no cell."""
    assert inotify.watch(str(tmp_path))
    (tmp_path / "a.txt").write_text("x")
    assert [t.name for t in inotify.collect()[0]] == ["a.txt"]
    inotify.start([])  # a cell that reaches no folder: the awake ones sleep
    assert [mask & (WATCH_MASK | SLEEP_MASK) for mask in _kernel_masks(inotify)] == [SLEEP_MASK]
    (tmp_path / "b.txt").write_text("between cells")
    os.chmod(tmp_path / "a.txt", 0o600)  # reported to the sleeping watch
    assert inotify.collect() == ([], False), "what happened between cells is for no cell"
    assert inotify.watch(str(tmp_path))
    assert [mask & WATCH_MASK for mask in _kernel_masks(inotify)] == [WATCH_MASK]
    (tmp_path / "c.txt").write_text("y")
    assert [t.name for t in inotify.collect()[0]] == ["c.txt"]
    inotify.close()


def test_a_folder_the_next_cell_reaches_stays_awake_and_what_happened_between_cells_is_dropped(
    inotify: Inotify, tmp_path: Path
) -> None:
    """The working folder is reached by every cell: it is not put to sleep and woken each
    time (two system calls per cell); what happened there between two cells is read at the
    next start and dropped, and a folder that cell cannot reach sleeps."""
    named = tmp_path / "named"
    named.mkdir()
    inotify.start([str(tmp_path), str(named)])
    (tmp_path / "a.txt").write_text("in the cell")
    (named / "n.txt").write_text("in the cell")
    assert sorted(t.name for t in inotify.collect()[0]) == ["a.txt", "n.txt"]
    (tmp_path / "b.txt").write_text("between cells")
    (named / "m.txt").write_text("between cells")
    inotify.start([str(tmp_path)])
    masks = dict(zip(inotify._folders.values(), _kernel_masks(inotify), strict=True))  # noqa: SLF001
    assert masks[str(tmp_path)] & WATCH_MASK == WATCH_MASK
    assert masks[str(named)] & (WATCH_MASK | SLEEP_MASK) == SLEEP_MASK, "not reachable by this cell: asleep"
    (tmp_path / "c.txt").write_text("in the next cell")
    (named / "o.txt").write_text("asleep")
    assert [t.name for t in inotify.collect()[0]] == ["c.txt"]
    inotify.close()


def test_a_folder_replaced_under_its_name_is_followed_at_the_next_start(inotify: Inotify, tmp_path: Path) -> None:
    """A watch follows the folder, not its name: each start looks the name up again, so a
    folder renamed away and made anew between cells is the one watched."""
    data = tmp_path / "data"
    data.mkdir()
    inotify.start([str(data)])
    inotify.collect()
    data.rename(tmp_path / "old")
    data.mkdir()
    inotify.start([str(data)])
    (data / "new.txt").write_text("x")
    (tmp_path / "old" / "stale.txt").write_text("x")
    assert [t.path for t in inotify.collect()[0]] == [str(data / "new.txt")]
    inotify.close()
