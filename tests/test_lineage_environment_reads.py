"""Environment variables as recorded values: a cell that reads ``os.environ['SEED']`` (or
``.get``, ``os.getenv``, ``'SEED' in os.environ``, through ``import os as o`` or ``from os
import environ, getenv``) reads ``os.environ['SEED']`` with a fingerprint of its value at the
cell's start, unset included; a cell that sets or removes it writes it; a later change makes
the reader stale. No value, nor its length, is ever recorded, and a secret-named variable
gets no hash at all."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest

from nbgov.lineage import environment_variables
from nbgov.lineage.analysis import analyze
from nbgov.lineage.fingerprint import hash_bytes
from nbgov.lineage.placement import Placement
from nbgov.lineage.record import ExecutionRecord, Fingerprint, Read, Write, environment_name, environment_variable
from nbgov.replay import compare
from nbgov.replay.graph import build_graph
from tests.fixtures.lineage import RecordingShell

SEED = environment_name("NBGOV_TEST_SEED")


def reads(recording: RecordingShell) -> dict[str, Fingerprint]:
    return {r.name: r.fingerprint for r in recording.record().reads}


def writes(recording: RecordingShell) -> dict[str, Fingerprint]:
    return {w.name: w.fingerprint for w in recording.record().writes}


def value_hash(value: str) -> str:
    return hash_bytes(b"\1" + value.encode())


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("NBGOV_TEST_SEED", "NBGOV_TEST_DIR", "NBGOV_TEST_MODE", "NBGOV_TEST_FLAG", "NBGOV_TEST_API_KEY",
                 "NBGOV_TEST_UNSET", "NBGOV_TEST_OTHER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NBGOV_TEST_SEED", "7")
    monkeypatch.setenv("NBGOV_TEST_DIR", "data")
    return monkeypatch


def test_the_names_are_spelled_as_the_code_spells_them_and_no_variable_can_have_them() -> None:
    assert SEED == "os.environ['NBGOV_TEST_SEED']"
    assert environment_variable(SEED) == "NBGOV_TEST_SEED"
    assert environment_variable(environment_name("it's")) == "it's"
    assert environment_variable("Out[3]") is None and environment_variable("seed") is None


def test_each_spelling_of_a_read_is_a_read_of_the_value_at_the_cells_start(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os")
    environment.setenv("NBGOV_TEST_MODE", "fast")
    environment.setenv("NBGOV_TEST_FLAG", "")
    recording.run("seed = int(os.environ['NBGOV_TEST_SEED'])\n"
                  "folder = os.environ.get('NBGOV_TEST_DIR', 'elsewhere')\n"
                  "mode = os.getenv('NBGOV_TEST_MODE')\n"
                  "flag = 'NBGOV_TEST_FLAG' in os.environ")
    found = reads(recording)
    assert list(found) == [SEED, environment_name("NBGOV_TEST_DIR"), environment_name("NBGOV_TEST_MODE"),
                           environment_name("NBGOV_TEST_FLAG")]
    assert found[SEED] == Fingerprint(environment_variables.KIND, value_hash("7"), summary="set")
    assert found[environment_name("NBGOV_TEST_FLAG")].hash == value_hash("")  # set, empty: not unset
    assert {w.name for w in recording.record().writes} == {"seed", "folder", "mode", "flag"}  # read only
    # through aliases: `import os as o`, `from os import environ, getenv`
    recording.run("import os as o\na = o.environ['NBGOV_TEST_SEED']")
    assert list(reads(recording)) == [SEED]
    recording.run("from os import environ, getenv\nb = environ.get('NBGOV_TEST_DIR')\nc = getenv('NBGOV_TEST_SEED')")
    assert list(reads(recording)) == [environment_name("NBGOV_TEST_DIR"), SEED]
    recording.run("d = environ['NBGOV_TEST_MODE']")  # bound by an earlier cell: still os.environ
    assert list(reads(recording)) == [environment_name("NBGOV_TEST_MODE")]
    # a value the cell itself set first is its own, not an input
    recording.run("os.environ['NBGOV_TEST_OTHER'] = 'x'\ne = os.environ['NBGOV_TEST_OTHER']")
    assert list(reads(recording)) == [] and environment_name("NBGOV_TEST_OTHER") in writes(recording)


def test_an_unset_variable_is_read_as_unset_and_differs_from_any_value(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os\nmissing = os.environ.get('NBGOV_TEST_UNSET', 'default')")
    unset = reads(recording)[environment_name("NBGOV_TEST_UNSET")]
    assert unset.summary == "unset" and unset.hash is not None and not unset.weak
    environment.setenv("NBGOV_TEST_UNSET", "")
    recording.run("missing = os.environ.get('NBGOV_TEST_UNSET', 'default')")
    empty = reads(recording)[environment_name("NBGOV_TEST_UNSET")]
    assert empty.summary == "set" and empty.same_content(unset) is False


def test_a_notebook_name_that_is_not_the_standard_librarys_is_no_environment(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("environ = {'NBGOV_TEST_SEED': 1}\ngetenv = dict.get")
    recording.run("x = environ['NBGOV_TEST_SEED']\ny = getenv(environ, 'NBGOV_TEST_SEED')")
    assert [r.name for r in recording.record().reads] == ["environ", "getenv"]
    recording.run("class Fake:\n    environ = {'NBGOV_TEST_SEED': 2}\nos = Fake()")
    recording.run("z = os.environ['NBGOV_TEST_SEED']")
    assert "os" in [r.name for r in recording.record().reads]
    assert not any(environment_variable(r.name) for r in recording.record().reads)


def test_a_cell_that_names_no_environment_variable_has_no_environment_uses() -> None:
    assert analyze("x = df['a']\ny = config.get('SEED')\nz = 'a' in d").environment is None
    assert analyze("import os\np = os.path.join('a', 'b')").environment is None


def test_a_function_reads_the_environment_when_the_cell_runs_it(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os")
    recording.run("def seed():\n    return int(os.environ['NBGOV_TEST_SEED'])")
    assert reads(recording) == {}  # defined, not run
    recording.run("def folder():\n    return os.getenv('NBGOV_TEST_DIR')\nwhere = folder()")
    assert list(reads(recording)) == [environment_name("NBGOV_TEST_DIR")]


def test_a_secret_named_variable_is_read_with_no_hash_and_its_value_is_nowhere(
        recording: RecordingShell, environment: pytest.MonkeyPatch, lineage_schema: jsonschema.Draft202012Validator
) -> None:
    secret = "s3cr3t-v4lue-nbgov-never-stored"
    environment.setenv("NBGOV_TEST_API_KEY", secret)
    recording.run("import os\nhave_key = bool(os.environ.get('NBGOV_TEST_API_KEY'))")
    read = reads(recording)[environment_name("NBGOV_TEST_API_KEY")]
    assert read.weak and read.hash is None and read.summary == ""
    assert read.reason is not None and "may hold a secret" in read.reason
    recording.run("os.environ['NBGOV_TEST_API_KEY'] = os.environ['NBGOV_TEST_API_KEY'][::-1]")  # no value in the code
    written = writes(recording)[environment_name("NBGOV_TEST_API_KEY")]
    assert written.weak and written.hash is None
    assert recording.rec.store is not None
    text = Path(recording.rec.store.path).read_text(encoding="utf-8")
    for value in (secret, secret[::-1]):
        assert value not in text
        assert hash_bytes(b"\1" + value.encode()) not in text and hash_bytes(value.encode()) not in text
    assert f"{len(secret)} chars" not in text
    for line in text.splitlines():
        lineage_schema.validate(json.loads(line))


def test_no_value_nor_its_length_is_recorded_for_any_variable(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    environment.setenv("NBGOV_TEST_DIR", "a-distinctive-folder-name")
    recording.run("import os\nn = len(os.environ['NBGOV_TEST_DIR'])")
    assert recording.rec.store is not None
    body = json.dumps(recording.body())
    read = reads(recording)[environment_name("NBGOV_TEST_DIR")]
    assert read.summary == "set" and "a-distinctive-folder-name" not in Path(recording.rec.store.path).read_text()
    assert read.to_json() == {"kind": environment_variables.KIND, "hash": value_hash("a-distinctive-folder-name"),
                              "weak": False, "summary": "set"}  # no length, no preview
    assert "os.environ['NBGOV_TEST_DIR']" in body


def test_writes_and_the_stale_rule(recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os", cell_id="imports")
    recording.run("os.environ['NBGOV_TEST_SEED'] = '1'", cell_id="set")
    setter = recording.record()
    assert writes(recording) == {SEED: Fingerprint(environment_variables.KIND, value_hash("1"), summary="set")}
    recording.run("seed = int(os.getenv('NBGOV_TEST_SEED'))", cell_id="use")
    user = recording.record()
    assert [(r.name, r.source) for r in user.reads] == [(SEED, setter.id)]  # the graph links them
    assert build_graph([setter, user]).edges[(setter.id, user.id)] == [SEED]
    recording.run("os.environ['NBGOV_TEST_SEED'] = '1'", cell_id="again")  # the same value: nothing stale
    assert recording.rec.stale() == {}
    recording.run("os.environ['NBGOV_TEST_SEED'] = '2'", cell_id="set")
    assert recording.rec.stale() == {user.id: [f"input {SEED} changed by [{recording.record().execution_count}]"]}
    recording.run("seed = int(os.getenv('NBGOV_TEST_SEED'))", cell_id="use")
    assert recording.rec.stale() == {}
    recording.run("del os.environ['NBGOV_TEST_SEED']", cell_id="unset")
    assert writes(recording)[SEED].summary == "unset"
    assert list(recording.rec.stale().values()) == [[f"input {SEED} changed by [{recording.record().execution_count}]"]]


def test_every_spelling_of_a_write(recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os")
    recording.run("os.environ.update({'NBGOV_TEST_MODE': 'a'}, NBGOV_TEST_FLAG='b')\n"
                  "os.environ.setdefault('NBGOV_TEST_OTHER', 'c')\n"
                  "old = os.environ.pop('NBGOV_TEST_DIR')")
    assert list(writes(recording)) == ["old", environment_name("NBGOV_TEST_MODE"),
                                       environment_name("NBGOV_TEST_FLAG"), environment_name("NBGOV_TEST_OTHER"),
                                       environment_name("NBGOV_TEST_DIR")]
    # setdefault and pop return the value: reads too
    assert list(reads(recording)) == [environment_name("NBGOV_TEST_OTHER"), environment_name("NBGOV_TEST_DIR")]
    assert writes(recording)[environment_name("NBGOV_TEST_DIR")].summary == "unset"
    recording.run("os.environ['NBGOV_TEST_MODE'] += '-b'")
    assert list(reads(recording)) == list(writes(recording)) == [environment_name("NBGOV_TEST_MODE")]
    recording.run("os.putenv('NBGOV_TEST_SEED', '9')\nos.unsetenv('NBGOV_TEST_FLAG')")
    assert list(writes(recording)) == [SEED, environment_name("NBGOV_TEST_FLAG")]
    # IPython's magics
    recording.run("%env NBGOV_TEST_SEED=11")
    assert writes(recording) == {SEED: Fingerprint(environment_variables.KIND, value_hash("11"), summary="set")}
    recording.run("%set_env NBGOV_TEST_DIR elsewhere")
    assert list(writes(recording)) == [environment_name("NBGOV_TEST_DIR")]
    recording.run("%env NBGOV_TEST_SEED")
    assert list(reads(recording)) == [SEED] and recording.record().writes == ()


def test_reading_the_whole_environment_is_a_note_not_hundreds_of_reads(
        recording: RecordingShell, environment: pytest.MonkeyPatch) -> None:
    recording.run("import os\nsnapshot = dict(os.environ)\nnames = [k for k in os.environ]\ncopied = os.environ.copy()")
    record = recording.record()
    assert record.reads == ()
    assert len(record.notes) == 1, record.notes
    assert record.notes[0].startswith("the cell reads the whole environment (`")
    assert "`os.environ`" in record.notes[0] and "`os.environ.copy()`" in record.notes[0]
    assert "does not itemise" in record.notes[0]
    recording.run("key = 'NBGOV_TEST_SEED'\nvalue = os.environ.get(key)")  # a computed name: not itemised either
    assert [r.name for r in recording.record().reads] == [] and "whole environment" in recording.record().notes[0]
    recording.run("settings = {'NBGOV_TEST_MODE': 'x'}\nos.environ.update(settings)")
    record = recording.record()
    assert [w.name for w in record.writes] == ["settings"]
    assert record.notes == ("the cell changes the environment in a way nbgov cannot itemise "
                            "(`os.environ.update(settings)`): the variables it set or removed are not recorded as "
                            "its outputs",)


# -- compare, on typed records ------------------------------------------------------------

CONTEXT = compare.StepContext(Placement(None, Path(".")))


def _step(reads: tuple[Read, ...] = (), writes: tuple[Write, ...] = ()) -> ExecutionRecord:
    return ExecutionRecord(session="s" * 32, execution_count=2, cell_id="c2", code="cell", code_hash="h",
                           started="", duration_s=0.0, status="ok", reads=reads, writes=writes)


def _verdict(then: ExecutionRecord, now: ExecutionRecord) -> compare.Comparison:
    return compare.compare_step(then, now, "ok", None, None, [], compare.Upstream(), CONTEXT)


def test_a_variable_read_with_another_value_is_the_named_cause() -> None:
    then = _step((Read(SEED, Fingerprint(environment_variables.KIND, "a" * 32, summary="set")),))
    now = _step((Read(SEED, Fingerprint(environment_variables.KIND, "b" * 32, summary="unset")),))
    verdict = _verdict(then, now)
    assert [(c.kind, c.name) for c in verdict.causes] == [(compare.ENVIRONMENT, SEED)]
    assert "(set) → bbbbbbbbbbbb (unset)" in verdict.causes[0].detail
    assert _verdict(then, then).causes == []


def test_a_secret_named_variable_makes_its_step_unverifiable() -> None:
    weak = Fingerprint(environment_variables.KIND, None, weak=True, reason="not fingerprinted: a secret")
    name = environment_name("API_TOKEN")
    verdict = _verdict(_step((Read(name, weak),)), _step((Read(name, weak),)))
    assert verdict.causes == [] and verdict.unverifiable == [f"`{name}` (read): not fingerprinted: a secret"]


def test_a_write_only_the_replay_recorded_is_a_note() -> None:
    # a log recorded before environment variables were values makes no claim on them
    now = _step(writes=(Write(SEED, Fingerprint(environment_variables.KIND, "a" * 32, summary="set")),))
    verdict = _verdict(_step(), now)
    assert verdict.causes == [] and verdict.changed == []
    assert [c.kind for c in verdict.notes] == [compare.ENVIRONMENT_NOT_RECORDED]


def test_secret_names() -> None:
    for name in ("API_KEY", "github_token", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "PASSWD", "GOOGLE_CREDENTIALS",
                 "AUTH_HEADER", "OAUTH_CLIENT", "COOKIE_JAR", "SESSION_ID", "PRIVATE_PEM"):
        assert environment_variables.is_secret(name), name
    for name in ("SEED", "DATA_DIR", "HOME", "PATH", "JPY_SESSION_NAME", "SSH_AUTH_SOCK", "XAUTHORITY",
                 "DBUS_SESSION_BUS_ADDRESS", "XDG_SESSION_TYPE",  # locations, not secrets
                 "GIT_AUTHOR_NAME", "AUTHOR"):  # AUTHOR is not AUTH
        assert not environment_variables.is_secret(name), name


def test_os_environ_replaced_by_the_notebook_is_not_called(recording: RecordingShell,
                                                          environment: pytest.MonkeyPatch) -> None:
    recording.run("import os\n_real = os.environ")
    try:
        recording.run("class Loud(dict):\n    def __getitem__(self, k):\n        raise RuntimeError('called')\n"
                      "os.environ = Loud(NBGOV_TEST_SEED='1')")
        recording.run("x = 'NBGOV_TEST_SEED' in os.environ")
        record = recording.record()
        assert not any(environment_variable(r.name) for r in record.reads)
        assert any("not the standard library's mapping" in note for note in record.notes), record.notes
    finally:
        recording.run("os.environ = _real")
    assert type(os.environ).__name__ == "_Environ"
