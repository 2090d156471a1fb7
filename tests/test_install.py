"""The newcomer's path: the README's commands, what CI runs, and what `make` checks first.

CI runs `.ci/run` on a fresh clone, which runs the README's quick-start commands in a
fresh virtualenv; these tests keep the three (README, .ci/run, Makefile) in step.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def quickstart_block() -> list[str]:
    """The commands of the README's first shell block under "## Quick start"."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Quick start") :]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "the Quick start section has a ```bash block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    make_bin = shutil.which("make")
    assert make_bin, "make is needed to run the README's commands"
    return subprocess.run(
        [make_bin, "-s", "-C", str(REPO), *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_readme_starts_with_a_virtualenv_then_the_two_commands() -> None:
    commands = quickstart_block()
    assert commands == [
        "python3 -m venv .venv && . .venv/bin/activate",
        "make quickstart",
        "make test",
    ]


def test_ci_runs_exactly_the_readme_commands_in_a_fresh_virtualenv() -> None:
    script = (REPO / ".ci" / "run").read_text().splitlines()
    readme_make = [c for c in quickstart_block() if c.startswith("make ")]
    ci_make = [line.strip() for line in script if line.strip().startswith("make ")]
    assert ci_make == readme_make
    venv = [line for line in script if "-m venv" in line]
    assert len(venv) == 1 and "--clear" in venv[0], "a fresh virtualenv every run"
    activate = next(i for i, line in enumerate(script) if "bin/activate" in line)
    first_make = next(i for i, line in enumerate(script) if line.strip().startswith("make "))
    assert activate < first_make, "the commands run inside the virtualenv"


def test_every_readme_make_target_exists() -> None:
    for command in quickstart_block():
        if command.startswith("make "):
            target = command.split()[1]
            result = make("-n", target)
            assert result.returncode == 0, result.stderr


def test_make_refuses_to_install_outside_a_virtualenv() -> None:
    base = Path(sys.base_prefix) / "bin" / "python3"
    assert base.exists(), base
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    result = make("venv-check", f"PYTHON={base}", env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        "make: no virtualenv is active; first run: python3 -m venv .venv && . .venv/bin/activate"
    )
    inside = make("venv-check", f"PYTHON={sys.executable}")
    in_venv = sys.prefix != sys.base_prefix or bool(os.environ.get("CONDA_PREFIX"))
    assert inside.returncode == (0 if in_venv else 2), inside.stderr


def test_make_names_a_node_too_old_to_build_the_sidebar(tmp_path: Path) -> None:
    # A system binary is the boundary here: an old `node` first on PATH.
    fake = tmp_path / "node"
    fake.write_text('#!/bin/sh\n[ "$1" = "--version" ] && echo v18.19.0 && exit 0\nexit 1\n')
    fake.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = make("node", env=env)
    assert result.returncode == 2
    assert "Node.js v18.19.0 cannot build the sidebar: it needs 20.19+ or 22.12+" in result.stderr


def test_conversion_comes_with_the_package() -> None:
    """`pip install nbgov` brings scikit-learn and skl2onnx (no extra needed)."""
    declared = requires("nbgov") or []
    unconditional = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in declared if "extra ==" not in r}
    assert {"scikit-learn", "skl2onnx"} <= unconditional, declared


def test_make_names_a_java_too_old_for_spark(tmp_path: Path) -> None:
    # A system binary is the boundary here: JAVA_HOME pointing at a Java 11.
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin" / "java"
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    result = make("java", env=dict(os.environ, JAVA_HOME=str(tmp_path)))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        'make: openjdk version "11.0.2" 2019-01-15 cannot run Spark: it needs Java 17+ (openjdk-17-jre-headless)'
    )


def test_the_test_command_installs_java_and_chromium_first() -> None:
    """`make test` asks for both system packages before the suite (Spark and browser tests fail without)."""
    plan = make("-n", "test").stdout
    assert "openjdk-17-jre-headless" in plan and "apt-get install -y -qq chromium" in plan
    assert plan.index("openjdk-17-jre-headless") < plan.index("-m pytest")


# Packages of the test extra that nbgov itself must not need (`pip install nbgov` lacks them).
TEST_ONLY_MODULES = ("pytest", "hypothesis", "polars", "playwright", "matplotlib", "mypy", "notebook")

_IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys
blocked = set(sys.argv[1].split(","))
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (test extra only)", name=name)
sys.meta_path.insert(0, Block())
import nbgov
for info in pkgutil.walk_packages(nbgov.__path__, "nbgov."):
    importlib.import_module(info.name)
"""


def test_every_module_imports_without_the_test_extra() -> None:
    """The installed commands work with the core dependencies alone (the quickstart runs
    `nbgov show`, whose CLI imports the exporters)."""
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_EVERY_MODULE, ",".join(TEST_ONLY_MODULES)],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_core_dependencies_include_what_the_cli_imports() -> None:
    declared = requires("nbgov") or []
    core = {re.split(r"[<>=!~ ;\[]", r, maxsplit=1)[0].lower() for r in declared if "extra ==" not in r}
    assert "openlineage-python" in core, declared
