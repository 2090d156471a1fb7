"""`nbgov sign` and `verify --allowed-signers` with real ssh-keygen keys."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nbgov.lineage.store import SidecarStore, make_entry, sidecar_path
from tests.fixtures.replay import invoke, record, sidecar_lines, write_sidecar_lines

pytestmark = pytest.mark.kernel


def keygen(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


def allowed_signers(folder: Path, *signers: tuple[str, Path]) -> Path:
    path = folder / "allowed_signers"
    lines = []
    for principal, key in signers:
        kind, blob = (key.with_suffix(".pub") if key.suffix != ".pub" else key).read_text().split()[:2]
        lines.append(f'{principal} namespaces="nbgov" {kind} {blob}\n')
    path.write_text("".join(lines))
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    assert shutil.which("ssh-keygen"), "OpenSSH's ssh-keygen is needed for signatures"
    folder = tmp_path_factory.mktemp("keys")
    return {"alice": keygen(folder, "alice"), "mallory": keygen(folder, "mallory")}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record(tmp_path_factory.mktemp("signed") / "audit.ipynb", "a = 1", "b = a * 2", "c = b + a")


@pytest.fixture
def nb_path(recorded: Path, tmp_path: Path) -> Path:
    target = tmp_path / "audit.ipynb"
    shutil.copy(recorded, target)
    (tmp_path / ".nbgov").mkdir()
    shutil.copy(sidecar_path(recorded), sidecar_path(target))
    return target


def _out(result: object) -> str:
    return " ".join(str(getattr(result, "output", "")).split())


def test_a_signed_head_verifies_names_its_signer_and_checks_with_plain_ssh_keygen(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    signed = invoke("sign", nb_path, "--key", keys["alice"])
    assert signed.exit_code == 0, signed.output
    assert "signed entry 3 of audit.ipynb" in signed.output and "ED25519 key SHA256:" in signed.output
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    checked = invoke("verify", nb_path, "--allowed-signers", allowed)
    assert checked.exit_code == 0, checked.output
    assert "entry 3 signed by alice@example.com (ED25519 key SHA256:" in _out(checked)
    payload = next((tmp_path / ".nbgov" / "audit.signatures").glob("head-3-*.txt"))
    plain = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", "alice@example.com",
                            "-n", "nbgov", "-s", f"{payload}.sig"], input=payload.read_bytes(),
                           capture_output=True, check=False)
    assert plain.returncode == 0, plain.stderr
    assert b'Good "nbgov" signature for alice@example.com' in plain.stdout
    assert "seq: 3\n" in payload.read_text()


def test_allowed_signers_given_on_standard_input_is_read_by_nbgov_not_by_ssh_keygen(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    """``--allowed-signers /dev/stdin < file`` names nbgov's input; ssh-keygen, reading that
    path in its own process, found its own empty input and said the key was not there."""
    import sys

    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    repo = str(Path(__file__).resolve().parents[1])  # this checkout's nbgov, as the in-process tests use
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    with allowed.open("rb") as given:
        checked = subprocess.run([sys.executable, "-m", "nbgov.cli", "verify", str(nb_path), "--allowed-signers",
                                  "/dev/stdin"], stdin=given, capture_output=True, text=True, env=env, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "entry 3 signed by alice@example.com" in " ".join(checked.stdout.split())


def test_a_history_rewritten_with_recomputed_hashes_is_caught_by_the_signature(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    entries = sidecar_lines(nb_path)
    entries[2]["body"]["code"] = "b = a * 2000"  # the insider rewrites history ...
    prev = entries[1]["hash"]
    for entry in entries[2:]:  # ... and recomputes every hash after it
        entry.update(make_entry(entry["seq"], prev, entry["kind"], entry["body"]))
        prev = entry["hash"]
    write_sidecar_lines(nb_path, entries)
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata["nbgov"]["log"] = [json.dumps(e) for e in entries]  # whole entries are valid lines
    for cell in nb.cells:
        cell.metadata.pop("nbgov", None)
    nbformat.write(nb, str(nb_path))
    plain = invoke("verify", nb_path)
    assert "sidecar:" not in plain.output and "notebook metadata:" not in plain.output  # hashes all agree
    assert plain.exit_code == 1 and "no longer on the chain" in _out(plain)  # but the signed head moved
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    checked = invoke("verify", nb_path, "--allowed-signers", allowed)
    assert checked.exit_code == 1
    assert "signed head entry 3, signed by alice@example.com" in _out(checked)
    assert "the history was rewritten after it was signed" in _out(checked)


def test_an_unknown_signer_and_missing_signatures_fail_with_allowed_signers(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    missing = invoke("verify", nb_path, "--allowed-signers", allowed)
    assert missing.exit_code == 1 and "no signatures beside the sidecar" in _out(missing)
    assert invoke("sign", nb_path, "--key", keys["mallory"]).exit_code == 0
    stranger = invoke("verify", nb_path, "--allowed-signers", allowed)
    assert stranger.exit_code == 1 and "its key is not in allowed_signers" in _out(stranger)


def test_entries_after_the_signed_head_are_noticed_and_a_tampered_log_is_not_signed(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    last = sidecar_lines(nb_path)[-1]["body"]
    store = SidecarStore(sidecar_path(nb_path), background_fsync=False)
    store.append("execution", dict(last, execution_count=9, code="d = 4"))
    store.close()
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    later = invoke("verify", nb_path, "--allowed-signers", allowed)
    assert later.exit_code == 0, later.output
    assert "entry 4 was added after the newest signed head (entry 3)" in _out(later)
    entries = sidecar_lines(nb_path)
    entries[1]["body"]["code"] = "a = 'edited'"
    write_sidecar_lines(nb_path, entries)
    refused = invoke("sign", nb_path, "--key", keys["alice"])
    assert refused.exit_code == 2 and "will not sign audit.ipynb: its lineage does not verify" in _out(refused)


def test_a_symlinked_signature_folder_is_refused(nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (tmp_path / ".nbgov" / "audit.signatures").symlink_to(victim)
    result = invoke("sign", nb_path, "--key", keys["alice"])
    assert result.exit_code == 2 and "symlink" in result.output
    assert list(victim.iterdir()) == []


def _refused(result: object) -> str:
    """The one line a refused replay prints (exit 2), with nothing run."""
    assert getattr(result, "exit_code") == 2, getattr(result, "output")
    lines = str(getattr(result, "output")).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbgov: error: will not replay audit.ipynb: "), lines
    return lines[0]


def test_replay_with_allowed_signers_runs_a_log_signed_by_one_of_them(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    result = invoke("replay", nb_path, "--allowed-signers", allowed)
    assert result.exit_code == 0, result.output
    assert "will not replay" not in result.output and "WARNING" not in result.output


def test_replay_with_allowed_signers_refuses_what_verify_rejects(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    # unsigned: plain `replay` runs it, `verify --allowed-signers` fails, so the replay does not run
    assert invoke("verify", nb_path, "--allowed-signers", allowed).exit_code == 1
    assert "no signatures beside the sidecar" in _refused(invoke("replay", nb_path, "--allowed-signers", allowed))
    # signed by a key not in the file
    assert invoke("sign", nb_path, "--key", keys["mallory"]).exit_code == 0
    assert invoke("verify", nb_path, "--allowed-signers", allowed).exit_code == 1
    line = _refused(invoke("replay", nb_path, "--allowed-signers", allowed))
    assert "its key is not in allowed_signers" in line and f"nbgov verify --allowed-signers {allowed}" in line
    # --unverified cannot lift a signature requirement
    both = invoke("replay", nb_path, "--allowed-signers", allowed, "--unverified")
    assert both.exit_code == 2 and "contradict" in both.output
    missing = invoke("replay", nb_path, "--allowed-signers", tmp_path / "nope")
    assert missing.exit_code == 2 and "no such allowed-signers file" in missing.output


def test_replay_with_allowed_signers_runs_no_rewritten_history(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    entries = sidecar_lines(nb_path)
    entries[2]["body"]["code"] = "open('pwned', 'w').close()"  # rewritten, every hash after it recomputed
    prev = entries[1]["hash"]
    for entry in entries[2:]:
        entry.update(make_entry(entry["seq"], prev, entry["kind"], entry["body"]))
        prev = entry["hash"]
    write_sidecar_lines(nb_path, entries)
    import nbformat

    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata["nbgov"]["log"] = [json.dumps(e) for e in entries]
    for cell in nb.cells:
        cell.metadata.pop("nbgov", None)
    nbformat.write(nb, str(nb_path))
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    line = _refused(invoke("replay", nb_path, "--allowed-signers", allowed))
    assert "no longer on the chain" in line
    assert not (tmp_path / "pwned").exists()


def test_replay_with_allowed_signers_runs_nothing_appended_after_the_signed_head(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    last = sidecar_lines(nb_path)[-1]["body"]
    store = SidecarStore(sidecar_path(nb_path), background_fsync=False)
    store.append("execution", dict(last, execution_count=9, code="open('pwned', 'w').close()"))
    store.close()
    allowed = allowed_signers(tmp_path, ("alice@example.com", keys["alice"]))
    assert invoke("verify", nb_path, "--allowed-signers", allowed).exit_code == 0  # verify only notes it
    line = _refused(invoke("replay", nb_path, "--allowed-signers", allowed))
    assert "entry 4 was added after the newest head an allowed signer signed (entry 3)" in line
    assert "--until 3" in line
    assert not (tmp_path / "pwned").exists()
    signed_part = invoke("replay", nb_path, "--allowed-signers", allowed, "--until", "3")
    assert signed_part.exit_code == 0, signed_part.output
    assert not (tmp_path / "pwned").exists()


def _one_line(result: object) -> str:
    """The one line a refused command prints (exit 2), without a traceback."""
    output = str(getattr(result, "output"))
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert getattr(result, "exit_code") == 2 and len(lines) == 1 and "Traceback" not in output, output
    assert lines[0].startswith("nbgov: error: ")
    return lines[0]


def _not_a_file(folder: Path, kind: str) -> Path:
    """A FIFO (os.mkfifo) or a folder where a file is expected."""
    path = folder / f"given-{kind}"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    return path


NOT_A_FILE = {"fifo": "is a FIFO (named pipe), not a file", "folder": "is a folder, not a file"}


@pytest.mark.timeout(60)  # before the fix ssh-keygen blocked on the FIFO for its 120 s timeout
@pytest.mark.parametrize("kind", NOT_A_FILE)
def test_a_key_that_is_no_regular_file_is_one_line_and_exit_2(nb_path: Path, tmp_path: Path, kind: str) -> None:
    key = _not_a_file(tmp_path, kind)
    line = _one_line(invoke("sign", nb_path, "--key", key))
    assert f"given-{kind}: {NOT_A_FILE[kind]} (expected an SSH key file)" in line
    assert not (sidecar_path(nb_path).parent / "audit.signatures").exists()


@pytest.mark.timeout(60)  # ssh-keygen reads KEY.pub when it is there: a FIFO blocked it as well
def test_a_fifo_beside_the_key_as_its_public_half_is_one_line_and_exit_2(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path) -> None:
    key = tmp_path / "alice"
    shutil.copy(keys["alice"], key)
    os.mkfifo(tmp_path / "alice.pub")
    line = _one_line(invoke("sign", nb_path, "--key", key))
    assert "alice.pub: is a FIFO (named pipe), not a file (expected the key's public half" in line


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", NOT_A_FILE)
@pytest.mark.parametrize("command", ["verify", "replay"])
def test_allowed_signers_that_is_no_regular_file_is_one_line_and_exit_2(
        nb_path: Path, keys: dict[str, Path], tmp_path: Path, kind: str, command: str) -> None:
    assert invoke("sign", nb_path, "--key", keys["alice"]).exit_code == 0
    allowed = _not_a_file(tmp_path, kind)
    line = _one_line(invoke(command, nb_path, "--allowed-signers", allowed))
    assert f"given-{kind}: {NOT_A_FILE[kind]} (expected an allowed-signers file)" in line
