"""A value changed where the recorder cannot follow (through a bound method, a weak
reference, an iterator or generator kept in another name) is in no record; the next
record that reads it says so instead of presenting the old writer's content as its source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nbgov.cli import cli
from tests.fixtures.lineage import RecordingShell
from tests.fixtures.replay import record

SETUP = {
    "bound method": ("lst = [1]\nadd = lst.append", "add(5)", "total = sum(lst)", "lst"),
    "weak proxy": ("import weakref\nclass Box:\n    def __init__(self):\n        self.items = []\n"
                   "box = Box()\nview = weakref.proxy(box)", "view.items.append(1)", "n = len(box.items)", "box"),
    "generator": ("sink = []\ngen = (sink.append(i) for i in range(3))", "next(gen)", "k = len(sink)", "sink"),
    "dict view": ("d = {'a': [1]}\nvals = d.values()", "list(vals)[0].append(2)", "e = dict(d)", "d"),
}


@pytest.mark.parametrize("route", sorted(SETUP))
def test_a_change_no_record_saw_is_named_by_the_next_reader(recording: RecordingShell, route: str) -> None:
    define, change, read, name = SETUP[route]
    for code in (define, change, read):
        assert recording.run(code).success
    reader = recording.body()
    assert [r["name"] for r in reader["reads"]] == [name]
    assert any(note.startswith(f"`{name}` changed after [1] recorded it") and "in no record" in note
               for note in reader["notes"]), reader["notes"]


def test_changes_the_recorder_follows_add_no_note(recording: RecordingShell) -> None:
    for code in ("a = [1]\nb = a", "a.append(2)", "c = list(b)", "b.append(3)", "d = a + b",
                 "import numpy as np\narr = np.zeros(4)\nv = arr[:2]", "v[0] = 9", "s = arr.sum()",
                 "del a", "a = 5", "f = a + 1"):
        assert recording.run(code).success
    assert [n for i in range(len(recording.rec.records)) for n in recording.body(i)["notes"]] == []


@pytest.mark.kernel
def test_show_tells_the_reviewer_what_a_record_could_not_record(tmp_path: Path) -> None:
    path = record(tmp_path / "unseen.ipynb", "lst = [1]\nadd = lst.append", "add(5)", "total = sum(lst)")
    table = CliRunner().invoke(cli, ["show", str(path)], env={"COLUMNS": "400"}, catch_exceptions=False)
    assert table.exit_code == 0
    row = next(line for line in table.output.splitlines() if "total = sum(lst)" in line)
    assert "`lst` changed after [1] recorded it" in row
    summary = json.loads(CliRunner().invoke(cli, ["show", str(path), "--json"], catch_exceptions=False).output)
    assert [len(e["notes"]) for e in summary["executions"]] == [0, 0, 1]
