"""The one stale rule: golden cases, and the incremental tracker agreeing with itself."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.record import (
    ExecutionRecord,
    FileAccess,
    Fingerprint,
    LogEntry,
    ModelUse,
    Read,
    SessionInfo,
    SqlStatement,
    TableUse,
    Write,
)
from nbgov.lineage.stale import StaleTracker, stale_cells, stale_flags
from nbgov.lineage.store import ZERO_HASH, make_entry

GOLDEN = json.loads((Path(__file__).parent / "golden" / "stale_cases.json").read_text())["cases"]
SESSION = "a" * 32


def _fp(hash_: str) -> Fingerprint:
    return Fingerprint("int", None, True, "weak") if hash_ == "weak" else Fingerprint("int", hash_)


def expand(runs: list[dict[str, Any]]) -> list[LogEntry]:
    """Golden runs as typed entries; sources are the last writers, as the recorder records them."""
    entries = [_entry(0, SessionInfo(SESSION, "2026-01-01T00:00:00Z", None, "3.11", "linux"))]
    last_var: dict[str, str] = {}
    last_file: dict[str, str] = {}
    last_model: dict[str, str] = {}
    for count, run in enumerate(runs, start=1):
        rid = f"{SESSION}:{count}"
        models = tuple(
            ModelUse(m["name"], m["version"], m["sha"], None, None,
                     last_model.get(f"{m['name']}@{m['version']}") if m["role"] != "output" else None, m["role"])
            for m in run.get("models", [])
        )
        files = tuple(
            FileAccess(f["path"], f"/nb/{f['path']}", f["mode"], 1, f["hash"],
                       last_file.get(f"/nb/{f['path']}") if f["mode"] == "read" else None)
            for f in run.get("files", [])
        )
        record = ExecutionRecord(
            session=SESSION, execution_count=count, cell_id=run.get("cell"), code="", code_hash="",
            started="", duration_s=0.0, status="ok",
            reads=tuple(Read(n, _fp(h), last_var.get(n)) for n, h in run.get("reads", {}).items()),
            writes=tuple(Write(n, _fp(h)) for n, h in run.get("writes", {}).items()),
            deletes=tuple(run.get("deletes", [])), files=files, models=models, sql=_sql(run.get("tables", [])),
        )
        entries.append(_entry(count, record))
        for name in run.get("writes", {}):
            last_var[name] = rid
        for name in run.get("deletes", []):
            last_var.pop(name, None)
        last_file.update({f.abspath: rid for f in files if f.mode == "write"})
        last_model.update({m.key: rid for m in models if m.role == "output"})
        for gone in (m.key for m in models if m.role == "dropped"):
            last_model.pop(gone, None)
    return entries


def _sql(tables: list[dict[str, Any]]) -> tuple[SqlStatement, ...]:
    if not tables:
        return ()
    uses = tuple(
        TableUse(t["name"], t["mode"], "database",
                 None if t["mode"] == "read" else (_fp(t["hash"]) if t["hash"] else Fingerprint("table", None, True)))
        for t in tables
    )
    return (SqlStatement("-- golden", "other", tables=uses),)


def _entry(seq: int, body: ExecutionRecord | SessionInfo) -> LogEntry:
    raw = make_entry(seq, ZERO_HASH, "execution" if isinstance(body, ExecutionRecord) else "session", body.to_json())
    return LogEntry(seq, ZERO_HASH, raw["hash"], body, raw)


class Disk:
    """Hashes of files now, as the golden case says."""

    def __init__(self, hashes: dict[str, str | None]) -> None:
        self.hashes = {f"/nb/{path}": h for path, h in hashes.items()}

    def hash(self, abspath: str) -> tuple[int | None, str | None]:
        now = self.hashes.get(abspath, "unchanged")
        return (None, None) if now is None else (1, now)


def _by_count(flags: dict[str, list[str]]) -> dict[str, list[str]]:
    return {rid.rsplit(":", 1)[1]: reasons for rid, reasons in flags.items()}


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_case(case: dict[str, Any]) -> None:
    entries = expand(case["runs"])
    disk = Disk(case["disk"]) if "disk" in case else None
    assert _by_count(stale_flags(entries, disk)) == case["flags"]
    tracker = StaleTracker(entries)
    if disk is not None:
        tracker.check_files(disk)
    for count, reasons in case.get("reasons", {}).items():
        assert tracker.reasons(f"{SESSION}:{count}") == reasons
    # the same answer from stored JSON (sidecar lines), loaded once into typed entries
    assert _by_count(stale_flags([e.raw for e in entries], disk)) == case["flags"]


def test_golden_cases_cover_every_kind_of_reason() -> None:
    texts = " | ".join(r for case in GOLDEN for reasons in case["flags"].values() for r in reasons)
    for phrase in ("rewritten by", "deleted by", "comes from stale", "changed on disk", "is gone",
                   "model churn changed", "model churn@1 dropped by", "file a.csv rewritten",
                   "table scored rewritten"):
        assert phrase in texts


def test_stale_cells_name_the_cell_of_each_flagged_run() -> None:
    entries = expand(GOLDEN[6]["runs"])  # staleness flows downstream
    assert stale_cells(entries) == {"B": ["input base rewritten by [4]"], "C": ["input mid comes from stale [2]"]}


def random_runs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """A plausible history: rewrites (often with equal content), deletes, files, models, cells re-run."""
    names, paths, cells = ["a", "b", "c", "df", "x"], ["in.csv", "out.parquet"], list("ABCDEFG")
    versions = {"churn": 1}
    runs: list[dict[str, Any]] = []
    for _ in range(n):
        run: dict[str, Any] = {"cell": rng.choice(cells)}
        run["reads"] = {name: rng.choice(["h1", "h2", "weak"]) for name in rng.sample(names, rng.randint(0, 2))}
        run["writes"] = {name: rng.choice(["h1", "h2", "weak"]) for name in rng.sample(names, rng.randint(0, 2))}
        if rng.random() < 0.05:
            run["deletes"] = [rng.choice(names)]
        run["files"] = [{"path": p, "mode": rng.choice(["read", "write"]), "hash": rng.choice(["f1", "f2"])}
                        for p in rng.sample(paths, rng.randint(0, 1))]
        if rng.random() < 0.3:
            mode = rng.choice(["read", "write"])
            run["tables"] = [{"name": "t", "mode": mode, "hash": rng.choice(["t1", "t2", None])}]
        if rng.random() < 0.2:
            change = rng.random()
            creating, dropping = change < 0.3, 0.3 <= change < 0.4
            versions["churn"] += creating
            run["models"] = [{"name": "churn", "version": versions["churn"], "sha": f"m{versions['churn']}",
                              "role": "output" if creating else "dropped" if dropping else "input"}]
        runs.append(run)
    return runs


@pytest.mark.parametrize("seed", range(10))
def test_asking_after_every_entry_agrees_with_judging_the_whole_log_at_once(seed: int) -> None:
    rng = random.Random(seed)
    entries = expand(random_runs(rng, rng.randint(30, 90)))
    tracker = StaleTracker()
    seen_stale = False
    for k, entry in enumerate(entries, start=1):
        tracker.add(entry)
        disk = Disk({"in.csv": "f2" if (k // 5) % 2 else "f1", "out.parquet": "f1"})  # the disk moves too
        if rng.random() < 0.5:
            tracker.flags()  # memoise before the disk check, so the check must drop what it changes
        tracker.check_files(disk)
        fresh = StaleTracker(entries[:k])
        fresh.check_files(disk)
        assert tracker.flags() == fresh.flags(), f"seed {seed}, after {k} entries"
        seen_stale = seen_stale or bool(fresh.flags())
    assert seen_stale, "the generated history makes something stale, so the check has teeth"


def test_entries_arriving_out_of_order_are_judged_in_log_order() -> None:
    entries = expand(random_runs(random.Random(99), 50))
    shuffled = entries[:]
    random.Random(7).shuffle(shuffled)
    tracker = StaleTracker(shuffled[:30])
    for entry in shuffled[30:]:
        tracker.add(entry)
    assert tracker.flags() == stale_flags(entries)
    assert len(tracker.entries) == len(entries)


def test_malformed_entries_are_skipped_not_fatal() -> None:
    entries = [e.raw for e in expand(GOLDEN[0]["runs"])]
    broken = dict(entries[2], body=dict(entries[2]["body"], reads="nope"))
    assert _by_count(stale_flags([entries[0], entries[1], broken, entries[3]])) == {}
    assert _by_count(stale_flags(entries)) == {"2": ["input x rewritten by [3]"]}


def test_a_long_chain_is_judged_without_recursion_limits() -> None:
    runs = [{"cell": "c0", "writes": {"v0": "h"}}]
    runs += [{"cell": f"c{i}", "reads": {f"v{i - 1}": "h"}, "writes": {f"v{i}": "h"}} for i in range(1, 5000)]
    runs.append({"cell": "c0", "writes": {"v0": "changed"}})
    flags = stale_flags(expand(runs))
    assert len(flags) == 4999
    assert flags[f"{SESSION}:5000"] == ["input v4998 comes from stale [4999]"]


@pytest.mark.parametrize("with_cell_ids", [True, False])
def test_a_chain_run_again_with_equal_content_costs_each_run_once_not_its_whole_past(
    with_cell_ids: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook run again in the same folder rewrites every variable with equal content: each
    rewrite must re-judge its readers only, not everything judged downstream of them."""
    cells = 300

    def chain() -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = [{"writes": {"v0": "h"}}]
        runs += [{"reads": {f"v{i - 1}": "h"}, "writes": {f"v{i}": "h"}} for i in range(1, cells)]
        if with_cell_ids:
            for i, run in enumerate(runs):
                run["cell"] = f"c{i}"
        return runs

    change = {"writes": {"v0": "changed"}, **({"cell": "c0"} if with_cell_ids else {})}
    *entries, changing = expand(chain() + chain() + chain() + [change])
    judged = 0
    judge = StaleTracker._judge

    def counting(self: StaleTracker, i: int) -> Any:
        nonlocal judged
        judged += 1
        return judge(self, i)

    monkeypatch.setattr(StaleTracker, "_judge", counting)
    tracker = StaleTracker()
    for entry in entries:
        tracker.add(entry)
        assert tracker.flags() == {}  # equal content: nothing is stale
    assert judged <= 3 * len(entries), f"{judged} judgements for {len(entries)} entries"
    tracker.add(changing)
    assert len(tracker.flags()) == (cells - 1 if with_cell_ids else 3 * (cells - 1))


# -- recorded paths read where the notebook is now (nbgov.lineage.placement) -----------------

def _moved_log(recorded: Path, cwd: Path | None = None) -> list[LogEntry]:
    """A session recorded with its notebook in ``recorded`` (cells run in ``cwd``) that read
    ``in.txt`` there (hash "h1")."""
    where = cwd or recorded
    session = SessionInfo(SESSION, "", str(recorded / "nb.ipynb"), "3.11", "linux", cwd=str(where))
    read = ExecutionRecord(session=SESSION, execution_count=1, cell_id="c1", code="", code_hash="", started="",
                           duration_s=0.0, status="ok",
                           files=(FileAccess("in.txt", str(where / "in.txt"), "read", 1, "h1"),))
    return [_entry(0, session), _entry(1, read)]


class PathDisk:
    """Hashes of files now by absolute path; any other path is gone."""

    def __init__(self, hashes: dict[Path, str]) -> None:
        self.hashes = {str(path): h for path, h in hashes.items()}

    def hash(self, abspath: str) -> tuple[int | None, str | None]:
        now = self.hashes.get(abspath)
        return (None, None) if now is None else (1, now)


def test_a_copied_folder_is_checked_in_the_copy_not_where_it_was_recorded(tmp_path: Path) -> None:
    from nbgov.lineage.placement import relocated

    original, copy = tmp_path / "original", tmp_path / "copy"
    copy.mkdir()
    entries = _moved_log(original)
    edited = PathDisk({original / "in.txt": "h1", copy / "in.txt": "h2"})
    assert _by_count(stale_flags(relocated(entries, copy / "nb.ipynb"), edited)) == {
        "1": ["file in.txt changed on disk since read"]}
    pristine_without_original = PathDisk({copy / "in.txt": "h1"})
    assert stale_flags(relocated(entries, copy / "nb.ipynb"), pristine_without_original) == {}
    # the folder it was recorded in: nothing moves
    assert relocated(entries, original / "nb.ipynb") == entries


def test_a_notebook_written_elsewhere_by_run_o_reads_the_folder_its_cells_ran_in(tmp_path: Path) -> None:
    """`nbgov run NB -o out/NB.ipynb`: the cells ran in NB's folder, the log sits in out/."""
    from nbgov.lineage.placement import place, relocated

    recorded, now = tmp_path / "then", tmp_path / "now"
    (now / "out").mkdir(parents=True)
    entries = _moved_log(recorded / "out", cwd=recorded)
    session = entries[0].session
    placement = place(session, now / "out" / "nb.ipynb")
    assert placement.folder == now and placement.note is None
    assert placement.locate(str(recorded / "out" / "x.csv")) == now / "out" / "x.csv"
    assert placement.locate("/elsewhere/x.csv") == Path("/elsewhere/x.csv")
    assert _by_count(stale_flags(relocated(entries, now / "out" / "nb.ipynb"), PathDisk({now / "in.txt": "h2"}))) == {
        "1": ["file in.txt changed on disk since read"]}
    # the notebook alone, without the folder its cells ran in (../work): its own folder stands
    # in, and says so
    work = _moved_log(recorded / "out", cwd=recorded / "work")[0].session
    alone = tmp_path / "alone"
    alone.mkdir()
    fallback = place(work, alone / "nb.ipynb")
    assert fallback.folder == alone and fallback.note is not None and "is not at" in fallback.note
    assert fallback.locate(str(recorded / "work" / "in.txt")) == alone / "in.txt"


@pytest.mark.kernel
def test_the_sidebar_stale_map_checks_an_earlier_session_in_the_copied_folder(tmp_path: Path) -> None:
    """The kernel's whole-sidecar flags (what the sidebar shows at open) place earlier
    sessions' files where they are now, as `nbgov show` and replay do."""
    import shutil

    from nbgov.lineage.journal import Journal
    from nbgov.lineage.store import SidecarStore, sidecar_path
    from tests.fixtures.replay import recorded_copy

    copy = recorded_copy(tmp_path, "changed\n").parent
    original = tmp_path / "original"
    journal = Journal(str(copy / "nb.ipynb"), SidecarStore(sidecar_path(copy / "nb.ipynb")))
    try:
        assert ["file in.txt changed on disk since read"] in journal.stale().values()
    finally:
        journal.close()
    shutil.rmtree(original)
    (copy / "in.txt").write_text("alpha\n")
    journal = Journal(str(copy / "nb.ipynb"), SidecarStore(sidecar_path(copy / "nb.ipynb")))
    try:
        assert journal.stale() == {}
    finally:
        journal.close()
