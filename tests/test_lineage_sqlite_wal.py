"""A sqlite database with a WAL beside it is hashed as the file a full checkpoint would leave.

The oracle is sqlite itself: db and WAL are copied to another folder, the copy is
checkpointed (``PRAGMA wal_checkpoint(TRUNCATE)``, then closed), and the effective image
must be that file byte for byte, its hash ``hash_file``'s of it. Real sqlite3 databases,
real WALs; the vectorised checksum is checked against sqlite's loop written word by word.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import xxhash

from nbgov.lineage import files, sqlite_wal
from nbgov.lineage.files import FileHasher
from nbgov.lineage.stale import stale_flags
from tests.fixtures.lineage import RecordingShell

Workload = Callable[[sqlite3.Connection], None]


@pytest.fixture(params=["numpy-4MB-batches", "numpy-one-frame-batches", "python-4MB-batches"])
def batches(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The WAL read a batch of frames at a time as in use, or one frame at a time (so the
    checksum chain crosses batches, and pages are read in pieces smaller than a page); its
    checksums summed with numpy, or in plain Python (a kernel that never imported numpy)."""
    if "one-frame" in request.param:
        monkeypatch.setattr(sqlite_wal, "_BATCH_BYTES", 1)
        monkeypatch.setattr(sqlite_wal, "_READ_BYTES", 5000)
    if request.param.startswith("python"):
        monkeypatch.setattr(sqlite_wal, "_numpy", lambda: None)


def _wal_db(path: Path, page_size: int = 4096) -> sqlite3.Connection:
    """A database in WAL mode that never checkpoints by itself (the WAL keeps every frame)."""
    con = sqlite3.connect(path, isolation_level=None)
    con.execute(f"PRAGMA page_size={page_size}")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("create table t (k integer primary key, v text, b blob)")
    return con


def _commits(con: sqlite3.Connection, n: int = 30, start: int = 0) -> None:
    for i in range(start, start + n):
        con.execute("insert into t values (?, ?, ?)", (i, f"row {i}" * 20, os.urandom(200)))


def _updates_and_deletes(con: sqlite3.Connection) -> None:
    _commits(con, 60)
    con.execute("update t set v = 'changed' where k % 4 = 0")
    con.execute("delete from t where k % 5 = 0")


def _index(con: sqlite3.Connection) -> None:
    _commits(con, 40)
    con.execute("create index tv on t (v)")
    _commits(con, 5, start=100)


def _vacuum(con: sqlite3.Connection) -> None:
    _commits(con, 80)
    con.execute("delete from t where k < 70")
    con.execute("vacuum")  # rewrites the database through the WAL, smaller than the file


def _overflow(con: sqlite3.Connection) -> None:
    for i in range(6):
        con.execute("insert into t values (?, 'big', ?)", (i, os.urandom(30_000 + 5_000 * i)))
    con.execute("update t set b = ? where k = 2", (os.urandom(70_000),))


def _reused(truncate: bool) -> Workload:
    def workload(con: sqlite3.Connection) -> None:
        _commits(con, 60)
        con.execute(f"PRAGMA wal_checkpoint({'TRUNCATE' if truncate else 'RESTART'})")
        _commits(con, 2, start=200)  # a new WAL header (new salts); a RESTART leaves old frames after it
    return workload


WORKLOADS: dict[str, tuple[Workload, int]] = {
    "commits": (_commits, 4096),
    "updates-deletes": (_updates_and_deletes, 4096),
    "create-index": (_index, 4096),
    "vacuum": (_vacuum, 4096),
    "overflow-1024": (_overflow, 1024),
    "pages-512": (_updates_and_deletes, 512),
    "pages-8192": (_commits, 8192),
    "pages-65536": (_overflow, 65536),
    "restart-reused": (_reused(False), 4096),
    "truncate-reused": (_reused(True), 4096),
}


def _checkpointed(db: Path, folder: Path) -> bytes:
    """The file sqlite leaves when it checkpoints a copy of db and WAL (its own recovery)."""
    folder.mkdir()
    copy = folder / db.name
    shutil.copyfile(db, copy)
    if Path(f"{db}-wal").exists():
        shutil.copyfile(f"{db}-wal", f"{copy}-wal")
    con = sqlite3.connect(copy)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    con.close()
    assert not Path(f"{copy}-wal").exists() or not os.path.getsize(f"{copy}-wal")
    return copy.read_bytes()


def _combined(db: Path) -> str:
    """The digest a database with a WAL had before: one hash of the two files' digests."""
    parts = [files.hash_file(str(db)), f"-wal:{files.hash_file(f'{db}-wal')}"]
    return xxhash.xxh3_128_hexdigest(("database:" + " ".join(parts)).encode())


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_the_effective_image_is_the_file_sqlite_checkpoints(name: str, batches: None, tmp_path: Path) -> None:
    workload, page_size = WORKLOADS[name]
    db = tmp_path / "w.db"
    con = _wal_db(db, page_size)
    workload(con)
    wal = Path(f"{db}-wal")
    assert wal.stat().st_size > 32  # the commits sit in the WAL, not the file
    image = sqlite_wal.image_bytes(str(db))
    expected = _checkpointed(db, tmp_path / "oracle")
    assert image is not None and len(image) == len(expected)
    assert image == expected
    assert files.content_hash(str(db)) == files.hash_file(str(tmp_path / "oracle" / "w.db"))
    assert files.content_hash(str(db)) != files.hash_file(str(db))  # the file alone lacks the commits
    if name == "restart-reused":  # old frames (old salts) follow the new ones and must not count
        assert wal.stat().st_size > 32 + 10 * (page_size + 24)
    con.close()  # checkpoints for real: the same hash
    assert files.hash_file(str(db)) == xxhash.xxh3_128_hexdigest(expected)


def test_a_checkpoint_does_not_change_the_hash(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    con = _wal_db(db)
    _commits(con, 20)
    hasher = FileHasher()
    before = hasher.hash(str(db))[1]
    assert before == files.content_hash(str(db)) != _combined(db)
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")  # in the file now, still in the WAL too
    assert files.content_hash(str(db)) == before
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert os.path.getsize(f"{db}-wal") == 0
    assert hasher.hash(str(db))[1] == files.content_hash(str(db)) == files.hash_file(str(db)) == before
    con.close()
    assert files.hash_file(str(db)) == before


def test_a_transaction_in_progress_is_not_content(batches: None, tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    con = _wal_db(db)
    _commits(con, 200)
    committed = files.content_hash(str(db))
    size = os.path.getsize(f"{db}-wal")
    con.execute("PRAGMA cache_size=5")
    con.execute("begin")
    con.execute("update t set v = 'y' || v")  # every committed page changed, uncommitted
    for i in range(1000, 1400):  # more pages than the cache holds: they spill into the WAL, uncommitted
        con.execute("insert into t values (?, ?, ?)", (i, "x" * 500, os.urandom(500)))
    assert os.path.getsize(f"{db}-wal") > size + 20 * 4096
    assert files.content_hash(str(db)) == committed
    assert xxhash.xxh3_128_hexdigest(_checkpointed(db, tmp_path / "oracle")) == committed
    con.execute("commit")
    assert files.content_hash(str(db)) != committed
    con.close()


def test_different_committed_content_is_a_different_hash(tmp_path: Path) -> None:
    db = tmp_path / "d.db"
    con = _wal_db(db)
    _commits(con, 10)
    before = files.content_hash(str(db))
    con.execute("update t set v = ? where k = 3", ("row 3" * 19 + "row 4",))  # same length, one row
    after = files.content_hash(str(db))
    assert None not in (before, after) and before != after
    assert after == xxhash.xxh3_128_hexdigest(_checkpointed(db, tmp_path / "oracle"))
    con.close()


@pytest.mark.parametrize("where", ["page-of-last-frame", "salt-of-last-frame", "salt-of-middle-frame",
                                   "page-number-zero"])
def test_a_corrupted_frame_and_later_ones_do_not_count_as_sqlite_would_not(
        where: str, batches: None, tmp_path: Path) -> None:
    """A flipped page byte breaks the checksum chain; a salt is not under the checksum, so a
    frame with another salt only fails the salt check (and sqlite's recovery stops there); a
    page number 0 with checksums made valid again only fails that check."""
    db = tmp_path / "k.db"
    con = _wal_db(db)
    _commits(con, 10)
    con.execute("update t set v = 'last' where k = 1")  # the last transaction
    bad = tmp_path / "bad"
    bad.mkdir()
    shutil.copyfile(db, bad / "k.db")
    wal = bytearray(Path(f"{db}-wal").read_bytes())
    frames = (len(wal) - 32) // (4096 + 24)
    if where == "page-of-last-frame":
        wal[-100] ^= 0x01
    elif where == "page-number-zero":
        at = 32 + frames // 2 * (4096 + 24)
        wal[at:at + 4] = bytes(4)
        _rechain(wal, 4096, False)
    else:
        at = 32 + (frames - 1 if where == "salt-of-last-frame" else frames // 2) * (4096 + 24)
        wal[at + 8] ^= 0x01
    Path(f"{bad / 'k.db'}-wal").write_bytes(wal)
    good = files.content_hash(str(db))
    corrupted = files.content_hash(str(bad / "k.db"))
    assert corrupted is not None and corrupted != good
    assert corrupted != _combined(bad / "k.db")  # still the image: the earlier commits count
    assert sqlite_wal.image_bytes(str(bad / "k.db")) == _checkpointed(bad / "k.db", tmp_path / "oracle")
    con.close()


@pytest.mark.parametrize("damage", ["garbage", "magic", "version", "partial-frame", "other-page-size", "tiny"])
def test_a_wal_that_does_not_parse_keeps_the_combined_digest(damage: str, tmp_path: Path) -> None:
    db = tmp_path / "g.db"
    con = _wal_db(db)
    _commits(con, 5)
    wal = bytearray(Path(f"{db}-wal").read_bytes())
    if damage == "garbage":
        wal = bytearray(random.Random(1).randbytes(len(wal)))
    elif damage == "magic":
        wal[0] ^= 0xFF
    elif damage == "version":
        wal[4:8] = (3007001).to_bytes(4, "big")
        wal[24:32] = struct.pack(">2I", *_reference_sum(bytes(wal[:24]), False, (0, 0)))
    elif damage == "partial-frame":
        wal = wal[:-100]
    elif damage == "other-page-size":  # a valid WAL, of a database with 1024-byte pages
        other = _wal_db(tmp_path / "o.db", 1024)
        _commits(other, 5)
        wal = bytearray(Path(f"{tmp_path / 'o.db'}-wal").read_bytes())
        other.close()
    else:
        wal = wal[:10]
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(db, copy / "g.db")
    Path(f"{copy / 'g.db'}-wal").write_bytes(wal)
    con.close()
    assert sqlite_wal.image_digest(str(copy / "g.db")) is None
    assert files.content_hash(str(copy / "g.db")) == _combined(copy / "g.db")


def test_a_wal_with_no_committed_frame_is_the_file_as_it_is(tmp_path: Path) -> None:
    db = tmp_path / "e.db"
    con = _wal_db(db)
    _commits(con, 5)
    con.execute("PRAGMA wal_checkpoint(RESTART)")  # every frame in the file; the next writer restarts the WAL
    con.execute("PRAGMA cache_size=5")
    con.execute("begin")
    for i in range(1000, 1200):
        con.execute("insert into t values (?, ?, ?)", (i, "x" * 500, os.urandom(500)))
    assert os.path.getsize(f"{db}-wal") > 32
    assert files.content_hash(str(db)) == files.hash_file(str(db)) != _combined(db)
    con.execute("rollback")
    con.close()


def _reference_sum(data: bytes, big_endian: bool, start: tuple[int, int]) -> tuple[int, int]:
    """sqlite's ``walChecksumBytes``, one word pair at a time."""
    s0, s1 = start
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for x0, x1 in zip(words[0::2], words[1::2]):
        s0 = (s0 + x0 + s1) & 0xFFFFFFFF
        s1 = (s1 + x1 + s0) & 0xFFFFFFFF
    return s0, s1


def _reference_chain(wal: bytes, page_size: int, big_endian: bool, start: tuple[int, int]) -> list[tuple[int, int]]:
    out = []
    s = start
    for at in range(32, len(wal), page_size + 24):
        s = _reference_sum(wal[at:at + 8], big_endian, s)
        s = _reference_sum(wal[at + 24:at + 24 + page_size], big_endian, s)
        out.append(s)
    return out


def _rechain(wal: bytearray, page_size: int, big_endian: bool) -> None:
    """Rewrite the header's and every frame's checksum as sqlite would have written them."""
    s = _reference_sum(bytes(wal[:24]), big_endian, (0, 0))
    wal[24:32] = struct.pack(">2I", *s)
    for at in range(32, len(wal), page_size + 24):
        s = _reference_sum(bytes(wal[at:at + 8]), big_endian, s)
        s = _reference_sum(bytes(wal[at + 24:at + 24 + page_size]), big_endian, s)
        wal[at + 16:at + 24] = struct.pack(">2I", *s)


@pytest.mark.parametrize("page_size", [512, 4096, 65536])
def test_the_vectorised_checksum_is_sqlites(page_size: int, batches: None, tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    con = _wal_db(db, page_size)
    _overflow(con)
    wal = Path(f"{db}-wal").read_bytes()
    con.close()
    start = struct.unpack(">2I", wal[24:32])
    reference = _reference_chain(wal, page_size, False, start)
    stored = [struct.unpack(">2I", wal[at + 16:at + 24]) for at in range(32, len(wal), page_size + 24)]
    assert reference == stored  # the reference is sqlite's: it reproduces the checksums sqlite wrote
    assert sqlite_wal.frame_checksums(wal[32:], page_size, False, start) == reference
    seed = random.Random(page_size)
    for big_endian in (False, True):
        start = (seed.getrandbits(32), seed.getrandbits(32))
        assert sqlite_wal.frame_checksums(wal[32:], page_size, big_endian, start) == _reference_chain(
            wal, page_size, big_endian, start)


def test_a_big_endian_wal_is_read_as_sqlite_reads_it(batches: None, tmp_path: Path) -> None:
    """The same WAL rewritten with big-endian checksums (magic 0x377f0683), which sqlite accepts."""
    db = tmp_path / "b.db"
    con = _wal_db(db)
    _updates_and_deletes(con)
    wal = bytearray(Path(f"{db}-wal").read_bytes())
    big = tmp_path / "big"
    big.mkdir()
    shutil.copyfile(db, big / "b.db")
    con.close()
    wal[0:4] = (0x377F0683).to_bytes(4, "big")
    _rechain(wal, 4096, True)
    Path(f"{big / 'b.db'}-wal").write_bytes(wal)
    image = sqlite_wal.image_bytes(str(big / "b.db"))
    assert image is not None and image != (big / "b.db").read_bytes()
    assert image == _checkpointed(big / "b.db", tmp_path / "oracle")


def test_hashing_reads_but_never_changes_the_database(tmp_path: Path) -> None:
    """No sqlite connection: one would make a ``-shm`` beside a WAL that has none, and checkpoint
    the WAL away when it closes."""
    db = tmp_path / "r.db"
    con = _wal_db(db)
    _commits(con, 10)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copyfile(db, alone / "r.db")
    shutil.copyfile(f"{db}-wal", f"{alone / 'r.db'}-wal")
    con.close()
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in alone.iterdir()}
    assert files.content_hash(str(alone / "r.db")) == files.hash_file(str(db))
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in alone.iterdir()} == before


def test_hashing_a_wal_does_not_import_numpy_into_the_kernel(tmp_path: Path) -> None:
    """A notebook that never imported numpy does not get it from nbgov (a ``numpy.py``
    beside the notebook would run): the checksums are then summed in plain Python."""
    db = tmp_path / "n.db"
    con = _wal_db(db)
    _commits(con, 10)
    code = ("import sys; from nbgov.lineage import files, sqlite_wal; "
            f"h = files.content_hash({str(db)!r}); print(h, sqlite_wal.image_digest({str(db)!r}) == h, "
            "'numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [files.content_hash(str(db)), "True", "False"]
    con.close()


def test_a_reader_of_a_wal_database_is_not_stale_after_a_checkpoint(recording: RecordingShell) -> None:
    cells = ["import sqlite3",
             "con = sqlite3.connect('shop.db'); con.execute('PRAGMA journal_mode=WAL'); "
             "con.execute('create table t(x)'); con.execute('insert into t values (1),(2)'); con.commit()",
             "con2 = sqlite3.connect('shop.db'); rows = con2.execute('select * from t').fetchall(); con2.close()",
             "con.close()",
             "con3 = sqlite3.connect('shop.db'); rows2 = con3.execute('select * from t').fetchall(); con3.close()"]
    bodies = []
    for code in cells:
        recording.run(code).raise_error()
        bodies.append(recording.body())
        time.sleep(0.05)  # older than the next cell by more than the file system's clock tick
    flags = stale_flags(recording.rec.entries(), FileHasher())
    assert bodies[2]["id"] not in flags, flags[bodies[2]["id"]]
    read = {f["path"]: f["hash"] for f in bodies[2]["files"] if f["mode"] == "read"}
    assert read["shop.db"] == files.hash_file("shop.db")  # checkpointed by cell 4: the same hash
