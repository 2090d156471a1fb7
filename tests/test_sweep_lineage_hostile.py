"""Classes whose metaclass defines ``__eq__``/``__hash__``: the recorder around the
fingerprinter (which names hold data, which paths a cell mentions or opened, the summary
of many names, a failed cell's message) tells types apart by identity, never by ==/hash."""

from __future__ import annotations

import gc
import weakref

from tests.fixtures.lineage import RecordingShell

DEFINE = '''
CALLS = []
class Meta(type):
    def __eq__(cls, other):
        CALLS.append("__eq__")
        return False
    def __hash__(cls):
        CALLS.append("__hash__")
        return 1
class Item(metaclass=Meta):
    def __init__(self, n):
        self.n = n
    def __fspath__(self):
        return "item.txt"
class Failure(Exception, metaclass=type("ExcMeta", (Meta,), {})):
    pass
'''


def test_a_metaclass_eq_or_hash_is_never_run_by_the_recorder(recording: RecordingShell) -> None:
    assert recording.run(DEFINE).success
    for code in ("item = Item(1)\nitems = [Item(2), 'data.csv', Item(3)]",
                 "again = item\nmore = (item, items)",
                 "open(Item(4), 'w').close()\nread_back = open(item).read()",
                 "globals().update({f'v{i}': Item(i) for i in range(300)})",
                 "raise ValueError(Item(5))",
                 "raise Failure('bad')"):
        recording.run(code)
    calls = recording.shell.user_ns["CALLS"]
    assert calls == [], calls
    written = {w["name"] for i in range(len(recording.rec.records)) for w in recording.body(i)["writes"]}
    assert {"item", "items", "again", "more", "read_back"} <= written


def test_a_notebook_class_is_not_kept_alive_by_the_recorder(recording: RecordingShell) -> None:
    recording.run("class Temporary:\n    pass\nt = Temporary()")
    ref = weakref.ref(recording.shell.user_ns["Temporary"])
    recording.run("del t, Temporary")
    gc.collect()
    assert ref() is None


def test_following_a_notebook_class_runs_none_of_its_keys_or_descriptors(recording: RecordingShell) -> None:
    assert recording.run(DEFINE).success
    recording.run("class Key:\n    def __hash__(self):\n        CALLS.append('key hash')\n        return 1\n"
                  "    def __eq__(self, other):\n        CALLS.append('key eq')\n        return False\n"
                  "Odd = type('Odd', (), {Key(): 1, 'run': lambda self: CALLS})\nodd = Odd()")
    recording.shell.user_ns["CALLS"].clear()
    recording.run("out = odd.run()")
    assert recording.shell.user_ns["CALLS"] == []
    assert "CALLS" in [r["name"] for r in recording.body()["reads"]]
