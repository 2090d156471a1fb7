"""The version probe of a scikit-learn model: what tells, before a cell, that a model hashed
after an earlier one is still the same, without hashing every tree again (a 100-tree forest's
fingerprint costs as much as scoring 200 rows with it).

As LightGBM's (``model_probe``) and an array's (``columnar``): identities and a sample. The
probe reads the model's instance state as its fingerprint does (the ``__dict__`` of each of
scikit-learn's own classes, never a notebook's subclass): parameters and other plain values
whole (a long list or dict of them, as a vectorizer's vocabulary, in a few C passes), arrays
by address, shape, type and a sample of their bytes (all of a small one; an array of
objects, as a gradient boosting model's trees, item by item), each tree
(``sklearn.tree._tree.Tree``) by its counts and the address and a sample of its node and
value buffers; anything else it holds is hashed whole. A cell that changes the model is
seen by the cell's own analysis and hashes it after; the probe is for what no cell did, as a
thread. What it cannot see, as an array's probe cannot see a write between its samples, is
a thread changing bytes of a big array or tree buffer that it does not sample.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from typing import Any

import xxhash

from nbgov.lineage.fingerprint import columnar, static
from nbgov.lineage.fingerprint.encode import ATOMS, LONG_TEXT, enc_str, scalar_run

NOT_SKLEARN = object()  # ``probe``'s answer for anything but scikit-learn's own classes
MAX_PARTS = 200_000  # values read before giving up (the model is then hashed)
MAX_DEPTH = 64
SMALL_ARRAY = 16384  # bytes: an array this small is read whole (a copy costs less than sampling it)
SHORT_TEXT = 64
LONG_RUN = 64  # items: a longer list, or dict, of plain values is encoded in C passes (``_plain_run``)
# windows sampled of each tree's node and value buffers and of each array under BIG_ARRAY
# (a boosted model's trees' nodes): a model holds hundreds of them, and the 64 of a big
# array's probe read most of a small one
TREE_WINDOWS = 8
BIG_ARRAY = 1 << 16
FLUSH_BYTES = 1 << 20
_NUMPY_SCALARS = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64", "longdouble", "complex64", "complex128")


def probe(obj: Any, digest: Callable[[Any], str]) -> Any:
    """The probe of an instance of one of scikit-learn's own classes; None where part of it
    cannot be read exactly (so the model is hashed); ``NOT_SKLEARN`` for anything else.
    ``digest``: the fingerprinter's content hash, for the values read whole."""
    if not _sklearn_class(type(obj)):
        return NOT_SKLEARN
    reader = _Reader()
    if not reader.part(obj, 0) or (reader.whole and reader.whole[0] is obj):  # (unreadable: no use)
        return None
    if reader.whole:
        rest = digest(reader.whole)
        if rest == "weak":
            return None
        reader.out.append(rest.encode("ascii"))
    return reader.digest().hexdigest()


def _sklearn_class(tp: type) -> bool:
    return static.module_of(tp).partition(".")[0] == "sklearn" and static.library_kind(tp)


class _Reader:
    """One probe's walk: the bytes it read, the values left to hash whole, what it has seen."""

    def __init__(self) -> None:
        self.out: list[Any] = [b"sklearn|"]  # bytes and sampled arrays, hashed in order (``_flush``)
        self.held_bytes = 0  # of arrays' bytes in ``out``: flushed past FLUSH_BYTES
        self.h = xxhash.xxh3_128()
        self.whole: list[Any] = []  # hashed by content at the end, in one walk
        self.seen: dict[int, int] = {}  # id of a container or object -> its order of visit
        self.held: list[Any] = []  # what ``seen`` names, alive until the walk ends
        self.keys: dict[str, bytes] = {}  # encodings of attribute names and short texts (each tree repeats them)
        # id of a class -> its instances' dict getter and its name, or None
        self.states: dict[int, tuple[Callable[[Any], Any], bytes] | None] = {}
        self.parts = 0
        self.numpy = _numpy_kinds()

    def update(self, chunk: Any) -> None:
        """As a hash's (``columnar.sample_regions`` calls it): into the one stream, in order."""
        self.out.append(chunk)
        self.held_bytes += len(chunk)
        if self.held_bytes > FLUSH_BYTES:  # (thousands of small arrays: not all kept at once)
            self._flush()

    def _flush(self) -> None:
        self.h.update(b"".join(self.out))  # (bytes, and arrays of sampled bytes)
        self.out.clear()
        self.held_bytes = 0

    def digest(self) -> Any:
        self._flush()
        return self.h

    def part(self, value: Any, depth: int) -> bool:
        self.parts += 1
        if self.parts > MAX_PARTS or depth > MAX_DEPTH:
            return False
        tp = type(value)
        encode = ATOMS.get(id(tp))
        if encode is not None and not (tp is str and len(value) > LONG_TEXT):
            self.out.append(encode(value))
            return True
        if self.numpy is not None:
            ndarray, scalars, tree = self.numpy
            if id(tp) in scalars:
                self.out.append(b"n" + enc_str(value.dtype.str) + value.tobytes())
                return True
            if tp is ndarray:
                return self._array(value, depth)
            if tp is tree:
                return self._tree(value)
        if tp is list or tp is tuple or tp is dict or self._state_of(tp) is not None:
            return self._container(value, tp, depth)
        self._whole(value)
        return True

    def _state_of(self, tp: type) -> tuple[Callable[[Any], Any], bytes] | None:
        """The getter of the instance dict of one of scikit-learn's own classes, and the
        class's name encoded; None for any other class, or one with no dict of its own."""
        key = id(tp)  # (the class is alive while the walk holds its instance)
        if key in self.states:
            return self.states[key]
        read, hidden = static.dict_reader(tp) if _sklearn_class(tp) else (None, True)
        found = self.states[key] = None if hidden or read is None else (read, b"o" + enc_str(static.label(tp)))
        return found

    def _whole(self, value: Any) -> None:
        self.out.append(b"w%x;" % len(self.whole))  # its place; hashed whole at the end
        self.whole.append(value)

    def _container(self, value: Any, tp: type, depth: int) -> bool:
        visited = self.seen.get(id(value))
        if visited is not None:
            self.out.append(b"@%x;" % visited)
            return True
        self.seen[id(value)] = len(self.seen)
        self.held.append(value)
        if tp is list or tp is tuple:
            self.out.append(b"%s%x;" % (b"l" if tp is list else b"t", len(value)))
            run = _plain_run(list(value)) if len(value) > LONG_RUN else None  # (feature names)
            if run is not None:
                self.out.append(run)
                return True
            return all(self.part(item, depth + 1) for item in value)
        if tp is dict:
            if len(value) > LONG_RUN:  # (a vectorizer's vocabulary): keys and values in a few C passes
                keys, items = _plain_run(list(value)), _plain_run(list(value.values()))
                if keys is not None and items is not None:
                    self.out.append(b"D%x;" % len(value) + keys + items)
                    return True
            return self._items(value, depth)
        kind = self._state_of(tp)
        state = kind[0](value) if kind is not None else None
        if kind is None or type(state) is not dict:
            return False
        self.out.append(kind[1])
        return self._items(state, depth)

    def _items(self, mapping: dict[Any, Any], depth: int) -> bool:
        out, keys = self.out, self.keys
        out.append(b"d%x;" % len(mapping))
        for key, item in mapping.items():
            if type(key) is str:
                encoded = keys.get(key)
                if encoded is None:
                    encoded = keys[key] = enc_str(key)
                out.append(encoded)
            else:  # ({0: 1.0, 1: 5.0} as class weights): atoms only, no notebook object's hash or eq
                encode = ATOMS.get(id(type(key)))
                if encode is None:
                    return False
                out.append(encode(key))
            tp = type(item)
            if tp is str and len(item) <= SHORT_TEXT:  # 'gini', 'sqrt': each tree repeats them too
                encoded = keys.get(item)
                if encoded is None:
                    encoded = keys[item] = enc_str(item)
                out.append(encoded)
                continue
            encode = ATOMS.get(id(tp))  # most of a model's state: its parameters
            if encode is not None and not (tp is str and len(item) > LONG_TEXT):
                out.append(encode(item))
            elif not self.part(item, depth + 1):
                return False
        return True

    def _array(self, array: Any, depth: int) -> bool:
        if array.dtype.hasobject:  # (a gradient boosting model's trees): its items, as a list's
            if array.dtype.str != "|O" or array.size > MAX_PARTS:
                return False
            self.out.append(b"O" + enc_str(str(array.shape)))
            return self.part(array.tolist(), depth + 1)
        if array.nbytes <= SMALL_ARRAY:  # (classes_, n_classes): all of it
            self.update(b"A" + enc_str(f"{array.dtype.str}{array.shape}") + array.tobytes())
            return True
        arrays, meta, _ = columnar.probe_parts(array)
        if arrays is None:  # not contiguous: hashed whole
            self._whole(array)
            return True
        windows = columnar.PROBE_WINDOWS if array.nbytes >= BIG_ARRAY else TREE_WINDOWS
        self._sample(meta, array, array.nbytes, windows)
        return True

    def _sample(self, identity: str, array: Any, nbytes: int, windows: int) -> None:
        """The array's identity, then its sampled bytes (of a length the identity tells)."""
        self.out.append(b"a" + enc_str(identity))
        columnar.sample_regions(self, [(columnar.sampled_buffer(array), 0, nbytes)], windows)

    def _tree(self, tree: Any) -> bool:
        """A fitted tree: its counts, and its node and value buffers as arrays (read through
        scikit-learn's own properties: views of the tree's memory)."""
        count = tree.node_count
        left = tree.children_left  # the first field of every node, a view of the node array
        nodes, values = left.base, tree.value  # every node the tree has room for; values[:node_count]
        ndarray = type(values)
        if (type(count) is not int or type(nodes) is not ndarray or nodes.base is not tree
                or not nodes.flags.c_contiguous or not values.flags.c_contiguous or len(nodes) < count):
            return False
        self.out.append(b"tree|%x|%x|%x|%x|%x|" % (count, tree.max_depth, tree.n_features, tree.n_outputs,
                                                    tree.max_n_classes))
        # each buffer's address is that of a plain view of it (the node array's own interface
        # reads its structured type in Python)
        self._sample(f"{nodes.dtype.itemsize}@{left.__array_interface__['data'][0]}", nodes,
                     count * nodes.dtype.itemsize, TREE_WINDOWS)
        interface = values.__array_interface__
        self._sample(f"{interface['typestr']}{values.shape}@{interface['data'][0]}", values, values.nbytes,
                     TREE_WINDOWS)
        return self._array(tree.n_classes, 0)


def _plain_run(values: list[Any]) -> bytes | None:
    """A list of plain values in a few C passes: all texts (a vocabulary's words), all ints (its
    columns), else ``scalar_run``'s mixed encoding; None when one is not a plain value."""
    kinds = set(map(id, map(type, values)))  # (ids: a notebook class's metaclass may define __hash__)
    if kinds == _TEXTS:
        joined = "".join(values).encode("utf-8", "surrogatepass")
        return b"S%x;" % len(values) + array("q", map(len, values)).tobytes() + joined
    if kinds == _INTS:
        try:
            return b"I%x;" % len(values) + array("q", values).tobytes()
        except OverflowError:  # an int past 64 bits
            return None
    return scalar_run(values)


_TEXTS, _INTS = {id(str)}, {id(int)}


def _numpy_kinds() -> tuple[Any, frozenset[int], Any] | None:
    """numpy's ndarray, the ids of its numeric scalar classes, and scikit-learn's tree class
    (None before numpy is imported: a model holds no array then); kept once all are found."""
    global _kinds
    if _kinds is not None:
        return _kinds
    ndarray = static.library_class("numpy", "ndarray")
    if ndarray is None:
        return None
    scalars = frozenset(id(c) for c in (static.library_class("numpy", name) for name in _NUMPY_SCALARS)
                        if c is not None)
    tree = static.library_class("sklearn.tree._tree", "Tree")
    if tree is not None:
        _kinds = (ndarray, scalars, tree)
    return ndarray, scalars, tree


_kinds: tuple[Any, frozenset[int], Any] | None = None
