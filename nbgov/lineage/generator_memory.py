"""The global generators' state copied straight from their C objects, once per cell.

Their own getters build Python objects for every word of state: 625 ints for the
``random`` module's Mersenne Twister (about 10 microseconds), a numpy array filled
element by element for numpy's legacy ``RandomState`` (about 35). The same words sit in
the generators' C structs, and copying them is under a microsecond. Where they sit is
checked once per process, on private generators, against those getters, and a reader
is used only when the check finds exactly what the getter returns; otherwise (another
interpreter, another build or numpy) the caller keeps the getter. Memory is read only
inside the object (or the bit generator's state, whose address numpy publishes through
``BitGenerator.ctypes``), while a reference holds it alive.
"""

from __future__ import annotations

import ctypes
import functools
import struct
import sys
from collections.abc import Callable
from types import FunctionType
from typing import Any

# CPython's RandomObject: the object header, then ``int index`` and ``uint32_t state[624]``.
_TWISTER_OFFSET = object.__basicsize__
_TWISTER_WORDS = 624
_TWISTER_BYTES = struct.calcsize(f"=i{_TWISTER_WORDS}I")
# numpy's mt19937_state: ``uint32_t key[624]; int pos``; its legacy gauss cache, in the
# RandomState object: ``int has_gauss`` then, 8-byte aligned, ``double gauss``
_KEY_BYTES = struct.calcsize(f"={_TWISTER_WORDS}Ii")
_GAUSS = struct.Struct("=i4xd")
_CHECK_SEED = 20261205
# a view of that many bytes at an address: its ``raw`` is the copy (``from_address`` is one C
# call; ``ctypes.string_at`` goes through a foreign-function call, which costs more per cell)
_TWISTER_MEMORY = ctypes.c_char * _TWISTER_BYTES
_KEY_MEMORY = ctypes.c_char * _KEY_BYTES
_GAUSS_MEMORY = ctypes.c_char * _GAUSS.size


def twister_reader(core: type) -> Callable[[Any], bytes] | None:
    """Copies a ``random.Random``'s index and state words (``core`` is ``_random.Random``),
    or None where their place was not confirmed."""
    return _twister if type(core) is type and _twister_layout_checked(core) else None


def _twister(generator: Any) -> bytes:
    return _TWISTER_MEMORY.from_address(id(generator) + _TWISTER_OFFSET).raw


@functools.cache
def _twister_layout_checked(core: type) -> bool:
    try:
        if sys.implementation.name != "cpython" or _defined_in_python(core):
            return False  # only the compiled class: constructing one runs no notebook code
        if type.__dict__["__basicsize__"].__get__(core) < _TWISTER_OFFSET + _TWISTER_BYTES:
            return False
        probe = core(_CHECK_SEED)  # the compiled class: no Python-level code runs
        core.__dict__["random"](probe)
        state = core.__dict__["getstate"](probe)
        if type(state) is not tuple or len(state) != _TWISTER_WORDS + 1:
            return False
        return _twister(probe) == struct.pack(f"=i{_TWISTER_WORDS}I", state[-1], *state[:-1])
    except Exception:  # noqa: BLE001 - an optimisation only: keep the getter
        return False


def legacy_numpy_reader(cls: type) -> Callable[[Any], bytes | None] | None:
    """Copies a numpy ``RandomState``'s Mersenne Twister key, position and gauss cache (None
    from the reader when its bit generator is not an MT19937), or None where their place
    was not confirmed."""
    return _numpy_reader(cls) if type(cls) is type else None  # (a metaclass would hash it its way)


@functools.cache
def _numpy_reader(cls: type) -> Callable[[Any], bytes | None] | None:
    layout = _numpy_layout(cls)
    return _reader_of(cls, layout) if layout is not None else None


def _numpy_layout(cls: type) -> tuple[Any, type, Any, int] | None:
    """(the ``_bit_generator`` getter, MT19937, ``BitGenerator.ctypes``, the gauss cache's
    offset), found and checked on private generators: a standard normal leaves one normal
    cached (``has_gauss`` 1, ``gauss`` the value ``get_state`` shows), found at exactly
    one place in the object; the next uses it up (``has_gauss`` 0 there)."""
    try:
        mt19937: Any = sys.modules["numpy.random._mt19937"].__dict__["MT19937"]
        if _defined_in_python(cls) or _defined_in_python(mt19937):
            return None  # only numpy's compiled classes: constructing one runs no notebook code
        interface = sys.modules["numpy.random.bit_generator"].__dict__["BitGenerator"].__dict__["ctypes"]
        bit_generator = vars(cls)["_bit_generator"]
        get_state, normal = vars(cls)["get_state"], vars(cls)["standard_normal"]
        probe = cls(_CHECK_SEED)
        normal(probe)
        cached = get_state(probe, legacy=False)
        size = type.__dict__["__basicsize__"].__get__(cls)
        memory = ctypes.string_at(id(probe), size)
        found = [at for at in range(_TWISTER_OFFSET, size - _GAUSS.size + 1, 4)
                 if _GAUSS.unpack_from(memory, at) == (1, cached["gauss"])]
        if sys.implementation.name != "cpython" or len(found) != 1 or cached["has_gauss"] != 1:
            return None
        layout = (bit_generator, mt19937, interface, found[0])
        read = _reader_of(cls, layout)  # checked on a drawn-from generator and a fresh one
        normal(probe)
        for state in (probe, cls(_CHECK_SEED + 1)):
            if read(state) != _getter_bytes(get_state(state, legacy=False)):
                return None
        return layout
    except Exception:  # noqa: BLE001 - an optimisation only: keep the getter
        return None


def _reader_of(cls: type, layout: tuple[Any, type, Any, int]) -> Callable[[Any], bytes | None]:
    bit_generator, mt19937, interface, gauss_at = layout

    def read(state: Any) -> bytes | None:
        generator = bit_generator.__get__(state, cls)
        if type(generator) is not mt19937:
            return None
        key = _KEY_MEMORY.from_address(interface.__get__(generator).state_address).raw
        has_gauss, gauss = _GAUSS.unpack(_GAUSS_MEMORY.from_address(id(state) + gauss_at).raw)
        return key + struct.pack("=id", has_gauss, gauss)

    return read


def _defined_in_python(cls: type) -> bool:
    """Whether any class of ``cls``'s MRO holds Python code (a function, or a property or
    static or class method of one): constructing or reading it could run notebook code."""
    for klass in type.__dict__["__mro__"].__get__(cls):
        for value in type.__dict__["__dict__"].__get__(klass).values():
            kind = type(value)
            if kind is property or kind is FunctionType:
                return True
            if (kind is staticmethod or kind is classmethod) and type(value.__func__) is FunctionType:
                return True
    return False


def _getter_bytes(state: dict[str, Any]) -> bytes:
    """``get_state``'s answer in the reader's form: what the check compares."""
    inner = state["state"]
    return (inner["key"].tobytes() + struct.pack("=i", inner["pos"])
            + struct.pack("=id", state["has_gauss"], state["gauss"]))
