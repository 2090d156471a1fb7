"""An entry appended to the notebook metadata alone chains to the sidecar's head, and
`verify` cannot check it against the sidecar (a full disk would leave one too), so the
lineage is inconsistent: verify fails, and `replay` does not run its code unless asked
with --unverified, and says why."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from nbgov.lineage import notebook_meta
from nbgov.lineage.store import make_entry, sidecar_path
from nbgov.replay.source import read_sidecar
from tests.fixtures.replay import invoke, record


def _append_to_metadata_only(path: Path, code: str) -> None:
    entries = read_sidecar(sidecar_path(path))
    last = entries[-1]
    body = dict(last["body"])
    count = int(body["execution_count"]) + 1
    body.update(execution_count=count, id=f"{body['session']}:{count}", code=code, reads=[], writes=[])
    forged = make_entry(int(last["seq"]) + 1, str(last["hash"]), "execution", body)
    nb = notebook_meta.read_notebook(path)
    notebook_meta.merge_entries(nb, [*entries, forged], notebook_meta.sidecar_relpath(path))
    notebook_meta.write_notebook(nb, path)


@pytest.mark.kernel
def test_replay_does_not_run_code_the_sidecar_never_held(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "x = 1")
    _append_to_metadata_only(path, "open('injected.txt', 'w').write('ran')")
    checked = invoke("verify", path)
    assert checked.exit_code == 1 and "entry 2 (execution [2] of cell " in checked.output and "is not in the sidecar" in checked.output
    refused = invoke("replay", path)
    assert refused.exit_code == 2, refused.output
    assert "entry 2 (execution [2] of cell " in refused.output and "is not in the sidecar" in refused.output and "--unverified" in refused.output
    assert not (tmp_path / "injected.txt").exists()
    loud = invoke("replay", path, "--unverified")
    assert "is not in the sidecar" in loud.output and (tmp_path / "injected.txt").exists()


def _with_twice(line: str, key: str, value: str) -> str:
    """The line with ``key`` given a second time, first, inside the object that holds it."""
    at = line.index(f'"{key}":')
    opening = line.rindex("{", 0, at)
    return line[: opening + 1] + json.dumps(key) + ":" + json.dumps(value) + "," + line[opening + 1:]


@pytest.mark.kernel
def test_a_key_given_twice_in_a_log_line_is_refused(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "x = 1", "y = 2")
    lines = sidecar_path(path).read_text().splitlines()
    lines[2] = _with_twice(lines[2], "code", "print('what a reviewer reads')")  # Python keeps the last
    sidecar_path(path).write_text("\n".join(lines) + "\n")
    checked = invoke("verify", path)
    assert checked.exit_code == 1 and "line 3: the key 'code' appears twice" in checked.output
    assert invoke("replay", path).exit_code == 2


@pytest.mark.kernel
def test_a_key_given_twice_in_a_metadata_line_is_refused(tmp_path: Path) -> None:
    path = record(tmp_path / "nb.ipynb", "x = 1")
    nb = nbformat.read(str(path), as_version=4)
    log = nb.metadata["nbgov"]["log"]
    log[-1] = _with_twice(log[-1], "code", "print('shown')")
    nbformat.write(nb, str(path))
    checked = invoke("verify", path)
    assert checked.exit_code == 1 and "appears twice" in checked.output, checked.output
