"""The handler table: which handler reads values of a given type.

Resolved once per type, from the type alone (never from the value). Handlers of
library classes (compiled types, and classes an installed module holds under their
name) are cached by ``id`` for the session; a handler holds its class (through the
C getters it reads with), so any other class (one defined in the notebook, a
reloaded module's) is resolved again per fingerprint, and is freed once the
notebook drops it. In order:

1. Python's own types (exact): ``objects.BUILTIN_HANDLERS``.
2. Classes (instances of ``type`` or of a metaclass).
3. ``logging``'s loggers and handlers, of its own classes exactly (``logs``: a
   subclass, or a handler of another class, is weak).
4. Library data types, verified to be the library's own class: numpy, pandas,
   polars, pyarrow, protocol buffers (ONNX), in-memory streams. A notebook
   subclass is read by the library handler only if it overrides nothing the
   library defines (a thin subclass); otherwise it is weak, not run.
5. Known native resources (sockets, files, iterators): weak, with the reason.
6. Instances: a builtin base's content, slots and ``__dict__``; a compiled base
   of a trusted library through that library's own pickling support; any other
   compiled base keeps its state where Python cannot read it: weak.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from nbgov.lineage.fingerprint import columnar, libraries, logs, objects, protobuf, static
from nbgov.lineage.fingerprint.encode import enc_str
from nbgov.lineage.fingerprint.objects import Handler
from nbgov.lineage.fingerprint.walk import Walk

# (module, qualname, handler): checked in this order; first class found in the MRO wins
LIBRARY_KINDS: tuple[tuple[str, str, Handler], ...] = (
    ("numpy", "ndarray", columnar.numpy_array),
    ("numpy", "generic", columnar.numpy_scalar),
    ("pandas", "DataFrame", columnar.pandas_frame),
    ("pandas", "Series", columnar.pandas_series),
    ("pandas", "Index", columnar.pandas_index_value),
    ("pandas.api.extensions", "ExtensionArray", columnar.pandas_extension_array),
    ("polars", "DataFrame", columnar.polars_frame),
    ("polars", "Series", columnar.polars_series),
    ("polars", "LazyFrame", columnar.polars_lazy),
    ("pyarrow", "Table", columnar.arrow_table),
    ("pyarrow", "RecordBatch", columnar.arrow_table),
    ("pyarrow", "Array", columnar.arrow_array),
    ("pyarrow", "ChunkedArray", columnar.arrow_array),
    ("google.protobuf.message", "Message", protobuf.message),
    ("io", "StringIO", objects.io_buffer_value),
    ("io", "BytesIO", objects.io_buffer_value),
    ("mmap", "mmap", objects.buffer_object_value),
    ("numpy", "ufunc", objects.named_callable_value),
    ("numpy", "_ArrayFunctionDispatcher", objects.named_callable_value),
)

_CYTHON_FUNCTIONS = frozenset({"cython_function_or_method", "fused_cython_function"})

# Roots of modules whose compiled classes may be read through their own __reduce_ex__.
TRUSTED_ROOTS = frozenset(
    {
        "numpy", "pandas", "scipy", "sklearn", "pyarrow", "onnx", "matplotlib", "statsmodels",
        "datetime", "decimal", "zoneinfo", "re", "array", "collections", "functools", "operator",
        "types", "fractions", "uuid", "pathlib", "ipaddress", "enum", "statistics", "random", "_random", "itertools",
        "onnxruntime", "lightgbm",
    }
)  # fmt: skip

# Names a thin subclass may define without changing how the library reads its instances.
_HARMLESS = frozenset(
    {
        "__module__", "__qualname__", "__doc__", "__dict__", "__weakref__", "__slots__", "__init__",
        "__annotations__", "__firstlineno__", "__static_attributes__", "__orig_bases__", "__parameters__",
        "_metadata",
    }
)  # fmt: skip

_NATIVE_REASONS: tuple[tuple[str, str, str], ...] = (
    ("_socket", "socket", "a socket: an operating-system connection, not a value"),
    ("_io", "_IOBase", objects.OPEN_FILE),
    ("select", "epoll", "an operating-system handle, not a value"),
)


class Kinds:
    """Type -> handler, resolved lazily; cached for library classes only (see the module docstring)."""

    def __init__(self) -> None:
        self._builtin = objects.BUILTIN_HANDLERS
        self._cache: dict[int, tuple[weakref.ref[type], Handler]] = {}
        self.dtype_tags: dict[Any, bytes] = {}  # numpy dtype -> its encoding (library objects only)
        self.padding: dict[Any, Any] = {}  # numpy dtype -> which item bytes are data (None: all)
        self.column_tags: dict[tuple[type, str], bytes] = {}  # (dtype class, dtype.str) -> a column's dtype text
        self.short_strings: dict[str, bytes] = {}  # exact str -> its encoding (keys, attribute names)

    def handler_for(self, tp: type) -> Handler:
        handler = self._builtin.get(id(tp))
        if handler is not None:
            return handler
        entry = self._cache.get(id(tp))
        if entry is not None and entry[0]() is tp:
            return entry[1]
        handler = resolve(tp)
        if not _long_lived(tp):
            return handler
        try:
            ref = weakref.ref(tp, self._forget(id(tp)))
        except TypeError:
            return handler
        self._cache[id(tp)] = (ref, handler)
        return handler

    def _forget(self, key: int) -> Callable[[Any], None]:
        cache = self._cache

        def forget(_: Any) -> None:
            cache.pop(key, None)

        return forget


def _long_lived(tp: type) -> bool:
    """A compiled type, or a class an installed library's module holds under its name: it
    lives as long as the session, so caching its handler (which holds it) keeps nothing alive."""
    if not type.__dict__["__flags__"].__get__(tp) & static.HEAPTYPE:
        return True
    return static.verified(tp) and static.installed_module(static.module_of(tp))


# The process's global generators (what ``np.random.rand`` and ``random.random`` draw from).
# A value holding one (scipy's frozen distributions hold numpy's) refers to process state,
# as to a module: it is hashed as that reference, not as the state, which the first draw
# anywhere changes and which is seeded anew in every process (draws from it are noted by
# ``random_state``). Hashed as state, every replay called ``stats.norm(1, 2)`` different.
GLOBAL_GENERATORS: tuple[tuple[str, str], ...] = (("numpy.random.mtrand", "_rand"), ("random", "_inst"))


def _global_generator(tp: type, handler: Handler) -> Handler:
    """``handler``, except for the global generator of ``tp``'s type: its name."""
    names = [(module, name) for module, name in GLOBAL_GENERATORS if _global_type(module, name) is tp]
    if not names:
        return handler

    def handle(walk: Walk, obj: Any) -> None:
        for module, name in names:
            namespace = static.loaded_module(module)
            if namespace is not None and namespace.get(name) is obj:
                walk.emit(b"Gl" + enc_str(f"{module}.{name}"))
                return
        handler(walk, obj)

    return handle


def _global_type(module: str, name: str) -> type | None:
    namespace = static.loaded_module(module)
    return None if namespace is None else type(namespace.get(name))


def resolve(tp: type) -> Handler:
    """The handler for values of ``tp`` (see the module docstring for the order)."""
    return _global_generator(tp, _resolve(tp))


def _resolve(tp: type) -> Handler:
    if static.inherits(tp, type):
        return objects.class_value
    if static.inherits(tp, weakref.ref):
        return objects.weakref_value
    library = logs.resolve(tp) or _library_handler(tp) or _getstate_handler(tp)
    if library is not None:
        return library
    if static.module_of(tp).startswith("_cython_") and static.qualname_of(tp) in _CYTHON_FUNCTIONS:
        return objects.named_callable_value
    if any(tp is cls for cls in objects.FILE_CLASSES):
        return objects.closed_file_value
    native = static.hidden_state(tp)
    if native is None:
        return objects.instance_handler(tp, None)
    if objects.base_reader(native) is not None:
        return objects.instance_handler(tp, native)
    if all(_trusted(klass) for klass in static.mro(tp) if klass is not object):
        return objects.reduce_handler(tp)
    return objects.weak(_native_reason(tp, native))


def _library_handler(tp: type) -> Handler | None:
    lineage = static.mro(tp)
    for module, qualname, handler in LIBRARY_KINDS:
        if static.loaded_module(module.split(".", 1)[0]) is None:
            continue
        cls = static.library_class(module, qualname)
        if cls is None or not any(klass is cls for klass in lineage):
            continue
        override = _override(lineage, cls, module.split(".", 1)[0])
        if override is not None:
            return objects.weak(
                f"{static.label(tp)} overrides {override} of {static.label(cls)}: not read (it would run its code)"
            )
        return handler
    return None


def _getstate_handler(tp: type) -> Handler | None:
    """A verified library class with a reader in ``libraries.STATE_READERS`` (pybind11's
    own base class holds nothing of its own: the reader says what a binding holds)."""
    if not all(_trusted(k) for k in static.mro(tp) if k is not object and static.module_of(k) != "pybind11_builtins"):
        return None
    for module, qualname, make in libraries.STATE_READERS:
        if static.loaded_module(module.split(".", 1)[0]) is None:
            continue
        cls = static.library_class(module, qualname)
        if cls is not None and static.inherits(tp, cls):
            return make(tp)
    return None


def _override(lineage: tuple[type, ...], cls: type, root: str) -> str | None:
    """A name that a class outside the library, above ``cls``, redefines; None for a thin subclass."""
    library_names: set[str] = set()
    for klass in static.mro(cls):
        library_names.update(static.own_dict(klass))
    for klass in lineage:
        if klass is cls:
            return None
        klass_root = static.module_of(klass).split(".", 1)[0]
        if (klass_root == root or klass_root in TRUSTED_ROOTS) and static.verified(klass):
            continue  # a library's own subclass (np.memmap, pd.RangeIndex, onnx.ModelProto, ...)
        for name in static.own_dict(klass):
            if name not in _HARMLESS and (name in library_names or name in ("__getattr__", "__getattribute__")):
                return name
    return None


def _trusted(klass: type) -> bool:
    root = static.module_of(klass).split(".", 1)[0]
    if root not in TRUSTED_ROOTS:
        return False
    return static.verified(klass) or not static.defines_python_code(klass)


def _native_reason(tp: type, native: type) -> str:
    for klass in static.mro(native):
        module, qualname = static.module_of(klass), static.qualname_of(klass)
        for reason_module, reason_class, reason in _NATIVE_REASONS:
            if module == reason_module and qualname == reason_class:
                return reason
    if "__next__" in static.own_dict(native):
        return f"an iterator ({static.label(tp)}): its remaining items exist only by advancing it"
    return f"state held natively by {static.label(native)}: not readable without running its code"
