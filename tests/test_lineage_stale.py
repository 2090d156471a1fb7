"""Incremental stale tracking must agree with the full recomputation, entry by entry."""

from __future__ import annotations

import random
from typing import Any

import pytest

from nbgov.lineage.stale import StaleTracker, stale_records

NAMES = ["a", "b", "c", "df", "model_in", "x"]
FILES = ["/data/in.csv", "/data/out.parquet", "/data/extra.json"]
MODELS = ["churn", "price"]


def _fp() -> dict[str, Any]:
    return {"kind": "int", "hash": None, "weak": False, "summary": ""}


def random_log(rng: random.Random, n: int, sessions: int = 2) -> list[dict[str, Any]]:
    """A plausible sidecar: sessions of executions whose reads name their last writer, with
    rewrites, deletes, files read and written, models used and created, re-used execution
    counts (silent re-runs) and an occasional dangling or foreign source."""
    entries: list[dict[str, Any]] = []
    seq = 0
    for s in range(sessions):
        session = f"s{s}"
        entries.append({"seq": seq, "kind": "session", "body": {"session": session}})
        seq += 1
        last_writer: dict[str, str] = {}
        versions = {m: 1 for m in MODELS}
        count = 0
        for _ in range(n):
            if rng.random() > 0.1:
                count += 1  # otherwise the execution count repeats: same record id twice
            rid = f"{session}:{count}"
            reads = []
            for name in rng.sample(NAMES, rng.randint(0, 3)):
                source = last_writer.get(name)
                if rng.random() < 0.05:
                    source = rng.choice([None, "elsewhere:1", f"{session}:{count + 1}"])
                reads.append({"name": name, "fingerprint": _fp(), "source": source})
            writes = [
                {"name": name, "fingerprint": _fp(), "mutated": rng.random() < 0.3}
                for name in rng.sample(NAMES, rng.randint(0, 2))
            ]
            deletes = [name for name in NAMES if rng.random() < 0.02]
            files = [
                {"path": path.rsplit("/", 1)[1], "abspath": path, "mode": rng.choice(["read", "write"]),
                 "size": 1, "hash": "h", "source": None}
                for path in rng.sample(FILES, rng.randint(0, 2))
            ]
            models, sql = [], []
            for model in rng.sample(MODELS, rng.randint(0, 1)):
                if rng.random() < 0.3:
                    versions[model] += 1
                    sql.append({"statement": "create model", "kind": "create_model",
                                "models": [f"{model}@{versions[model]}"]})
                sha = "shaX" if rng.random() < 0.05 else f"sha{versions[model]}"
                models.append({"name": model, "version": versions[model], "sha256": sha, "source": None})
            body = {"id": rid, "session": session, "execution_count": count, "reads": reads,
                    "writes": writes, "deletes": deletes, "files": files, "models": models, "sql": sql}
            entries.append({"seq": seq, "kind": "execution", "body": body})
            seq += 1
            for w in writes:
                last_writer[w["name"]] = rid
            for name in deletes:
                last_writer.pop(name, None)
    return entries


@pytest.mark.parametrize("seed", range(12))
def test_incremental_equals_full_recomputation_after_every_entry(seed: int) -> None:
    rng = random.Random(seed)
    log = random_log(rng, n=rng.randint(20, 80))
    tracker = StaleTracker()
    for k, entry in enumerate(log, start=1):
        tracker.add(entry)
        assert tracker.stale() == stale_records(log[:k], now_files=False), f"seed {seed}, after {k} entries"
    assert tracker.stale(), "the generated log makes something stale, so the check has teeth"


def test_out_of_order_entries_are_judged_as_a_sorted_log() -> None:
    log = random_log(random.Random(99), n=40)
    shuffled = log[:]
    random.Random(7).shuffle(shuffled)
    tracker = StaleTracker(shuffled[:30])
    for entry in shuffled[30:]:
        tracker.add(entry)
    assert tracker.stale() == stale_records(log, now_files=False)
    assert tracker.entries and len(tracker.entries) == len(log)


def test_staleness_flows_downstream_when_an_upstream_input_is_rewritten_later() -> None:
    def run(count: int, reads: dict[str, str | None], writes: list[str]) -> dict[str, Any]:
        body = {"id": f"s:{count}", "execution_count": count,
                "reads": [{"name": n, "source": src} for n, src in reads.items()],
                "writes": [{"name": n} for n in writes]}
        return {"seq": count, "kind": "execution", "body": body}

    tracker = StaleTracker([run(1, {}, ["base"]), run(2, {"base": "s:1"}, ["mid"]), run(3, {"mid": "s:2"}, ["out"])])
    assert tracker.stale() == {}
    tracker.add(run(4, {}, ["base"]))
    assert tracker.stale() == {
        "s:2": ["input base rewritten by [4]"],
        "s:3": ["input mid comes from stale [2]"],
    }
    tracker.add(run(5, {}, ["base"]))
    assert tracker.stale()["s:2"] == ["input base rewritten by [5]"], "the latest rewrite is named"
