"""Spark's exceptions as one-line nbgov errors: no Java stack trace, no query plan.

PySpark raises structured exceptions (``AnalysisException``, ``ParseException``,
``NumberFormatException``... all ``PySparkException`` with an error condition); a
failure in an executor's Python (our scoring) arrives as ``PythonException`` whose
text is the worker's traceback, from which the nbgov error it raised is rebuilt.
"""

from __future__ import annotations

from nbgov import errors as nbgov_errors
from nbgov.errors import ModelBindingError, SqlError, SqlmlError
from nbgov.sqlml.models.refusals import refusal_in

# Spark's own advice (try_divide, turning ANSI off) is not the notebook's SQL: DuckDB's words
_BY_ZERO = ("DIVIDE_BY_ZERO", "REMAINDER_BY_ZERO")
_DIVIDE_BY_ZERO = (
    "division by zero: x % 0 of integers or DECIMALs and any x // 0 fail, as on DuckDB; "
    "write x % NULLIF(y, 0) for NULL instead"
)


def condition(error: BaseException) -> str | None:
    """Spark's error condition (``TABLE_OR_VIEW_NOT_FOUND``...), when it has one."""
    getter = getattr(error, "getCondition", None)
    try:
        return str(getter()) if callable(getter) and getter() else None
    except Exception:  # a JVM that is gone cannot be asked
        return None


def spark_error(error: BaseException) -> SqlmlError:
    """The one-line nbgov error for an exception raised while Spark ran a statement."""
    from py4j.protocol import Py4JError, Py4JJavaError
    from pyspark.errors import PySparkException, PythonException

    if isinstance(error, PythonException):
        return _worker_error(str(error))
    if isinstance(error, PySparkException) and condition(error) in _BY_ZERO:
        return SqlError(_DIVIDE_BY_ZERO)
    if isinstance(error, PySparkException):
        return _sql_error(str(error), str(error))
    if isinstance(error, Py4JJavaError):
        try:
            message = str(error.java_exception.getMessage())
        except Exception:
            message = str(error)
        return _sql_error(message, str(error))
    if isinstance(error, Py4JError):
        return SqlmlError("Spark is not reachable (its JVM stopped?); restart the kernel or the SparkSession")
    return SqlmlError(_first_line(str(error)) or type(error).__name__)


def _sql_error(message: str, whole: str) -> SqlmlError:
    """A SQL error (the first line of ``message``), or the refusal of a value the model's
    featurizer refuses that the optimizer's SQL check raised, said as onnxruntime's refusal
    is without the optimizer. ``whole``: the error with its causes, where Spark puts the
    refusal raised inside a subquery ("Exception thrown in awaitResult", then the cause)."""
    raised, worker = whole.find(_RAISED), whole.find(_WORKER)
    if raised >= 0 and (worker < 0 or raised < worker):
        refusal = refusal_in(whole[raised + len(_RAISED):])
        if refusal is not None:
            return ModelBindingError(_first_line(refusal))
    if worker >= 0:  # the UDF's own error, raised in a subquery's job
        return _worker_error(whole[worker + 1:].splitlines()[0])
    return SqlError(_first_line(message))


# what Spark puts before raise_error's message; another error's text may quote the same
# message inside the SQL it echoes ("== SQL ==", quotes escaped): that is no refusal
_RAISED = "[USER_RAISED_EXCEPTION] "
# the last line of a Python worker's traceback: an nbgov error the scoring UDF raised
_WORKER = "\nnbgov.errors."


def _first_line(text: str) -> str:
    """The message's first line with its position, without SQLSTATE, plan or stack."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return "Spark reported an error without a message"
    return " ".join(_without_sqlstate(lines[0].split()))[:400].rstrip(";")  # Spark ends some with ';'


def _without_sqlstate(words: list[str]) -> list[str]:
    """The words of a message without Spark's ``SQLSTATE: 42P01;`` marker."""
    kept: list[str] = []
    skip = False
    for word in words:
        if word == "SQLSTATE:":
            skip = True
        elif skip:
            skip = False
        else:
            kept.append(word)
    return kept


def _worker_error(text: str) -> SqlmlError:
    """``nbgov.errors.ModelBindingError: message`` (the traceback's last line) -> that error."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    qualified, sep, message = last.partition(": ")
    module, _, name = qualified.rpartition(".")
    if sep and module == "nbgov.errors":
        found = getattr(nbgov_errors, name, None)
        if isinstance(found, type) and issubclass(found, SqlmlError):
            return found(message)
    return SqlmlError(f"scoring failed on a Spark executor: {last[:300] or 'no message'}")
