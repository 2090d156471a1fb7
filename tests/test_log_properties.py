"""Properties of append and verify under random truncations, edits and interleavings."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbgov.lineage.notebook_meta import NotebookLineage
from nbgov.lineage.store import SidecarStore, malformation, read_log, verify_chain
from nbgov.replay.verify import VerifyResult, check_metadata

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)


def _body(i: int, text: str, writer: int = 0) -> dict[str, Any]:
    return {"session": f"s{writer}", "execution_count": i, "code": text, "writer": writer}


def _fresh(tmp_path: Path, name: str, bodies: list[dict[str, Any]]) -> SidecarStore:
    path = tmp_path / ".nbgov" / name
    path.unlink(missing_ok=True)
    store = SidecarStore(path, background_fsync=False)
    for body in bodies:
        store.append("execution", body)
    return store


@FAST
@given(codes=st.lists(texts, min_size=1, max_size=8), cut=st.floats(0, 1), more=texts)
def test_any_truncation_leaves_a_valid_prefix_and_the_next_append_heals_it(
        tmp_path: Path, codes: list[str], cut: float, more: str) -> None:
    store = _fresh(tmp_path, "trunc.jsonl", [_body(i, c) for i, c in enumerate(codes)])
    store.close()
    data = store.path.read_bytes()
    size = int(len(data) * cut)
    store.path.write_bytes(data[:size])
    read = read_log(store.path)
    assert read.problems == [] and verify_chain(read.entries) == []
    assert read.torn_tail == size - (data[:size].rfind(b"\n") + 1)
    again = SidecarStore(store.path, background_fsync=False)
    again.append("execution", _body(99, more))
    healed = read_log(store.path)
    assert healed.problems == [] and healed.torn_tail == 0 and verify_chain(healed.entries) == []
    assert healed.entries[: len(read.entries)] == read.entries  # nothing complete was lost
    repairs = [e for e in healed.entries if e["kind"] == "repair"]
    lost_only_newline = size < len(data) and data[size:size + 1] == b"\n" and read.torn_tail > 0
    if lost_only_newline:  # the whole entry was there: completed, not cut
        assert repairs == [] and len(healed.entries) == len(read.entries) + 2
    else:
        assert len(repairs) == (1 if read.torn_tail else 0)
    assert healed.entries[-1]["body"]["code"] == more
    again.close()


@FAST
@given(codes=st.lists(texts, min_size=2, max_size=6), where=st.floats(0, 1), byte=st.integers(0, 255))
def test_any_one_byte_edit_inside_the_log_is_reported(tmp_path: Path, codes: list[str], where: float,
                                                      byte: int) -> None:
    store = _fresh(tmp_path, "edit.jsonl", [_body(i, c) for i, c in enumerate(codes)])
    store.close()
    data = bytearray(store.path.read_bytes())
    at = int((len(data) - 2) * where)  # any byte but the final newline (cutting it drops the last entry)
    if data[at] == byte:
        byte = (byte + 1) % 256
    data[at] = byte
    store.path.write_bytes(bytes(data))
    read = read_log(store.path)
    assert read.problems or verify_chain(read.entries) or read.torn_tail


@FAST
@given(order=st.lists(st.sampled_from([0, 1, 2]), min_size=1, max_size=24))
def test_two_writers_in_any_interleaving_keep_one_chain_and_their_own_order(
        tmp_path: Path, order: list[int]) -> None:
    """Writers 0 and 1 append; step 2 is a crash that leaves a torn line behind."""
    path = tmp_path / ".nbgov" / "two.jsonl"
    path.unlink(missing_ok=True)
    writers = [SidecarStore(path, background_fsync=False), SidecarStore(path, background_fsync=False)]
    counts = [0, 0]
    for who in order:
        if who == 2:
            with open(path, "ab") as fh:
                fh.write(b'{"body":{"torn')
            continue
        writers[who].append("execution", _body(counts[who], "x", writer=who))
        counts[who] += 1
    for writer in writers:
        writer.close()
    read = read_log(path)
    assert read.problems == [] and verify_chain(read.entries) == []
    assert [e["seq"] for e in read.entries] == list(range(len(read.entries)))
    for who in (0, 1):
        mine = [e["body"]["execution_count"] for e in read.entries
                if e["kind"] == "execution" and e["body"]["writer"] == who]
        assert mine == list(range(counts[who]))


@FAST
@given(n=st.integers(1, 10), data=st.data())
def test_any_subset_of_the_sidecar_delivered_to_the_notebook_is_not_tampering(
        tmp_path: Path, n: int, data: st.DataObject) -> None:
    store = _fresh(tmp_path, "subset.jsonl", [_body(i, f"x = {i}") for i in range(n)])
    entries = read_log(store.path).entries
    store.close()
    delivered = data.draw(st.lists(st.sampled_from(entries), unique_by=lambda e: e["seq"]))
    result = VerifyResult(Path("nb.ipynb"), store.path)
    check_metadata(NotebookLineage(".nbgov/subset.jsonl", log=[dict(e) for e in delivered]), {}, entries, result)
    assert result.problems == []
    assert bool(result.notices) == (len(delivered) < len(entries))
    if delivered:
        forged = dict(delivered[0], body=dict(delivered[0]["body"], code="forged"))
        tampered = VerifyResult(Path("nb.ipynb"), store.path)
        check_metadata(NotebookLineage(".nbgov/subset.jsonl", log=[forged]), {}, entries, tampered)
        assert tampered.problems and "edited" in tampered.problems[0]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3), max_leaves=8)


@FAST
@given(obj=st.dictionaries(st.sampled_from(["seq", "prev", "hash", "kind", "body", "note"]), json_values))
def test_a_json_object_of_the_wrong_shape_is_a_problem_naming_its_line_never_an_entry(
        tmp_path: Path, obj: dict[str, Any]) -> None:
    store = _fresh(tmp_path, "shape.jsonl", [_body(0, "x = 0")])
    store.close()
    before = read_log(store.path).entries
    with open(store.path, "ab") as fh:
        fh.write(json.dumps(obj).encode() + b"\n")
    read = read_log(store.path)
    if malformation(obj) is None:  # an entry's shape: an entry, and verify_chain judges its links
        assert read.problems == [] and read.entries == [*before, obj]
    else:
        assert read.entries == before
        assert [p.message.split(": ")[:2] for p in read.problems] == [["line 2", "not a log entry"]]


@FAST
@given(value=json_values, bad=st.sampled_from([math.nan, math.inf, -math.inf]), code=texts)
def test_nan_or_infinity_anywhere_in_a_rehashed_entry_is_refused_as_corrupted(
        tmp_path: Path, value: Any, bad: float, code: str) -> None:
    """A forger hashing with Python's lenient json still does not get a line past read_log."""
    store = _fresh(tmp_path, "nan.jsonl", [_body(0, code)])
    store.close()
    first = read_log(store.path).entries[0]
    forged: dict[str, Any] = {"seq": 1, "prev": first["hash"], "kind": "execution",
                              "body": {"code": code, "duration_s": [value, {"x": bad}]}}
    text = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    forged["hash"] = xxhash.xxh3_128_hexdigest(text.encode("utf-8", "surrogatepass"))
    with open(store.path, "ab") as fh:
        fh.write(json.dumps(forged, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    read = read_log(store.path)
    assert read.entries == [first]
    assert [p.message for p in read.problems] == [
        f"line 2: {json.dumps(bad)} is not a JSON number (forged or corrupted)"]
