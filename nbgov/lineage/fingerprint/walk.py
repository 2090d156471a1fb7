"""One traversal of a value's object graph into an xxh3-128 digest.

Iterative (an explicit stack, so a 200,000-deep list is just a long loop) and
cycle-safe: a container met again is encoded as a back-reference to its first
visit, numbered in visiting order, so equal cyclic structures hash equal and a
self-referential list terminates. Elements of a set are hashed in streams of
their own and sorted, and objects first met inside one element are numbered
within it, so the result does not depend on the set's (hash-seed) order.

While walking, the ids of the mutable objects reached are collected (no
references kept after the walk): ``ValueTracker`` uses them to find names that
share state. Objects remembered for back-references are held only until the walk
ends, so an id cannot be reused by another object meanwhile. A reader may make
objects of its own (a ``__reduce__``'s copies, a ``__getstate__`` dict); those are
left out of the reach (``lasting_reach``): once freed, their ids would be other
objects', and two names would seem to share state they do not.
"""

from __future__ import annotations

import sys
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from nbgov.lineage.fingerprint.encode import ATOMS, BLOCK, LONG_TEXT, block_digests, enc_str

if TYPE_CHECKING:
    from nbgov.lineage.fingerprint.kinds import Kinds

_FLUSH_PARTS = 4096
_DIRECT_BYTES = 1 << 16  # parts this large are hashed in place, not copied into a join
_SHORT = 64  # strings up to this length (attribute names, dict keys) have their encoding cached
_SHORT_STRINGS = 65536
_SEARCH_WINDOW = 1 << 20  # bytes of a large buffer copied at a time to be searched for secrets


def _held_by_a_local() -> int:
    """What ``sys.getrefcount`` says of an object only a local name holds, asked as
    ``Walk.lasting_reach`` asks (the count differs between Python versions)."""
    keep: list[Any] = [[]]
    obj = keep[0]
    keep[0] = None
    return sys.getrefcount(obj)


_HELD_BY_A_LOCAL = _held_by_a_local()


def held_secret(data: bytes, secrets: Sequence[tuple[bytes, str]]) -> str | None:
    """The reason of the first secret whose text is in ``data``, or None."""
    for text, reason in secrets:
        if text in data:
            return reason
    return None


class NotExact(Exception):
    """A part of the value cannot be read without running code: the fingerprint is weak."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SecretHeld(NotExact):
    """The value holds a secret's text: no fingerprint, and no summary (a length tells)."""


@dataclass
class Limits:
    """Work one fingerprint may do before it gives up as weak (never silently truncated)."""

    max_items: int
    max_bytes: int
    max_reach: int


class Task:
    """A step on the walk's stack that is not a value (closing a set element, ...)."""

    __slots__ = ("run",)

    def __init__(self, run: Callable[[Walk], None]) -> None:
        self.run = run


class Walk:
    """State of one fingerprint: output stream, stack, back-references, budget, reach."""

    def __init__(self, kinds: Kinds, limits: Limits) -> None:
        self.kinds = kinds
        self.limits = limits
        self.parts: list[bytes] = []
        self.hasher = xxhash.xxh3_128()
        self._outer: list[tuple[list[bytes], Any]] = []  # streams suspended by set elements
        self._set_digests: list[list[bytes]] = []
        self.stack: list[Any] = []
        self._memo: dict[int, int] = {}
        self._memo_order: list[int] = []
        self._scopes: list[int] = [0]
        self._keep: list[Any] = []
        self._texts: dict[int, bytes] = {}  # id of a long str/bytes -> its digest, this walk only
        self._handlers: dict[int, tuple[type, Any]] = {}  # id(type) -> (type, handler), this walk only
        self.reach: set[int] = set()  # ids of objects entered (held in _keep) and of owners without weak references
        self._owners: dict[int, Any] = {}  # id of a buffer owner or frame reached -> a weak reference to it
        self.reach_complete = True
        self.items_left = limits.max_items
        self.bytes_left = limits.max_bytes
        self.hashed_bytes = 0
        self.notes: list[str] = []  # how parts were read, for Fingerprint.reason
        self.frame_layouts: dict[int, Any] = {}  # id of a plain DataFrame read -> its FrameLayout, this walk only
        # the value holds code of the notebook's own (a function it made, a class of __main__) or
        # a callable bound to an object: what a library method may call back into
        self.holds_own_code = False
        self.scratch: Any = None  # a byte array copies are made into, reused within the walk (see columnar)
        # (text, reason) of the secrets no fingerprint may hold (``secret_values``): the bytes
        # hashed are searched for them, and holding one makes the fingerprint weak
        self.secrets: Sequence[tuple[bytes, str]] = ()

    # -- driving -------------------------------------------------------------
    def run(self, root: Any) -> str:
        """Walk ``root`` and return the hex digest; raises NotExact for unreadable parts."""
        stack = self.stack
        stack.append(root)
        atoms = ATOMS
        handlers = self._handlers
        handler_for = self.kinds.handler_for
        while stack:
            obj = stack.pop()
            tp = type(obj)
            encode = atoms.get(id(tp))
            if encode is not None:
                if tp is str and len(obj) > LONG_TEXT:
                    self.long_text(obj)
                else:
                    self.parts.append(encode(obj))
                if len(self.parts) > _FLUSH_PARTS:
                    self.flush()
                continue
            if tp is Task:
                obj.run(self)
                continue
            self.count(1)
            known = handlers.get(id(tp))
            if known is None:  # classes Kinds does not cache are resolved once per walk
                known = handlers[id(tp)] = (tp, handler_for(tp))
            known[1](self, obj)
            if len(self.parts) > _FLUSH_PARTS:
                self.flush()
        self.flush()
        return self.hasher.hexdigest()

    def types_read(self) -> list[type]:
        """The classes of the objects read (all but the atoms encoded inline)."""
        return [tp for tp, _ in self._handlers.values()]

    def count(self, items: int) -> None:
        """Spend the object budget (atoms encoded inline are free; runs count each element)."""
        self.items_left -= items
        if self.items_left < 0:
            raise NotExact(f"more than {self.limits.max_items:,} objects to read")

    def flush(self) -> None:
        """Hash the pending parts in order. A streaming xxh3 digest does not depend on
        how its input is cut, so small parts are joined (one call) and a large buffer
        goes to the hasher as is (joining would copy it first)."""
        if not self.parts:
            return
        small: list[bytes] = []
        for part in self.parts:
            if len(part) < _DIRECT_BYTES:
                small.append(part)
                continue
            if small:
                self._hash(b"".join(small))
                small.clear()
            self._hash(part)
        if small:
            self._hash(b"".join(small))
        self.parts.clear()

    def _hash(self, data: bytes) -> None:
        if self.secrets and type(data) is bytes:  # a large raw buffer (a memoryview) is not searched
            self.refuse_secrets(data)
        self.hasher.update(data)

    def refuse_secrets_in(self, view: memoryview, secrets: Sequence[tuple[bytes, str]] | None = None) -> None:
        """``refuse_secrets`` over a large buffer (a column's text), a window at a time, the
        windows overlapping by a secret's length: never a copy of it whole. ``secrets``: the
        texts as the buffer encodes them, when not UTF-8."""
        texts = self.secrets if secrets is None else secrets
        if not texts:
            return
        overlap = max(len(text) for text, _ in texts) - 1
        for start in range(0, len(view), _SEARCH_WINDOW):
            self.refuse_secrets(bytes(view[start:start + _SEARCH_WINDOW + overlap]), texts)

    def refuse_secrets(self, data: bytes, secrets: Sequence[tuple[bytes, str]] | None = None) -> None:
        """Raise SecretHeld (a NotExact) if ``data`` holds a secret's text, naming whose."""
        reason = held_secret(data, self.secrets if secrets is None else secrets)
        if reason is not None:
            raise SecretHeld(reason)

    # -- output --------------------------------------------------------------
    def emit(self, data: bytes) -> None:
        self.parts.append(data)

    def afford(self, nbytes: int) -> None:
        """Refuse before the work when the byte budget cannot cover it."""
        if nbytes > self.bytes_left:
            raise NotExact(f"more than {self.limits.max_bytes:,} bytes to hash")

    def spend(self, nbytes: int) -> None:
        self.afford(nbytes)
        self.bytes_left -= nbytes
        self.hashed_bytes += nbytes

    def buffer(self, tag: bytes, view: memoryview, zero_blocks: Callable[[int], bool] | None = None) -> None:
        """A flat byte buffer: inline up to one block, else block digests (see encode)."""
        n = len(view)
        self.spend(n)
        if n <= BLOCK:
            self.parts.append(tag + b"%x;" % n)
            self.parts.append(view)  # type: ignore[arg-type]  # hashed as bytes-like
            return
        self.parts.append(tag + b"B%x;" % n)
        self.parts.append(block_digests(view, zero_blocks))

    def digest_blocks(self, tag: bytes, nbytes: int, digests: bytes) -> None:
        """A large buffer whose block digests were computed elsewhere (a file region)."""
        self.spend(nbytes)
        self.parts.append(tag + b"B%x;" % nbytes)
        self.parts.append(digests)

    def long_text(self, value: str | bytes) -> None:
        """Long strings: by digest, once per walk however often they are referenced."""
        key = id(value)
        digest = self._texts.get(key)
        if digest is None:
            data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
            self.spend(len(data))
            if self.secrets:
                self.refuse_secrets(data)
            digest = xxhash.xxh3_128_digest(data)
            self._texts[key] = digest
            self._keep.append(value)
        self.parts.append((b"S" if type(value) is str else b"Y") + digest)

    # -- children ------------------------------------------------------------
    def push(self, child: Any) -> None:
        self.stack.append(child)

    def push_all(self, children: list[Any]) -> None:
        """Visit ``children`` in order: plain scalars are encoded right here, each other
        child leaves a marker and is visited next, in order (the list is consumed)."""
        parts = self.parts
        names = self.kinds.short_strings
        deferred = []
        for child in children:
            tp = type(child)
            if tp is str:
                encoded = names.get(child)
                if encoded is None:
                    if len(child) > LONG_TEXT:
                        parts.append(b"^")
                        deferred.append(child)
                        continue
                    encoded = enc_str(child)
                    if len(child) <= _SHORT and len(names) < _SHORT_STRINGS:
                        names[child] = encoded
                parts.append(encoded)
                continue
            encode = ATOMS.get(id(tp))
            if encode is None:
                parts.append(b"^")
                deferred.append(child)
            else:
                parts.append(encode(child))
        self.count(len(children) - len(deferred))  # the deferred ones count when visited
        deferred.reverse()
        self.stack.extend(deferred)

    def push_items(self, items: Iterable[tuple[Any, Any]]) -> None:
        """Visit key, value, key, value, ... in order (as ``push_all``)."""
        self.push_all([x for pair in items for x in pair])

    # -- identity ------------------------------------------------------------
    def enter(self, obj: Any, mutable: bool = True) -> bool:
        """First visit: remember ``obj`` and return True; else emit a back-reference."""
        key = id(obj)
        index = self._memo.get(key)
        if index is not None:
            scopes = self._scopes
            if len(scopes) == 1:
                self.parts.append(b"R%x;" % index)
            else:  # numbered within the innermost set element that first met it
                at = bisect_right(scopes, index) - 1
                self.parts.append(b"R%x,%x;" % (len(scopes) - 1 - at, index - scopes[at]))
            return False
        self._memo[key] = len(self._memo_order)
        self._memo_order.append(key)
        self._keep.append(obj)
        if mutable:
            self._add_reach(key)
        return True

    def reached(self, owner: Any) -> None:
        """Record a mutable object (or buffer owner) this value's graph holds, without
        entering it: weakly where it can be (an array a reader copied dies as soon as it is
        hashed), else held until the walk ends."""
        key = id(owner)
        try:
            if key not in self._owners and len(self._owners) + len(self.reach) >= self.limits.max_reach:
                self.reach_complete = False
                return
            self._owners[key] = weakref.ref(owner)
        except TypeError:  # no weak references (a bytearray): held, and told as entered objects are
            if key not in self.reach:
                self._keep.append(owner)
                self._add_reach(key)

    def _add_reach(self, key: int) -> None:
        if len(self.reach) + len(self._owners) < self.limits.max_reach:
            self.reach.add(key)
        else:
            self.reach_complete = False

    def lasting_reach(self) -> frozenset[int]:
        """The reach, without the objects only this walk held (made by a reader): once freed,
        their ids could be any other object's. The walk lets go of what it holds, first to
        last, so an object a reader made, and what only it held, is freed before it is
        asked about; an object held by anything else (its owner in the value) stays. Called
        once, when the walk is done."""
        self.stack.clear()
        self.parts.clear()
        self._outer.clear()
        reach, keep = self.reach, self._keep
        getrefcount = sys.getrefcount
        obj: Any = None
        for index in range(len(keep)):
            obj = keep[index]
            keep[index] = None
            if getrefcount(obj) <= _HELD_BY_A_LOCAL and id(obj) in reach:
                reach.discard(id(obj))
        del obj
        keep.clear()
        lasting = {key for key, ref in self._owners.items() if ref() is not None}
        self._owners.clear()
        return frozenset(reach | lasting) if lasting else frozenset(reach)

    # -- sets: order-free ----------------------------------------------------
    def unordered(self, tag: bytes, elements: list[Any]) -> None:
        """Hash each element in its own stream, then emit the sorted digests."""
        self.parts.append(tag + b"%x;" % len(elements))
        if not elements:
            return
        encoded = _atoms_only(elements)
        if encoded is not None:  # all plain scalars: sort their encodings directly
            encoded.sort()
            self.parts.extend(encoded)
            return
        self._set_digests.append([])
        steps: list[Any] = []
        for element in elements:
            steps += [Task(_begin_element), element, Task(_end_element)]
        steps.append(Task(_end_set))
        steps.reverse()
        self.stack.extend(steps)

    def release(self) -> None:
        """Drop every reference the walk held (called when it ends, however it ends)."""
        self._keep.clear()
        self._owners.clear()
        self._memo.clear()
        self._texts.clear()
        self._handlers.clear()
        self.stack.clear()
        self.parts.clear()
        self._outer.clear()
        self.frame_layouts.clear()
        self.scratch = None


def _atoms_only(elements: list[Any]) -> list[bytes] | None:
    out = []
    for element in elements:
        encode = ATOMS.get(id(type(element)))
        if encode is None:
            return None
        out.append(encode(element))
    return out


def _begin_element(walk: Walk) -> None:
    walk._outer.append((walk.parts, walk.hasher))
    walk.parts, walk.hasher = [], xxhash.xxh3_128()
    walk._scopes.append(len(walk._memo_order))


def _end_element(walk: Walk) -> None:
    walk.flush()
    digest = walk.hasher.digest()
    walk.parts, walk.hasher = walk._outer.pop()
    base = walk._scopes.pop()
    for key in walk._memo_order[base:]:  # objects first met in this element: local to it
        del walk._memo[key]
    del walk._memo_order[base:]
    walk._set_digests[-1].append(digest)


def _end_set(walk: Walk) -> None:
    digests = walk._set_digests.pop()
    digests.sort()
    walk.parts.extend(digests)
