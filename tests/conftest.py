"""Shared test harness: real IPython shells, real kernels, real ONNX models.

Fixture modules in tests/fixtures/ are loaded as plugins, one per area, so each
area keeps its own fixtures without touching this file.
"""

from __future__ import annotations

from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}" for path in _FIXTURES.glob("*.py") if path.stem != "__init__"
)
