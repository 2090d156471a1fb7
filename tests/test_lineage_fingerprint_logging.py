"""``logging``: a logger (and its handlers) is its configuration, fingerprinted exactly.

A logger holds a lock in each handler, open streams, a cache ``logger.info`` fills and
the registry of every logger in the process; none of it is what the logger does. Its
name, level, flags, filters and handlers are, read as data: a cell calling
``logger.info`` reads it and changes nothing, ``setLevel``/``addHandler`` change it, and
a subclass or a handler of another class is weak, never run.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from nbgov.lineage.fingerprint import Fingerprinter, fingerprint
from tests.fixtures.lineage import RecordingShell

UNREADABLE = "cannot be read by nbgov"


def exact(value: Any) -> str:
    fp = fingerprint(value)
    assert not fp.weak and fp.hash is not None, fp.reason
    return fp.hash


@pytest.fixture
def fresh() -> Iterator[Any]:
    """Loggers made for one test, their handlers removed and closed afterwards."""
    made: list[logging.Logger] = []

    def make(name: str) -> logging.Logger:
        logger = logging.getLogger(f"nbgov_test.{name}")
        made.append(logger)
        return logger

    try:
        yield make
    finally:
        for logger in made:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
                handler.close()
            logger.setLevel(logging.NOTSET)
            logger.filters.clear()
            logger.propagate, logger.disabled = True, False


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without pytest's capture handlers, put back as it was afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    for handler in handlers:
        root.removeHandler(handler)
    try:
        yield root
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def configure(
    logger: logging.Logger, stream: Any = None, fmt: str = "%(levelname)s %(message)s"
) -> logging.StreamHandler[Any]:
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter(fmt))
    handler.setLevel(logging.INFO)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    return handler


# -- fingerprints ---------------------------------------------------------------------


def test_a_configured_logger_is_exact_and_logging_through_it_changes_nothing(fresh: Any) -> None:
    logger = fresh("a")
    configure(logger)
    logger.addFilter(logging.Filter("nbgov_test"))
    before = exact(logger)
    assert fingerprint(logger).summary == "'nbgov_test.a' at DEBUG, 1 handler"
    logger.info("hello")  # fills the logger's level cache, takes the handler's lock
    logger.debug("below the handler's level")
    assert exact(logger) == before
    with bare_root() as root:
        logging.basicConfig(stream=io.StringIO(), format="%(message)s", level=logging.INFO)
        assert exact(root) and exact(logging.LoggerAdapter(logger, {"run": 1}))


def test_equal_configurations_fingerprint_equally(fresh: Any) -> None:
    logger = fresh("b")
    first = configure(logger)
    once = exact(logger)
    logger.removeHandler(first)
    first.close()
    configure(logger)  # a new handler and formatter, configured the same
    assert exact(logger) == once
    other = fresh("c")
    configure(other)
    assert exact(other) != once  # another name: another logger
    with bare_root() as root:
        logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
        basic = exact(root)
        for handler in list(root.handlers):
            root.removeHandler(handler)
        logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
        assert exact(root) == basic


def test_each_part_of_the_configuration_counts(fresh: Any, tmp_path: Path) -> None:
    logger = fresh("d")
    handler = configure(logger)
    seen = {exact(logger)}

    def changed() -> None:
        now = exact(logger)
        assert now not in seen
        seen.add(now)

    logger.setLevel(logging.WARNING)
    changed()
    handler.setLevel(logging.ERROR)
    changed()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    changed()
    handler.setStream(sys.stdout)
    changed()
    logger.propagate = False
    changed()
    memory = io.StringIO()
    logger.addHandler(logging.StreamHandler(memory))
    changed()
    logger.error("written into the in-memory stream")  # its content is the handler's data
    changed()
    logger.addFilter(lambda record: record.levelno > logging.INFO)
    changed()
    logger.addHandler(logging.FileHandler(tmp_path / "run.log", delay=True))
    changed()
    logger.addHandler(logging.FileHandler(tmp_path / "other.log", delay=True))
    changed()
    logger.disabled = True
    changed()


def test_a_logger_subclass_and_a_handler_of_another_class_are_weak_and_never_run(fresh: Any) -> None:
    calls: list[str] = []

    class Noisy(logging.Logger):
        def __getattr__(self, name: str) -> Any:
            calls.append(f"getattr {name}")
            raise AttributeError(name)

        @property
        def effective(self) -> int:
            calls.append("property")
            raise RuntimeError("a property ran")

    class Shipping(logging.Handler):
        def __getattr__(self, name: str) -> Any:
            calls.append(f"handler getattr {name}")
            raise AttributeError(name)

        @property
        def destination(self) -> str:
            calls.append("handler property")
            raise RuntimeError("a property ran")

        def emit(self, record: logging.LogRecord) -> None:
            calls.append("emit")

    noisy = Noisy("nbgov_test.noisy")
    logger = fresh("e")
    shipping = Shipping()
    logger.addHandler(shipping)
    calls.clear()
    fingerprinter = Fingerprinter()
    for value in (noisy, logger, shipping, {"logger": logger}):
        fp = fingerprinter.fingerprint(value)
        assert fp.weak and fp.hash is None and fp.reason
    assert "subclass of logging.Logger" in str(fingerprinter.fingerprint(noisy).reason)
    reason = str(fingerprinter.fingerprint(logger).reason)
    assert "Shipping is not one of logging's own handlers" in reason and "nbgov_test.e" in reason
    assert calls == []


# -- recorded in a real shell -----------------------------------------------------------


def test_cells_using_a_logger_record_it_exactly_without_notes(recording: RecordingShell) -> None:
    with bare_root():
        recording.run("import io, logging, sys\nlogger = logging.getLogger('nbgov_test.cells')\n"
                      "handler = logging.StreamHandler(sys.stderr)\n"
                      "handler.setFormatter(logging.Formatter('%(asctime)s %(message)s'))\n"
                      "logger.addHandler(handler)")
        made = recording.body()
        assert made["notes"] == []
        (write,) = [w for w in made["writes"] if w["name"] == "logger"]
        assert not write["fingerprint"]["weak"]
        recording.run("logging.basicConfig(stream=io.StringIO(), level=logging.INFO)")
        assert recording.body()["notes"] == []
        for code in ("logger.info('hello')", "logger.warning('x=%s', 1)"):
            recording.run(code)
            body = recording.body()
            assert body["notes"] == [], body["notes"]
            (read,) = [r for r in body["reads"] if r["name"] == "logger"]
            assert not read["fingerprint"]["weak"] and read["fingerprint"]["hash"] == write["fingerprint"]["hash"]
            assert body["writes"] == []
        recording.run("logger.removeHandler(handler)\nhandler.close()")


def test_a_cell_changing_the_logger_writes_it(recording: RecordingShell) -> None:
    recording.run("import logging\nlogger = logging.getLogger('nbgov_test.changes')\n"
                  "handler = logging.StreamHandler()\nlogger.addHandler(handler)")
    hashes = [next(w for w in recording.body()["writes"] if w["name"] == "logger")["fingerprint"]["hash"]]
    try:
        for code in ("logger.setLevel(logging.DEBUG)",
                     "logger.addHandler(logging.FileHandler('run.log', delay=True))",
                     "handler.setLevel(logging.ERROR)"):  # through another name: the logger holds it
            recording.run(code)
            body = recording.body()
            assert body["notes"] == [], body["notes"]
            (write,) = [w for w in body["writes"] if w["name"] == "logger"]
            assert write["mutated"] and not write["fingerprint"]["weak"]
            assert write["fingerprint"]["hash"] not in hashes
            hashes.append(write["fingerprint"]["hash"])
    finally:
        recording.run("for h in list(logger.handlers):\n    logger.removeHandler(h)\n    h.close()\n"
                      "logger.setLevel(logging.NOTSET)")


def test_a_hostile_logger_in_a_cell_is_weak_said_why_and_never_run(recording: RecordingShell) -> None:
    recording.run("import logging\ncalls = []\n"
                  "class Noisy(logging.Logger):\n"
                  "    def __getattr__(self, name):\n        calls.append(name)\n        raise AttributeError(name)\n"
                  "    @property\n    def level_name(self):\n        calls.append('property')\n        return 'x'\n"
                  "class Shipping(logging.Handler):\n"
                  "    def __getattr__(self, name):\n        calls.append(name)\n        raise AttributeError(name)\n"
                  "    def emit(self, record):\n        pass\n"
                  "noisy = Noisy('nbgov_test.noisy')\n"
                  "shipped = logging.getLogger('nbgov_test.shipped')\nshipped.addHandler(Shipping())\n"
                  "calls.clear()")
    try:
        recording.run("noisy.info('a')\nshipped.info('b')")
        notes = recording.body()["notes"]
        assert any(n.startswith("`noisy` " + UNREADABLE) and "subclass of logging.Logger" in n for n in notes), notes
        assert any(n.startswith("`shipped` " + UNREADABLE) and "Shipping is not one of logging's own" in n
                   for n in notes), notes
        assert recording.ns()["calls"] == []
    finally:
        recording.run("for h in list(shipped.handlers):\n    shipped.removeHandler(h)")


def test_a_stream_is_named_by_what_it_is_or_weak(fresh: Any, tmp_path: Path) -> None:
    first, second = open(tmp_path / "a.log", "w"), open(tmp_path / "b.log", "w")  # noqa: SIM115
    try:
        a, b, again = (logging.StreamHandler(s) for s in (first, second, first))
        assert exact(a) == exact(again) != exact(b)  # an open file by its name and mode, never read

        class Sink:
            calls: list[str] = []

            def write(self, text: str) -> None:
                self.calls.append(text)

            def __getattr__(self, name: str) -> Any:
                self.calls.append(name)
                raise AttributeError(name)

        logger = fresh("f")
        logger.addHandler(logging.StreamHandler(Sink()))
        fp = fingerprint(logger)
        assert fp.weak and "stream nbgov cannot name" in str(fp.reason) and "Sink" in str(fp.reason)
        assert Sink.calls == []
    finally:
        first.close()
        second.close()


def test_a_log_file_inside_the_working_folder_is_named_relative_to_it(fresh: Any, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # logging keeps a handler's file absolute: a copied notebook folder (where a reviewer
    # replays) logged to its own run.log, and its logger read as another configuration
    hashes = []
    for folder in (tmp_path / "recorded", tmp_path / "copy"):
        folder.mkdir()
        monkeypatch.chdir(folder)
        logger = fresh(folder.name)
        logger.name = "nbgov_test.same"
        logger.addHandler(logging.FileHandler("run.log", delay=True))
        hashes.append(exact(logger))
    assert hashes[0] == hashes[1]
    outside = fresh("outside")
    outside.name = "nbgov_test.same"
    outside.addHandler(logging.FileHandler(tmp_path / "run.log", delay=True))  # not inside: absolute
    assert exact(outside) != hashes[1]
