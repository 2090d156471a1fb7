"""The byte encoding a fingerprint hashes: self-delimiting, type-tagged, canonical.

Every value becomes a tag byte and a length- or count-prefixed payload, so two
different values cannot produce the same stream by layout (``["ab", "c"]`` vs
``["a", "bc"]``, ``1`` vs ``1.0`` vs ``True``). Lists of plain scalars, the bulk of
object columns, are encoded in a handful of C-level passes. Buffers larger than
one block are hashed block by block (xxh3-128 per MiB, then the digests): raw
xxh3 speed, bounded latency to a KeyboardInterrupt, and a form in which a block
known to be all zeros (a hole in a sparse file) need not be read.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable, Sequence
from typing import Any

import xxhash

BLOCK = 1 << 20  # buffers above this are hashed per block
LONG_TEXT = 4096  # str/bytes above this are hashed once per walk, then referenced by digest
SCALAR_RUN = 8  # lists at least this long try the columnar scalar encoding

_double = struct.Struct("<d").pack
_two_doubles = struct.Struct("<dd").pack
_ZERO_BLOCK_DIGEST = xxhash.xxh3_128_digest(bytes(BLOCK))


def enc_int(value: int) -> bytes:
    return b"i%x;" % value  # hex has no digit limit (str() of a huge int has)


def enc_float(value: float) -> bytes:
    return b"f" + _double(value)


def enc_complex(value: complex) -> bytes:
    return b"c" + _two_doubles(value.real, value.imag)


def enc_str(value: str) -> bytes:
    data = value.encode("utf-8", "surrogatepass")
    return b"s%x;" % len(data) + data


def enc_bytes(value: bytes) -> bytes:
    return b"b%x;" % len(value) + value


def enc_bool(value: bool) -> bytes:
    return b"T" if value else b"F"


def enc_none(value: None) -> bytes:
    return b"N"


Encoder = Callable[[Any], bytes]

# Exact types only, keyed by id: a dict keyed by the type itself would hash it,
# and a user metaclass may define __hash__.
ATOMS: dict[int, Encoder] = {
    id(int): enc_int,
    id(float): enc_float,
    id(str): enc_str,
    id(bool): enc_bool,
    id(type(None)): enc_none,
    id(complex): enc_complex,
}

_SCALAR_CODES = {id(str): 0x73, id(int): 0x69, id(float): 0x66, id(type(None)): 0x4E, id(bool): 0x54}


def scalar_run(values: Sequence[Any]) -> bytes | None:
    """The columnar encoding of a list of str/int/float/bool/None, or None if it does not apply.

    One type code per element, then the strings (lengths + UTF-8), the ints
    (int64), the floats (their bits) and the bools, each in one C-level pass.
    Deterministic in the content, so equal lists meet here or both miss.
    """
    type_ids = set(map(id, map(type, values)))
    if not type_ids.issubset(_SCALAR_CODES):
        return None
    codes = bytes(map(_SCALAR_CODES.__getitem__, map(id, map(type, values))))
    out = [b"V%x;" % len(values), codes]
    if id(str) in type_ids:
        texts = [v for v in values if type(v) is str]
        joined = "".join(texts).encode("utf-8", "surrogatepass")
        out += [array("q", map(len, texts)).tobytes(), b"%x;" % len(joined), joined]
    if id(int) in type_ids:
        try:
            out.append(array("q", [v for v in values if type(v) is int]).tobytes())
        except OverflowError:
            return None  # an int beyond 64 bits: the element-wise encoding takes it
    if id(float) in type_ids:
        out.append(array("d", [v for v in values if type(v) is float]).tobytes())
    if id(bool) in type_ids:
        out.append(bytes(v for v in values if type(v) is bool))
    return b"".join(out)


def block_digests(view: memoryview, zero_blocks: Callable[[int], bool] | None = None) -> bytes:
    """xxh3-128 digest of each BLOCK of ``view`` (a flat byte memoryview), concatenated.

    ``zero_blocks(i)`` may say a block is known to be all zeros without reading it.
    A Python loop per MiB: a KeyboardInterrupt lands within one block's time.
    """
    digests = []
    n = len(view)
    for index, start in enumerate(range(0, n, BLOCK)):
        end = min(start + BLOCK, n)
        if end - start == BLOCK and zero_blocks is not None and zero_blocks(index):
            digests.append(_ZERO_BLOCK_DIGEST)
        else:
            digests.append(xxhash.xxh3_128_digest(view[start:end]))
    return b"".join(digests)
