"""Compiled scoring for tree ensembles: native code generated from the trees, exact to
onnxruntime's kernel, cached on disk and chosen by cost (see policy.py); worker.py
ships kernels to Spark executors (imported from there: it builds on the scorers, which
build on this package)."""

from nbgov.sqlml.execution.compiled.build import compile_session, examine
from nbgov.sqlml.execution.compiled.ensemble import NotCompilable
from nbgov.sqlml.execution.compiled.policy import TreeCompiler

__all__ = ["NotCompilable", "TreeCompiler", "compile_session", "examine"]
