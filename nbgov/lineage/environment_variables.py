"""Environment variables as a cell's inputs and outputs: ``os.environ['SEED']`` read or set by
a constant name.

``data_dir = os.environ.get("DATA_DIR", "data")`` depends on the shell the kernel started in,
which no variable of the notebook holds: without a record of it, a replay in a reviewer's
shell with another value diverged with no named cause, and setting it in a later cell made
nothing stale. Each variable is recorded as a value under a name no notebook variable can
have (``record.environment_name``: ``os.environ['SEED']``, as ``Out[3]`` is).

Two halves, as ``output_history``: the analysis (``analysis._CellVisitor``, once per distinct
code, and only for code whose text names the environment) asks ``subscript_uses``,
``call_uses``, ``contains_uses`` and ``whole_use`` which spellings go through it
(``os.environ['X']``, ``.get('X')``, ``.pop``, ``.setdefault``, ``.update``, ``del``,
``'X' in os.environ``, ``os.getenv('X')``, ``os.putenv``, ``os.unsetenv``, ``%env``, through
``import os as o`` and ``from os import environ, getenv``); ``before`` runs only for a cell
that has such a spelling: it checks that the names really are the standard library's (the
module ``os``, its ``_Environ``: a user's own ``environ`` dict is no environment) and reads
the values from ``os.environ``'s own dict of bytes (no method runs, not even the stdlib's),
``after`` reads the written ones again. Cells without one pay nothing.

Values are never recorded, nor their length: a read is an xxh3 fingerprint of the value (or
of "unset"), with the summary "set" or "unset". xxh3 is no cryptographic hash, and a secret
may be guessed from it, so a variable whose name looks like a secret (``API_KEY``,
``GITHUB_TOKEN``, ``DB_PASSWORD``, ...) gets no hash at all: a weak fingerprint saying why,
which makes a replay call its step unverifiable, never reproduced nor diverged.
"""

from __future__ import annotations

import ast
import os as _os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nbgov.lineage.fingerprint import hash_bytes
from nbgov.lineage.record import Fingerprint, environment_name

KIND = "environment variable"  # the fingerprint kind of a variable's value
_Environ: Any = type(_os.environ)  # the stdlib's class, captured before any cell can replace it
_ORIGINALS: dict[str, Any] = {"getenv": _os.getenv, "putenv": _os.putenv, "unsetenv": getattr(_os, "unsetenv", None)}
_FS_ENCODING = sys.getfilesystemencoding()
# AUTH, not AUTHOR (GIT_AUTHOR_NAME is a name, found in the commits and papers a notebook reads)
_SECRET = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH(?!OR)|COOKIE|SESSION|PRIVATE", re.IGNORECASE)
# what a bare name must be to be an environment use: the names ``from os import ...`` binds
_FUNCTIONS = ("environ", "getenv", "putenv", "unsetenv")
_READ_ONE = frozenset({"get", "__getitem__", "__contains__"})
_READ_WRITE_ONE = frozenset({"pop", "setdefault"})  # return the value and change it
MAX_SPELLING = 60


@dataclass(frozen=True)
class EnvUse:
    """One spelling of the cell's code that goes through the environment: ``root`` is the
    notebook name it starts from (``os``, ``o``, ``environ``, ``getenv``) and ``via`` what that
    name must be for it to count ("os": the module; "environ", "getenv", ...: that member of
    it). ``key``: the variable, None for the whole environment (``dict(os.environ)``)."""

    root: str
    via: str
    key: str | None
    write: bool = False
    spelled: str = ""


@dataclass
class EnvironmentUses:
    """A cell's environment uses, in evaluation order, and the names its own imports bind to
    ``os`` or a member of it (then they count even before the cell has run the import)."""

    uses: list[EnvUse] = field(default_factory=list)
    imports: set[tuple[str, str]] = field(default_factory=set)  # (name, "os" | "environ" | "getenv" ...)

    def bare(self) -> dict[str, str]:
        """Bare names that may be a member of ``os``: its own names, and the cell's aliases."""
        found = {name: name for name in _FUNCTIONS}
        found.update({name: via for name, via in self.imports if via != "os"})
        return found


def is_secret(key: str) -> bool:
    """Whether a variable's name looks like it holds a secret (its value is then not hashed).
    A few names that match say where things are, not a secret (``LOCATIONS``): a value
    holding one of those (a path under the notebook's) is no secret's."""
    return _SECRET.search(key) is not None and key.upper() not in LOCATIONS


# Set by Jupyter, the desktop session, ssh-agent and X11: where things are (the notebook's path,
# a socket's, a file's), and names ("ubuntu", "x11"); the secret of a socket or a cookie file is
# in the file, not in its path
LOCATIONS = frozenset({"JPY_SESSION_NAME", "SESSION_MANAGER", "DBUS_SESSION_BUS_ADDRESS", "SSH_AUTH_SOCK",
                       "XAUTHORITY", "DESKTOP_SESSION", "GDMSESSION", "XDG_SESSION_ID", "XDG_SESSION_TYPE",
                       "XDG_SESSION_CLASS", "XDG_SESSION_DESKTOP", "XDG_SESSION_PATH"})


# -- the analysis half: spellings in the AST --------------------------------------------


def _member(node: ast.expr, bare: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(root, via, member) when ``node`` may be ``os.environ``/``os.getenv``/... : ``R.environ``
    (R must be the module) or a bare ``environ`` (must be the member itself)."""
    if isinstance(node, ast.Attribute) and node.attr in _FUNCTIONS and isinstance(node.value, ast.Name):
        return node.value.id, "os", node.attr
    if isinstance(node, ast.Name) and node.id in bare:
        return node.id, bare[node.id], bare[node.id]
    return None


def _key(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and type(node.value) is str else None


def _spelled(node: ast.AST) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= MAX_SPELLING else text[:MAX_SPELLING - 1] + "…"


def subscript_uses(node: ast.Subscript, bare: Mapping[str, str], write: bool,
                   read: bool) -> tuple[ast.expr, list[EnvUse]] | None:
    """``os.environ['X']`` read (``read``), assigned or deleted (``write``); both for ``+=``.
    Returns the node standing for the environment (no whole read) and the uses."""
    found = _member(node.value, bare)
    if found is None or found[2] != "environ":
        return None
    root, via, _ = found
    key = _key(node.slice)
    uses = [EnvUse(root, via, key, False, _spelled(node))] if read or key is None else []
    if write:
        uses.append(EnvUse(root, via, key, True, _spelled(node)))
    return node.value, uses


def call_uses(node: ast.Call, bare: Mapping[str, str]) -> tuple[ast.expr, list[EnvUse]] | None:
    """IPython's ``%env X``, ``%env X=v``, ``%set_env X v`` (``magic_uses``);
    ``os.environ.get('X')``, ``.pop``, ``.setdefault``, ``.update({...})``, ``.clear()``,
    ``os.getenv('X')``, ``os.putenv('X', v)``, ``os.unsetenv('X')``; any other method of
    ``os.environ`` (``copy``, ``items``) reads it whole."""
    func = node.func
    if isinstance(func, ast.Attribute) and func.attr == "run_line_magic":
        return magic_uses(node)
    called = _member(func, bare)
    owner = _member(func.value, bare) if called is None and isinstance(func, ast.Attribute) else None
    if (called is None or called[2] == "environ") and (owner is None or owner[2] != "environ"):
        return None  # most calls: no environment in them (nothing is spelled out for them)
    first = _key(node.args[0]) if node.args else None
    spelled = _spelled(node)
    if called is not None:  # getenv / putenv / unsetenv called
        root, via, member = called
        return func, [EnvUse(root, via, first, member != "getenv", spelled)]
    assert owner is not None and isinstance(func, ast.Attribute)
    root, via, _ = owner
    method = func.attr
    if method in _READ_ONE:
        return func.value, [EnvUse(root, via, first, False, spelled)]
    if method in _READ_WRITE_ONE:
        return func.value, [EnvUse(root, via, first, False, spelled), EnvUse(root, via, first, True, spelled)]
    if method == "update":
        keys = _update_keys(node)
        if keys is None:
            return func.value, [EnvUse(root, via, None, True, spelled)]
        return func.value, [EnvUse(root, via, key, True, spelled) for key in keys]
    if method in ("clear", "popitem", "__setitem__", "__delitem__", "__ior__"):
        key = first if method in ("__setitem__", "__delitem__") else None
        return func.value, [EnvUse(root, via, key, True, spelled)]
    return func.value, [EnvUse(root, via, None, False, spelled)]


def magic_uses(node: ast.Call) -> tuple[ast.expr, list[EnvUse]] | None:
    """``get_ipython().run_line_magic('env', 'SEED=1')``, as IPython writes ``%env SEED=1``: the
    magic reads a variable (``%env SEED``), sets one (``%env SEED=1``, ``%env SEED 1``,
    ``%set_env SEED 1``) or reads them all (``%env``), splitting its line as IPython does."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and len(node.args) == 2 and not node.keywords):
        return None
    magic, line = _key(node.args[0]), _key(node.args[1])
    if magic not in ("env", "set_env") or line is None:
        return None
    spelled = f"%{magic} {line}".strip()
    if not line.strip():
        return func, [EnvUse("get_ipython", "ipython", None, magic == "set_env", spelled)]
    separator = "=" if "=" in line else " "
    bits = line.split(separator, 1)
    key = bits[0].strip()
    write = magic == "set_env" or len(line.strip().split(separator)) > 1
    return func, [EnvUse("get_ipython", "ipython", key or None, write, "%" + magic)]


def _update_keys(node: ast.Call) -> list[str] | None:
    """The constant keys ``os.environ.update({'A': ..}, B=..)`` sets, or None (not all known)."""
    keys: list[str] = []
    for arg in node.args:
        if not isinstance(arg, ast.Dict):
            return None
        for key in arg.keys:
            text = _key(key)
            if text is None:
                return None
            keys.append(text)
    for keyword in node.keywords:
        if keyword.arg is None:
            return None
        keys.append(keyword.arg)
    return keys


def contains_uses(node: ast.Compare, bare: Mapping[str, str]) -> tuple[ast.expr, list[EnvUse]] | None:
    """``'X' in os.environ`` (``not in`` too)."""
    if len(node.ops) != 1 or not isinstance(node.ops[0], (ast.In, ast.NotIn)):
        return None
    found = _member(node.comparators[0], bare)
    if found is None or found[2] != "environ":
        return None
    return node.comparators[0], [EnvUse(found[0], found[1], _key(node.left), False, _spelled(node))]


def whole_use(node: ast.expr, bare: Mapping[str, str]) -> EnvUse | None:
    """``os.environ`` or ``os.getenv`` used as a value (iterated, copied, handed on): it may
    read any variable."""
    found = _member(node, bare)
    if found is None or found[2] not in ("environ", "getenv"):
        return None
    if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
        return None
    return EnvUse(found[0], found[1], None, False, _spelled(node))


# -- the recording half: values before and after the cell --------------------------------


@dataclass(frozen=True)
class EnvironmentReads:
    """What ``before`` found: the variables the cell reads (name, fingerprint at its start),
    those it writes (read again by ``after``), and notes."""

    reads: tuple[tuple[str, Fingerprint], ...] = ()
    writes: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def before(found: EnvironmentUses, ns: Mapping[str, Any]) -> EnvironmentReads:
    """Before the cell runs: the uses whose names really are the stdlib's, and the value of each
    variable the cell reads before it writes it (one ``dict.get`` of ``os.environ``'s data each)."""
    environ = vars(_os).get("environ")
    targets = {"os": _os, "environ": environ, **_ORIGINALS}
    first: dict[str, bool] = {}  # key -> written before read
    written: dict[str, None] = {}
    whole_read: list[str] = []
    whole_write: list[str] = []
    for use in found.uses:
        target = targets.get(use.via)
        if use.via == "ipython":
            pass  # IPython's own magic (%env), which the analysis found in IPython's transform of the line
        elif target is None or (ns.get(use.root) is not target and (use.root, use.via) not in found.imports):
            continue  # a name of the notebook's own, not the standard library's
        if use.key is None:
            (whole_write if use.write else whole_read).append(use.spelled)
        else:
            first.setdefault(use.key, use.write)
            if use.write:
                written[use.key] = None
    if not first and not whole_read and not whole_write:
        return EnvironmentReads()
    data = _data(environ)
    notes: list[str] = []
    if data is None:
        return EnvironmentReads(notes=(f"`os.environ` is not the standard library's mapping here ({type(environ).__name__}): "
                                       "the environment variables the cell reads and writes are not recorded",))
    if whole_read:
        notes.append(f"the cell reads the whole environment ({_listed(whole_read)}): every environment variable "
                     "is an input of it, which its record does not itemise (no value of the environment is ever "
                     "recorded)")
    if whole_write:
        notes.append(f"the cell changes the environment in a way nbgov cannot itemise ({_listed(whole_write)}): "
                     "the variables it set or removed are not recorded as its outputs")
    reads = tuple((environment_name(key), fingerprint(key, data)) for key, wrote in first.items() if not wrote)
    return EnvironmentReads(reads, tuple(written), tuple(notes))


def after(found: EnvironmentReads) -> tuple[tuple[str, Fingerprint], ...]:
    """After the cell: the value of each variable it may have written (what ``os.environ``
    holds now; ``os.putenv`` changes only what child processes inherit, as Python does)."""
    if not found.writes:
        return ()
    data = environment_data()
    if data is None:
        return ()
    return tuple((environment_name(key), fingerprint(key, data)) for key in found.writes)


def fingerprint(key: str, data: Mapping[Any, Any]) -> Fingerprint:
    """The value's xxh3 (unset is a value too), or none for a secret-named variable."""
    if is_secret(key):
        return Fingerprint(KIND, None, weak=True, reason=(
            "not fingerprinted: its name suggests it may hold a secret, and a fingerprint (xxh3) could reveal "
            "a guessable value, so whether it is the same in another run cannot be told"))
    try:
        value = data.get(_data_key(key))
    except (UnicodeError, AttributeError):  # a name no environment can hold: unset
        value = None
    if value is None:
        return Fingerprint(KIND, hash_bytes(b"\0unset"), summary="unset")
    raw = value if type(value) is bytes else str(value).encode("utf-8", "surrogatepass")
    return Fingerprint(KIND, hash_bytes(b"\1" + raw), summary="set")


def environment_data() -> dict[Any, Any] | None:
    """The process environment's own dict, while ``os.environ`` is the stdlib's (no notebook code runs)."""
    return _data(vars(_os).get("environ"))


def _data(environ: Any) -> dict[Any, Any] | None:
    """``os.environ``'s own dict (bytes to bytes on POSIX), if it is the stdlib's ``_Environ``."""
    if type(environ) is not _Environ:
        return None
    data = vars(environ).get("_data")
    return data if type(data) is dict else None


def _data_key(key: str) -> Any:
    if _os.name == "nt":
        return key.upper()
    return key.encode(_FS_ENCODING, "surrogateescape")


def _listed(spellings: list[str]) -> str:
    shown = list(dict.fromkeys(spellings))
    more = len(shown) - 3
    return ", ".join(f"`{s}`" for s in shown[:3]) + (f" and {more} more" if more > 0 else "")
