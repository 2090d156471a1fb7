"""Draws from the global generators made while a module is first imported are told from
the cell's own: a training cell that only passes ``random_state=0`` is not said to draw
because scikit-learn's import (through rich) took random bits, while a cell that draws
itself is told so whatever it imports."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.lineage import RecordingShell
from tests.fixtures.replay import record, sidecar_lines

RANDOM = "the random module's global state"
NUMPY = "numpy's global random state"
OWN = "the cell's own code did not draw from it or seed it"
CELL_DREW = "the cell drew from or seeded "
UNKNOWN = "(or a module it imported)"

Write = Callable[[str, str], None]


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Write]:
    """``write(name, source)``: a module (``a.b``: a package's module) in a temporary folder
    on sys.path, not yet imported; forgotten after the test."""
    folder = tmp_path / "modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    names: list[str] = []

    def write(name: str, source: str) -> None:
        *packages, leaf = name.split(".")
        where = folder
        for package in packages:
            where = where / package
            where.mkdir(exist_ok=True)
            (where / "__init__.py").touch()
        (where / f"{leaf}.py").write_text(source)
        names.append(name)

    yield write
    for name in names:
        for loaded in [m for m in sys.modules if m == name.split(".")[0] or m.startswith(name.split(".")[0] + ".")]:
            sys.modules.pop(loaded, None)


DRAWS = "import random\nTOKEN = random.getrandbits(24)\n"


def notes_of(recording: RecordingShell, code: str) -> list[str]:
    result = recording.run(code)
    assert result.error_in_exec is None, result.error_in_exec
    return list(recording.body()["notes"])


def test_an_import_that_draws_is_named_and_the_cell_is_not_said_to_draw(recording: RecordingShell,
                                                                       modules: Write) -> None:
    # the cell's code draws nothing: it was "the cell (or a module it imported) drew from or
    # seeded ...", the warning a teacher's students read as "your training cell is random"
    modules("nbgov_draws_at_import", DRAWS)
    recording.run("import random")
    notes = notes_of(recording, "import nbgov_draws_at_import\ntoken = nbgov_draws_at_import.TOKEN")
    assert notes == [f"importing nbgov_draws_at_import drew from or seeded {RANDOM} at import; {OWN}"]
    # imported once: the next cell that uses it has nothing to say
    assert notes_of(recording, "import nbgov_draws_at_import\nagain = nbgov_draws_at_import.TOKEN") == []


def test_the_module_that_drew_is_named_under_the_one_the_cell_imported(recording: RecordingShell,
                                                                     modules: Write) -> None:
    # scikit-learn's shape: the cell imports a package, a module deep under it draws
    modules("nbgov_outer_pkg.quiet", "VALUE = 1\n")
    modules("nbgov_outer_pkg.styles", DRAWS)
    modules("nbgov_outer_pkg.api", "from nbgov_outer_pkg import quiet, styles\n")
    recording.run("import random")
    notes = notes_of(recording, "from nbgov_outer_pkg.api import quiet")
    assert notes == [f"importing nbgov_outer_pkg.api changed {RANDOM} (nbgov_outer_pkg.styles drew from or "
                     f"seeded it at import); {OWN}"], notes


@pytest.mark.parametrize("code", [
    "x = random.random()\nimport {module}",
    "import {module}\nx = random.random()",
    "def load():\n    import {module}\n    return random.random()\nx = load()",
    "random.seed(3)\nimport {module}",
])
def test_a_cell_that_draws_itself_is_said_to_whatever_it_imports(recording: RecordingShell, modules: Write,
                                                                 code: str) -> None:
    modules("nbgov_draws_too", DRAWS)
    recording.run("import random")
    notes = notes_of(recording, code.format(module="nbgov_draws_too"))
    assert len(notes) == 1 and notes[0].startswith(CELL_DREW + RANDOM), notes
    assert notes[0].endswith("(importing nbgov_draws_too changed it too)"), notes


def test_a_cell_that_draws_and_imports_a_quiet_module_is_said_to_draw(recording: RecordingShell,
                                                                     modules: Write) -> None:
    # it was "the cell (or a module it imported)": the import is now known to have drawn nothing
    modules("nbgov_quiet_module", "VALUE = 2\n")
    recording.run("import random")
    notes = notes_of(recording, "import nbgov_quiet_module\nx = random.random() * nbgov_quiet_module.VALUE")
    assert len(notes) == 1 and notes[0].startswith(CELL_DREW + RANDOM), notes
    assert "import" not in notes[0], notes


def test_numpys_global_state_drawn_or_seeded_at_import(recording: RecordingShell, modules: Write) -> None:
    modules("nbgov_numpy_draws", "import numpy as np\nNOISE = np.random.rand(2)\n")
    modules("nbgov_numpy_seeds", "import numpy as np\nnp.random.seed(0)\n")
    recording.run("import numpy as np\nnp.random.rand()")
    assert notes_of(recording, "import nbgov_numpy_draws") == [
        f"importing nbgov_numpy_draws drew from or seeded {NUMPY} at import; {OWN}"]
    notes = notes_of(recording, "import nbgov_numpy_seeds\nsample = np.random.rand(3)")
    assert len(notes) == 1 and notes[0].startswith(CELL_DREW + NUMPY), notes
    assert notes[0].endswith("(importing nbgov_numpy_seeds changed it too)"), notes


def test_a_failed_import_ends_its_part(recording: RecordingShell, modules: Write) -> None:
    # an import that raises ends there: what the cell draws after it is the cell's
    modules("nbgov_draws_then_fails", DRAWS + "raise ImportError('no backend')\n")
    recording.run("import random")
    code = "try:\n    import {}\nexcept ImportError:\n    pass\n"
    assert notes_of(recording, code.format("nbgov_draws_then_fails")) == [
        f"importing nbgov_draws_then_fails drew from or seeded {RANDOM} at import; {OWN}"]
    notes = notes_of(recording, code.format("nbgov_no_such_module_at_all") + "x = random.random()")
    assert len(notes) == 1 and notes[0].startswith(CELL_DREW + RANDOM) and "import" not in notes[0], notes


def test_watching_imports_leaves_importlib_and_tracebacks_as_they_were(recording: RecordingShell,
                                                                      modules: Write) -> None:
    bootstrap: Any = sys.modules["_frozen_importlib"]
    original = bootstrap._find_and_load
    modules("nbgov_fails_at_import", "x = 1 / 0\n")
    for code, error in (("import nbgov_not_a_module_anywhere", ModuleNotFoundError),
                        ("import nbgov_fails_at_import", ZeroDivisionError)):
        result = recording.run(code)
        assert type(result.error_in_exec) is error
        frames = traceback.extract_tb(result.error_in_exec.__traceback__)
        # the import machinery trims the wrapper with its own frames: the user sees no nbgov
        assert not any("nbgov/lineage" in f.filename or f.filename.startswith("<frozen") for f in frames), frames
        assert bootstrap._find_and_load is original  # put back after the cell


@pytest.mark.kernel
def test_a_training_cell_that_only_passes_random_state_is_not_said_to_draw(tmp_path: Path) -> None:
    # the workshop notebook: scikit-learn imported in the training cell (its import draws
    # from `random` through rich in the versions that use rich); the cells that do draw,
    # alone or next to a first import, are still told so
    path = record(
        tmp_path / "train.ipynb",
        "import numpy as np\nX = np.arange(40.0).reshape(20, 2)\ny = (X[:, 0] > 20).astype(int)",
        "from sklearn.ensemble import RandomForestClassifier\n"
        "model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)",
        "noise = np.random.rand(3)",
        "import random\nfrom sklearn.linear_model import LogisticRegression\npick = random.random()",
        "forest = RandomForestClassifier(n_estimators=5).fit(X, y)",
    )
    notes = [e["body"]["notes"] for e in sidecar_lines(path) if "code" in e.get("body", {})]
    assert len(notes) == 5
    assert not any(UNKNOWN in note for cell in notes for note in cell), notes
    assert all(note.startswith("importing sklearn.ensemble ") and note.endswith(OWN) for note in notes[1]), notes
    assert len(notes[2]) == 1 and notes[2][0].startswith(CELL_DREW + NUMPY), notes
    assert len(notes[3]) == 1 and notes[3][0].startswith(CELL_DREW + RANDOM), notes
    # random_state=None: the forest draws its seeds from numpy's global state
    assert len(notes[4]) == 1 and notes[4][0].startswith(CELL_DREW + NUMPY), notes
