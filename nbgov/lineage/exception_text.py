"""The message of a failed cell's exception, read without running user code.

Python's own exception classes say what went wrong in fields as well as in
``args``: a ``FileNotFoundError`` keeps the path in ``filename``, a ``SyntaxError``
its file and line, a ``UnicodeDecodeError`` the codec, bytes and position. Their
``__str__`` is CPython's C code, so for an exception of exactly such a class whose
``args`` and fields are plain values (numbers, text, bytes, None, tuples of those)
it is called, and the record says what the user saw ("[Errno 2] No such file or
directory: 'data.csv'"). Anything else (a notebook subclass, a field holding an
object whose ``__repr__`` would run) is read from ``args`` alone, as before.
"""

from __future__ import annotations

import builtins
import types
from typing import Any

_ARGS = BaseException.__dict__["args"]
_QUALNAME = type.__dict__["__qualname__"]
_MRO = type.__dict__["__mro__"]
_DICT = type.__dict__["__dict__"]
_PLAIN = (str, int, float, bool, bytes, type(None))
_ARG_TYPES = (str, int, float, bool)
_MAX_CHARS = 2000


def exception_message(exc: BaseException) -> str:
    """One line: the exception's message as Python shows it, or from its args."""
    try:
        args = _ARGS.__get__(exc)
    except Exception:
        return ""
    text = _builtin_text(exc, args)
    if text is None:
        if type(args) is not tuple or not all(_is_one_of(type(a), _ARG_TYPES) for a in args):
            return f"({type(exc).__name__} with a message nbgov does not evaluate)"
        text = str(args[0]) if len(args) == 1 else (str(args) if args else "")
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 1] + "…"


def _builtin_text(exc: BaseException, args: Any) -> str | None:
    """``str(exc)`` by CPython's own code, when ``type(exc)`` is a builtin exception class
    and everything its ``__str__`` may format is plain; None otherwise."""
    tp = type(exc)
    if builtins.__dict__.get(_QUALNAME.__get__(tp)) is not tp or not _plain(args):
        return None
    try:
        for klass in _MRO.__get__(tp):
            for field in _DICT.__get__(klass).values():
                if type(field) is types.MemberDescriptorType and not _plain(field.__get__(exc)):
                    return None
        text = tp.__str__(exc)
    except Exception:
        return None
    return text if type(text) is str else None


def _plain(value: Any, depth: int = 0) -> bool:
    if _is_one_of(type(value), _PLAIN):
        return True
    return type(value) is tuple and depth < 4 and all(_plain(item, depth + 1) for item in value)


def _is_one_of(kind: type, kinds: tuple[type, ...]) -> bool:
    """By identity: ``kind in kinds`` compares with ==, which runs a metaclass's ``__eq__``."""
    return any(kind is k for k in kinds)
