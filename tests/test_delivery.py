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
from tests.fixtures.kernel import kernel_env, kernel_manager, until_idle

pytestmark = pytest.mark.kernel

TIMEOUT = 60


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[BlockingKernelClient]:
    """A real python3 kernel in a temp folder, notebook path set as jupyter_server would."""
    km = kernel_manager()
    km.start_kernel(env=kernel_env(tmp_path / "analysis.ipynb"), cwd=str(tmp_path))
    kc = km.blocking_client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def _execute(kc: BlockingKernelClient, code: str) -> list[dict[str, Any]]:
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:  # skip kernel_info replies from startup
        reply = kc.get_shell_msg(timeout=TIMEOUT)
    assert reply["content"]["status"] == "ok", reply["content"]
    return until_idle(kc, msg_id)


def _entry_comms(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries delivered on nbgov.lineage comm openings (checking each is the only message
    of its comm, marked ``once`` for the frontend to dispose of)."""
    opened = {
        m["content"]["comm_id"]: m["content"]["data"]
        for m in messages
        if m["msg_type"] == "comm_open" and m["content"]["target_name"] == delivery.ENTRY_TARGET
    }
    others = [m for m in messages if m["msg_type"] in ("comm_msg", "comm_close")]
    assert [m for m in others if m["content"]["comm_id"] in opened] == [], "the opening is the comm's only message"
    assert all(data["once"] is True for data in opened.values())
    assert {data["type"] for data in opened.values()} <= {"entry", "hello"}
    return [data["entry"] for data in opened.values() if data["type"] == "entry"]


def test_loading_nbgov_greets_the_frontend_before_any_record(kernel: BlockingKernelClient) -> None:
    messages = _execute(kernel, "%load_ext nbgov")
    greetings = [m["content"]["data"] for m in messages
                 if m["msg_type"] == "comm_open" and m["content"]["target_name"] == delivery.ENTRY_TARGET]
    assert greetings == [{"type": "hello", "once": True}]


def _request_log(kc: BlockingKernelClient) -> list[dict[str, Any]]:
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg(
        "comm_open",
        {"comm_id": comm_id, "target_name": delivery.SYNC_TARGET, "data": {"type": "request_log"}},
    )
    kc.shell_channel.send(msg)
    return [
        m for m in until_idle(kc, msg["header"]["msg_id"]) if m["content"].get("comm_id") == comm_id
    ]


def _kernel_comms(kc: BlockingKernelClient) -> int:
    """How many comms the kernel's comm manager holds (read in a silent execution)."""
    msg_id = kc.execute("", silent=True, user_expressions={"n": "len(get_ipython().kernel.comm_manager.comms)"})
    reply = kc.get_shell_msg(timeout=TIMEOUT)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=TIMEOUT)
    return int(reply["content"]["user_expressions"]["n"]["data"]["text/plain"])


def test_each_execution_is_sent_on_one_comm_opening_and_nothing_stays_open(kernel: BlockingKernelClient) -> None:
    _execute(kernel, "%load_ext nbgov")
    comms_before = _kernel_comms(kernel)
    first = _entry_comms(_execute(kernel, "x = 41"))
    second = _entry_comms(_execute(kernel, "y = x + 1"))
    assert _kernel_comms(kernel) == comms_before, "an entry leaves no comm behind in the kernel"

    assert [e["kind"] for e in first] == ["session", "execution"]
    assert first[1]["body"]["code"] == "x = 41"
    assert [e["kind"] for e in second] == ["execution"]
    body = second[0]["body"]
    assert body["code"] == "y = x + 1"
    assert [r["name"] for r in body["reads"]] == ["x"]
    assert body["reads"][0]["source"] == first[1]["body"]["id"]
    assert second[0]["prev"] == first[1]["hash"], "entries arrive hash-chained, in order"


def test_an_entry_waits_for_the_requests_idle_status_instead_of_waking_the_iopub_thread(
    kernel: BlockingKernelClient,
) -> None:
    """The entry is queued on ipykernel's IOPub thread unwoken (the wake handed the GIL to
    that thread mid-record): it must still come out, before the cell's idle status, and in
    a kernel the queue must be found (else every entry pays the wake again, silently)."""
    _execute(kernel, "%load_ext nbgov")
    found = _execute(kernel, "from nbgov.lineage import delivery as _d\n"
                             "print(_d._queue_behind_status(get_ipython().kernel.iopub_socket) is not None)")
    assert "True" in "".join(m["content"].get("text", "") for m in found if m["msg_type"] == "stream")
    for code in ("a = 1", "b = a + 1", "print(b)"):
        messages = _execute(kernel, code)  # read up to and including the request's idle status
        entries = _entry_comms(messages)
        assert [e["body"]["code"] for e in entries] == [code]
        assert messages[-1]["msg_type"] == "status" and messages[-1]["content"]["execution_state"] == "idle"


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


def _start_kernel(notebook: Path) -> tuple[KernelManager, BlockingKernelClient]:
    km = kernel_manager()
    km.start_kernel(env=kernel_env(notebook), cwd=str(notebook.parent))
    kc = km.blocking_client()
    kc.start_channels()
    kc.wait_for_ready(timeout=TIMEOUT)
    return km, kc


def _tell_path(kc: BlockingKernelClient, data: dict[str, Any]) -> dict[str, Any]:
    """What the sidebar sends when JupyterLab renames or moves the notebook; returns the reply."""
    comm_id = uuid.uuid4().hex
    msg = kc.session.msg("comm_open", {"comm_id": comm_id, "target_name": delivery.SYNC_TARGET,
                                       "data": dict(data, type="notebook_path")})
    kc.shell_channel.send(msg)
    replies = [m["content"]["data"] for m in until_idle(kc, msg["header"]["msg_id"])
               if m["msg_type"] == "comm_msg" and m["content"].get("comm_id") == comm_id]
    assert len(replies) == 1
    return replies[0]


def test_recording_follows_a_notebook_renamed_then_moved(tmp_path: Path) -> None:
    import nbformat

    from nbgov.cli import cli
    from nbgov.lineage import notebook_meta
    from nbgov.lineage.store import read_entries, verify_chain

    untitled = tmp_path / "Untitled.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), untitled)
    km, kc = _start_kernel(untitled)
    try:
        _execute(kc, "%load_ext nbgov")
        before = _entry_comms(_execute(kc, "x = 1")) + _entry_comms(_execute(kc, "y = x + 1"))
        assert (tmp_path / ".nbgov" / "Untitled.jsonl").exists()

        # JupyterLab renames the file on first save, then the sidebar tells the kernel
        untitled.rename(tmp_path / "analysis.ipynb")
        reply = _tell_path(kc, {"path": "work/analysis.ipynb", "previous": "work/Untitled.ipynb"})
        assert reply == {"type": "notebook_path", "notebook": str(tmp_path / "analysis.ipynb"),
                         "sidecar": ".nbgov/analysis.jsonl"}
        assert not (tmp_path / ".nbgov" / "Untitled.jsonl").exists()
        after = _entry_comms(_execute(kc, "z = y * 2"))
        assert after[0]["prev"] == before[-1]["hash"], "the chain goes on across the rename"

        # then it is moved into a sub-folder
        (tmp_path / "reports").mkdir()
        (tmp_path / "analysis.ipynb").rename(tmp_path / "reports" / "analysis.ipynb")
        reply = _tell_path(kc, {"path": "work/reports/analysis.ipynb", "previous": "work/analysis.ipynb"})
        assert reply["notebook"] == str(tmp_path / "reports" / "analysis.ipynb")
        _execute(kc, "w = z + 1")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    moved = tmp_path / "reports" / "analysis.ipynb"
    entries, problems = read_entries(tmp_path / "reports" / ".nbgov" / "analysis.jsonl")
    assert problems == [] and verify_chain(entries) == []
    codes = [e["body"]["code"] for e in entries if e["kind"] == "execution"]
    assert codes == ["%load_ext nbgov", "x = 1", "y = x + 1", "z = y * 2", "w = z + 1"][-len(codes):]
    assert codes[-4:] == ["x = 1", "y = x + 1", "z = y * 2", "w = z + 1"], "no entry lost"
    # verify and show find it by the notebook's new name
    nb = nbformat.read(moved, as_version=4)
    notebook_meta.merge_entries(nb, entries, notebook_meta.sidecar_relpath(moved))
    nbformat.write(nb, moved)
    from click.testing import CliRunner

    verified = CliRunner().invoke(cli, ["verify", str(moved)])
    assert verified.exit_code == 0, verified.output
    shown = CliRunner().invoke(cli, ["show", "--json", str(moved)])
    assert shown.exit_code == 0 and "w = z + 1" in shown.output


def test_a_log_left_under_the_old_name_is_adopted_when_a_kernel_starts(tmp_path: Path) -> None:
    """Renamed while no kernel ran: the metadata still names the old sidecar."""
    notebook = tmp_path / "draft.ipynb"
    km, kc = _start_kernel(notebook)
    try:
        _execute(kc, "%load_ext nbgov")
        first = _entry_comms(_execute(kc, "a = 1"))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    renamed = tmp_path / "final.ipynb"
    km, kc = _start_kernel(renamed)
    try:
        _execute(kc, "%load_ext nbgov")  # the cell that loads nbgov is not recorded; then the sidebar speaks
        reply = _tell_path(kc, {"path": "final.ipynb", "previous": "final.ipynb", "sidecar": ".nbgov/draft.jsonl"})
        assert reply["sidecar"] == ".nbgov/final.jsonl"
        assert not (tmp_path / ".nbgov" / "draft.jsonl").exists()
        later = _entry_comms(_execute(kc, "b = 2"))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    from nbgov.lineage.store import read_entries, verify_chain

    entries, problems = read_entries(tmp_path / ".nbgov" / "final.jsonl")
    assert problems == [] and verify_chain(entries) == []
    assert entries[len(first) - 1]["hash"] == first[-1]["hash"] and later[0]["seq"] > first[-1]["seq"]


def test_path_messages_that_do_not_describe_this_notebook_are_ignored(tmp_path: Path) -> None:
    current = str(tmp_path / "nb.ipynb")
    assert delivery.moved_notebook(current, {"path": "x/other.ipynb", "previous": "x/nb.ipynb"}, "/") == str(
        tmp_path / "other.ipynb")
    for data in (
        {"path": "other.ipynb", "previous": "someone-else.ipynb"},  # not the notebook this kernel records
        {"path": "evil.txt", "previous": "nb.ipynb"},
        {"path": "bad\0.ipynb", "previous": "nb.ipynb"},
        {"path": 3, "previous": "nb.ipynb"},
        {"previous": "nb.ipynb"},
    ):
        assert delivery.moved_notebook(current, data, "/") is None, data
    # an orphan must be a plain .nbgov/<name>.jsonl of this folder whose notebook is gone
    (tmp_path / "alive.ipynb").write_text("{}")
    for named in ("../x.jsonl", ".nbgov/../../etc/passwd", "/etc/passwd", ".nbgov/alive.jsonl",
                  ".nbgov/nb.jsonl", ".nbgov/sub/x.jsonl", 5):
        assert delivery.orphan_sidecar(current, {"sidecar": named}) is None, named
    assert delivery.orphan_sidecar(current, {"sidecar": ".nbgov/gone.jsonl"}) == tmp_path / ".nbgov" / "gone.jsonl"
