"""Notebook values that hold a secret environment variable's value are not fingerprinted.

``key = os.environ["OPENAI_API_KEY"]`` copies a secret into a notebook variable. Its
fingerprint (xxh3, no cryptographic hash) would sit in the sidecar and the notebook's
metadata, where a guessable secret could be found from it, so ``environment_variables``
leaves such variables unhashed when they are read. Here the copy is treated alike: a str
or bytes value equal to the value of an environment variable whose name suggests a secret
(``is_secret``) gets a weak fingerprint saying so, which replay calls unverifiable.

Values shorter than ``MIN_CHARS`` are not taken for secrets (``SESSION_TIMEOUT=30`` would
make every "30" one). Limits: only a whole value is matched (a secret inside a longer
string, a list or a dict is hashed with the rest, which the log does not hold), and only
environment variables are known (a password typed into ``getpass`` is not).
"""

from __future__ import annotations

import os
from typing import Any

from nbgov.lineage.environment_variables import environment_data, is_secret

MIN_CHARS = 8


class SecretValues:
    """The values of secret-named environment variables, read again when the environment
    changed (``os.environ``'s own dict compared in C: a cell may set one)."""

    def __init__(self) -> None:
        self._seen: dict[Any, Any] | None = None
        self._names: dict[str | bytes, str] = {}
        self._longest = 0  # a longer value is no secret's: not hashed by str's own hash here

    def name_of(self, value: str | bytes) -> str | None:
        """The secret-named variable whose value ``value`` is (an exact str or bytes), or None."""
        if len(value) < MIN_CHARS:
            return None
        data = environment_data()
        if data is None:
            return None
        if data != self._seen:
            self._names = _secret_names(data)
            self._longest = max(map(len, self._names), default=0)
            self._seen = dict(data)
        return self._names.get(value) if len(value) <= self._longest else None


def _secret_names(data: dict[Any, Any]) -> dict[str | bytes, str]:
    """{value: name} of the secret-named variables (their text and, on POSIX, their bytes)."""
    names: dict[str | bytes, str] = {}
    for key, value in data.items():
        name = os.fsdecode(key) if type(key) is bytes else str(key)
        if not is_secret(name):
            continue
        text = os.fsdecode(value) if type(value) is bytes else str(value)
        if len(text) < MIN_CHARS:
            continue
        names[text] = name
        if type(value) is bytes:
            names[value] = name
    return names


def reason(name: str) -> str:
    """Why a value holding the secret of variable ``name`` has no fingerprint."""
    return (f"not fingerprinted: it holds the value of the environment variable {name}, whose name suggests a "
            "secret, and a fingerprint (xxh3) could reveal a guessable value")
