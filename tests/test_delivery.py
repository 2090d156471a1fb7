"""Kernel → frontend lineage delivery, checked on the wire of a real ipykernel."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from nbgov.lineage import delivery
from tests.fixtures.kernel import kernel_env

pytestmark = pytest.mark.kernel

TIMEOUT = 60


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[BlockingKernelClient]:
    """A real python3 kernel in a temp folder, notebook path set as jupyter_server would."""
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=kernel_env(tmp_path / "analysis.ipynb"), cwd=str(tmp_path))
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _until_idle(kc: BlockingKernelClient, msg_id: str) -> list[dict[str, Any]]:
    """Every iopub message caused by request ``msg_id``, up to its idle status."""
    seen: list[dict[str, Any]] = []
    while True:
        msg = kc.get_iopub_msg(timeout=TIMEOUT)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return seen


def _execute(kc: BlockingKernelClient, code: str) -> list[dict[str, Any]]:
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:  # skip kernel_info replies from startup
        reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    return _until_idle(kc, msg_id)


def _entry_comms(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries delivered on short-lived nbgov.lineage comms (checking each was closed)."""
    opened = {
        m["content"]["comm_id"]: m["content"]["data"]
        for m in messages
        if m["msg_type"] == "comm_open" and m["content"]["target_name"] == delivery.ENTRY_TARGET
    }
    closed = {m["content"]["comm_id"] for m in messages if m["msg_type"] == "comm_close"}
    assert set(opened) <= closed, "every entry comm is closed right after its message"
    for data in opened.values():
        assert data["type"] == "entry"
    return [data["entry"] for data in opened.values()]


def _request_log(kc: BlockingKernelClient) -> list[dict[str, Any]]:
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg(
        "comm_open",
        {"comm_id": comm_id, "target_name": delivery.SYNC_TARGET, "data": {"type": "request_log"}},
    )
    kc.shell_channel.send(msg)
    return [
        m for m in _until_idle(kc, msg["header"]["msg_id"]) if m["content"].get("comm_id") == comm_id
    ]


def test_each_execution_is_sent_on_its_own_short_lived_comm(kernel: BlockingKernelClient) -> None:
    _execute(kernel, "%load_ext nbgov")
    first = _entry_comms(_execute(kernel, "x = 41"))
    second = _entry_comms(_execute(kernel, "y = x + 1"))

    assert [e["kind"] for e in first] == ["session", "execution"]
    assert first[1]["body"]["code"] == "x = 41"
    assert [e["kind"] for e in second] == ["execution"]
    body = second[0]["body"]
    assert body["code"] == "y = x + 1"
    assert [r["name"] for r in body["reads"]] == ["x"]
    assert body["reads"][0]["source"] == first[1]["body"]["id"]
    assert second[0]["prev"] == first[1]["hash"], "entries arrive hash-chained, in order"


def test_a_late_frontend_catches_up_with_the_whole_session_log(kernel: BlockingKernelClient) -> None:
    _execute(kernel, "%load_ext nbgov")
    streamed = _entry_comms(_execute(kernel, "a = [1, 2]")) + _entry_comms(_execute(kernel, "b = len(a)"))

    replies = _request_log(kernel)

    logs = [m["content"]["data"] for m in replies if m["msg_type"] == "comm_msg"]
    assert len(logs) == 1
    log = logs[0]
    assert log["type"] == "log"
    assert log["session"]["hash"] == streamed[0]["hash"]
    assert [e["hash"] for e in log["entries"]] == [e["hash"] for e in streamed[1:]]
    assert isinstance(log.get("stale", {}), dict)


def test_a_rewritten_input_shows_up_as_stale_in_the_log_reply(kernel: BlockingKernelClient) -> None:
    _execute(kernel, "%load_ext nbgov")
    _execute(kernel, "base = 1")
    derived = _entry_comms(_execute(kernel, "derived = base * 2"))[0]
    _execute(kernel, "base = 5")

    log = next(m["content"]["data"] for m in _request_log(kernel) if m["msg_type"] == "comm_msg")

    assert derived["body"]["id"] in log["stale"]


def test_the_log_reply_flags_a_file_changed_on_disk_since_it_was_read(
    kernel: BlockingKernelClient, tmp_path: Path
) -> None:
    (tmp_path / "data.csv").write_text("x\n1\n")
    _execute(kernel, "%load_ext nbgov")
    reader = _entry_comms(_execute(kernel, "text = open('data.csv').read()"))[-1]
    assert [f["path"] for f in reader["body"]["files"]] == ["data.csv"]
    log = next(m["content"]["data"] for m in _request_log(kernel) if m["msg_type"] == "comm_msg")
    assert reader["body"]["id"] not in log["stale"]

    (tmp_path / "data.csv").write_text("x\n2\n")

    log = next(m["content"]["data"] for m in _request_log(kernel) if m["msg_type"] == "comm_msg")
    assert any("data.csv" in reason for reason in log["stale"][reader["body"]["id"]])


def test_live_entries_carry_stale_flags_including_the_rewrite_just_made(kernel: BlockingKernelClient) -> None:
    _execute(kernel, "%load_ext nbgov")
    _execute(kernel, "base = 1")
    derived = _entry_comms(_execute(kernel, "derived = base * 2"))[0]
    before = next(m["content"]["data"] for m in _execute(kernel, "other = 0") if m["msg_type"] == "comm_open")
    assert derived["body"]["id"] not in before["stale"]

    rewrite = next(m["content"]["data"] for m in _execute(kernel, "base = 5") if m["msg_type"] == "comm_open")

    assert rewrite["entry"]["body"]["code"] == "base = 5"
    assert any("base" in reason for reason in rewrite["stale"][derived["body"]["id"]])


def test_unloading_stops_delivery_and_drops_the_sync_target(kernel: BlockingKernelClient) -> None:
    _execute(kernel, "%load_ext nbgov")
    assert _entry_comms(_execute(kernel, "z = 1"))
    _execute(kernel, "%unload_ext nbgov")

    assert _entry_comms(_execute(kernel, "z = 2")) == []
    replies = _request_log(kernel)
    assert [m for m in replies if m["msg_type"] == "comm_msg"] == []


def test_outside_a_kernel_delivery_installs_nothing(shell: Any) -> None:
    class Recorder:
        records: list[dict[str, Any]] = []
        session_entry: dict[str, Any] | None = None

        def subscribe(self, callback: Any) -> Any:
            raise AssertionError("must not subscribe without a kernel")

    installed = delivery.install(shell, recorder=Recorder())
    installed.uninstall()
    assert shell.run_cell("v = 3").success
