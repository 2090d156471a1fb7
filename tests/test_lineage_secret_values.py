"""A secret copied from the environment into a notebook value (``key =
os.environ['API_KEY']``) gets no fingerprint, as the variable itself gets none when read:
an xxh3 of a guessable secret in the sidecar or the notebook's metadata could reveal it. The
value, its hash and its length are nowhere in the record; the step is unverifiable on replay."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.fingerprint import Fingerprinter
from nbgov.lineage.record import Fingerprint
from nbgov.lineage.secret_values import MIN_CHARS, SecretValues
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.lineage import RecordingShell
from tests.fixtures.replay import record, sidecar_lines

SECRET = "s3cr3t-copied-nbgov-value"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("NBGOV_TEST_API_KEY", SECRET)
    for name in ("NBGOV_TEST_PASSWORD", "NBGOV_TEST_SESSION_TIMEOUT", "NBGOV_TEST_DIR"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def fingerprints(recording: RecordingShell) -> dict[str, Fingerprint]:
    record = recording.record()
    found = {r.name: r.fingerprint for r in record.reads} | {w.name: w.fingerprint for w in record.writes}
    if record.result is not None:
        found["Out"] = record.result
    return found


def no_trace(recording: RecordingShell, *secrets: str | bytes) -> None:
    """Neither a value, nor the hash a plain fingerprint would give it, nor its length."""
    assert recording.rec.store is not None
    text = Path(recording.rec.store.path).read_text(encoding="utf-8")
    plain = Fingerprinter()
    for secret in secrets:
        shown = secret.decode() if isinstance(secret, bytes) else secret
        assert shown not in text
        digest = plain.fingerprint(secret).hash
        assert digest is not None and digest not in text
        assert f"{len(secret)} chars" not in text and f"{len(secret)} bytes" not in text


def test_a_copied_secret_has_no_fingerprint_where_it_is_written_read_or_shown(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os\nkey = os.environ['NBGOV_TEST_API_KEY']")
    written = fingerprints(recording)["key"]
    assert written.weak and written.hash is None and written.summary == ""
    assert written.reason is not None and "os.environ['NBGOV_TEST_API_KEY']" in written.reason
    assert "suggests a secret" in written.reason
    recording.run("header = {'Authorization': 'Bearer ' + key}\nkey")  # read, and shown as Out
    seen = fingerprints(recording)
    assert seen["key"].hash is None and seen["Out"].hash is None and seen["Out"].weak
    assert seen["header"].hash is None and seen["header"].weak  # inside a longer value, inside a dict
    recording.run("raw = os.environb[b'NBGOV_TEST_API_KEY']")
    assert fingerprints(recording)["raw"].hash is None
    no_trace(recording, SECRET, SECRET.encode())


class Client:
    """A notebook's class holding a token among its attributes (as API clients do)."""

    def __init__(self, token: str) -> None:
        self.url = "https://example.invalid"
        self.token = token


HOLDERS = {  # name -> code making a value that holds the secret somewhere its fingerprint reads
    "bearer": "'Bearer ' + key",  # inside a longer string
    "pair": "('user', key)",  # a flat tuple
    "config": "{'db': {'host': 'localhost', 'password': key}}",  # nested dicts
    "as_key": "{key: 1}",  # a dict key
    "many": "['x'] * 50 + [key]",  # a long list of strings (encoded in one columnar run)
    "mixed": "[1, 2.5, None, [key]]",
    "long": "'-' * 5000 + key",  # a long text (hashed by digest)
    "in_bytes": "b'token=' + key.encode()",
    "client": "Client(key)",  # an object's attributes
    "clients": "[Client(key), Client(key)]",
    # frames and Arrow data: their strings are searched in the column's text buffer
    "frame": "pd.DataFrame({'user': ['ann', 'bob'], 'token': ['t0', key]})",
    "series": "pd.Series(['a', key])",
    "index": "pd.Index([key])",
    "arrow": "pa.array(['x', key])",
    "straddling": "pa.array(['y' * ((1 << 20) - 5), key])",  # across the end of the search's first window
    # numpy's fixed-width strings: bytes as they are, str as UCS-4 (either byte order)
    "np_str": "np.array(['a', key])",
    "np_str_big": "np.array(['y'] * 100_000 + [key])",
    "np_str_swapped": "np.array(['a', key], dtype='>U40')",
    "np_bytes": "np.array([b'a', key.encode()])",
    "np_strided": "np.array([['a', key], ['b', 'c']]).T",
}
IMPORTS = "import numpy as np, pandas as pd, pyarrow as pa"


def test_a_value_holding_a_secret_anywhere_its_fingerprint_reads_has_none(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.shell.user_ns["Client"] = Client
    recording.run(f"import os\n{IMPORTS}\nkey = os.environ['NBGOV_TEST_API_KEY']")
    recording.run("\n".join(f"{name} = {code}" for name, code in HOLDERS.items()))
    written = fingerprints(recording)
    for name in HOLDERS:
        fingerprint = written[name]
        assert fingerprint.weak and fingerprint.hash is None, name
        assert fingerprint.reason is not None and "os.environ['NBGOV_TEST_API_KEY']" in fingerprint.reason, name
    recording.run("config")  # read by a later cell, and shown
    seen = fingerprints(recording)
    assert seen["config"].hash is None and seen["Out"].hash is None
    no_trace(recording, SECRET, SECRET.encode())


def test_values_holding_no_secret_keep_their_exact_fingerprints(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    """The same shapes without the secret's text (a prefix of it, its other case) are hashed
    exactly as a plain fingerprinter hashes them: the search refuses only the secret."""
    recording.shell.user_ns["Client"] = Client
    recording.run(f"{IMPORTS}\nkey = {SECRET[:-1]!r}\nother = {SECRET.upper()!r}")
    recording.run("\n".join(f"{name} = {code}" for name, code in HOLDERS.items()) + "\nshout = [other]")
    written = fingerprints(recording)
    plain = Fingerprinter()
    for name in (*HOLDERS, "shout"):
        assert written[name].hash == plain.fingerprint(recording.shell.user_ns[name]).hash, name


def test_a_value_holding_the_notebooks_own_path_keeps_its_fingerprint(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    """JPY_SESSION_NAME (the notebook's path, which Jupyter sets) matches the secret names'
    rule but says where the notebook is: the files beside it are listed and hashed as ever."""
    environment.setenv("JPY_SESSION_NAME", "/home/analyst/work/forecast.ipynb")
    recording.run("outputs = ['/home/analyst/work/forecast.ipynb.bak', '/home/analyst/work/forecast.ipynb']")
    assert fingerprints(recording)["outputs"].hash == Fingerprinter().fingerprint(
        recording.shell.user_ns["outputs"]).hash


def test_a_secret_set_by_a_cell_is_known_from_then_on(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("password = 'hunter2' * 2")
    assert fingerprints(recording)["password"].hash is not None  # no variable holds it yet
    recording.run("import os\nos.environ['NBGOV_TEST_PASSWORD'] = 'hunter2' * 2")
    recording.run("again = 'hunter2hunter2'")
    assert fingerprints(recording)["again"].hash is None
    recording.run("del os.environ['NBGOV_TEST_PASSWORD']\nlast = 'hunter2hunter2'")
    assert fingerprints(recording)["last"].hash is not None  # no longer a secret's value


def test_an_escape_in_a_secret_variable_name_is_quoted_in_the_reason(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    environment.setenv("NBGOV_TEST_\x1b[31mTOKEN", "escaped-secret-value")
    recording.run("value = 'escaped-secret-value'")
    reason = fingerprints(recording)["value"].reason
    assert reason is not None and "\x1b" not in reason and "NBGOV_TEST_\\x1b[31mTOKEN" in reason


def test_short_values_and_other_variables_values_are_fingerprinted(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    environment.setenv("NBGOV_TEST_SESSION_TIMEOUT", "30")  # a secret's name, a value too short to be one
    environment.setenv("NBGOV_TEST_DIR", "a-distinctive-folder-name")
    recording.run("timeout = '30'\nfolder = 'a-distinctive-folder-name'\nnumber = 30")
    found = fingerprints(recording)
    plain = Fingerprinter()
    for name, value in (("timeout", "30"), ("folder", "a-distinctive-folder-name"), ("number", 30)):
        assert found[name].hash == plain.fingerprint(value).hash, name
    assert len("30") < MIN_CHARS


def test_a_notebook_replacement_for_os_environ_is_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os.environ`` replaced by a notebook's mapping: it is no environment, and none of its
    methods runs (no comparison, no lookup, no iteration)."""
    calls: list[str] = []

    class Hostile(dict[Any, Any]):
        def __getattribute__(self, name: str) -> Any:
            calls.append(name)
            return super().__getattribute__(name)

        def __eq__(self, other: object) -> bool:
            calls.append("__eq__")
            raise RuntimeError("compared")

        __hash__ = None  # type: ignore[assignment]

    monkeypatch.setattr(os, "environ", Hostile({b"NBGOV_TEST_API_KEY": SECRET.encode()}))
    assert SecretValues().needles() == ()
    assert calls == []


def test_objects_planted_in_the_environment_run_no_code(environment: pytest.MonkeyPatch) -> None:
    """``os.environ._data`` given objects of the notebook's own: they are no variable's value
    or name, and none of their methods runs (listing, comparing, telling a change)."""
    calls: list[str] = []
    PLANTED = "planted-token-value-nbgov"

    class Planted:
        def __eq__(self, other: object) -> bool:
            calls.append("__eq__")
            return False

        def __hash__(self) -> int:
            calls.append("__hash__")
            return 0

        def __str__(self) -> str:
            calls.append("__str__")
            return PLANTED

        def __len__(self) -> int:
            calls.append("__len__")
            return len(PLANTED)

    data: dict[Any, Any] = vars(os.environ)["_data"]
    environment.setitem(data, b"NBGOV_TEST_PLANTED_TOKEN", Planted())
    secrets = SecretValues()

    def texts() -> set[bytes]:
        return {needle.text for needle in secrets.needles()}

    assert PLANTED.encode() not in texts()
    environment.setitem(data, b"NBGOV_TEST_PLANTED_TOKEN", Planted())  # a change: listed again
    assert PLANTED.encode() not in texts()
    assert calls == []
    planted = data[b"NBGOV_TEST_PLANTED_TOKEN"]
    assert not any(held is planted for held in vars(secrets)["_held"].values())  # not kept alive
    known = {needle.text: needle.reason for needle in secrets.needles()}  # the rest still known
    assert "os.environ['NBGOV_TEST_API_KEY']" in known[SECRET.encode()]


@pytest.mark.kernel
def test_a_step_that_copies_a_secret_is_unverifiable_on_replay(tmp_path: Path, environment: pytest.MonkeyPatch) -> None:
    headers = {"Authorization": "Bearer " + SECRET}
    path = record(tmp_path / "nb" / "secret.ipynb", "import os", "key = os.environ['NBGOV_TEST_API_KEY']",
                  "n = len(key)", "headers = {'Authorization': 'Bearer ' + key}", "fields = len(headers)")
    text = (path.parent / ".nbgov" / "secret.jsonl").read_text() + path.read_text()
    for plain in (SECRET, headers):
        assert Fingerprinter().fingerprint(plain).hash not in text
    assert SECRET not in text
    steps = [e["body"] for e in sidecar_lines(path) if e["kind"] == "execution"]
    key = next(w for w in steps[1]["writes"] if w["name"] == "key")["fingerprint"]
    assert key["hash"] is None and key["weak"] and "NBGOV_TEST_API_KEY" in json.dumps(key)

    result = replay(load_log(path))
    # the last step reads only `headers`: a dict holding the secret, unverifiable as the secret is
    assert [s.status for s in result.steps] == ["reproduced"] + ["unverifiable"] * 4, result.steps
    assert any("NBGOV_TEST_API_KEY" in u for u in result.steps[1].verdict.unverifiable)
    assert any("NBGOV_TEST_API_KEY" in u for u in result.steps[4].verdict.unverifiable)
