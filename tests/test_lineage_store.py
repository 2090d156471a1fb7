"""The sidecar store: chained appends, tamper detection, crash and concurrency safety."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from nbgov.errors import LineageError
from nbgov.lineage.store import (
    ZERO_HASH,
    SidecarStore,
    canonical_json,
    entry_hash,
    make_entry,
    read_entries,
    read_log,
    sidecar_path,
    verify_chain,
)
from tests.fixtures.lineage import FullDisk


def _filled(tmp_path: Path, n: int = 6) -> tuple[SidecarStore, list[dict[str, Any]]]:
    store = SidecarStore(tmp_path / ".nbgov" / "nb.jsonl")
    store.append("session", {"session": "s", "n": 0})
    for i in range(1, n):
        store.append("execution", {"n": i, "code": f"x = {i}", "text": "ünïcode ✓"})
    return store, store.entries()


def test_sidecar_path_is_next_to_the_notebook() -> None:
    assert sidecar_path("/data/work/analysis.ipynb") == Path("/data/work/.nbgov/analysis.jsonl")
    assert sidecar_path(Path("rel/x.y.ipynb")) == Path("rel/.nbgov/x.y.jsonl")


def test_append_chains_entries_in_the_documented_format(tmp_path: Path) -> None:
    store, entries = _filled(tmp_path)
    assert [e["seq"] for e in entries] == list(range(6))
    assert entries[0]["prev"] == ZERO_HASH
    for before, after in zip(entries, entries[1:]):
        assert after["prev"] == before["hash"]
    lines = store.path.read_bytes().splitlines()
    for line, entry in zip(lines, entries):
        assert set(entry) == {"seq", "prev", "hash", "kind", "body"}
        assert line == canonical_json(entry)  # one canonical JSON object per line
        assert entry["hash"] == entry_hash(entry)
    assert verify_chain(entries) == []
    assert store.verify() == []
    store.close()


def test_make_entry_hash_is_xxh3_of_canonical_json_without_hash() -> None:
    import xxhash

    entry = make_entry(4, "a" * 32, "execution", {"b": 1, "a": "é"})
    without = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(without, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert entry["hash"] == xxhash.xxh3_128_hexdigest(text)


def test_a_reopened_store_continues_the_chain(tmp_path: Path) -> None:
    store, entries = _filled(tmp_path, 3)
    store.close()
    again = SidecarStore(store.path)
    entry = again.append("execution", {"n": 99})
    assert entry["seq"] == 3 and entry["prev"] == entries[-1]["hash"]
    assert again.verify() == []
    again.close()


def test_unknown_kind_and_non_json_body_are_refused(tmp_path: Path) -> None:
    store = SidecarStore(tmp_path / "s.jsonl")
    with pytest.raises(LineageError, match="unknown entry kind 'note'"):
        store.append("note", {})
    with pytest.raises(TypeError):
        store.append("execution", {"x": object()})
    store.append("execution", {"ok": True})
    assert [e["seq"] for e in store.entries()] == [0]  # nothing half-written by the refusals
    store.close()


def test_verify_names_an_edited_entry(tmp_path: Path) -> None:
    _, entries = _filled(tmp_path)
    entries[3]["body"]["code"] = "x = 'tampered'"
    assert [p.message for p in verify_chain(entries)] == ["entry 3: hash mismatch (edited)"]


def test_verify_names_an_edit_that_rehashes_the_entry(tmp_path: Path) -> None:
    _, entries = _filled(tmp_path)
    entries[2]["body"]["code"] = "forged"
    entries[2]["hash"] = entry_hash(entries[2])  # forger fixes the entry's own hash...
    problems = verify_chain(entries)
    assert [p.seq for p in problems] == [3]  # ...but the next entry's link breaks
    assert "prev hash does not match entry 2" in problems[0].message


def test_verify_names_deleted_reordered_and_inserted_entries(tmp_path: Path) -> None:
    _, e = _filled(tmp_path)
    assert [p.message for p in verify_chain(e[:2] + e[3:])] == ["entry 2 missing (deleted)"]
    assert [p.message for p in verify_chain(e[:1] + e[4:])] == ["entries 1-3 missing (deleted)"]
    assert [p.message for p in verify_chain(e[:3] + [e[4], e[3]] + e[5:])] == [
        "entry 3: appears after entry 4 (reordered)"
    ]
    forged = make_entry(3, e[2]["hash"], "execution", {"n": "forged"})
    assert [p.message for p in verify_chain(e[:3] + [forged] + e[3:])] == [
        "entry 3: duplicate sequence number (inserted)"
    ]
    assert [p.message for p in verify_chain([make_entry(0, "f" * 32, "session", {})])] == [
        "entry 0: prev hash is not the start of a log (inserted)"
    ]


def test_verify_reports_malformed_lines_but_tolerates_a_torn_tail(tmp_path: Path) -> None:
    store, entries = _filled(tmp_path, 3)
    store.close()
    data = store.path.read_bytes()
    store.path.write_bytes(data + b'{"seq": 3, "prev": "ab')  # a crash mid-append
    assert [e["seq"] for e in SidecarStore(store.path).entries()] == [0, 1, 2]
    assert SidecarStore(store.path).verify() == []
    lines = data.splitlines(keepends=True)
    store.path.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]))
    with pytest.raises(LineageError, match="line 2: not a JSON entry"):
        SidecarStore(store.path).entries()
    assert [p.message for p in SidecarStore(store.path).verify()] == ["line 2: not a JSON entry (corrupted)"]


@pytest.mark.parametrize(("line", "problem"), [
    (b'{"note":"x"}', "line 4: not a log entry: missing seq, prev, hash, kind, body (corrupted)"),
    (b'"\\ud800"', "line 4: not a JSON entry (corrupted)"),
    (b'{"seq":Infinity}', "line 4: Infinity is not a JSON number (forged or corrupted)"),
    (b'{"seq":3,"prev":"a","hash":"b","kind":"execution","body":{"d":NaN}}',
     "line 4: NaN is not a JSON number (forged or corrupted)"),
    (b'{"seq":3,"prev":"a","hash":"b","kind":"execution","body":{"d":-1e999}}',
     "line 4: the number -1e999 is out of range (forged or corrupted)"),
    (b'{"seq":3,"prev":"a","hash":"b","kind":"execution","body":[]}',
     "line 4: not a log entry: body is not an object (corrupted)"),
    (b'{"note":"\\udc00","pad":"' + b"x" * 2_000_000 + b'"}',
     "line 4: not a log entry: missing seq, prev, hash, kind, body (corrupted)"),
])
def test_a_line_that_is_not_a_strict_json_entry_is_a_problem_never_an_entry(
        tmp_path: Path, line: bytes, problem: str) -> None:
    """read_log is the one check every reader goes through: no reader meets such a line."""
    store, entries = _filled(tmp_path, 3)
    store.close()
    with open(store.path, "ab") as fh:
        fh.write(line + b"\n")
    read = read_log(store.path)
    assert read.entries == entries
    assert [p.message for p in read.problems] == [problem]
    with pytest.raises(LineageError, match="line 4: "):
        SidecarStore(store.path).entries()


def test_the_writer_never_writes_nan_or_infinity(tmp_path: Path) -> None:
    """Readers refuse them, so the store refuses to write them (nothing is written)."""
    store, entries = _filled(tmp_path, 2)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="not JSON compliant"):
            store.append("execution", {"duration_s": bad})
        with pytest.raises(ValueError, match="not JSON compliant"):
            make_entry(2, entries[-1]["hash"], "execution", {"x": [bad]})
    assert store.entries() == entries and store.verify() == []
    store.close()


def test_append_after_a_torn_line_cuts_it_and_chains_a_repair_entry(tmp_path: Path) -> None:
    import xxhash

    store, entries = _filled(tmp_path, 2)
    store.close()
    torn = b'{"seq": 2, "pr'
    with open(store.path, "ab") as fh:
        fh.write(torn)
    again = SidecarStore(store.path)
    entry = again.append("execution", {"after": "crash"})
    repair = again.entries()[-2]
    assert repair["kind"] == "repair" and repair["seq"] == 2 and repair["prev"] == entries[-1]["hash"]
    assert repair["body"]["cut_bytes"] == len(torn)
    assert repair["body"]["cut_xxh3"] == xxhash.xxh3_128_hexdigest(torn)
    assert repair["body"]["cut_preview"] == torn.decode()
    assert entry["seq"] == 3 and entry["prev"] == repair["hash"]
    assert torn not in store.path.read_bytes()
    assert again.verify() == []
    again.close()


def test_a_last_line_that_lost_only_its_newline_is_completed_not_cut(tmp_path: Path) -> None:
    store, entries = _filled(tmp_path, 3)
    store.close()
    data = store.path.read_bytes()
    store.path.write_bytes(data[:-1])  # the final newline never reached the disk
    again = SidecarStore(store.path)
    entry = again.append("execution", {"n": 3})
    assert entry["seq"] == 3 and entry["prev"] == entries[-1]["hash"]
    assert [e["kind"] for e in again.entries()] == ["session", "execution", "execution", "execution"]
    assert again.verify() == []
    again.close()


def test_a_full_disk_leaves_no_torn_line_and_the_store_recovers(tmp_path: Path) -> None:
    path = tmp_path / ".nbgov" / "nb.jsonl"
    disk = FullDisk(full=True)
    store = SidecarStore(path, opener=disk)
    holder_ok = SidecarStore(path)
    first = holder_ok.append("session", {"s": 1})
    holder_ok.close()
    with pytest.raises(OSError, match="No space left"):
        store.append("execution", {"n": 1})
    assert path.read_bytes() == canonical_json(first) + b"\n"  # the partial line was undone
    disk.full = False
    entry = store.append("execution", {"n": 1})
    assert entry["seq"] == 1 and entry["prev"] == first["hash"]
    assert store.verify() == []
    store.close()


def test_fsync_runs_on_a_background_thread_and_close_stops_it(tmp_path: Path) -> None:
    import threading

    store = SidecarStore(tmp_path / "s.jsonl")
    store.append("session", {})
    name = f"nbgov-fsync:{store.path}"
    assert name in {t.name for t in threading.enumerate() if t.is_alive()}
    store.close()
    assert name not in {t.name for t in threading.enumerate() if t.is_alive()}
    with pytest.raises(LineageError, match="closed"):
        store.append("execution", {})


def _writer(path: str, who: int, count: int, start: Any) -> None:
    start.wait()
    store = SidecarStore(path)
    for i in range(count):
        store.append("execution", {"writer": who, "i": i, "pad": "x" * (i * 37 % 5000)})
    store.close()


def test_two_processes_appending_to_one_sidecar_keep_one_linear_chain(tmp_path: Path) -> None:
    path = tmp_path / ".nbgov" / "shared.jsonl"
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(str(path), w, 150, start)) for w in (1, 2)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    entries, problems = read_entries(path)
    assert problems == []
    assert [e["seq"] for e in entries] == list(range(300))
    assert verify_chain(entries) == []
    for who in (1, 2):
        assert [e["body"]["i"] for e in entries if e["body"]["writer"] == who] == list(range(150))
    interleaved = sum(1 for a, b in zip(entries, entries[1:]) if a["body"]["writer"] != b["body"]["writer"])
    assert interleaved >= 1  # the two writers really did overlap in time


def test_entries_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    assert SidecarStore(tmp_path / "none.jsonl").entries() == []
    assert not (tmp_path / "none.jsonl").exists()  # reading creates nothing


def test_two_stores_in_one_process_share_the_file_safely(tmp_path: Path) -> None:
    a = SidecarStore(tmp_path / "s.jsonl")
    b = SidecarStore(tmp_path / "s.jsonl")
    for i in range(10):
        (a if i % 2 else b).append("execution", {"i": i})
    assert [e["body"]["i"] for e in a.entries()] == list(range(10))
    assert a.verify() == []
    a.close()
    b.close()
    assert os.path.getsize(tmp_path / "s.jsonl") > 0


def test_a_sidecar_removed_between_appends_is_made_again_and_the_chain_goes_on(tmp_path: Path) -> None:
    store, before = _filled(tmp_path, 4)
    os.remove(store.path)
    store.append("execution", {"n": 4, "code": "x = 4"})
    store.append("execution", {"n": 5, "code": "x = 5"})
    after = store.entries()
    assert [e["seq"] for e in after] == [4, 5]
    assert after[0]["prev"] == before[-1]["hash"]  # chained to what was lost, not a fresh log
    assert [str(p) for p in verify_chain(after)] == ["entries 0-3 missing (deleted)"]
    assert len(store.notices) == 1 and "was removed while recording: its 4 entries are lost" in store.notices[0]
    store.close()


def test_a_whole_removed_folder_is_made_again(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path, 2)
    (store.path.parent / "nb.jsonl").unlink()
    store.path.parent.rmdir()
    store.append("execution", {"n": 2})
    assert [e["seq"] for e in store.entries()] == [2]
    store.close()


def test_a_sidecar_replaced_by_another_log_is_appended_to_after_its_own_last_entry(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path, 5)
    other = SidecarStore(tmp_path / "elsewhere" / "nb.jsonl", background_fsync=False)
    other.append("session", {"session": "other"})
    other.close()
    os.replace(other.path, store.path)
    store.append("execution", {"n": 5})
    entries = store.entries()
    assert [e["seq"] for e in entries] == [0, 1] and verify_chain(entries) == []
    assert entries[0]["body"] == {"session": "other"}
    assert len(store.notices) == 1 and "was replaced while recording" in store.notices[0]
    store.close()


def test_a_link_put_in_place_of_the_sidecar_is_refused_not_written_through(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path, 2)
    target = tmp_path / "target.txt"
    target.write_text("keep")
    os.remove(store.path)
    os.symlink(target, store.path)
    with pytest.raises(LineageError, match="symlink"):
        store.append("execution", {"n": 2})
    assert target.read_text() == "keep"
    store.close()


def test_an_unchanged_sidecar_gives_no_notice(tmp_path: Path) -> None:
    store, _ = _filled(tmp_path, 6)
    assert store.notices == []
    store.close()
