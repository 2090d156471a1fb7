"""Replaying a notebook that read environment variables: the replay kernel inherits the
reviewer's environment (nothing is set from the record, which keeps no value), so a variable
that holds another value there is the named cause of the divergence; one that holds the same
value reproduces; a secret-named one, never fingerprinted, makes its step unverifiable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nbgov.lineage.record import environment_name
from nbgov.replay import compare
from nbgov.replay.replayer import replay
from nbgov.replay.source import load_log
from tests.fixtures.replay import invoke, record, sidecar_lines

SEED = environment_name("NBGOV_REPLAY_SEED")
TOKEN = environment_name("NBGOV_REPLAY_TOKEN")

pytestmark = pytest.mark.kernel


def test_a_changed_variable_diverges_naming_it_and_an_unchanged_one_reproduces(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBGOV_REPLAY_SEED", "3")
    monkeypatch.delenv("NBGOV_REPLAY_TOKEN", raising=False)
    path = record(tmp_path / "env" / "env.ipynb", "import os",
                  "seed = int(os.environ.get('NBGOV_REPLAY_SEED', '0'))", "doubled = seed * 2")
    steps = [e["body"] for e in sidecar_lines(path) if e["kind"] == "execution"]
    assert [r["name"] for r in steps[1]["reads"]] == [SEED]
    assert steps[1]["reads"][0]["fingerprint"]["summary"] == "set"

    same = invoke("replay", path)  # the same environment
    assert same.exit_code == 0, same.output
    assert "all 3 steps reproduced" in same.output, same.output

    monkeypatch.setenv("NBGOV_REPLAY_SEED", "4")
    result = replay(load_log(path))
    assert result.exit_code == 1
    step = result.steps[1]
    assert step.status == "diverged", step
    assert [(c.kind, c.name) for c in step.verdict.causes] == [(compare.ENVIRONMENT, SEED)]
    assert "no step of the log set it" in step.verdict.causes[0].detail
    cli = invoke("replay", path)
    assert cli.exit_code == 1 and SEED in cli.output, cli.output


def test_a_secret_named_variable_is_unverifiable_and_never_in_the_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBGOV_REPLAY_TOKEN", "tok-recorded-value-1234")
    path = record(tmp_path / "secret" / "secret.ipynb", "import os",
                  "has_token = 'NBGOV_REPLAY_TOKEN' in os.environ")
    text = (path.parent / ".nbgov" / "secret.jsonl").read_text()
    assert "tok-recorded-value-1234" not in text and "tok-recorded-value-1234" not in path.read_text()
    read = [e["body"] for e in sidecar_lines(path) if e["kind"] == "execution"][1]["reads"][0]
    assert read["name"] == TOKEN and read["fingerprint"]["hash"] is None and read["fingerprint"]["weak"]
    assert json.dumps(read).count("tok-") == 0

    monkeypatch.setenv("NBGOV_REPLAY_TOKEN", "tok-another-value")
    result = replay(load_log(path))
    step = result.steps[1]
    assert step.status == "unverifiable", step
    assert step.verdict.causes == []
    assert [u.split(" (read)")[0] for u in step.verdict.unverifiable] == [f"`{TOKEN}`"]
    assert "may hold a secret" in step.verdict.unverifiable[0]
