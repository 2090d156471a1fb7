"""The fingerprinter never runs the value's code, never raises, never crashes the process.

Every hostile object below records (or raises from) each hook the recorder could be
tempted to call: properties, ``__getattr__``, ``__iter__``, ``__len__``, ``__eq__``,
``__hash__``, ``__fspath__``, ``__reduce__``, metaclass hooks. The assertions are that
the log stays empty and a fingerprint comes back, strong where the data is readable.
Crashes (the old ``pa.array`` segfault) and real interrupts run in a subprocess, so a
crash fails the test instead of killing pytest.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock, Mock, NonCallableMagicMock, call

import numpy as np
import pandas as pd
import pytest

from nbgov.lineage.fingerprint import INTERRUPTED, Fingerprinter, fingerprint

CALLS: list[str] = []


@pytest.fixture(autouse=True)
def _empty_call_log() -> None:
    CALLS.clear()


class Tripwire:
    """Data in its __dict__; every hook that would run its code logs the call."""

    def __init__(self, payload: Any) -> None:
        self.payload = payload

    def __getattr__(self, name: str) -> Any:
        CALLS.append(f"__getattr__ {name}")
        raise AttributeError(name)

    def __iter__(self) -> Any:
        CALLS.append("__iter__")
        return iter(())

    def __len__(self) -> int:
        CALLS.append("__len__")
        return 0

    def __eq__(self, other: object) -> bool:
        CALLS.append("__eq__")
        return False

    def __hash__(self) -> int:
        CALLS.append("__hash__")
        return 7

    def __repr__(self) -> str:
        CALLS.append("__repr__")
        return "Tripwire"

    def __fspath__(self) -> str:
        CALLS.append("__fspath__")
        return "/etc/passwd"

    def __reduce__(self) -> Any:
        CALLS.append("__reduce__")
        raise TypeError("no")

    def __getstate__(self) -> Any:
        CALLS.append("__getstate__")
        return {}

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        CALLS.append("__array__")
        return np.zeros(1)

    def __sizeof__(self) -> int:
        CALLS.append("__sizeof__")
        return 0

    @property
    def shape(self) -> Any:
        CALLS.append("shape")
        return (1,)

    @property
    def num_rows(self) -> int:
        CALLS.append("num_rows")
        return 1

    def get_params(self, deep: bool = True) -> Any:
        CALLS.append("get_params")
        return {}

    def fit(self, *args: Any) -> Any:
        CALLS.append("fit")
        return self

    def SerializeToString(self, **kwargs: Any) -> bytes:  # noqa: N802 - protobuf's name
        CALLS.append("SerializeToString")
        return b""

    def ListFields(self) -> Any:  # noqa: N802 - protobuf's name
        CALLS.append("ListFields")
        return []


class SideEffectList(list[Any]):
    def __iter__(self) -> Any:
        CALLS.append("list.__iter__")
        return super().__iter__()

    def __len__(self) -> int:
        CALLS.append("list.__len__")
        return super().__len__()

    def __getitem__(self, index: Any) -> Any:
        CALLS.append("list.__getitem__")
        return super().__getitem__(index)

    def __reversed__(self) -> Any:
        CALLS.append("list.__reversed__")
        return super().__reversed__()


class SideEffectDict(dict[Any, Any]):
    def items(self) -> Any:  # type: ignore[override]
        CALLS.append("dict.items")
        return super().items()

    def __iter__(self) -> Any:
        CALLS.append("dict.__iter__")
        return super().__iter__()

    def keys(self) -> Any:  # type: ignore[override]
        CALLS.append("dict.keys")
        return super().keys()


class Meta(type):
    def __eq__(cls, other: object) -> bool:
        CALLS.append("Meta.__eq__")
        return False

    def __hash__(cls) -> int:
        CALLS.append("Meta.__hash__")
        return 1

    def __instancecheck__(cls, instance: Any) -> bool:
        CALLS.append("Meta.__instancecheck__")
        return False

    def __subclasscheck__(cls, subclass: Any) -> bool:
        CALLS.append("Meta.__subclasscheck__")
        return False

    def __getattribute__(cls, name: str) -> Any:
        if not name.startswith("__"):
            CALLS.append(f"Meta.__getattribute__ {name}")
        return super().__getattribute__(name)


class WithMeta(metaclass=Meta):
    def __init__(self) -> None:
        self.value = [1, 2, 3]


def test_no_hook_of_a_hostile_object_is_ever_called() -> None:
    trip = Tripwire({"k": [1, 2.5, "x"]})
    values: list[Any] = [
        trip,
        [trip, trip],
        {trip: trip},  # a key whose __hash__/__eq__ log
        {trip},
        (trip, "x"),
        SideEffectList([1, 2, trip]),
        SideEffectDict(a=trip, b=[1]),
        WithMeta(),
        WithMeta,
        pd.DataFrame({"o": [trip, SideEffectList([1]), None, 1.5]}),
        np.array([trip, 1, "s"], dtype=object),
    ]
    CALLS.clear()  # building the containers hashed keys: only what follows counts
    fper = Fingerprinter()
    for value in values:
        fp = fper.fingerprint(value)
        assert not fp.weak, (value, fp.reason)
    assert CALLS == []


def test_the_content_of_hostile_objects_is_still_exact() -> None:
    assert fingerprint(Tripwire([1, 2])).hash == fingerprint(Tripwire([1, 2])).hash
    assert fingerprint(Tripwire([1, 2])).hash != fingerprint(Tripwire([1, 3])).hash
    assert fingerprint(SideEffectList([1, 2])).hash != fingerprint([1, 2]).hash  # the type is content
    assert fingerprint(SideEffectList([1, 2])).hash != fingerprint(SideEffectList([2, 1])).hash
    assert fingerprint(SideEffectDict(a=1)).hash != fingerprint(SideEffectDict(a=2)).hash
    assert CALLS == []


@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_base_exceptions_from_hooks_never_reach_the_caller(exc: type[BaseException]) -> None:
    class Raising:
        def __init__(self) -> None:
            self.data = {"a": 1}

        def __getattr__(self, name: str) -> Any:
            raise exc(name)

        def __getattribute__(self, name: str) -> Any:
            if name in ("data", "__dict__", "__class__", "shape", "get_params"):
                raise exc(name)
            return object.__getattribute__(self, name)

        @property
        def __class__(self) -> Any:  # type: ignore[override]
            raise exc("__class__")

        def __len__(self) -> int:
            raise exc("__len__")

    fper = Fingerprinter()
    fp = fper.fingerprint(Raising())
    assert not fp.weak and fp.hash == fper.fingerprint(Raising()).hash
    assert not fper.interrupted  # none of those was ever raised: nothing was called

    class HiddenDict:
        @property
        def __dict__(self) -> Any:  # type: ignore[override]
            raise exc("__dict__")

    weak = fper.fingerprint(HiddenDict())
    assert weak.weak and weak.hash is None and weak.reason is not None and "__dict__" in weak.reason


def test_a_magicmock_gains_no_calls_and_no_children() -> None:
    mock = MagicMock()
    mock.fit(1)
    mock.config.depth = 3
    spec = Mock(spec=list)
    plain = NonCallableMagicMock()
    before = [(list(m.mock_calls), sorted(m._mock_children), m.call_count) for m in (mock, spec, plain)]
    fper = Fingerprinter()
    for m in (mock, spec, plain):
        fp = fper.fingerprint(m)
        assert not fp.weak, fp.reason
    after = [(list(m.mock_calls), sorted(m._mock_children), m.call_count) for m in (mock, spec, plain)]
    assert after == before and mock.mock_calls == [call.fit(1)]
    first = fper.fingerprint(mock)
    assert fper.fingerprint(mock) == first  # reading changed nothing
    mock.fit(2)
    assert fper.fingerprint(mock).hash != first.hash  # a recorded call is state: seen


def test_user_subclass_of_a_library_type_that_overrides_what_is_read_is_weak_not_run() -> None:
    class Logged(pd.DataFrame):
        @property
        def shape(self) -> Any:  # type: ignore[override]
            CALLS.append("shape")
            return (0, 0)

    class Thin(pd.DataFrame):
        def describe_more(self) -> str:  # a new method: the library never calls it
            return "x"

    base = pd.DataFrame({"a": [1, 2]})
    logged = fingerprint(Logged(base))
    assert logged.weak and logged.reason is not None and "overrides shape" in logged.reason
    thin = fingerprint(Thin(base))
    assert not thin.weak and thin.hash == fingerprint(base).hash and thin.kind != fingerprint(base).kind
    assert CALLS == []


def test_patched_open_and_os_functions_are_never_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.dat"
    mapped = np.memmap(path, dtype="float64", mode="w+", shape=(1_000_000,))
    mapped[::1000] = 1.0

    def tripped(*args: Any, **kwargs: Any) -> Any:
        CALLS.append(f"patched {args[:1]}")
        raise OSError("patched")

    for module, name in ((builtins, "open"), (io, "open"), (os, "open"), (os, "stat"), (os, "fstat"), (os, "lseek")):
        monkeypatch.setattr(module, name, tripped)
    fp = fingerprint(mapped)
    monkeypatch.undo()
    assert CALLS == [] and not fp.weak and fp.reason is not None and "hashed from the file" in fp.reason
    assert fp.hash == fingerprint(np.array(mapped)).hash


def test_a_stub_numpy_in_sys_modules_does_not_lose_the_record(monkeypatch: pytest.MonkeyPatch) -> None:
    arr = np.arange(10)
    expected = fingerprint(arr)

    class Stub:
        def __getattr__(self, name: str) -> Any:
            CALLS.append(f"stub.{name}")
            raise AttributeError(name)

    monkeypatch.setitem(sys.modules, "numpy", Stub())
    fp = Fingerprinter().fingerprint(arr)
    monkeypatch.undo()
    assert fp == expected and CALLS == []


_SUBPROCESS = """
import json, sys
import pandas as pd
from nbgov.lineage.fingerprint import fingerprint

def cyclic():
    loop = [1, "x"]
    loop.append(loop)
    return loop

def deep(n):
    value = [0]
    for _ in range(n):
        value = [value]
    return value

frames = {{
    "cyclic": lambda: pd.DataFrame({{"o": [cyclic(), "a", None]}}),
    "deep": lambda: pd.DataFrame({{"o": [deep({depth}), 1]}}),
    "deep_dict": lambda: pd.Series([{{"k": deep({depth})}}]),
}}
out = {{}}
for name, make in frames.items():
    first, second = fingerprint(make()), fingerprint(make())
    out[name] = [first.weak, first.hash, second.hash, first.reason]
out["differs"] = fingerprint(pd.DataFrame({{"o": [deep({depth} - 1), 1]}})).hash
print(json.dumps(out))
"""


def test_cyclic_and_200000_deep_object_columns_hash_in_a_subprocess_without_crashing() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SUBPROCESS.format(depth=200_000)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"crashed with {proc.returncode}: {proc.stderr[-2000:]}"
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("cyclic", "deep", "deep_dict"):
        weak, first, second, reason = out[name]
        assert not weak and first == second and first is not None, (name, reason)
    assert out["differs"] != out["deep"][1]


_INTERRUPTED = """
import json, os, signal, sys
from nbgov.lineage.fingerprint import Fingerprinter
from nbgov.lineage.values import ValueTracker

big = [{"i": i, "s": str(i)} for i in range(300_000)]  # about 3M calls in walk.py
tracker = ValueTracker()
calls = 0


def interrupt_once_hashing(frame, event, arg) -> None:
    # a real SIGINT, sent deep inside the fingerprinter's walk: at the 100,000th call the main
    # thread makes in walk.py (a thread polling for that moment lost the race on a loaded machine)
    global calls
    if event == "call" and frame.f_code.co_filename.endswith("walk.py"):
        calls += 1
        if calls == 100_000:
            sys.setprofile(None)
            os.kill(os.getpid(), signal.SIGINT)


sys.setprofile(interrupt_once_hashing)
first = tracker.after("big", big)
skipped = tracker.after("other", [1, 2, 3])
interrupted = tracker.interrupted
tracker.start_cell()
again = tracker.after("small", [1, 2, 3])
print(json.dumps({"first": first.to_json(), "skipped": skipped.to_json(), "interrupted": interrupted,
                  "again": again.to_json(), "after_reset": tracker.interrupted}))
"""


def test_a_real_sigint_while_hashing_gives_a_weak_unfinished_fingerprint_and_a_flag() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", _INTERRUPTED], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["first"]["weak"] and out["first"]["hash"] is None and out["first"]["reason"] == INTERRUPTED
    assert out["skipped"]["weak"] and out["skipped"]["reason"].startswith(INTERRUPTED)
    assert out["interrupted"] is True and out["after_reset"] is False
    assert not out["again"]["weak"] and out["again"]["hash"]
