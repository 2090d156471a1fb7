"""An entry appended to the notebook metadata alone chains to the sidecar's head, and
`verify` can only say it was "never written to the sidecar" (a full disk does that).
Anyone editing the .ipynb can append one, so `replay` does not run its code unless
asked with --unverified, and says why."""

from __future__ import annotations

from pathlib import Path

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
    assert checked.exit_code == 0 and "never written to the sidecar" in checked.output  # as designed: a notice
    refused = invoke("replay", path)
    assert refused.exit_code == 2, refused.output
    assert "entry 2 was never written to the sidecar" in refused.output and "--unverified" in refused.output
    assert not (tmp_path / "injected.txt").exists()
    loud = invoke("replay", path, "--unverified")
    assert "never written to the sidecar" in loud.output and (tmp_path / "injected.txt").exists()
