"""SQL + ONNX models on an embedded DuckDB, free of IPython (the magic is a thin face)."""

from __future__ import annotations

from typing import Any

__all__ = ["Engine", "StatementResult"]


def __getattr__(name: str) -> Any:
    # Lazy, so `import nbgov.sqlml.plan` (the optimizer's view) stays light.
    if name in __all__:
        from nbgov.sqlml import engine

        return getattr(engine, name)
    raise AttributeError(name)
