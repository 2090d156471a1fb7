"""Shared test harness: real IPython shells, real kernels, real ONNX models.

Fixture modules in tests/fixtures/ are loaded as plugins, one per area, so each
area keeps its own fixtures without touching this file.
"""

from __future__ import annotations

import os
from pathlib import Path

# One OpenMP and one BLAS thread per test process and the kernels it starts, set before
# numpy loads: on two busy cores scikit-learn's two-thread pools spin-wait on each other
# and the kernels, which only slows the suite (results do not depend on it).
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

_FIXTURES = Path(__file__).parent / "fixtures"

pytest_plugins = sorted(
    f"tests.fixtures.{path.stem}" for path in _FIXTURES.glob("*.py") if path.stem != "__init__"
)
