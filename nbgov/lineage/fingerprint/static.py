"""Reading an object's state without running any of its code.

Everything here goes through CPython's own descriptors, fetched from ``type`` and
from the classes' dictionaries, never through attribute lookup on the user's
object: no ``__getattr__``, ``__getattribute__``, property, ``__class__``
override, metaclass hook or ``__eq__``/``__hash__`` of a user type is reached.
(``isinstance`` may call ``__class__`` and ``__instancecheck__``; a dict keyed
by a type calls its metaclass's ``__hash__``: both are avoided, types are
compared by identity and keyed by ``id``.)

Library classes are trusted only when they are what their module says they
are: the class object found in the real, already imported module's dictionary.
The file helpers are the ``os`` functions as they were when nbgov was imported,
so a notebook that patches ``open`` or ``os.open`` is not called by the recorder.
"""

from __future__ import annotations

import errno
import os
import sys
import types
import weakref
from collections.abc import Callable, Mapping
from itertools import repeat
from operator import is_
from typing import Any

# -- CPython's own descriptors -------------------------------------------------
_type_mro: Callable[[type], tuple[type, ...]] = type.__dict__["__mro__"].__get__
_type_dict: Callable[[type], Mapping[str, Any]] = type.__dict__["__dict__"].__get__
_type_qualname: Callable[[type], str] = type.__dict__["__qualname__"].__get__
_type_module: Callable[[type], Any] = type.__dict__["__module__"].__get__
_type_base: Callable[[type], type | None] = type.__dict__["__base__"].__get__
_type_basicsize: Callable[[type], int] = type.__dict__["__basicsize__"].__get__
_type_flags: Callable[[type], int] = type.__dict__["__flags__"].__get__
_type_repr: Callable[[type], str] = type.__repr__
_module_dict: Callable[[types.ModuleType], dict[str, Any]] = types.ModuleType.__dict__["__dict__"].__get__  # type: ignore[index]

GetSet = types.GetSetDescriptorType
Member = types.MemberDescriptorType
_MANAGED_DICT = 1 << 4
_NOT_STATE = frozenset({"__dict__", "__weakref__", "__vectorcalloffset__", "__dictoffset__", "__weaklistoffset__"})
_POINTER = 8  # bytes a slot, a __dict__ or a __weakref__ pointer takes in an instance

# -- the file functions as they were at import ---------------------------------
os_open = os.open
os_close = os.close
os_fstat = os.fstat
os_lseek = os.lseek
os_preadv = os.preadv
os_stat = os.stat
os_lstat = os.lstat
os_readlink = os.readlink
builtin_open = open
SEEK_DATA = getattr(os, "SEEK_DATA", None)
SEEK_HOLE = getattr(os, "SEEK_HOLE", None)


def data_extents(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    """The regions of [start, end) of an open file that hold data; the rest are holes
    (zeros). The whole range when the file system cannot tell (SEEK_DATA unsupported)."""
    if SEEK_DATA is None or SEEK_HOLE is None:
        return [(start, end)]
    extents: list[tuple[int, int]] = []
    position = start
    try:
        while position < end:
            try:
                data = os_lseek(fd, position, SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # no data after position
                    break
                raise
            if data >= end:
                break
            hole = os_lseek(fd, data, SEEK_HOLE)
            extents.append((data, min(hole, end)))
            position = hole
    except OSError:
        return [(start, end)]
    return extents


def mro(tp: type) -> tuple[type, ...]:
    """The method resolution order, read from the type slot (no metaclass property)."""
    return _type_mro(tp)


def own_dict(tp: type) -> Mapping[str, Any]:
    """A class's own namespace (a read-only view of a real dict)."""
    return _type_dict(tp)


def module_of(tp: type) -> str:
    module = _type_module(tp)
    if type(module) is str:
        return module
    text = _type_repr(tp)  # compiled types whose namespace holds a descriptor under __module__
    if text.startswith("<class '") and "." in text:
        return text[len("<class '") : -2].rpartition(".")[0]
    return "?"


def qualname_of(tp: type) -> str:
    return _type_qualname(tp)


def label(tp: type) -> str:
    """``module.Qualname`` of a type, as a reader would write it."""
    module = module_of(tp)
    return qualname_of(tp) if module == "builtins" else f"{module}.{qualname_of(tp)}"


_SHORT_ROOTS = frozenset({"pandas", "polars", "numpy", "pyarrow", "onnx", "sklearn", "torch", "scipy"})


def kind_name(tp: type) -> str:
    """The ``kind`` of a fingerprint: builtins bare, big libraries by their root name."""
    module = module_of(tp)
    if module == "builtins":
        return qualname_of(tp)
    root = module.split(".", 1)[0]
    if root in _SHORT_ROOTS:
        return f"{root}.{qualname_of(tp)}"
    return f"{module}.{qualname_of(tp)}"


def lookup(tp: type, name: str) -> tuple[type, Any] | None:
    """Where ``name`` is defined along the MRO (class, raw value), without invoking it."""
    for klass in _type_mro(tp):
        namespace = _type_dict(klass)
        if name in namespace:
            return klass, namespace[name]
    return None


def inherits(tp: type, base: type) -> bool:
    """``issubclass`` by identity along the MRO (no ``__subclasscheck__``, no ``__eq__``)."""
    return tp is base or any(map(is_, _type_mro(tp), repeat(base)))


_memoryview_obj: Callable[[memoryview], Any] = memoryview.__dict__["obj"].__get__
_MAX_BASE_CHAIN = 256


def buffer_owner(value: Any) -> Any:
    """The object owning the memory of a numpy array or a memoryview: the end of its base
    chain, through numpy's views and the memoryviews numpy keeps of another exporter
    (``np.frombuffer(bytearray)``: the bytearray, an ``mmap``, an ``array``), so every view
    of one buffer, and the exporter itself, name the same owner. Read through numpy's and
    memoryview's own descriptors (a subclass's ``base`` property does not run)."""
    ndarray = library_class("numpy", "ndarray")
    owner = value
    for _ in range(_MAX_BASE_CHAIN):
        kind = type(owner)
        if kind is memoryview:
            try:
                base = _memoryview_obj(owner)
            except ValueError:  # released: it holds no buffer any more
                return owner
        elif ndarray is not None and inherits(kind, ndarray):
            base = _type_dict(ndarray)["base"].__get__(owner)
        else:
            return owner
        if base is None:
            return owner
        owner = base
    return owner


# -- instance state ----------------------------------------------------------------


def dict_reader(tp: type) -> tuple[Callable[[Any], Any] | None, bool]:
    """The C getter of the instance ``__dict__`` and whether a class hides it.

    The first ``__dict__`` along the MRO is normally CPython's getset; when a class
    shadows it (a property), the genuine getset of a base still reads the real
    dict. Returns (None, True) when the dict exists but only a user override names it.
    """
    shadowed = False
    for klass in _type_mro(tp):
        value = _type_dict(klass).get("__dict__")
        if value is None:
            continue
        if (type(value) is GetSet or type(value) is Member) and value.__objclass__ is klass:
            return value.__get__, shadowed
        shadowed = True
    return None, shadowed


def slot_readers(tp: type) -> list[tuple[str, Callable[[Any], Any]]]:
    """(name, C getter) of every slot and C member along the MRO, base classes last."""
    readers: list[tuple[str, Callable[[Any], Any]]] = []
    for klass in _type_mro(tp):
        readers.extend(member_readers(klass))
    return readers


def member_readers(klass: type) -> list[tuple[str, Callable[[Any], Any]]]:
    """A class's own slots, or the C-level members a compiled class exposes (``OSError.errno``)."""
    return [
        (name, value.__get__)
        for name, value in _type_dict(klass).items()
        if type(value) is Member and value.__objclass__ is klass and name not in _NOT_STATE
    ]


def hidden_state(tp: type) -> type | None:
    """The first class along the layout chain that keeps fields Python cannot see.

    A class statement only adds slots, ``__dict__`` and ``__weakref__`` to the
    instance layout; a compiled class may add fields of its own. Comparing each
    class's ``__basicsize__`` with what its slots explain finds the compiled one.
    """
    klass: type | None = tp
    while klass is not None and klass is not object:
        base = _type_base(klass)
        if base is None:
            return None
        namespace = _type_dict(klass)
        explained = _type_basicsize(base)
        for value in namespace.values():
            if type(value) is Member and value.__objclass__ is klass:
                explained += _POINTER
        weakref_slot = namespace.get("__weakref__")
        if type(weakref_slot) is GetSet and weakref_slot.__objclass__ is klass:
            explained += _POINTER
        dict_slot = namespace.get("__dict__")
        if type(dict_slot) is GetSet and dict_slot.__objclass__ is klass and not _type_flags(klass) & _MANAGED_DICT:
            explained += _POINTER
        if _type_basicsize(klass) > explained:
            return klass
        klass = base
    return None


# -- library classes ---------------------------------------------------------------


_captured: dict[str, dict[str, Any]] = {}


def loaded_module(name: str) -> dict[str, Any] | None:
    """The namespace of an imported, real module, as first seen.

    Kept once found, so a notebook that later puts a stub into ``sys.modules``
    (``sys.modules["numpy"] = ...``) changes nothing for values made before.
    """
    namespace = _captured.get(name)
    if namespace is not None:
        return namespace
    module = sys.modules.get(name)
    if type(module) is not types.ModuleType:
        return None
    namespace = _module_dict(module)
    _captured[name] = namespace
    return namespace


def is_class(value: Any) -> bool:
    """Whether ``value`` is a class (its type derives from ``type``), by identity."""
    return inherits(type(value), type)


_classes: dict[tuple[str, str], type] = {}


def library_class(module: str, qualname: str) -> Any:
    """The class ``module.qualname`` if that module is imported and really defines it.

    For nbgov's own table of library classes; found ones are kept, so later changes
    to the module's namespace do not move them.
    """
    found = _classes.get((module, qualname))
    if found is None and module.partition(".")[0] in sys.modules:
        found = _lookup_class(module, qualname)
        if found is not None:
            _classes[(module, qualname)] = found
    return found


def verified(tp: type) -> bool:
    """True when the class is the one its module's namespace holds under its name."""
    module = module_of(tp)
    if module == "builtins":
        return True
    qualname = qualname_of(tp)
    return "<" not in qualname and _lookup_class(module, qualname) is tp


def _lookup_class(module: str, qualname: str) -> type | None:
    namespace: Mapping[str, Any] | None = loaded_module(module)
    found: Any = None
    for part in qualname.split("."):
        if namespace is None:
            return None
        found = namespace.get(part)
        if found is None or not is_class(found):
            return None
        namespace = _type_dict(found)
    return found


_installed: dict[str, bool] = {}


def installed_module(name: str) -> bool:
    """A module of the Python installation or an installed package (not the notebook's own
    code next to it): its functions are identified by their qualified names."""
    known = _installed.get(name)
    if known is not None:
        return known
    namespace = loaded_module(name)
    path = namespace.get("__file__") if namespace is not None else None
    if namespace is None or name == "__main__":
        found = False
    elif type(path) is not str:
        found = True  # built into the interpreter
    else:
        found = os.path.realpath(path).startswith(_install_roots())
    _installed[name] = found
    return found


HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made at run time (by a class statement, type(...))
# Packages whose fitted models' read-only methods (``predict``, ``transform``) leave the model
# as it was (checked against each: ``tests/test_lineage_model_reads.py``), and the data
# libraries such models hold
_MODEL_LIBRARIES = frozenset({"sklearn", "lightgbm"})
_LIBRARY_ROOTS = _MODEL_LIBRARIES | {"numpy", "scipy", "pandas", "pyarrow"}
_library_kinds: dict[int, tuple[Any, bool]] = {}  # id(type) -> (weak reference to it, verdict)
# scikit-learn classes whose instances change when only read: a KD or ball tree counts the
# queries made of it (and so every neighbours model holding one), a MultiLabelBinarizer caches
# its class index at its first transform (``tests/test_lineage_model_reads.py`` checks every
# estimator scikit-learn lists against this)
_CHANGED_BY_READS = ("sklearn.neighbors._kd_tree.", "sklearn.neighbors._ball_tree.",
                     "sklearn.preprocessing._label.MultiLabelBinarizer")


def library_kind(tp: type) -> bool:
    """A class Python's standard library or a data or model library defines under its name (or
    a compiled one): its instances' methods are that library's code, not the notebook's. Not
    one whose instances the library changes when they are only read."""
    known = _library_kinds.get(id(tp))
    if known is not None and known[0]() is tp:
        return bool(known[1])
    module = module_of(tp)
    root = module.partition(".")[0]
    if label(tp).startswith(_CHANGED_BY_READS):
        verdict = False
    elif not type.__dict__["__flags__"].__get__(tp) & HEAPTYPE:
        verdict = True
    else:
        library = (root in _LIBRARY_ROOTS or root in sys.stdlib_module_names) and installed_module(module)
        verdict = (library or root == "nbgov") and verified(tp)  # (nbgov's own: a reader's stand-in)
    if len(_library_kinds) >= 4096:  # classes made and dropped by the thousand
        _library_kinds.clear()
    try:
        _library_kinds[id(tp)] = (weakref.ref(tp), verdict)
    except TypeError:
        pass
    return verdict


def model_library_kind(tp: type) -> bool:
    """A class of scikit-learn or LightGBM (as ``library_kind`` finds it)."""
    return module_of(tp).partition(".")[0] in _MODEL_LIBRARIES and library_kind(tp)


def _install_roots() -> tuple[str, ...]:
    import site
    import sysconfig

    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *sysconfig.get_paths().values()}
    try:
        roots.update(site.getsitepackages())
        roots.add(site.getusersitepackages())
    except AttributeError:  # a virtualenv's site module may lack them
        pass
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


def defines_python_code(tp: type) -> bool:
    """A class statement's functions are plain functions; compiled classes have none."""
    return any(type(value) is types.FunctionType for value in _type_dict(tp).values())
