"""Example data shipped with nbgov: deterministic generators and a bundled file.

The example notebooks and the workshop use these, so they run offline and their
lineage replays exactly: ``write_example_data()`` copies the bundled file byte for
byte, and the generators are seeded.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from nbgov.data.generate import (
    CUSTOMER_NUMERIC_FEATURES,
    HOSPITAL_NUMERIC_FEATURES,
    customers,
    hospital_stays,
)

__all__ = [
    "BUNDLED_FILES",
    "CUSTOMER_NUMERIC_FEATURES",
    "HOSPITAL_NUMERIC_FEATURES",
    "bundled_path",
    "customers",
    "hospital_stays",
    "write_example_data",
]

# name -> how it was made (``python -m nbgov.data.build`` regenerates them)
BUNDLED_FILES = {"customers.parquet": "customers(n=2_000, seed=42)"}


def bundled_path(name: str) -> Path:
    """Where a bundled data file lives inside the installed package."""
    if name not in BUNDLED_FILES:
        raise FileNotFoundError(f"no bundled data file {name!r}; expected one of {sorted(BUNDLED_FILES)}")
    return Path(str(resources.files("nbgov.data").joinpath(name)))


def write_example_data(folder: str | Path = ".") -> list[Path]:
    """Copy every bundled data file into ``folder`` (next to a notebook) and return the copies."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(BUNDLED_FILES):
        destination = target / name
        shutil.copyfile(bundled_path(name), destination)
        written.append(destination)
    return written
