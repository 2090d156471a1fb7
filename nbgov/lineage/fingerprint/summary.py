"""A short human description of a value (shape, length), read without running its code."""

from __future__ import annotations

from typing import Any

from nbgov.lineage.fingerprint import logs, static

# by identity (object.__hash__: a type's own __hash__ could be a metaclass's; id() raises an audit event)
_identity = object.__hash__
_SIZED = {_identity(tp): "items" for tp in (list, tuple, dict, set, frozenset)}
_SHAPED = (("numpy", "ndarray"), ("pandas", "DataFrame"), ("pandas", "Series"), ("polars", "DataFrame"))


def summarize(obj: Any) -> str:
    """"1000×5" for frames and arrays, "3 items", "12 chars", a short repr of a number, else the kind."""
    tp = type(obj)
    try:
        if tp is int:  # the commonest value first
            return repr(obj) if obj.bit_length() <= 64 else f"{obj.bit_length()}-bit int"
        if tp is str:
            return f"{len(obj):,} chars"
        if tp is bytes or tp is bytearray:
            return f"{len(obj):,} bytes"
        unit = _SIZED.get(_identity(tp))
        if unit is not None:
            return f"{len(obj):,} {unit}"
        if tp is float or tp is bool or tp is complex or obj is None:
            return repr(obj)
        for module, qualname in _SHAPED:
            cls = static.library_class(module, qualname)
            if cls is not None and _library_instance(tp, cls, module):
                shape = obj.shape
                return "×".join(str(d) for d in shape) if shape else "scalar"
        table = static.library_class("pyarrow", "Table")
        if table is not None and tp is table:
            return f"{obj.num_rows:,} rows"
        logger = logs.summary(obj)
        if logger is not None:
            return logger
    except Exception:  # a library object in an unexpected state: its kind says enough
        pass
    return static.kind_name(tp)


def _library_instance(tp: type, cls: type, module: str) -> bool:
    """The library class itself or one of the library's own subclasses (never a notebook's)."""
    if tp is cls:
        return True
    own = static.module_of(tp).split(".", 1)[0] == module and static.verified(tp)
    return own and static.inherits(tp, cls)
