"""nbgov: governance inside the Jupyter notebook — SQL + ONNX models, and lineage."""

from nbgov._version import __version__
from nbgov.extension import load_ipython_extension, unload_ipython_extension

__all__ = ["__version__", "load_ipython_extension", "unload_ipython_extension"]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Tell JupyterLab where the prebuilt sidebar extension lives."""
    return [{"src": "labextension", "dest": "nbgov"}]
