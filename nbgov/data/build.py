"""Regenerate the bundled data files: ``python -m nbgov.data.build``.

Kept next to the data so the files in the wheel can always be re-derived from
their seed; tests check the bundled copy still equals a fresh generation.
"""

from __future__ import annotations

from pathlib import Path

from nbgov.data.generate import customers

HERE = Path(__file__).parent


def build(folder: Path = HERE) -> list[Path]:
    """Write the bundled files into ``folder``; returns their paths."""
    path = folder / "customers.parquet"
    customers(n=2_000, seed=42).to_parquet(path, index=False, compression="zstd")
    return [path]


if __name__ == "__main__":
    for written in build():
        print(f"wrote {written} ({written.stat().st_size:,} bytes)")
