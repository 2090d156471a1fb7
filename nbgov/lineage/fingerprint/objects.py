"""Handlers for Python's own kinds of value: containers, code, classes, instances.

Each handler emits its node's tag and pushes the children the walk visits next.
Containers are read through the base type's C methods (``list.__getitem__``,
``dict.items``), never through a subclass's overrides; instances through the
genuine ``__dict__`` and slot descriptors. Functions are their code, defaults,
keyword defaults, captured cells and attributes (those of installed packages,
without closures, their qualified name); a notebook class is its bases and
namespace, any other class its qualified name. Compiled classes of trusted
libraries are read through the library's own pickling support (``reduce_handler``).
"""

from __future__ import annotations

import _collections
import _io
import array
import collections
import copyreg
import gc
import types
from collections.abc import Callable
from typing import Any

from nbgov.lineage.fingerprint import static
from nbgov.lineage.fingerprint.encode import ATOMS, LONG_TEXT, SCALAR_RUN, enc_bytes, enc_int, enc_str, scalar_run
from nbgov.lineage.fingerprint.walk import NotExact, Task, Walk

Handler = Callable[[Walk, Any], None]

_list_slice = list.__getitem__
_tuple_slice = tuple.__getitem__
_dict_items = dict.items
_odict_items = collections.OrderedDict.items
_deque_iter = collections.deque.__iter__
_deque_maxlen = static.own_dict(collections.deque)["maxlen"].__get__
_default_factory = static.own_dict(collections.defaultdict)["default_factory"].__get__
_set_iter = set.__iter__
_frozenset_iter = frozenset.__iter__
_exception_args = static.own_dict(BaseException)["args"].__get__
_classmethod_func = static.own_dict(classmethod)["__func__"].__get__
_staticmethod_func = static.own_dict(staticmethod)["__func__"].__get__
# A namedtuple's field accessor: CPython's own, exporting (index, doc) through its own __reduce__.
_TUPLEGETTER: type = _collections._tuplegetter
_tuplegetter_reduce = static.own_dict(_TUPLEGETTER)["__reduce__"]
_type_bases = type.__dict__["__bases__"].__get__
_EVERYTHING = slice(None)
_CLASS_BOOKKEEPING = frozenset(
    {"__dict__", "__weakref__", "__module__", "__qualname__", "__firstlineno__", "__static_attributes__"}
)


# -- containers -------------------------------------------------------------------


def sequence(walk: Walk, tag: bytes, items: list[Any]) -> None:
    """A list's or tuple's elements: columnar when they are plain scalars."""
    if len(items) >= SCALAR_RUN:
        run = scalar_run(items)
        if run is not None:
            walk.count(len(items))
            walk.emit(tag + run)
            return
    walk.emit(tag + b"%x;" % len(items))
    walk.push_all(items)


def flat_encoding(value: Any) -> bytes | None:
    """The walk's exact output for a list, tuple or dict holding only plain scalars, or None.

    Most names in a big namespace hold such values: encoding them here skips the
    walk's setup. Must produce the same bytes as ``list_value``/``tuple_value``/
    ``dict_value`` followed by ``Walk.push_all`` (a property test holds it to that).
    """
    tp = type(value)
    if tp is dict:
        items = [x for pair in _dict_items(value) for x in pair]
        head = b"D%x;" % len(value)
    elif tp is list or tp is tuple:
        items = list(value)
        head = (b"L" if tp is list else b"U")
        if len(items) >= SCALAR_RUN:
            run = scalar_run(items)
            if run is not None:
                return head + run
        head += b"%x;" % len(items)
    else:
        return None
    parts = [head]
    for item in items:
        encode = ATOMS.get(id(type(item)))
        if encode is None or (type(item) is str and len(item) > LONG_TEXT):
            return None
        parts.append(encode(item))
    return b"".join(parts)


def list_value(walk: Walk, value: list[Any]) -> None:
    if walk.enter(value):
        sequence(walk, b"L", _list_slice(value, _EVERYTHING))


def tuple_value(walk: Walk, value: tuple[Any, ...]) -> None:
    sequence(walk, b"U", list(_tuple_slice(value, _EVERYTHING)))


def dict_value(walk: Walk, value: dict[Any, Any]) -> None:
    if walk.enter(value):
        walk.emit(b"D%x;" % len(value))
        walk.push_items(_dict_items(value))


def set_value(walk: Walk, value: set[Any]) -> None:
    if walk.enter(value):
        walk.unordered(b"E", list(_set_iter(value)))


def frozenset_value(walk: Walk, value: frozenset[Any]) -> None:
    walk.unordered(b"Z", list(_frozenset_iter(value)))


def bytes_value(walk: Walk, value: bytes) -> None:
    if len(value) > LONG_TEXT:
        walk.long_text(value)
    else:
        walk.emit(enc_bytes(value))


def bytearray_value(walk: Walk, value: bytearray) -> None:
    if walk.enter(value):
        walk.buffer(b"y", memoryview(value))


def memoryview_value(walk: Walk, view: memoryview) -> None:
    try:
        shape = f"{view.format}|{view.shape}"
        flat = view.cast("B") if view.c_contiguous else memoryview(view.tobytes())
    except ValueError as exc:  # released, or a format cast cannot take
        raise NotExact(f"memoryview not readable ({exc})") from exc
    # the exporter it views (a bytearray, an array's owner): a write through either changes both
    walk.reached(static.buffer_owner(view))
    walk.emit(b"m" + enc_str(shape))
    walk.buffer(b"y", flat)


def range_value(walk: Walk, value: range) -> None:
    walk.emit(b"r" + enc_int(value.start) + enc_int(value.stop) + enc_int(value.step))


def slice_value(walk: Walk, value: slice) -> None:
    walk.emit(b"l")
    walk.push_all([value.start, value.stop, value.step])


def mappingproxy_value(walk: Walk, proxy: types.MappingProxyType[Any, Any]) -> None:
    """A read-only view: hashed as the dict it wraps (found by the garbage collector's
    traversal, which calls no Python code), never through the proxy's methods."""
    wrapped = gc.get_referents(proxy)
    if len(wrapped) != 1 or not static.inherits(type(wrapped[0]), dict):
        raise NotExact("a mapping proxy over a mapping other than a dict: reading it would run its code")
    walk.emit(b"p")
    walk.push(wrapped[0])


# -- code -------------------------------------------------------------------------


def function_value(walk: Walk, fn: types.FunctionType) -> None:
    module = fn.__module__ if type(fn.__module__) is str else "?"
    name = enc_str(f"{module}.{fn.__qualname__}")
    if fn.__closure__ is None and static.installed_module(module):
        walk.emit(b"n" + name)  # installed code: its name (and the recorded versions) say what it is
        return
    walk.holds_own_code = True
    if not walk.enter(fn):
        return
    walk.emit(b"Fn" + name)
    cells = [_cell_content(c) for c in fn.__closure__ or ()]
    attributes = static.own_dict(types.FunctionType)["__dict__"].__get__(fn)
    walk.push_all([fn.__code__, fn.__defaults__, fn.__kwdefaults__, tuple(cells), attributes])


def _cell_content(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY_CELL


class _EmptyCell:
    """Stands for a closure cell not yet assigned."""


_EMPTY_CELL = _EmptyCell()


def code_value(walk: Walk, code: types.CodeType) -> None:
    """Bytecode, constants and names; not line numbers, so moving a function is no change."""
    walk.holds_own_code = True
    walk.emit(
        b"K"
        + enc_bytes(code.co_code)
        + enc_bytes(code.co_exceptiontable if hasattr(code, "co_exceptiontable") else b"")
        + b"%x,%x,%x,%x;"
        % (code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)
    )
    walk.push_all([code.co_consts, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars])


def cell_value(walk: Walk, cell: types.CellType) -> None:
    walk.emit(b"e")
    walk.push(_cell_content(cell))


def method_value(walk: Walk, method: types.MethodType) -> None:
    if walk.enter(method, mutable=False):
        walk.emit(b"Mt")
        walk.push_all([method.__func__, method.__self__])


def builtin_function_value(walk: Walk, fn: Any) -> None:
    """``len``, ``math.sqrt`` by name; a bound one (``lst.append``) with what it is bound to."""
    owner = fn.__self__
    module = fn.__module__ if type(fn.__module__) is str else ""
    walk.emit(b"Bf" + enc_str(f"{module}.{fn.__qualname__}"))
    bound = owner is not None and type(owner) is not types.ModuleType
    walk.holds_own_code |= bound
    walk.push(owner if bound else None)


def descriptor_value(walk: Walk, descriptor: Any) -> None:
    """Slot wrappers, method descriptors, getsets: named by their class and name."""
    owner = static.label(descriptor.__objclass__) if static.is_class(descriptor.__objclass__) else "?"
    walk.emit(b"Nd" + enc_str(f"{owner}.{descriptor.__name__}"))


def method_wrapper_value(walk: Walk, wrapper: Any) -> None:
    walk.emit(b"Nw" + enc_str(wrapper.__name__))
    walk.push(wrapper.__self__)


def classmethod_value(walk: Walk, value: Any) -> None:
    walk.emit(b"Cm")
    walk.push(_classmethod_func(value))


def staticmethod_value(walk: Walk, value: Any) -> None:
    walk.emit(b"Sm")
    walk.push(_staticmethod_func(value))


def property_value(walk: Walk, value: property) -> None:
    walk.emit(b"Pr")
    walk.push_all([value.fget, value.fset, value.fdel, value.__doc__])


def tuplegetter_value(walk: Walk, value: Any) -> None:
    """A namedtuple field (``Pair.left``): the index it reads and its doc string."""
    _maker, (index, doc) = _tuplegetter_reduce(value)
    walk.emit(b"Tg" + enc_int(index))
    walk.push(doc)


def module_value(walk: Walk, module: types.ModuleType) -> None:
    name = static.own_dict(types.ModuleType)["__dict__"].__get__(module).get("__name__")
    walk.emit(b"Mo" + enc_str(name if type(name) is str else "?"))


def class_value(walk: Walk, cls: type) -> None:
    """A class made in the notebook is its bases and namespace; any other, its name."""
    name = enc_str(static.label(cls))
    if static.module_of(cls) != "__main__":
        walk.emit(b"c" + name)
        return
    walk.holds_own_code = True
    if not walk.enter(cls):
        return
    bases = _type_bases(cls)
    items = [(k, v) for k, v in static.own_dict(cls).items() if k not in _CLASS_BOOKKEEPING]
    walk.emit(b"C" + name + b"%x;" % len(bases) + b"".join(enc_str(static.label(b)) for b in bases))
    walk.emit(b"D%x;" % len(items))
    walk.push_items(items)


def named_callable_value(walk: Walk, fn: Any) -> None:
    """A compiled library function (a numpy ufunc, a Cython function): its qualified name."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "?")
    walk.emit(b"n" + enc_str(f"{module}.{qualname}"))


def weakref_value(walk: Walk, ref: Any) -> None:
    """A weak reference: it does not own its target, so the target is not its content."""
    walk.emit(b"Wr")


def constant(tag: bytes) -> Handler:
    def handle(walk: Walk, value: Any) -> None:
        walk.emit(tag)

    return handle


def weak(reason: str) -> Handler:
    def handle(walk: Walk, value: Any) -> None:
        raise NotExact(reason)

    return handle


def io_buffer_value(walk: Walk, stream: Any) -> None:
    """An in-memory StringIO/BytesIO: its whole content and position (C methods, no I/O)."""
    try:
        content, position = stream.getvalue(), stream.tell()
    except ValueError as exc:
        raise NotExact("a closed in-memory stream") from exc
    walk.emit(b"io" + enc_int(position))
    walk.push(content)


OPEN_FILE = "an open file or stream: its content is read by running it"
_BUFFERED = (_io.BufferedReader, _io.BufferedWriter, _io.BufferedRandom)
FILE_CLASSES = (_io.TextIOWrapper, *_BUFFERED, _io.FileIO)
_text_buffer = static.own_dict(_io.TextIOWrapper)["buffer"].__get__
_TEXT_STATE = tuple((name, static.own_dict(_io.TextIOWrapper)[name].__get__)
                    for name in ("encoding", "errors", "line_buffering", "write_through", "_CHUNK_SIZE"))
_text_newlines = static.own_dict(_io.TextIOWrapper)["newlines"].__get__
_buffered_raw = {cls: static.own_dict(cls)["raw"].__get__ for cls in _BUFFERED}
_fileio_closed = static.own_dict(_io.FileIO)["closed"].__get__
fileio_mode = static.own_dict(_io.FileIO)["mode"].__get__
_fileio_closefd = static.own_dict(_io.FileIO)["closefd"].__get__
_file_dict = {cls: static.dict_reader(cls)[0] for cls in FILE_CLASSES}


def closed_file_value(walk: Walk, stream: Any) -> None:
    """A closed file (``with open(...) as f`` leaves one): every method but a few attribute
    reads fails, so it is its classes, name, mode, text settings and the line endings it saw,
    read through CPython's own getters on a chain of exact ``io`` classes. An open file, or
    one over another stream (gzip's, a notebook's), is weak: its content and position are
    read by running it."""
    chain = file_chain(stream)
    if chain is None or not _fileio_closed(chain[-1]):
        raise NotExact(OPEN_FILE)
    raw = chain[-1]
    mode = fileio_mode(raw)
    state: list[Any] = [static.label(type(part)) for part in chain]
    state += [mode, _fileio_closefd(raw)]
    text = stream if type(stream) is _io.TextIOWrapper else None
    if text is not None:
        state += [read(text) for _, read in _TEXT_STATE]
        state.append(_newlines(text, "r" in mode or "+" in mode))
    walk.emit(b"cf%x;" % len(state))
    walk.push_all(state + [own_file_dict(part) for part in chain])


def own_file_dict(part: Any) -> Any:
    """An io object's ``__dict__`` (the text mode ``open`` set, a user's own attributes)."""
    read = _file_dict.get(type(part))
    return read(part) if read is not None else None


def file_chain(stream: Any) -> list[Any] | None:
    """[text wrapper, buffer, FileIO] (or the tail of it), each of its exact ``io`` class."""
    chain = [stream]
    if type(stream) is _io.TextIOWrapper:
        chain.append(_text_buffer(stream))
    reader = next((read for cls, read in _buffered_raw.items() if type(chain[-1]) is cls), None)
    if reader is not None:
        chain.append(reader(chain[-1]))
    return chain if type(chain[-1]) is _io.FileIO else None


def _newlines(text: Any, readable: bool) -> Any:
    """The line endings a text file read saw. Read only through io's own newline decoder
    (a fixed ``newline=`` leaves the codec's decoder there, whose attributes are not read);
    a file opened for writing has no decoder: None."""
    if not readable:
        return None
    if not any(type(part) is _io.IncrementalNewlineDecoder for part in gc.get_referents(text)):
        raise NotExact("a closed text file read with a fixed newline: what it saw is read by running its codec")
    return _text_newlines(text)


def buffer_object_value(walk: Walk, value: Any) -> None:
    """An object exporting a byte buffer (an ``mmap.mmap``): its bytes."""
    try:
        view = memoryview(value).cast("B")
    except (TypeError, ValueError) as exc:
        raise NotExact(f"{static.label(type(value))} not readable ({exc})") from exc
    walk.reached(value)  # arrays made on it (np.frombuffer(mm)) share its bytes
    walk.emit(b"bo" + enc_str(static.label(type(value))))
    walk.buffer(b"y", view)


# -- instances --------------------------------------------------------------------

BaseReader = Callable[[Any], tuple[bytes, list[Any]]]


def _read_list(obj: Any) -> tuple[bytes, list[Any]]:
    items = _list_slice(obj, _EVERYTHING)
    return b"L%x;" % len(items), items


def _read_tuple(obj: Any) -> tuple[bytes, list[Any]]:
    items = list(_tuple_slice(obj, _EVERYTHING))
    return b"U%x;" % len(items), items


def _read_dict(obj: Any) -> tuple[bytes, list[Any]]:
    return b"D%x;" % dict.__len__(obj), [x for pair in _dict_items(obj) for x in pair]


def _read_ordered_dict(obj: Any) -> tuple[bytes, list[Any]]:
    return b"D%x;" % dict.__len__(obj), [x for pair in _odict_items(obj) for x in pair]


def _read_default_dict(obj: Any) -> tuple[bytes, list[Any]]:
    tag, items = _read_dict(obj)
    return b"d" + tag, [_default_factory(obj), *items]


def _read_set(obj: Any) -> tuple[bytes, list[Any]]:
    elements = list(_set_iter(obj))
    return b"", [Task(lambda walk: walk.unordered(b"E", elements))]


def _read_frozenset(obj: Any) -> tuple[bytes, list[Any]]:
    elements = list(_frozenset_iter(obj))
    return b"", [Task(lambda walk: walk.unordered(b"Z", elements))]


def _read_deque(obj: Any) -> tuple[bytes, list[Any]]:
    items = list(_deque_iter(obj))
    return b"q%x;" % len(items), [_deque_maxlen(obj), *items]


def _read_int(obj: Any) -> tuple[bytes, list[Any]]:
    return enc_int(int.__int__(obj)), []


def _read_float(obj: Any) -> tuple[bytes, list[Any]]:
    return b"", [float.__float__(obj)]


def _read_complex(obj: Any) -> tuple[bytes, list[Any]]:
    return b"", [complex.__complex__(obj)]


def _read_str(obj: Any) -> tuple[bytes, list[Any]]:
    return b"", [str.__str__(obj)]


def _read_bytes(obj: Any) -> tuple[bytes, list[Any]]:
    return b"", [bytes.__bytes__(obj)]


def _read_bytearray(obj: Any) -> tuple[bytes, list[Any]]:
    return b"", [bytes(memoryview(obj))]


def _read_array(obj: Any) -> tuple[bytes, list[Any]]:
    return b"ar" + enc_str(array.array.typecode.__get__(obj)), [bytes(memoryview(obj).cast("B"))]


def _read_exception(obj: Any) -> tuple[bytes, list[Any]]:
    """An exception's args (its C fields, errno and the like, are read as members)."""
    return b"x", [_exception_args(obj)]


BASE_READERS: dict[int, BaseReader] = {
    id(list): _read_list,
    id(tuple): _read_tuple,
    id(dict): _read_dict,
    id(collections.OrderedDict): _read_ordered_dict,
    id(collections.defaultdict): _read_default_dict,
    id(set): _read_set,
    id(frozenset): _read_frozenset,
    id(collections.deque): _read_deque,
    id(int): _read_int,
    id(float): _read_float,
    id(complex): _read_complex,
    id(str): _read_str,
    id(bytes): _read_bytes,
    id(bytearray): _read_bytearray,
    id(array.array): _read_array,
}


def base_reader(native: type) -> BaseReader | None:
    """How to read the content of a builtin base a class derives from."""
    reader = BASE_READERS.get(id(native))
    if reader is None and static.inherits(native, BaseException) and static.module_of(native) == "builtins":
        return _read_exception
    return reader


def instance_handler(tp: type, native: type | None) -> Handler:
    """Instances of a class: builtin-base content, slots and ``__dict__``, all read statically.

    The attribute names are encoded once per class while they stay the same names
    (in the same order), which they usually do for every instance.
    """
    name = enc_str(static.label(tp))
    read_base = base_reader(native) if native is not None else None
    read_dict, shadowed = static.dict_reader(tp)
    if read_dict is None and shadowed:
        return weak(f"{static.label(tp)} hides its __dict__ behind an override: not read (it would run its code)")
    slots = static.slot_readers(tp)
    layout: list[Any] = [(), b""]  # ids of the last instance's attribute names, their encoding

    def handle(walk: Walk, obj: Any) -> None:
        if not walk.enter(obj):
            return
        base_tag, children = read_base(obj) if read_base is not None else (b"", [])
        for slot, read in slots:
            try:
                children.append(read(obj))
            except AttributeError:
                children.append(_EMPTY_CELL)
        state = read_dict(obj) if read_dict is not None else None
        if type(state) is not dict or not state:
            walk.emit(b"O" + name + base_tag + b"%x;" % len(slots))
            walk.push_all(children)
            return
        keys = tuple(map(id, state))
        if keys != layout[0]:
            names = list(state)
            if not all(type(k) is str for k in names):  # keys set through __dict__ by hand
                walk.emit(b"O" + name + base_tag + b"%x,d;" % len(slots))
                walk.push_all(children + [x for pair in _dict_items(state) for x in pair])
                return
            layout[:] = [keys, b"%x;" % len(names) + b"".join(map(enc_str, names)), names]
        walk.emit(b"O" + name + base_tag + b"%x;" % len(slots) + layout[1])
        walk.push_all(children + list(dict.values(state)))

    return handle


def reduce_handler(tp: type) -> Handler:
    """Compiled classes of trusted libraries: the state their own pickling support exports
    (a reducer registered with ``copyreg`` first, as pickle does, else ``__reduce_ex__``)."""
    name = static.label(tp)
    registered = copyreg.dispatch_table.get(tp)  # tp is a trusted library class: hashing it is safe
    found = static.lookup(tp, "__reduce_ex__")
    if registered is not None:
        reduce_ex: Callable[[Any, int], Any] = lambda obj, _protocol: registered(obj)  # noqa: E731
    elif found is not None:
        reduce_ex = found[1]
    else:
        return weak(f"{name} exposes no state")
    makers: dict[int, tuple[Any, bytes]] = {}  # id -> (maker, encoded name): usually one

    def handle(walk: Walk, obj: Any) -> None:
        if not walk.enter(obj):
            return
        try:
            exported = reduce_ex(obj, 4)
        except Exception as exc:
            raise NotExact(f"{name}: its library does not export its state ({type(exc).__name__})") from exc
        if type(exported) is str:
            walk.emit(b"G" + enc_str(f"{name}:{exported}"))
            return
        if type(exported) is not tuple or len(exported) < 2:
            raise NotExact(f"{name}: unexpected export from its library")
        maker, args, *rest = exported
        known = makers.get(id(maker))
        if known is None or known[0] is not maker:
            known = (maker, enc_str(name) + enc_str(_callable_name(maker)))
            makers[id(maker)] = known
        walk.emit(b"X" + known[1] + b"%x;" % len(rest))
        children: list[Any] = [_synthetic(args)]
        for part in rest[:3]:
            if part is not None and type(part) is not dict and type(part) is not tuple:
                part = list(part)  # list/dict items iterators of a compiled container
            children.append(_synthetic(part))
        walk.push_all(children)

    return handle


def _callable_name(maker: Any) -> str:
    if static.is_class(maker):
        return static.label(maker)
    module = getattr(maker, "__module__", None)
    qualname = getattr(maker, "__qualname__", None) or getattr(maker, "__name__", "?")
    return f"{module}.{qualname}" if type(module) is str else str(qualname)


class _Synthetic:
    """A container built by a library's export, not part of the user's graph (no identity)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _synthetic(value: Any) -> Any:
    return _Synthetic(value) if type(value) is dict or type(value) is list else value


def synthetic_value(walk: Walk, wrapped: _Synthetic) -> None:
    value = wrapped.value
    if type(value) is dict:
        walk.emit(b"D%x;" % len(value))
        walk.push_items(_dict_items(value))
    else:
        sequence(walk, b"L", list(value))


# -- the table of Python's own types ------------------------------------------------


def _builtin_handlers() -> dict[int, Handler]:
    import threading
    import weakref

    def weak_kind(reason: str) -> Handler:
        return weak(reason)

    table: dict[type, Handler] = {
        list: list_value,
        tuple: tuple_value,
        dict: dict_value,
        set: set_value,
        frozenset: frozenset_value,
        bytes: bytes_value,
        bytearray: bytearray_value,
        memoryview: memoryview_value,
        range: range_value,
        slice: slice_value,
        types.MappingProxyType: mappingproxy_value,
        types.FunctionType: function_value,
        types.CodeType: code_value,
        types.CellType: cell_value,
        types.MethodType: method_value,
        types.BuiltinFunctionType: builtin_function_value,
        types.WrapperDescriptorType: descriptor_value,
        types.MethodDescriptorType: descriptor_value,
        types.ClassMethodDescriptorType: descriptor_value,
        types.GetSetDescriptorType: descriptor_value,
        types.MemberDescriptorType: descriptor_value,
        types.MethodWrapperType: method_wrapper_value,
        classmethod: classmethod_value,
        staticmethod: staticmethod_value,
        property: property_value,
        _TUPLEGETTER: tuplegetter_value,
        types.ModuleType: module_value,
        type: class_value,
        _Synthetic: synthetic_value,
        _EmptyCell: constant(b"?"),
        type(NotImplemented): constant(b"!NotImplemented"),
        type(Ellipsis): constant(b"!Ellipsis"),
        object: constant(b"!object"),
        weakref.ReferenceType: weakref_value,
        weakref.ProxyType: constant(b"Wp"),
        weakref.CallableProxyType: constant(b"Wp"),
        types.GeneratorType: weak_kind("a generator: its remaining items exist only by running it"),
        types.CoroutineType: weak_kind("a coroutine: its result exists only by running it"),
        types.AsyncGeneratorType: weak_kind("an async generator: its items exist only by running it"),
        types.FrameType: weak_kind("an interpreter frame, not a value"),
        types.TracebackType: weak_kind("a traceback: interpreter frames, not a value"),
        type(threading.Lock()): weak_kind("a lock: its state belongs to running threads, not to data"),
        type(threading.RLock()): weak_kind("a lock: its state belongs to running threads, not to data"),
    }
    return {id(tp): handler for tp, handler in table.items()}


BUILTIN_HANDLERS = _builtin_handlers()
