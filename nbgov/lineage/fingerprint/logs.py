"""``logging``'s loggers and handlers, read as the configuration that decides what they do.

Next to its configuration a logger holds things that are not what it does: each
handler's lock, the open stream a handler writes to, a cache of the levels it let
through (filled by every ``logger.info``) and the manager that holds every logger of
the process. So a logger is read as its name, level, ``propagate`` and ``disabled``
flags, its filters, its handlers and its parent's name (an ancestor's configuration
is the ancestor's own: ``basicConfig`` changes the root logger, a value of its own
wherever a name holds it). A handler is its class, name, level, formatter and
filters, and what it writes to: the standard stream it is (``sys.stderr``, ...), the
content of an in-memory stream, the name and mode of a file it was given open, or a
file handler's file name (relative to the working folder when inside it), mode, encoding
and rotation settings (never the open file).

Everything is read from the instance dict through CPython's own getter, and only for
``logging``'s own classes, exactly: a subclass of ``Logger``, a handler of any other
class (its ``emit`` is its own code) or a stream nbgov cannot name is weak, saying why.
A formatter and filters are read as any other value (their state, never their code).
"""

from __future__ import annotations

import _io
import os
from collections.abc import Callable
from typing import Any

from nbgov.lineage.fingerprint import objects, static
from nbgov.lineage.fingerprint.encode import enc_str
from nbgov.lineage.fingerprint.objects import Handler
from nbgov.lineage.fingerprint.walk import NotExact, Walk

_LOGGERS = ("Logger", "RootLogger")
_LOGGER_FIELDS = ("name", "level", "propagate", "disabled", "filters", "handlers")
_HANDLER = ("_name", "level", "formatter", "filters")
_FILE = (*_HANDLER, "baseFilename", "mode", "encoding", "errors", "delay", "terminator")
_ROTATION = ("namer", "rotator", "backupCount")
# (module, class, fields read from its instance dict): logging's own handlers, exact classes only.
# Left out: the lock, the open stream of a file handler, ``_closed``, ``_builtin_open``, and what
# a handler derives from the clock or the file system (``rolloverAt``, ``dev``/``ino``, ``extMatch``).
HANDLERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("logging", "Handler", _HANDLER),
    ("logging", "NullHandler", _HANDLER),
    ("logging", "StreamHandler", (*_HANDLER, "stream", "terminator")),
    ("logging", "FileHandler", _FILE),
    ("logging.handlers", "WatchedFileHandler", _FILE),
    ("logging.handlers", "RotatingFileHandler", (*_FILE, *_ROTATION, "maxBytes")),
    ("logging.handlers", "TimedRotatingFileHandler",
     (*_FILE, *_ROTATION, "when", "interval", "utc", "atTime", "suffix")),
)  # fmt: skip
_STANDARD_STREAMS = ("stderr", "stdout", "__stderr__", "__stdout__")


def resolve(tp: type) -> Handler | None:
    """The handler for a logger or logging handler class; None for any other class."""
    if static.loaded_module("logging") is None:
        return None
    logger = static.library_class("logging", "Logger")
    if logger is not None and static.inherits(tp, logger):
        if _exact_logger(tp):
            return logger_value(tp)
        return objects.weak(f"{static.label(tp)} is a subclass of logging.Logger: what it does is its own "
                            "code, not read")
    base = static.library_class("logging", "Handler")
    if base is not None and static.inherits(tp, base):
        fields = handler_fields(tp)
        if fields is None:
            return objects.weak(_unknown_handler(tp))
        return handler_value(tp, fields)
    return None


def _exact_logger(tp: type) -> bool:
    return any(tp is static.library_class("logging", name) for name in _LOGGERS)


def handler_fields(tp: type) -> tuple[str, ...] | None:
    """The fields that make up a handler of exactly one of logging's own classes, else None."""
    for module, qualname, fields in HANDLERS:
        if tp is static.library_class(module, qualname):
            return fields
    return None


def _unknown_handler(tp: type) -> str:
    return (f"{static.label(tp)} is not one of logging's own handlers: what it does with a record is its own "
            "code, not read")


def _instance_dict(tp: type) -> Callable[[Any], Any]:
    read, hidden = static.dict_reader(tp)
    if read is None or hidden:
        raise NotExact(f"{static.label(tp)} has no readable state")
    return read


def logger_value(tp: type) -> Handler:
    def parts(state: dict[str, Any]) -> list[Any]:
        name = state.get("name")
        handlers = state.get("handlers")
        if type(handlers) is not list:
            raise NotExact(f"logger {name!r}: its handlers are not logging's list")
        for handler in list.copy(handlers):
            if handler_fields(type(handler)) is None:
                raise NotExact(f"logger {name!r} has a handler nbgov cannot read: {_unknown_handler(type(handler))}")
        return _fields(state, _LOGGER_FIELDS) + ["parent", _parent(state.get("parent"))]

    return _configuration_value(tp, b"Lg", parts)


def handler_value(tp: type, fields: tuple[str, ...]) -> Handler:
    return _configuration_value(tp, b"Lh", lambda state: _fields(state, fields))


def _configuration_value(tp: type, tag: bytes, parts_of: Callable[[dict[str, Any]], list[Any]]) -> Handler:
    """A handler that reads an instance's dict and hashes the (field, value) pairs ``parts_of`` picks."""
    label = enc_str(static.label(tp))
    read_dict = _instance_dict(tp)

    def handle(walk: Walk, obj: Any) -> None:
        if not walk.enter(obj):
            return
        state = read_dict(obj)
        if type(state) is not dict:
            raise NotExact(f"{static.label(tp)}: unexpected state")
        parts = parts_of(state)
        walk.emit(tag + label + b"%x;" % (len(parts) // 2))
        walk.push_all(parts)

    return handle


def _fields(state: dict[str, Any], fields: tuple[str, ...]) -> list[Any]:
    """(name, value) of each field the dict holds, flattened; a stream as what it writes to."""
    parts: list[Any] = []
    for field in fields:
        if field in state:
            value = state[field]
            if field == "stream":
                value = _stream(value)
            elif field == "baseFilename":
                value = _file_name(value)
            parts += [field, value]
    return parts


def _file_name(path: Any) -> Any:
    """A file handler's file (logging keeps it absolute), relative to the working folder when
    inside it: the notebook's folder copied elsewhere (a reviewer's checkout, where replay
    runs) logs to the same file of its copy, and its logger is the same configuration."""
    if type(path) is not str:
        return path
    try:
        inside = os.path.relpath(path, os.getcwd())
    except (OSError, ValueError):
        return path
    return path if inside == os.pardir or inside.startswith(os.pardir + os.sep) else ("working folder", inside)


def _parent(parent: Any) -> Any:
    """A logger's parent by name (its configuration is its own value), or by class if not logging's."""
    if parent is None:
        return None
    tp = type(parent)
    if not _exact_logger(tp):
        return ("class", static.label(tp))
    state = _instance_dict(tp)(parent)
    return state.get("name") if type(state) is dict else None


def _stream(stream: Any) -> Any:
    """What a stream handler writes to, named without running it."""
    if stream is None:
        return None
    sys_names = static.loaded_module("sys") or {}
    for name in _STANDARD_STREAMS:
        if stream is sys_names.get(name):
            return ("sys", name)
    tp = type(stream)
    if tp is _io.StringIO:
        return ("memory", stream)  # its content, read by io's own getters (objects.io_buffer_value)
    chain = objects.file_chain(stream)
    if chain is not None:
        raw = chain[-1]
        state = objects.own_file_dict(raw)
        file_name = state.get("name") if type(state) is dict else None
        return ("file", [static.label(type(part)) for part in chain], file_name, objects.fileio_mode(raw))
    raise NotExact(f"a log handler writes to a stream nbgov cannot name ({static.label(tp)}): not read")


def summary(obj: Any) -> str | None:
    """``'nb' at INFO, 1 handler`` for a logger of logging's own classes; None for anything else."""
    tp = type(obj)
    if static.loaded_module("logging") is None or not _exact_logger(tp):
        return None
    state = _instance_dict(tp)(obj)
    if type(state) is not dict:
        return None
    name, level, handlers = state.get("name"), state.get("level"), state.get("handlers")
    names = (static.loaded_module("logging") or {}).get("_levelToName")
    level_name = names.get(level) if type(names) is dict and type(level) is int else None
    count = len(handlers) if type(handlers) is list else 0
    return (f"{name!r} at {level_name or level}, {count} handler{'' if count == 1 else 's'}"
            if type(name) is str else None)
