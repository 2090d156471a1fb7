"""The recorder does not change the program it records: no objects kept alive, no user code
run, bounded cost and size for huge namespaces, no record lost to a stub or an interrupt."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from nbgov.lineage.analysis import analyze
from nbgov.lineage.namespace import MAX_NAMED_WRITES, Hashing, NamespaceObserver
from nbgov.lineage.native_files import mentioned_paths
from nbgov.lineage.recorder import _exception_message
from nbgov.lineage.values import ValueTracker
from tests.fixtures.lineage import RecordingShell, read_sidecar


def test_a_deleted_object_is_released_at_del_not_after_the_cell(recording: RecordingShell) -> None:
    recording.run(
        "events = []\n"
        "class Noisy:\n"
        "    def __del__(self):\n"
        "        events.append('finalized')\n"
        "a = Noisy()"
    )
    recording.run("del a\nevents.append('after del')")
    assert recording.ns()["events"] == ["finalized", "after del"], "finalizer order as without nbgov"
    assert recording.body()["deletes"] == ["a"]


def test_deleting_a_big_array_before_making_another_does_not_double_peak_memory(recording: RecordingShell) -> None:
    recording.run("import numpy as np, tracemalloc\ntracemalloc.start()\na = np.ones(5_000_000)")
    recording.run(
        "tracemalloc.reset_peak()\n"
        "del a\n"
        "b = np.ones(5_000_000)\n"
        "peak = tracemalloc.get_traced_memory()[1]\n"
        "tracemalloc.stop()"
    )
    assert recording.ns()["peak"] < 60_000_000, "a (40 MB) was freed before b (40 MB) was made"
    assert [w["name"] for w in recording.body()["writes"]] == ["b", "peak"]


def test_a_cell_defining_100000_names_is_summarised_and_cheap(recording: RecordingShell) -> None:
    code = "globals().update({f'v{i}': i for i in range(100_000)})"
    recording.run("warm = 1")
    started = time.perf_counter()
    recording.run(code)
    recorded = time.perf_counter() - started
    body = recording.body()
    assert len(body["writes"]) == MAX_NAMED_WRITES
    summary = body["more_writes"]
    assert summary["count"] == 100_000 - MAX_NAMED_WRITES
    assert summary["fingerprint"]["weak"] is False, "plain ints are fingerprinted together, exactly"
    assert [w["name"] for w in body["writes"]][:3] == ["v0", "v1", "v10"], "the first names defined, sorted"
    store = recording.rec.store
    assert store is not None
    line = store.path.read_text().splitlines()[-1]
    assert len(line) < 400_000, f"the sidecar line is {len(line):,} bytes"
    # the names beyond the bound still have their writer
    recording.run("total = v99999 + v5")
    reader = recording.body()
    assert {r["name"]: r["source"] for r in reader["reads"]} == {"v5": body["id"], "v99999": body["id"]}
    assert recorded < 5.0


def test_a_summary_of_names_holding_objects_is_weak_and_says_why(recording: RecordingShell) -> None:
    recording.run("globals().update({f'o{i}': [i] for i in range(1500)})")
    summary = recording.body()["more_writes"]
    assert summary["count"] == 1500 - MAX_NAMED_WRITES and summary["fingerprint"]["weak"] is True
    assert "only plain scalars" in summary["fingerprint"]["reason"]


def test_the_cost_of_a_trivial_cell_does_not_grow_with_the_namespace(recording: RecordingShell) -> None:
    recording.run("globals().update({f'w{i}': i for i in range(100_000)})")
    observer = recording.rec._observer  # noqa: SLF001 - the part whose cost is in question
    known = observer._known  # noqa: SLF001
    recording.run("z = 1")
    assert observer._known is known, "no rescan of the namespace for a cell that creates one name"  # noqa: SLF001
    assert [w["name"] for w in recording.body()["writes"]] == ["z"]


def test_names_removed_by_code_the_cell_does_not_show_are_still_deleted(recording: RecordingShell) -> None:
    recording.run("keep, drop = 1, 2\ndef forget():\n    import __main__\n    vars(__main__)")
    recording.run("import builtins\nbuiltins.__dict__['nbgov_sneaky'] = lambda ns: ns.pop('drop')")
    recording.run("nbgov_sneaky(globals())")  # globals(): dynamic, every name compared
    assert recording.body()["deletes"] == ["drop"]


def test_a_stub_numpy_in_sys_modules_loses_no_record(recording: RecordingShell) -> None:
    import sys

    real = sys.modules["numpy"]
    recording.run("import numpy as np, sys, types\narr = np.arange(3)")
    try:
        recording.run(
            "class Stub(types.ModuleType):\n"
            "    def __getattr__(self, name):\n"
            "        raise SystemExit('stub touched')\n"
            "sys.modules['numpy'] = Stub('numpy')"
        )
        result = recording.run("n = len(arr)\nm = n + 1")
    finally:
        sys.modules["numpy"] = real
    assert result.success
    body = recording.body()
    assert body["code"] == "n = len(arr)\nm = n + 1" and {w["name"] for w in body["writes"]} == {"n", "m"}


def test_an_interrupt_while_hashing_saves_the_record_with_unfinished_fingerprints(
    recording: RecordingShell, capsys: pytest.CaptureFixture[str]
) -> None:
    fingerprinter = recording.rec.fingerprinter
    real = fingerprinter._measure  # noqa: SLF001 - inside the fingerprinter's own interrupt guard

    def interrupted(value: Any, *rest: Any) -> Any:
        if type(value).__name__ == "Slow":
            raise KeyboardInterrupt
        return real(value, *rest)

    recording.run("class Slow:\n    pass\nsmall = 1")
    capsys.readouterr()
    fingerprinter._measure = interrupted  # type: ignore[method-assign]  # noqa: SLF001
    result = recording.run("big = Slow()\nzz_after = 2")
    assert result.success
    body = recording.body()
    fps = {w["name"]: w["fingerprint"] for w in body["writes"]}
    assert fps["big"]["weak"] is True and "interrupted" in fps["big"]["reason"]
    assert fps["zz_after"]["weak"] is True, "once interrupted, the rest of the cell is not hashed"
    assert any("interrupted" in note for note in body["notes"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "interrupted" in err[0] and "Traceback" not in err[0]
    store = recording.rec.store
    assert store is not None and read_sidecar(store.path)[-1]["body"]["code"] == "big = Slow()\nzz_after = 2"


class Tripwire:
    """Counts any of its code the recorder might run."""

    calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        Tripwire.calls.append(f"getattr {name}")
        raise SystemExit("tripwire")

    def __fspath__(self) -> str:
        Tripwire.calls.append("fspath")
        return "data.csv"

    def __str__(self) -> str:
        Tripwire.calls.append("str")
        return "data.csv"

    def __iter__(self) -> Any:
        Tripwire.calls.append("iter")
        return iter(["data.csv"])

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        Tripwire.calls.append("__class__")
        return str


class MetaTripwire(type):
    @property
    def __module__(cls) -> str:  # type: ignore[override]
        Tripwire.calls.append("metaclass __module__")
        return "__main__"


def test_the_recorders_own_reading_runs_no_user_code() -> None:
    Tripwire.calls = []
    trip = Tripwire()
    klass = MetaTripwire("Klass", (), {})

    class Failure(Exception):
        def __str__(self) -> str:
            Tripwire.calls.append("exception str")
            return "boom"

    ns = {"p": trip, "ps": [trip, "x.csv"], "klass": klass}
    names = analyze("q = open(p)\nr = ps\nk = klass")
    assert mentioned_paths(names, ns) == ["x.csv"]
    observer = NamespaceObserver(ValueTracker(), ns, {})
    assert observer.is_data("p", trip) and observer.is_data("klass", klass) is False
    assert _exception_message(Failure("a message")) == "a message"
    assert _exception_message(Failure(trip)).startswith("(Failure with a message")
    assert Tripwire.calls == []


class _HiddenNames(dict):  # type: ignore[type-arg]
    """IPython's hidden names grow by one per cell (``_i<n>``): walking them makes every cell slower."""

    def __iter__(self) -> Any:
        raise AssertionError("the observer walked every hidden name")

    def keys(self) -> Any:
        raise AssertionError("the observer walked every hidden name")


def test_observing_a_cell_looks_up_hidden_names_instead_of_walking_them() -> None:
    injected = object()
    ns: dict[str, Any] = {"x": 1, "_i1": "x = 1", "helper": injected}
    hidden = _HiddenNames({"_i1": "x = 1", "helper": injected})
    observer = NamespaceObserver(ValueTracker(), ns, hidden)
    hashing = Hashing(observer.values)
    snapshot = observer.before(analyze("x = 2\ny = [x]\nz = helper"), ns, hashing)
    ns.update(x=2, y=[2], z=injected, _i2="x = 2")
    changes = observer.after(snapshot, ns, hashing)
    assert [w.name for w in changes.writes] == ["x", "y", "z"]
    assert observer.is_data("helper", injected) is False, "an injected name is IPython's, not the notebook's"
    assert observer.is_data("z", injected) is True


def test_the_sidecar_stays_json_lines_with_one_record_per_cell(recording: RecordingShell) -> None:
    for code in ("a = 1", "b = a", "%reset -f", "c = 2"):
        recording.run(code)
    store = recording.rec.store
    assert store is not None
    lines = store.path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["session"] + ["execution"] * 4


def test_the_summary_of_many_names_is_exact_about_their_values(recording: RecordingShell) -> None:
    define = "globals().update({{f'u{{i}}': {} for i in range(5000)}})"
    digests = []
    # values that are new objects each time (small ints and one-letter strings are shared
    # singletons: rebinding a name to the very same object is not a visible write)
    for values in ("i + 1000", "i + 1000", "i + 1000 if i != 4321 else -1", "float(i)", "'s' + str(i)",
                   "10**30 + i"):
        recording.run(define.format(values))
        summary = recording.body()["more_writes"]
        assert summary["fingerprint"]["weak"] is False
        digests.append(summary["fingerprint"]["hash"])
    assert digests[0] == digests[1], "the same content gives the same aggregate"
    assert len(set(digests[1:])) == 5, "one changed value, or another type, changes it"


def test_hostile_objects_cannot_end_the_session_or_lose_the_record(recording: RecordingShell) -> None:
    recording.run(
        "class Hostile:\n"
        "    def __init__(self, exc):\n"
        "        object.__setattr__(self, 'exc', exc)\n"
        "    def __getattr__(self, name):\n"
        "        raise self.exc('from a user object')\n"
        "    def __len__(self):\n"
        "        raise self.exc('len')\n"
        "    def __iter__(self):\n"
        "        raise self.exc('iter')"
    )
    for exc in ("SystemExit", "GeneratorExit", "RecursionError", "MemoryError"):
        result = recording.run(f"h = Hostile({exc})\nalive = 1")
        assert result.success, exc
        body = recording.body()
        assert {w["name"] for w in body["writes"]} == {"h", "alive"}, exc
    recording.run("again = alive + 1")
    assert recording.body()["reads"][0]["name"] == "alive"


def test_files_are_hashed_with_the_open_captured_at_import_and_pathlikes_are_not_called(
    recording: RecordingShell, tmp_path: Any
) -> None:
    recording.run("first = 1")  # the sidecar is open from here on
    recording.run(
        "import builtins, io\n"
        "real_open = builtins.open\n"
        "patched_calls = []\n"
        "def patched(*a, **k):\n"
        "    patched_calls.append(a[0])\n"
        "    return real_open(*a, **k)\n"
        "builtins.open = io.open = patched\n"
        "class Where:\n"
        "    calls = 0\n"
        "    def __fspath__(self):\n"
        "        Where.calls += 1\n"
        "        return 'p.txt'"
    )
    try:
        recording.run("with real_open(Where(), 'w') as fh:\n    fh.write('data')")
        body = recording.body()
        assert recording.ns()["patched_calls"] == [], "hashing the written file did not use the patched open"
        assert recording.ns()["Where"].calls == 1, "only Python itself called __fspath__"
        assert [(f["path"], f["mode"]) for f in body["files"]] == [("p.txt", "write")]  # seen by the OS
    finally:
        recording.run("builtins.open = io.open = real_open")


def test_package_versions_are_read_without_touching_stub_modules() -> None:
    import sys
    import types

    from nbgov.lineage.environment import VersionLookup

    class Stub(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            raise SystemExit("stub touched")

    sys.modules["nbgov_stub_pkg"] = Stub("nbgov_stub_pkg")
    sys.modules["nbgov_plain_obj"] = object()  # type: ignore[assignment]
    try:
        assert VersionLookup().versions(["nbgov_stub_pkg", "nbgov_plain_obj", "xxhash"]).keys() == {"xxhash"}
    finally:
        del sys.modules["nbgov_stub_pkg"], sys.modules["nbgov_plain_obj"]


def test_a_magicmock_in_the_namespace_gains_no_calls_or_children_from_recording(recording: RecordingShell) -> None:
    """A MagicMock answers every attribute and call: any probe by the recorder would show."""
    recording.run("from unittest.mock import MagicMock\nmock = MagicMock()\nalias = mock")
    recording.run("mock.fit([1, 2])\nsame = alias")
    recording.run("items = [mock, {'m': mock}]\nmock.predict(3)")
    recording.run("mock.extra = 1\nout = mock")
    ns = recording.ns()
    assert [str(c) for c in ns["mock"].mock_calls] == ["call.fit([1, 2])", "call.predict(3)"]
    assert sorted(ns["mock"]._mock_children) == ["fit", "predict"]  # noqa: SLF001 - where probes would land
    assert recording.body()["writes"] and recording.body()["status"] == "ok"


def test_a_sigint_while_the_record_is_appended_is_held_and_the_handler_put_back(
    recording: RecordingShell, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import signal

    from nbgov.lineage.journal import Journal

    def users_handler(signum: int, frame: Any) -> None:
        raise AssertionError("the user's handler ran during the append")

    previous = signal.signal(signal.SIGINT, users_handler)
    real = Journal.append_execution

    def interrupted(self: Journal, *args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)  # delivered to the main thread, in here
        time.sleep(0.01)
        return real(self, *args, **kwargs)

    try:
        Journal.append_execution = interrupted  # type: ignore[method-assign]
        try:
            assert recording.run("a = 1").success
        finally:
            Journal.append_execution = real  # type: ignore[method-assign]
        assert signal.getsignal(signal.SIGINT) is users_handler, "the user's own handler is back"
        assert recording.body()["code"] == "a = 1"
        assert "interrupted" in capsys.readouterr().err
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # an int handler comes back as the same enum
        assert recording.run("b = 2").success
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_namespace_key_that_is_no_name_is_never_hashed_compared_or_kept(recording: RecordingShell) -> None:
    # `globals()[obj] = 1` names no variable; hashing or comparing such a key runs its code,
    # and keeping it as "the last key seen" kept it alive after the cell removed it
    recording.run(
        "import gc, weakref\n"
        "calls = []\n"
        "class Key:\n"
        "    def __hash__(self):\n"
        "        calls.append('hash')\n"
        "        return 7\n"
        "    def __eq__(self, other):\n"
        "        calls.append('eq')\n"
        "        return False"
    )
    recording.run("key = Key()\nalive = weakref.ref(key)\nglobals()[key] = 1\ndel key\ncalls.clear()")
    recording.run("x = 1")
    assert recording.ns()["calls"] == []
    assert [w["name"] for w in recording.body()["writes"]] == ["x"] and recording.body()["notes"] == []
    recording.run("exec('y = 2')")  # a dynamic cell compares every name
    assert recording.ns()["calls"] == []
    assert "y" in [w["name"] for w in recording.body()["writes"]] and recording.body()["notes"] == []
    recording.run("for k in [k for k in globals() if type(k) is Key]:\n    del globals()[k]\n"
                  "del k\ngc.collect()\nstill = alive() is not None")
    assert recording.ns()["still"] is False


def test_reading_the_output_history_compares_no_user_key_and_keeps_no_result(recording: RecordingShell) -> None:
    """IPython's `Out` may hold a key the user put there whose hash collides with a result's
    number (a lookup of that number compares it first): the recorder never hashes or compares
    it. A result read is fingerprinted, not kept."""
    recording.run(
        "import gc, weakref\n"
        "calls = []\n"
        "class Key:\n"
        "    number = 0\n"
        "    def __hash__(self):\n"
        "        calls.append('hash')\n"
        "        return self.number\n"
        "    def __eq__(self, other):\n"
        "        calls.append('eq')\n"
        "        return False\n"
        "class Shown:\n"
        "    pass"
    )
    shown = recording.shell.execution_count + 1  # the execution after the next
    recording.run(f"Key.number = {shown}\nOut[Key()] = 1")
    assert recording.run("Shown()").execution_count == shown
    recording.run(f"alive = weakref.ref(_{shown})\ncalls.clear()")
    recording.run(f"y = (_{shown}, __, _)")
    assert recording.ns()["calls"] == []
    assert [(r.name, r.source) for r in recording.record().reads] == [(f"Out[{shown}]", recording.record(-3).id)]
    recording.run(f"found = Out.get({shown}) is not None")  # the user's own lookup compares the key: the check can fail
    assert recording.ns()["calls"] == ["eq"]
    recording.run(f"ip = get_ipython()\ndel y, _{shown}\nOut.clear()\nip.displayhook.flush()\n"
                  "for k in ('_', '__', '___'):\n    ip.user_ns_hidden.pop(k, None)\n"  # IPython's own references
                  "del ip, k\nfreed = gc.collect()")
    recording.run("still = alive() is not None")
    assert recording.ns()["still"] is False
