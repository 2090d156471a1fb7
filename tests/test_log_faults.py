"""The log under faults and hostile folders: symlinks, torn lines, full disks, two kernels,
forged and oversized lines, and a metadata `sidecar` that points away from the real log."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
import xxhash
from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage.store import (
    SidecarRefused,
    SidecarStore,
    canonical_json,
    make_entry,
    read_log,
    sidecar_path,
    verify_chain,
)
from tests.fixtures.kernel import make_notebook
from tests.fixtures.lineage import FullDisk, RecordingShell
from tests.fixtures.replay import invoke, record, run_in_order, sidecar_lines, write_sidecar_lines


def _verify(path: Path, code: int, *args: str) -> str:
    result = invoke("verify", path, *args)
    assert result.exit_code == code, result.output
    return " ".join(result.output.split())


# -- symlinks -------------------------------------------------------------------------

@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlinked_nbgov_folder_is_refused_and_nothing_is_written(tmp_path: Path, dangling: bool) -> None:
    elsewhere = tmp_path / "elsewhere"
    if not dangling:
        elsewhere.mkdir()
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / ".nbgov").symlink_to(elsewhere)
    store = SidecarStore(sidecar_path(tmp_path / "nb" / "a.ipynb"))
    with pytest.raises(SidecarRefused, match=r"\.nbgov is a symlink"):
        store.append("execution", {"code": "secret = 1"})
    assert not elsewhere.exists() or list(elsewhere.iterdir()) == []
    with pytest.raises(SidecarRefused):
        read_log(store.path)


@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlinked_sidecar_is_refused_and_its_target_untouched(tmp_path: Path, dangling: bool) -> None:
    target = tmp_path / "victim.txt"
    if not dangling:
        target.write_text("precious\n")
    (tmp_path / ".nbgov").mkdir()
    sidecar_path(tmp_path / "a.ipynb").symlink_to(target)
    store = SidecarStore(sidecar_path(tmp_path / "a.ipynb"))
    with pytest.raises(SidecarRefused, match="is a symlink"):
        store.append("execution", {"code": "secret = 1"})
    if dangling:
        assert not target.exists()  # a dangling link does not create its target
    else:
        assert target.read_text() == "precious\n"


def test_a_fifo_or_a_hard_link_is_not_used_as_a_sidecar(tmp_path: Path) -> None:
    (tmp_path / ".nbgov").mkdir()
    fifo = sidecar_path(tmp_path / "f.ipynb")
    os.mkfifo(fifo)
    with pytest.raises(SidecarRefused, match="not a regular file"):
        SidecarStore(fifo).append("execution", {})  # refused at once, never blocks
    other = tmp_path / "other.txt"
    other.write_text("x\n")
    os.link(other, sidecar_path(tmp_path / "h.ipynb"))
    with pytest.raises(SidecarRefused, match="hard link"):
        SidecarStore(sidecar_path(tmp_path / "h.ipynb")).append("execution", {})
    assert other.read_text() == "x\n"


def test_the_recorder_warns_once_per_cell_and_the_cell_runs(bare_shell: InteractiveShell, tmp_path: Path,
                                                           capfd: pytest.CaptureFixture[str]) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / ".nbgov").symlink_to(victim)
    bare_shell.run_cell("%load_ext nbgov").raise_error()
    result = bare_shell.run_cell("x = 41 + 1")
    assert result.success and bare_shell.user_ns["x"] == 42
    err = capfd.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("nbgov:")]
    assert len(warnings) == 1 and "symlink" in warnings[0], err
    assert list(victim.iterdir()) == []


def test_verify_names_a_symlinked_sidecar_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nbformat.write(make_notebook("x = 1"), str(path))
    (tmp_path / ".nbgov").mkdir()
    sidecar_path(path).symlink_to("/etc/passwd")
    out = _verify(path, 1)
    assert "sidecar refused" in out and "is a symlink" in out
    assert "root:" not in out


# -- torn lines, full disks, two writers -----------------------------------------------

def test_a_crash_mid_append_is_repaired_by_the_next_append_and_verify_says_so(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "a = 1", "b = a + 1")
    sidecar = sidecar_path(path)
    last = sidecar_lines(path)[-1]["body"]
    sidecar.write_bytes(sidecar.read_bytes() + b'{"body":{"code":"c = 3"')  # killed mid-write
    assert "the next append repairs it" in _verify(path, 0)
    store = SidecarStore(sidecar, background_fsync=False)
    store.append("execution", dict(last, execution_count=99, code="c = 3"))
    store.close()
    kinds = [e["kind"] for e in sidecar_lines(path)]
    assert kinds[-2:] == ["repair", "execution"]
    out = _verify(path, 0)
    assert "a line cut short by a crash was repaired (23 bytes removed" in out
    assert "not delivered to this notebook" in out  # the notebook was saved before the crash


def test_entries_kept_in_memory_during_a_full_disk_are_inconsistent_not_called_tampering(
        tmp_path: Path, recording: RecordingShell) -> None:
    rec = recording.rec
    disk = FullDisk()
    (tmp_path / ".nbgov").mkdir()
    rec.store = SidecarStore(sidecar_path(tmp_path / "test.ipynb"), opener=disk, background_fsync=False)
    entries: list[dict[str, Any]] = []
    rec.subscribe(entries.append)
    recording.run("a = 1")
    disk.full = True
    recording.run("b = a + 1")  # the sidecar cannot be written: chained in memory only
    disk.full = False
    recording.run("c = b + 1")
    path = tmp_path / "test.ipynb"
    nb = make_notebook("a = 1")
    from nbgov.lineage import notebook_meta

    notebook_meta.merge_entries(nb, entries, ".nbgov/test.jsonl")
    nbformat.write(nb, str(path))
    out = _verify(path, 1)  # inconsistent: the notebook holds a record the log cannot show
    assert "notebook metadata: entry 2 (execution [2]) is not in the sidecar (cut from the sidecar since, or " \
           "never written to it: the kernel could not write it, e.g. a full disk)" in out
    assert "deleted" not in out and "reordered" not in out and "inserted" not in out


def _recorded_in_process(tmp_path: Path, recording: RecordingShell, *codes: str) -> Path:
    """test.ipynb recorded by the real recorder in this process, its lineage saved into it."""
    entries: list[dict[str, Any]] = []
    recording.rec.subscribe(entries.append)
    for code in codes:
        assert recording.run(code).success
    recording.rec.store.close()
    path = tmp_path / "test.ipynb"
    nb = make_notebook(*codes)
    from nbgov.lineage import notebook_meta

    notebook_meta.merge_entries(nb, entries, ".nbgov/test.jsonl")
    nbformat.write(nb, str(path))
    return path


def test_an_emptied_or_cut_down_sidecar_fails_verify_naming_the_missing_entries(
        tmp_path: Path, recording: RecordingShell) -> None:
    """Metadata entries a present sidecar lacks (its last lines deleted, or emptied) make the
    lineage inconsistent: verify exits 1 naming them, and replay refuses what verify fails."""
    from nbgov.replay.replayer import ReplayError, require_verified

    path = _recorded_in_process(tmp_path, recording, "a = 1", "b = a + 1", "c = b + 1")
    sidecar = sidecar_path(path)
    lines = sidecar.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4
    sidecar.write_bytes(b"".join(lines[:3]))  # the last line deleted
    out = _verify(path, 1)
    assert "notebook metadata: entry 3 (execution [3]) is not in the sidecar (cut from the sidecar since" in out
    sidecar.write_bytes(b"".join(lines[:2]))  # cut down to the session and the first execution
    out = _verify(path, 1)
    assert "notebook metadata: entries 2-3 are not in the sidecar (cut from the sidecar since" in out
    with pytest.raises(ReplayError, match="entries 2-3 are not in the sidecar"):
        require_verified(path, unverified=False)

    sidecar.write_bytes(b"")  # emptied
    out = _verify(path, 1)
    assert "lineage intact" not in out
    assert "the sidecar .nbgov/test.jsonl holds no entries" in out
    assert "notebook metadata: entries 0-3 are not in the sidecar" in out
    strict = _verify(path, 1, "--require-sidecar")
    assert "the sidecar .nbgov/test.jsonl holds no entries (--require-sidecar)" in strict
    with pytest.raises(ReplayError, match="are not in the sidecar"):
        require_verified(path, unverified=False)


def test_an_empty_sidecar_beside_a_notebook_without_lineage_is_not_intact(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    nbformat.write(make_notebook("x = 1"), str(path))
    (tmp_path / ".nbgov").mkdir()
    sidecar_path(path).write_bytes(b"")
    result = invoke("verify", path)
    assert result.exit_code == 2 and "no lineage recorded" in result.output and "holds no entries" in result.output
    assert "holds no entries (--require-sidecar)" in _verify(path, 1, "--require-sidecar")


@pytest.mark.kernel
def test_two_kernels_on_one_notebook_are_not_called_tampering(tmp_path: Path) -> None:
    path = tmp_path / "shared.ipynb"
    nbformat.write(make_notebook("a = 1", "b = 2"), str(path))
    run_in_order(path, [0])
    nb = nbformat.read(str(path), as_version=4)
    run_in_order(path, [1])  # a second kernel appends to the same sidecar
    nbformat.write(nb, str(path))  # ... but this notebook was saved by the first one only
    out = _verify(path, 0)
    assert "not delivered to this notebook" in out
    assert "deleted" not in out and "reordered" not in out


# -- forged and oversized lines -----------------------------------------------------------

def _sidecar_with(tmp_path: Path, *extra: bytes) -> Path:
    path = tmp_path / "nb.ipynb"
    nbformat.write(make_notebook("x = 1"), str(path))
    store = SidecarStore(sidecar_path(path), background_fsync=False)
    store.append("session", {"session": "s"})
    store.append("execution", {"code": "x = 1"})
    store.close()
    with open(sidecar_path(path), "ab") as fh:
        for line in extra:
            fh.write(line + b"\n")
    return path


def test_a_forged_huge_sequence_number_is_named_quickly(tmp_path: Path) -> None:
    forged = canonical_json(make_entry(10**12, "0" * 32, "execution", {"code": "boom"}))
    path = _sidecar_with(tmp_path, forged)
    started = time.perf_counter()
    out = _verify(path, 1)
    assert time.perf_counter() - started < 5
    assert "entries 2-999999999999 missing (deleted)" in out


def test_deep_nesting_megabyte_lines_and_garbage_exit_1_not_2(tmp_path: Path) -> None:
    deep = b'{"seq":2,"body":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    huge = canonical_json(make_entry(2, "0" * 32, "execution", {"code": "y" * 3_000_000}))
    path = _sidecar_with(tmp_path, deep, huge, b"\x00\xff garbage \x1b[2J")
    out = _verify(path, 1)
    assert "line 3: not a JSON entry (corrupted)" in out
    assert "line 5: not a JSON entry (corrupted)" in out
    assert "\x1b" not in out and "\\x1b[2J" not in out  # the garbage itself is not echoed


def test_entries_of_the_wrong_shape_are_named(tmp_path: Path) -> None:
    bad_kind = dict(make_entry(2, "0" * 32, "execution", {}), kind="note")
    bad_seq = dict(make_entry(2, "0" * 32, "execution", {}), seq=-4)
    assert [p.message for p in verify_chain([bad_kind, bad_seq])] == [
        "entry at position 0: malformed (unknown kind 'note')",
        "entry at position 1: malformed (seq is not a non-negative integer)",
    ]
    body_wrong = canonical_json(make_entry(2, "0" * 32, "execution", {"code": 1}))
    path = _sidecar_with(tmp_path)
    entries = sidecar_lines(path)
    forged = make_entry(2, entries[-1]["hash"], "execution", {"code": "x", "session": "s"})
    write_sidecar_lines(path, [*entries, forged])
    assert "entry 2: not an execution record" in _verify(path, 1)
    assert body_wrong  # an execution body that is not a record is named, not a crash


def _rechained(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with every link and hash recomputed the way a forger would, with Python's
    lenient json (which writes NaN and Infinity; nbgov's own encoder refuses them)."""
    prev = "0" * 32
    for seq, entry in enumerate(entries):
        entry.update(seq=seq, prev=prev)
        entry.pop("hash", None)
        text = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        entry["hash"] = prev = xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))
    return entries


def _forge_everywhere(path: Path, entries: list[dict[str, Any]], schema: str = "nbgov.notebook/2") -> None:
    """Sidecar and notebook metadata both rewritten to ``entries`` (whole entries: valid lines
    in either metadata form), so the two agree and every hash matches."""
    write_sidecar_lines(path, entries)
    nb = nbformat.read(str(path), as_version=4)
    log: list[Any] = [json.dumps(e) for e in entries] if schema == "nbgov.notebook/2" else entries
    nb.metadata["nbgov"] = {"schema": schema, "sidecar": ".nbgov/test.jsonl", "log": log}
    for cell in nb.cells:
        cell.metadata.pop("nbgov", None)
    nbformat.write(nb, str(path))


def _one_line_error(command: list[str], path: Path) -> str:
    result = invoke(command[0], path, *command[1:])
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("nbgov: error: "), result.output
    assert "NBGOV_DEBUG" not in lines[0]  # an NbgovError's own line, not an internal exception's
    return lines[0]


READERS = [["show"], ["show", "--json"], ["graph"], ["export", "--format", "prov"],
           ["export", "--format", "openlineage"]]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_in_a_rehashed_log_fails_verify_and_every_reader_says_so_in_one_line(
        tmp_path: Path, recording: RecordingShell, bad: float) -> None:
    """The log is strict JSON: a consistent chain holding NaN is corrupted, not intact."""
    path = _recorded_in_process(tmp_path, recording, "a = 1", "b = a + 1")
    entries = sidecar_lines(path)
    entries[2]["body"]["duration_s"] = bad
    _forge_everywhere(path, _rechained(entries))
    word = json.dumps(bad)
    out = _verify(path, 1)
    assert f"sidecar: line 3: {word} is not a JSON number (forged or corrupted)" in out
    assert f"notebook metadata: metadata log[2] (entry 2): {word} is not a JSON number" in out
    for command in READERS:
        assert f"corrupted sidecar (line 3: {word} is not a JSON number" in _one_line_error(command, path)
    sidecar_path(path).unlink()  # the notebook alone, in the old metadata form nbformat reads NaN in
    _forge_everywhere(path, entries, schema="nbgov.notebook/1")
    sidecar_path(path).unlink()
    assert "log[2]: entry holds NaN or an infinity, which is not a JSON number" in _verify(path, 1)
    for command in READERS:
        assert "entry holds NaN or an infinity" in _one_line_error(command, path)


def test_a_duration_no_cell_could_take_fails_verify_and_export_says_so_in_one_line(
        tmp_path: Path, recording: RecordingShell) -> None:
    path = _recorded_in_process(tmp_path, recording, "a = 1", "b = a + 1")
    entries = sidecar_lines(path)
    entries[2]["body"]["duration_s"] = 1e300  # a JSON number, but 1e300 seconds overflow any time
    _forge_everywhere(path, _rechained(entries))
    assert "entry 2: not an execution record (RecordError: execution: 'duration_s' must be between 0 and " \
           "1e+09 seconds, got 1e+300)" in _verify(path, 1)
    for command in READERS:
        assert "'duration_s' must be between 0 and 1e+09 seconds" in _one_line_error(command, path)


# -- the metadata's `sidecar` ---------------------------------------------------------------

@pytest.mark.kernel
@pytest.mark.parametrize("named", ["/etc/passwd", "../outside/.nbgov/nb.jsonl", ".nbgov/../../x.jsonl",
                                   ".nbgov/sub/x.jsonl", "C:\\x\\y.jsonl"])
def test_a_metadata_sidecar_outside_the_notebooks_nbgov_is_named(tmp_path: Path, named: str) -> None:
    path = record(tmp_path / "nb.ipynb", "a = 1")
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["nbgov"]["sidecar"] = named
    nbformat.write(nb, str(path))
    out = _verify(path, 1)
    assert f"notebook metadata: sidecar {named!r}".replace("\\\\", "\\") in out.replace("\\\\", "\\")
    assert "root:" not in out


@pytest.mark.kernel
def test_a_metadata_sidecar_pointing_at_a_forged_log_beside_the_real_one_is_named(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "a = 1", "b = a")
    forged_entries = sidecar_lines(path)
    forged_entries[1]["body"]["code"] = "a = 'forged'"
    prev = forged_entries[0]["hash"]
    for entry in forged_entries[1:]:
        entry["prev"] = prev
        entry["hash"] = make_entry(entry["seq"], prev, entry["kind"], entry["body"])["hash"]
        prev = entry["hash"]
    forged = sidecar_path(path).parent / "forged.jsonl"
    forged.write_text("".join(json.dumps(e) + "\n" for e in forged_entries))
    nb = nbformat.read(str(path), as_version=4)
    nb.metadata["nbgov"] = {**nb.metadata["nbgov"], "sidecar": ".nbgov/forged.jsonl",
                            "log": [json.dumps(e) for e in forged_entries]}  # whole entries: valid lines
    nbformat.write(nb, str(path))
    out = _verify(path, 1)
    assert "names sidecar '.nbgov/forged.jsonl', but the notebook's own .nbgov/nb.jsonl exists" in out


@pytest.mark.kernel
def test_a_renamed_notebook_is_verified_against_the_sidecar_its_metadata_names(tmp_path: Path) -> None:
    path = record(tmp_path / "Untitled.ipynb", "a = 1")
    renamed = path.rename(tmp_path / "analysis.ipynb")
    out = _verify(renamed, 0)
    assert "names sidecar '.nbgov/Untitled.jsonl' (the notebook was renamed" in out
    assert "2 entries: 1 session, 1 execution" in out


@pytest.mark.kernel
def test_require_sidecar_fails_when_it_is_missing(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "a = 1")
    sidecar_path(path).unlink()
    assert "checked the metadata's own chain only" in _verify(path, 0)
    assert "no sidecar at .nbgov/nb.jsonl (--require-sidecar)" in _verify(path, 1, "--require-sidecar")
