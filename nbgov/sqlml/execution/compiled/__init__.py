"""Compiled scoring for tree ensembles: native code generated from the trees, exact to
onnxruntime's kernel, cached on disk and chosen by cost (see policy.py); worker.py
ships kernels to Spark executors."""

from nbgov.sqlml.execution.compiled.build import compile_session, examine
from nbgov.sqlml.execution.compiled.ensemble import NotCompilable
from nbgov.sqlml.execution.compiled.policy import TreeCompiler
from nbgov.sqlml.execution.compiled.worker import KernelBundle, bundle_for, worker_session

__all__ = ["KernelBundle", "NotCompilable", "TreeCompiler", "bundle_for", "compile_session", "examine", "worker_session"]
