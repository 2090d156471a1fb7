"""JSON as the lineage readers take it: an object may not name a key twice, and every
number is a JSON number.

Python's ``json`` keeps the last of two equal keys, other readers the first. A
sidecar or metadata line holding ``"code"`` twice would show a reviewer one program
while replay runs the other, and its hash (computed over what Python read) would still
match; such a line is refused as forged or corrupted.

Python's ``json`` also reads ``NaN``, ``Infinity`` and ``-Infinity`` (and turns ``1e999``
into infinity), which JSON does not have: nbgov never writes them (its encoders refuse
them), other readers reject them, and a number that is not one breaks whatever computes
with it (a duration as NaN seconds). Such a line is refused the same way.
"""

from __future__ import annotations

import json
import math
from typing import Any


class DuplicateKey(ValueError):
    """A JSON object naming one key twice."""


class NonFinite(ValueError):
    """``NaN``, ``Infinity``, or a number too large for a double: not a JSON number."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {key!r} appears twice in one object")
            seen.add(key)
    return obj


def _refuse_constant(name: str) -> Any:
    raise NonFinite(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFinite(f"the number {text[:24]} is out of range")
    return value


def strict_json(text: str | bytes) -> Any:
    """``json.loads``, refusing an object with a repeated key (``DuplicateKey``) and a
    number JSON does not have (``NonFinite``)."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_refuse_constant,
                      parse_float=_finite_float)


def non_finite(value: Any) -> bool:
    """Whether ``value`` (parsed by a lenient reader, e.g. nbformat's) holds a NaN or an
    infinity anywhere: what ``strict_json`` would have refused."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return False
