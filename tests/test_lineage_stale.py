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
                     last_model.get(f"{m['name']}@{m['version']}") if m["role"] == "input" else None, m["role"])
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
                   "model churn changed", "file a.csv rewritten", "table scored rewritten"):
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
            creating = rng.random() < 0.3
            versions["churn"] += creating
            run["models"] = [{"name": "churn", "version": versions["churn"], "sha": f"m{versions['churn']}",
                              "role": "output" if creating else "input"}]
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
