"""A failed cell's record says what the user saw: Python's own message for its own
exception classes (the missing file's name, the syntax error's line, the codec's
complaint), and still never runs a notebook object's ``__str__``/``__repr__``."""

from __future__ import annotations

from typing import Any

from nbgov.lineage.exception_text import exception_message
from tests.fixtures.lineage import RecordingShell

CALLS: list[str] = []


class Loud:
    def __repr__(self) -> str:
        CALLS.append("__repr__")
        return "Loud"

    def __str__(self) -> str:
        CALLS.append("__str__")
        return "Loud"

    def __fspath__(self) -> str:
        CALLS.append("__fspath__")
        return "loud.csv"


def _error(recording: RecordingShell, code: str) -> Any:
    recording.run(code)
    return recording.body()["error"]


def test_pythons_own_exceptions_keep_the_message_the_user_saw(recording: RecordingShell) -> None:
    missing = _error(recording, "import pandas as pd\npd.read_csv('no_such_file.csv')")
    assert missing["type"] == "FileNotFoundError" and "no_such_file.csv" in missing["message"]
    assert missing["message"].startswith("[Errno 2] No such file or directory")
    syntax = _error(recording, "x = (1 +\ny = 2")
    assert syntax["type"] == "SyntaxError", syntax
    assert "line 1" in syntax["message"] and "never closed" in syntax["message"], syntax
    indent = _error(recording, "if True:\nx = 1")
    assert indent["type"] == "IndentationError" and "expected an indented block" in indent["message"]
    codec = _error(recording, "b'caf\\xe9'.decode('utf-8')")
    assert codec == {"type": "UnicodeDecodeError",
                     "message": "'utf-8' codec can't decode byte 0xe9 in position 3: unexpected end of data"}
    assert _error(recording, "{}[('a', 1)]") == {"type": "KeyError", "message": "('a', 1)"}


def test_a_field_holding_a_notebook_object_is_not_formatted() -> None:
    CALLS.clear()  # (IPython's own traceback display formats them; the recorder must not)
    exceptions = [FileNotFoundError(2, "No such file or directory", Loud()), KeyError(Loud()), ValueError(Loud()),
                  KeyError(("a", Loud())), ExceptionGroup("g", [ValueError(1)])]
    messages = [exception_message(exc) for exc in exceptions]
    assert messages[0] == "(2, 'No such file or directory')"  # from args, as before: the path is not read
    assert all("with a message nbgov does not evaluate" in m for m in messages[1:]), messages
    assert CALLS == []
