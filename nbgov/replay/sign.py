"""`nbgov sign` and `verify --allowed-signers`: SSH signatures over the chain's head.

A hash chain shows edits to one entry, but an insider can rewrite the whole history
and recompute every hash. A signature over the head (sequence number, entry hash,
the sha256 of every line up to it, and the log's first entry) pins the history up to
that point to a key: a later rewrite moves the head off the signed one.

The format is git's SSH signatures (``ssh-keygen -Y sign``, namespace ``nbgov``), so
``ssh-keygen -Y verify`` checks a signature on its own and an allowed-signers file
is the one git reads (``gpg.ssh.allowedSignersFile``). Each signature is two files in
``.nbgov/<stem>.signatures/``: the signed text (``head-<seq>-<id>.txt``) and the
armored signature beside it (``.sig``), written without following symlinks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nbgov.errors import LineageError, ReplayError
from nbgov.lineage.store import canonical_json, open_folder, read_log
from nbgov.lineage.user_files import NO_SUCH_FILE, check_regular, not_regular, read_regular

NAMESPACE = "nbgov"
HEADER = "nbgov signed chain head v1"
_FIELDS = ("notebook", "sidecar", "root", "seq", "hash", "chain-sha256", "signed")
_MAX_FILE = 1 << 20
_TIMEOUT_S = 120


@dataclass(frozen=True)
class SignedHead:
    """What one signature vouches for: the chain up to and including entry ``seq``."""

    notebook: str
    sidecar: str
    root: str
    seq: int
    hash: str
    chain_sha256: str
    signed: str

    def text(self) -> str:
        values = (self.notebook, self.sidecar, self.root, str(self.seq), self.hash, self.chain_sha256,
                  self.signed)
        return HEADER + "\n" + "".join(f"{k}: {v}\n" for k, v in zip(_FIELDS, values))

    @classmethod
    def parse(cls, text: str) -> SignedHead:
        """ValueError when ``text`` is not a signed head written by ``sign``."""
        lines = text.split("\n")
        if lines[0] != HEADER or len(lines) != len(_FIELDS) + 2 or lines[-1] != "":
            raise ValueError("not an nbgov signed head")
        values: dict[str, str] = {}
        for key, line in zip(_FIELDS, lines[1:]):
            prefix = f"{key}: "
            if not line.startswith(prefix):
                raise ValueError(f"expected {key!r}")
            values[key] = line[len(prefix):]
        return cls(values["notebook"], values["sidecar"], values["root"], int(values["seq"]),
                   values["hash"], values["chain-sha256"], values["signed"])


def chain_sha256(entries: Sequence[Mapping[str, Any]], upto: int) -> str:
    """sha256 of the canonical lines of entries 0..upto (file order): a cryptographic
    digest of the history, since the chain's own xxh3 links are not collision-proof."""
    digest = hashlib.sha256()
    for entry in entries:
        digest.update(canonical_json(entry) + b"\n")
        if entry.get("seq") == upto:
            break
    return digest.hexdigest()


def head_of(notebook: Path, sidecar: Path, entries: Sequence[Mapping[str, Any]]) -> SignedHead:
    """The head to sign now: the sidecar's last entry."""
    last = entries[-1]
    signed = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return SignedHead(notebook.name, sidecar.name, str(entries[0]["hash"]), int(last["seq"]),
                      str(last["hash"]), chain_sha256(entries, int(last["seq"])), signed)


def signature_folder(sidecar: Path) -> Path:
    return sidecar.parent / f"{sidecar.stem}.signatures"


def ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise ReplayError("ssh-keygen not found: OpenSSH is needed to sign and to check signatures")
    return found


def _run(args: list[str], stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run([ssh_keygen(), *args], input=stdin, capture_output=True, timeout=_TIMEOUT_S,
                              check=False)
    except subprocess.TimeoutExpired:
        raise ReplayError(f"ssh-keygen {args[0]} {args[1]} did not finish in {_TIMEOUT_S}s") from None


def _given_file(path: Path, expected: str, missing: str) -> None:
    """LineageError ``missing`` when ``path`` is not there; UserFileError (one line) when it is
    no regular file: ssh-keygen opens it by name and would block on a FIFO until its timeout."""
    if not_regular(path) == NO_SUCH_FILE:
        raise LineageError(f"{path}: {missing}")
    check_regular(path, expected)


def _first_line(data: bytes) -> str:
    text = data.decode("utf-8", "replace").strip()
    return text.splitlines()[-1] if text else "no message"


# -- files beside the sidecar, never through a symlink ---------------------------

def _signature_dir_fd(sidecar: Path, create: bool) -> int | None:
    parent = open_folder(sidecar.parent, create=False)
    if parent is None:
        return None
    name = signature_folder(sidecar).name
    try:
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass
        try:
            return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            raise LineageError(f"{signature_folder(sidecar)} is a symlink or not a folder; refused") from None
    finally:
        os.close(parent)


def _write_new(dir_fd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                 dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_small(dir_fd: int, name: str) -> bytes | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = fh.read(_MAX_FILE + 1)
    return data if len(data) <= _MAX_FILE else None


@dataclass(frozen=True)
class StoredSignature:
    name: str
    payload: bytes
    signature: bytes


def stored_signatures(sidecar: Path) -> Iterator[StoredSignature]:
    """Every (signed text, signature) pair beside the sidecar, sorted by file name."""
    dir_fd = _signature_dir_fd(sidecar, create=False)
    if dir_fd is None:
        return
    try:
        names = sorted(n for n in os.listdir(dir_fd) if n.endswith(".txt"))
        for name in names:
            payload = _read_small(dir_fd, name)
            signature = _read_small(dir_fd, name + ".sig")
            if payload is not None and signature is not None:
                yield StoredSignature(name, payload, signature)
    finally:
        os.close(dir_fd)


# -- signing -----------------------------------------------------------------------

@dataclass(frozen=True)
class SignOutcome:
    head: SignedHead
    files: tuple[Path, Path]
    key_description: str


def sign(notebook: Path, key: Path) -> SignOutcome:
    """Sign the head of a verified sidecar with an SSH key; LineageError if it does not verify."""
    from nbgov.replay.verify import verify

    checked = verify(notebook, require_sidecar=True)
    if checked.problems:
        raise LineageError(f"will not sign {notebook.name}: its lineage does not verify "
                           f"({checked.problems[0]}); run `nbgov verify` for every problem")
    assert checked.sidecar is not None
    _given_file(key, "an SSH key file", "no such key file (pass an SSH private key with --key)")
    public = key.with_name(key.name + ".pub")  # ssh-keygen reads this too when it is there
    if not_regular(public) != NO_SUCH_FILE:
        check_regular(public, "the key's public half, which ssh-keygen reads beside it")
    entries = read_log(checked.sidecar).entries
    head = head_of(notebook, checked.sidecar, entries)
    payload = head.text().encode("utf-8")
    done = _run(["-Y", "sign", "-f", str(key), "-n", NAMESPACE], payload)
    if done.returncode != 0 or b"BEGIN SSH SIGNATURE" not in done.stdout:
        raise LineageError(f"ssh-keygen could not sign with {key}: {_first_line(done.stderr)}")
    described = _check_novalidate(payload, done.stdout)
    ident = hashlib.sha256(done.stdout).hexdigest()[:12]
    name = f"head-{head.seq}-{ident}.txt"
    dir_fd = _signature_dir_fd(checked.sidecar, create=True)
    assert dir_fd is not None
    try:
        _write_new(dir_fd, name, payload)
        _write_new(dir_fd, name + ".sig", done.stdout)
    finally:
        os.close(dir_fd)
    folder = signature_folder(checked.sidecar)
    return SignOutcome(head, (folder / name, folder / (name + ".sig")), described)


@contextmanager
def _signature_file(signature: bytes) -> Iterator[str]:
    """The signature in a private temporary file (ssh-keygen reads signatures by path)."""
    with tempfile.TemporaryDirectory(prefix="nbgov-sig-") as tmp:
        path = Path(tmp) / "head.sig"
        path.write_bytes(signature)
        yield str(path)


def _check_novalidate(payload: bytes, signature: bytes) -> str:
    """'ED25519 key SHA256:…' of a signature that is cryptographically good (no signer policy)."""
    with _signature_file(signature) as sig_path:
        done = _run(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", sig_path], payload)
    if done.returncode != 0:
        raise LineageError(f"the signature just made does not check: {_first_line(done.stderr)}")
    return _key_of(done.stdout)


def _key_of(message: bytes) -> str:
    """'ED25519 key SHA256:…' from ssh-keygen's 'Good "nbgov" signature … with …' line."""
    text = message.decode("utf-8", "replace").strip()
    return text.split(" with ", 1)[-1] if " with " in text else text


# -- checking ------------------------------------------------------------------------

@dataclass
class SignatureReport:
    problems: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    signers: list[str] = field(default_factory=list)
    signed_through: int = -1  # with allowed signers: the newest entry one of them signed, still on the chain


def _on_chain(head: SignedHead, entries: Sequence[Mapping[str, Any]]) -> str | None:
    """Why the signed head is not the chain's history (None when it is)."""
    at = next((e for e in entries if e.get("seq") == head.seq), None)
    if at is None:
        return f"the sidecar has no entry {head.seq} any more"
    if at.get("hash") != head.hash:
        return f"entry {head.seq} now has hash {str(at.get('hash'))[:16]}, signed {head.hash[:16]}"
    if not entries or entries[0].get("hash") != head.root:
        return "the log's first entry changed"
    if chain_sha256(entries, head.seq) != head.chain_sha256:
        return f"the entries up to {head.seq} differ from the signed ones"
    return None


@contextmanager
def _allowed_copy(allowed: Path) -> Iterator[str]:
    """The allowed-signers file, read once by nbgov, in a private copy ssh-keygen reads by
    path: what is checked is what nbgov was given (``/dev/stdin`` is nbgov's input, not
    ssh-keygen's, which found no key there), and a file changed meanwhile is not read half
    old, half new."""
    _given_file(allowed, "an allowed-signers file", "no such allowed-signers file")
    data = read_regular(allowed, "an allowed-signers file")
    with tempfile.TemporaryDirectory(prefix="nbgov-allowed-") as tmp:
        path = Path(tmp) / "allowed_signers"
        path.write_bytes(data)
        yield str(path)


def _signer(signature: StoredSignature, allowed: str, named: str) -> tuple[str | None, str]:
    """(principal, description) when the signature verifies against the allowed-signers file
    ``allowed`` (the user's ``named``), else (None, why)."""
    with _signature_file(signature.signature) as sig_path:
        found = _run(["-Y", "find-principals", "-s", sig_path, "-f", allowed], b"")
        principals = [p for p in found.stdout.decode("utf-8", "replace").splitlines() if p.strip()]
        if found.returncode != 0 or not principals:
            return None, f"its key is not in {named}"
        why = "no principal"
        for principal in principals:
            done = _run(["-Y", "verify", "-f", allowed, "-I", principal, "-n", NAMESPACE, "-s", sig_path],
                        signature.payload)
            if done.returncode == 0:
                return principal, _key_of(done.stdout)
            why = _first_line(done.stderr)
    return None, f"it does not verify ({why})"


def check_signatures(notebook: Path, sidecar: Path, entries: Sequence[Mapping[str, Any]],
                     allowed: Path | None) -> SignatureReport:
    """Every stored signature: its head still on the chain, and (with ``allowed``) its signer."""
    with _allowed_copy(allowed) if allowed is not None else nullcontext(None) as copy:
        return _checked(sidecar, entries, allowed, copy)


def _checked(sidecar: Path, entries: Sequence[Mapping[str, Any]], allowed: Path | None,
             copy: str | None) -> SignatureReport:
    """``check_signatures`` with the allowed-signers file's private ``copy``."""
    report = SignatureReport()
    found = list(stored_signatures(sidecar))
    if not found:
        if allowed is not None:
            report.problems.append(f"no signatures beside the sidecar ({signature_folder(sidecar).name}/): "
                                   "--allowed-signers needs at least one signed head")
        return report
    newest = -1
    for stored in found:
        try:
            head = SignedHead.parse(stored.payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            report.problems.append(f"signature {stored.name}: not an nbgov signed head")
            continue
        off = _on_chain(head, entries)
        if allowed is not None and copy is not None:
            principal, how = _signer(stored, copy, allowed.name)
            if principal is None:
                report.problems.append(f"signature of entry {head.seq} ({stored.name}): {how}")
                continue
            who = f"{principal}" + (f" ({how})" if how else "")
        else:
            who = "an unchecked key"
        if off is not None:
            report.problems.append(f"signed head entry {head.seq}, signed by {who}, is no longer on the chain "
                                   f"({off}): the history was rewritten after it was signed")
            continue
        newest = max(newest, head.seq)
        if allowed is not None:
            report.signers.append(f"entry {head.seq} signed by {who} on {head.signed}")
    if allowed is None:
        report.notices.append(f"{len(found)} signed head(s) found; signers not checked (pass --allowed-signers FILE)")
    else:
        report.signed_through = newest
    last = int(entries[-1]["seq"]) if entries else -1
    if 0 <= newest < last:
        added = f"entry {last} was" if newest + 1 == last else f"entries {newest + 1}-{last} were"
        report.notices.append(f"{added} added after the newest signed head (entry {newest})")
    return report
