"""One exception root, so faces (magics, CLI) can tell user mistakes from bugs.

Every ``NbgovError`` is a mistake the user can fix: the magics turn it into an
IPython ``UsageError`` (one line, no traceback) and the CLI into exit code 2.
"""

from __future__ import annotations


class NbgovError(Exception):
    """A problem the user can fix; its message is short and says what was expected."""


class SqlmlError(NbgovError):
    """Bad SQL, an unknown model, a bad binding or a bad model file."""


class ModelNotFoundError(SqlmlError):
    """A query names a model that the catalog does not have."""


class ModelBindingError(SqlmlError):
    """Arguments of predict(...) do not fit the model's inputs."""


class InvalidModelError(SqlmlError):
    """A model file or object could not be registered; nothing was stored."""


class LineageError(NbgovError):
    """The lineage log is missing, malformed or cannot be read."""


class ReplayError(NbgovError):
    """A replay or verification could not run at all."""


class SqlError(SqlmlError):
    """DuckDB refused the SQL (syntax, binding, conversion, constraint); DuckDB's message, one line."""
