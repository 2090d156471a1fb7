"""The version probe of a scikit-learn model: what tells, before a cell, that a model hashed
after an earlier one is still the same, without hashing every tree again (a 100-tree forest's
fingerprint costs as much as scoring 200 rows with it).

As LightGBM's (``model_probe``) and an array's (``columnar``): identities and a sample. The
probe reads the model's instance state as its fingerprint does (the ``__dict__`` of each of
scikit-learn's own classes, never a notebook's subclass): parameters and other plain values
whole, arrays by address, shape, type and a sample of their bytes (all of a small one), each
tree (``sklearn.tree._tree.Tree``) by its counts and the address and a sample of its node
and value buffers; anything else it holds is hashed whole. A cell that changes the model is
seen by the cell's own analysis and hashes it after; the probe is for what no cell did, as a
thread. What it cannot see, as an array's probe cannot see a write between its samples, is
a thread changing bytes of a big array or tree buffer that it does not sample.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import xxhash

from nbgov.lineage.fingerprint import columnar, static
from nbgov.lineage.fingerprint.encode import ATOMS, LONG_TEXT, enc_str

NOT_SKLEARN = object()  # ``probe``'s answer for anything but scikit-learn's own classes
MAX_PARTS = 200_000  # values read before giving up (the model is then hashed)
MAX_DEPTH = 64
SMALL_ARRAY = 512  # bytes: an array this small is read whole
# windows sampled of each tree's node and value buffers: a forest has hundreds of them, each
# window a read of memory the scoring left cold (64, an array's, cost a 100-tree forest 4 ms)
TREE_WINDOWS = 8
_NUMPY_SCALARS = ("bool_", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64", "longdouble", "complex64", "complex128")


def probe(obj: Any, digest: Callable[[Any], str]) -> Any:
    """The probe of an instance of one of scikit-learn's own classes; None where part of it
    cannot be read exactly (so the model is hashed); ``NOT_SKLEARN`` for anything else.
    ``digest``: the fingerprinter's content hash, for the values read whole."""
    if not _sklearn_class(type(obj)):
        return NOT_SKLEARN
    reader = _Reader()
    if not reader.part(obj, 0):
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
        self.out: list[bytes] = [b"sklearn|"]  # hashed at the end, in order
        self.whole: list[Any] = []  # hashed by content at the end, in one walk
        self.seen: dict[int, int] = {}  # id of a container or object -> its order of visit
        self.held: list[Any] = []  # what ``seen`` names, alive until the walk ends
        self.keys: dict[str, bytes] = {}  # the encodings of attribute names (each tree repeats them)
        self.parts = 0
        self.numpy = _numpy_kinds()

    def digest(self) -> Any:
        return xxhash.xxh3_128(b"".join(self.out))

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
                return self._array(value)
            if tp is tree:
                return self._tree(value)
        if tp is list or tp is tuple or tp is dict or _sklearn_class(tp):
            return self._container(value, tp, depth)
        self._whole(value)
        return True

    def _whole(self, value: Any) -> None:
        self.out.append(b"w%x;" % len(self.whole))  # its place; hashed whole at the end
        self.whole.append(value)

    def _container(self, value: Any, tp: type, depth: int) -> bool:
        known = self.seen.get(id(value))
        if known is not None:
            self.out.append(b"@%x;" % known)
            return True
        self.seen[id(value)] = len(self.seen)
        self.held.append(value)
        if tp is list or tp is tuple:
            self.out.append(b"%s%x;" % (b"l" if tp is list else b"t", len(value)))
            return all(self.part(item, depth + 1) for item in value)
        if tp is dict:
            return self._items(value, depth)
        read, hidden = static.dict_reader(tp)
        state = read(value) if read is not None and not hidden else None
        if type(state) is not dict:
            return False
        self.out.append(b"o" + enc_str(static.qualname_of(tp)))
        return self._items(state, depth)

    def _items(self, mapping: dict[Any, Any], depth: int) -> bool:
        out, keys = self.out, self.keys
        out.append(b"d%x;" % len(mapping))
        for key, item in mapping.items():
            if type(key) is not str:
                return False
            encoded = keys.get(key)
            if encoded is None:
                encoded = keys[key] = enc_str(key)
            out.append(encoded)
            tp = type(item)
            encode = ATOMS.get(id(tp))  # most of a model's state: its parameters
            if encode is not None and not (tp is str and len(item) > LONG_TEXT):
                out.append(encode(item))
            elif not self.part(item, depth + 1):
                return False
        return True

    def _array(self, array: Any, windows: int | None = None) -> bool:
        if array.nbytes <= SMALL_ARRAY and not array.dtype.hasobject:  # (classes_, n_classes): all of it
            self.out.append(b"A" + enc_str(f"{array.dtype.str}{array.shape}") + array.tobytes())
            return True
        arrays, meta, _ = columnar.probe_parts(array)
        if arrays is None:  # objects, or not contiguous: hashed whole
            self._whole(array)
            return True
        self._sample(meta, array, array.nbytes, windows)
        return True

    def _sample(self, identity: str, array: Any, nbytes: int, windows: int | None = None) -> None:
        sampled = xxhash.xxh3_128(identity.encode("utf-8", "surrogatepass"))
        regions = [(columnar.sampled_buffer(array), 0, nbytes)]
        if windows is None:
            columnar.sample_regions(sampled, regions)
        else:
            columnar.sample_regions(sampled, regions, windows)
        self.out.append(b"a" + sampled.digest())

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
        # the node array's address is its first field's (whose interface is plain: the node
        # array's own reads its structured type in Python)
        self._sample(f"{nodes.dtype.itemsize}@{left.__array_interface__['data'][0]}", nodes,
                     count * nodes.dtype.itemsize, TREE_WINDOWS)
        return self._array(values, TREE_WINDOWS) and self._array(tree.n_classes)


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
