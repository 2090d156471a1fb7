"""JSON as the lineage readers take it: an object may not name a key twice.

Python's ``json`` keeps the last of two equal keys, other readers the first. A
sidecar or metadata line holding ``"code"`` twice would show a reviewer one program
while replay runs the other, and its hash (computed over what Python read) would still
match; such a line is refused as forged or corrupted.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """A JSON object naming one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return obj


def strict_json(text: str | bytes) -> Any:
    """``json.loads``, refusing an object with a repeated key (``DuplicateKey``)."""
    return json.loads(text, object_pairs_hook=_unique_keys)
