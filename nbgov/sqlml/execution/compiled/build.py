"""From model bytes to a loaded compiled session: examine (pure), build (compiler or
cache), load.

``examine`` only reads the model: it says whether the trees can be compiled exactly
and computes the cache key, so a caller can decide what to do before any compiler
runs. ``build`` returns the cached library or compiles one (in a private temporary
directory, published to the cache atomically).
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import xxhash

from nbgov.sqlml.execution.compiled import codegen as codegen_module
from nbgov.sqlml.execution.compiled import ensemble as ensemble_module
from nbgov.sqlml.execution.compiled import layout as layout_module
from nbgov.sqlml.execution.compiled.cache import ArtifactCache, ArtifactInfo, CacheError, cache_key
from nbgov.sqlml.execution.compiled.codegen import ABI_VERSION, generate
from nbgov.sqlml.execution.compiled.ensemble import Ensemble, NotCompilable, read_ensemble
from nbgov.sqlml.execution.compiled.layout import lay_out
from nbgov.sqlml.execution.compiled.native import NativeKernel
from nbgov.sqlml.execution.compiled.session import CompiledSession
from nbgov.sqlml.execution.compiled.split import GraphSplit, split_graph
from nbgov.sqlml.execution.compiled.toolchain import Compiler, build as compile_library, find_compiler
from nbgov.sqlml.models import forest as forest_module
from nbgov.sqlml.models.forest import TREE_OPS
from nbgov.sqlml.models.runtime import strip_zipmap


@dataclass(frozen=True)
class Candidate:
    """A model whose trees can be compiled exactly, and its cache key."""

    key: str
    model_sha256: str
    ensemble: Ensemble
    split: GraphSplit

    @property
    def summary(self) -> str:
        e = self.ensemble
        return f"{e.tree_count} trees, {e.node_count:,} nodes"


@dataclass(frozen=True)
class Artifact:
    path: Path
    info: ArtifactInfo
    cached: bool  # found on disk (not compiled now)


def examine(payload: bytes, compiler: Compiler | None = None) -> Candidate:
    """Read ``payload`` (model bytes as the execution layer runs them); raise NotCompilable."""
    compiler = compiler or find_compiler()
    identity = compiler.identity if compiler is not None else "no-compiler"
    try:
        model = onnx.load_model_from_string(strip_zipmap(payload))
    except Exception:  # noqa: BLE001 - anything onnx cannot parse is simply not compiled
        raise NotCompilable("the model could not be read") from None
    try:
        split = split_graph(model)
        ensemble = read_ensemble(split.node, split.value_type, split.n_features)
    except NotCompilable:
        raise
    except (RecursionError, KeyError, ValueError, IndexError, TypeError, AssertionError) as error:
        # a cyclic or inconsistent tree: onnxruntime alone decides what it makes of it
        raise NotCompilable(f"the trees could not be read ({type(error).__name__})") from None
    sha = hashlib.sha256(payload).hexdigest()
    return Candidate(cache_key(sha, generator_version(), identity), sha, ensemble, split)


def has_tree_ensemble(payload: bytes) -> bool:
    """Whether the model has a tree-ensemble node (a graph scan, no tree is read)."""
    try:
        graph = onnx.load_model_from_string(payload).graph
    except Exception:  # noqa: BLE001 - unreadable: certainly nothing to compile
        return False
    return any(node.op_type in TREE_OPS and node.domain == "ai.onnx.ml" for node in graph.node)


def build(candidate: Candidate, cache: ArtifactCache, compiler: Compiler | None = None) -> Artifact:
    """The library for ``candidate``: from the cache, else compiled now and stored."""
    found = cache.lookup(candidate.key)
    if found is not None:
        return Artifact(found[0], found[1], cached=True)
    compiler = compiler or find_compiler()
    if compiler is None:
        raise NotCompilable("no C compiler (gcc, cc or clang) on this machine")
    started = time.perf_counter()
    source = generate(candidate.ensemble, lay_out(candidate.ensemble), candidate.key)
    with tempfile.TemporaryDirectory(prefix="nbgov-trees-") as folder:
        c_file, library = Path(folder) / "kernel.c", Path(folder) / "kernel.so"
        c_file.write_text(source)
        compile_library(compiler, c_file, library)
        info = ArtifactInfo(
            key=candidate.key,
            abi=ABI_VERSION,
            library_xxh3="",
            model_sha256=candidate.model_sha256,
            trees=candidate.ensemble.tree_count,
            nodes=candidate.ensemble.node_count,
            compile_seconds=round(time.perf_counter() - started, 3),
            compiler=compiler.identity,
            created=time.time(),
        )
        try:
            path = cache.store(candidate.key, library, info)
        except (CacheError, OSError):
            # An unusable cache (a symlinked or shared directory, a full disk): keep this
            # session's library in a private directory of its own instead.
            private = Path(tempfile.mkdtemp(prefix="nbgov-trees-private-"))
            path = private / library.name
            path.write_bytes(library.read_bytes())
    return Artifact(path, info, cached=False)


def load(candidate: Candidate, artifact: Artifact, threads: int = 1) -> CompiledSession:
    """Load the library and wrap it as a session."""
    e = candidate.ensemble
    kernel = NativeKernel(
        artifact.path,
        candidate.key,
        e.n_features,
        e.n_outputs,
        _dtype(e.value_type),
        _dtype(e.output_type),
    )
    return CompiledSession(kernel, e, candidate.split, threads=threads)


def compile_session(
    payload: bytes, cache: ArtifactCache | None = None, threads: int = 1
) -> tuple[CompiledSession, Artifact]:
    """Examine, build and load in one call (raises NotCompilable with the reason)."""
    candidate = examine(payload)
    artifact = build(candidate, cache or ArtifactCache())
    return load(candidate, artifact, threads=threads), artifact


@lru_cache(maxsize=1)
def generator_version() -> str:
    """The ABI plus a hash of the modules that decide what a kernel computes: an nbgov
    upgrade that changes them never loads a kernel an older version built."""
    digest = xxhash.xxh3_64()
    digest.update(str(ABI_VERSION).encode())
    for module in (codegen_module, ensemble_module, layout_module, forest_module):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


def _dtype(value_type: str) -> type:
    return np.float64 if value_type == "double" else np.float32
