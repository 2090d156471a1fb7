"""Notebook values that hold a secret environment variable's value are not fingerprinted.

``key = os.environ["OPENAI_API_KEY"]`` copies a secret into a notebook variable. Its
fingerprint (xxh3, no cryptographic hash) would sit in the sidecar and the notebook's
metadata, where a guessable secret could be found from it, so ``environment_variables``
leaves such variables unhashed when they are read. Here the copy is treated alike: a str
or bytes value equal to the value of an environment variable whose name suggests a secret
(``is_secret``) gets a weak fingerprint saying so, which replay calls unverifiable. So does
a value holding such a secret's text anywhere in what its fingerprint would read: a longer
string (``'Bearer ' + key``), a list, a dict, an object's attributes, a frame's or an
array's strings (``needles``: the fingerprint's walk looks for them in the bytes it hashes).

Values shorter than ``MIN_CHARS`` are not taken for secrets (``SESSION_TIMEOUT=30`` would
make every "30" one). Limits: only values are searched, for the secret's own text (its
base64 is hashed with the rest, which the log does not hold; a file is hashed whatever it
holds), and only environment variables are known (a password typed into ``getpass`` is not).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from nbgov.lineage.environment_variables import environment_data, is_secret
from nbgov.lineage.record import environment_name

MIN_CHARS = 8
_identity = object.__hash__  # (id() raises an audit event; == of a planted object runs its code)


class Needle(NamedTuple):
    """A secret's text as a fingerprint encodes it (UTF-8, or the variable's bytes), and why
    a value holding it is not fingerprinted."""

    text: bytes
    reason: str


class SecretValues:
    """The values of secret-named environment variables, listed again when the environment
    changed: ``os.environ``'s own dict, its keys and values compared by identity (each
    assignment stores a new object, and the last ones seen are held, so no address is reused)."""

    def __init__(self) -> None:
        self._held: dict[Any, Any] = {}  # the environment as last listed: its objects kept alive
        self._seen: tuple[list[int], list[int]] | None = None
        self._needles: tuple[Needle, ...] = ()

    def needles(self) -> tuple[Needle, ...]:
        """The secrets' texts, to look for in the bytes a fingerprint hashes (none: empty)."""
        data = environment_data()
        if data is None:
            return ()
        now = (list(map(_identity, data)), list(map(_identity, data.values())))
        if now != self._seen:
            self._needles, planted = _secret_needles(data)
            # an object a notebook planted there is not kept alive: then listed afresh each time
            self._held, self._seen = ({}, None) if planted else (dict(data), now)
        return self._needles


def _secret_needles(data: dict[Any, Any]) -> tuple[tuple[Needle, ...], bool]:
    """The secret-named variables' values (their UTF-8 text and, on POSIX, their bytes), and
    whether any key or value is neither bytes nor str (planted by a notebook: skipped)."""
    found: dict[bytes, str] = {}
    planted = False
    for key, value in data.items():
        name, text = _text(key), _text(value)
        if name is None or text is None:
            planted = True
            continue
        if is_secret(name) and len(text) >= MIN_CHARS:
            found.setdefault(text.encode("utf-8", "surrogatepass"), name)
            if type(value) is bytes:
                found.setdefault(value, name)
    return tuple(Needle(secret, reason(name)) for secret, name in found.items()), planted


def _text(item: Any) -> str | None:
    """An environment key or value as text: bytes (POSIX) or str (Windows), nothing planted."""
    if type(item) is bytes:
        return os.fsdecode(item)
    return item if type(item) is str else None


def reason(name: str) -> str:
    """Why a value holding the secret of variable ``name`` has no fingerprint (the name as
    reads of it are named: quoted, so no character of it reaches a terminal raw)."""
    return (f"not fingerprinted: it holds the value of {environment_name(name)}, whose name suggests a secret, "
            "and a fingerprint (xxh3) could reveal a guessable value")
