"""Compiled scoring for tree ensembles: native code generated from the trees, exact to
onnxruntime's kernel, cached on disk and chosen by cost (see policy.py)."""

from nbgov.sqlml.execution.compiled.build import compile_session, examine
from nbgov.sqlml.execution.compiled.ensemble import NotCompilable

__all__ = ["NotCompilable", "compile_session", "examine"]
