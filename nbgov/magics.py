"""``%%sqlml`` / ``%sqlml``: a thin IPython face over ``nbgov.sqlml.Engine``.

Flags are declared with IPython's magic_arguments; user mistakes (``NbgovError``)
become ``UsageError`` (one line, no traceback). The engine lives on the Magics
instance (one per shell), never in a module global. Every executed statement is
reported to the lineage recorder; a failing recorder never breaks the cell.
"""

from __future__ import annotations

import html
import keyword
import os
import shlex
import sys
import time
import warnings
import weakref
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.display import display
from traitlets import Bool, Bunch, CaselessStrEnum, Integer, TraitError, Unicode, validate

from nbgov.errors import NbgovError
from nbgov.sqlml.planning.widths import MIN_WIDTH, WIDTH

if TYPE_CHECKING:  # the engine (pandas, DuckDB, onnxruntime) loads on first %%sqlml use
    import pandas as pd

    from nbgov.sqlml.activity import Activity
    from nbgov.sqlml.engine import BaseEngine, Engine, StatementResult
    from nbgov.sqlml.spark.engine import SparkEngine

# DataFrame's dotted names (``__module__`` is "pandas" in pandas >= 3, "pandas.core.frame" before)
_FRAME_NAMES = ("pandas.DataFrame", "pandas.core.frame.DataFrame")

_VALUE_FLAGS = {"-o", "--out", "--db", "--limit", "--engine"}
ENGINES = ("duckdb", "spark")


def split_flags(line: str) -> tuple[str, str]:
    """Separate leading ``-flags`` from the SQL of a line, keeping the SQL verbatim.

    A quoted flag value is one word even with spaces in it (``--db "my data/x.duckdb"``).
    """
    position = 0
    expect_value = False
    while position < len(line):
        while position < len(line) and line[position].isspace():
            position += 1
        end = _word_end(line, position)
        word = line[position:end]
        if not word:
            break
        if expect_value:
            expect_value = False
        elif word.startswith("-") and not word.startswith("--") or word.startswith("--") and len(word) > 2:
            expect_value = word in _VALUE_FLAGS
        else:
            break
        position = end
    return line[:position].strip(), line[position:].strip()


# Backslash escapes as in a POSIX shell; on Windows it separates a path's folders.
_ESCAPE = "" if os.name == "nt" else "\\"


def _word_end(line: str, position: int) -> int:
    """Where the shell word starting at ``position`` ends (whitespace inside quotes does not end it)."""
    quote: str | None = None
    end = position
    while end < len(line):
        char = line[end]
        if quote is not None:
            if char == quote:
                quote = None
            elif char in _ESCAPE and quote == '"':
                end += 1
        elif char in "'\"":
            quote = char
        elif char in _ESCAPE:
            end += 1
        elif char.isspace():
            break
        end += 1
    return min(end, len(line))


def flag_words(flags: str) -> list[str]:
    """The flags split by shell rules (shlex), as IPython users quote a path with spaces.

    IPython's own ``parse_argstring`` splits in non-POSIX mode, which keeps the quotes
    in the value: ``--db "x.duckdb"`` then named a file ``"x.duckdb"``.
    """
    lexer = shlex.shlex(flags, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # '#' is an ordinary character in a path
    lexer.escape = _ESCAPE
    try:
        return list(lexer)
    except ValueError as error:  # an unclosed quote
        raise UsageError(
            f"cannot read the flags of %%sqlml ({str(error).lower()}): {flags!r}; "
            'expected shell quoting, e.g. --db "my data/x.duckdb"'
        ) from None


def result_name(out: str | None, on_magic_line: str | None, on_first_line: str | None) -> str | None:
    """The one variable the result is assigned to; two different names are refused (one
    of them was dropped without a word)."""
    given = [
        (name, said)
        for name, said in ((out, f"-o {out}"), (on_magic_line, f"{on_magic_line} <<"), (on_first_line, f"{on_first_line} <<"))
        if name is not None
    ]
    if len({name for name, _ in given}) > 1:
        raise UsageError(f"{' and '.join(said for _, said in given)} both name the result's variable; use one")
    return given[0][0] if given else None


def row_limit(text: str) -> int:
    """``--limit``'s rows: a whole number, 0 or more (0 shows all; a negative one showed all too)."""
    try:
        rows = int(text)
    except ValueError:
        rows = -1
        text = repr(text)
    if rows < 0:
        raise UsageError(f"--limit expects a whole number of rows, 0 or more (0 shows all); got {text}")
    return rows


def split_assignment(sql: str) -> tuple[str | None, str]:
    """JupySQL's first-line ``NAME << SELECT ...`` form."""
    first, newline, rest = sql.partition("\n")
    target, marker, remainder = first.partition("<<")
    if marker and target.strip().isidentifier():
        return target.strip(), (remainder + newline + rest).strip()
    return None, sql


class ScoringProgress:
    """A progress bar for batched scoring that renders in JupyterLab (HTML) and terminals.

    Shown only once scoring has taken more than ``delay`` seconds, so quick cells stay quiet.
    """

    def __init__(self, delay: float = 1.0) -> None:
        self._delay = delay
        self._started: float | None = None
        self._label: str | None = None
        self._handle: Any = None

    def __call__(self, label: str, done: int, total: int | None) -> None:
        """``total`` is None while the relation is still being read (the bar is then indeterminate)."""
        now = time.monotonic()
        if self._started is None or label != self._label:  # a new relation (or one that failed)
            self._started, self._label, self._handle = now, label, None
        finished = total is not None and done >= total
        if self._handle is None and (finished or now - self._started < self._delay):
            if finished:  # done before the delay: a quick cell stays quiet
                self._started = None
            return
        if total is None:
            text = f"{label}: {done:,} rows scored"
            bar = "<progress></progress>"
        else:
            text = f"{label}: {done:,} / {total:,} rows scored ({done / total if total else 1.0:.0%})"
            bar = f'<progress value="{done}" max="{max(total, 1)}"></progress>'
        bundle = {"text/plain": text, "text/html": f"{bar} <code>{html.escape(text)}</code>"}
        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)
        if finished:
            self._started, self._handle = None, None


@magics_class
class SqlML(Magics):
    """SQL + ONNX models on an embedded DuckDB (see ``%%sqlml?``)."""

    database = Unicode(":memory:", help="DuckDB database: ':memory:' or a file path.").tag(config=True)
    displaylimit = Integer(10, help="Rows shown when a result is displayed (0 = all).").tag(config=True)
    engine = CaselessStrEnum(ENGINES, "duckdb", help="Where cells run: 'duckdb' (embedded) or 'spark'.").tag(config=True)
    spark_master = Unicode(
        "local[*]", help="Master of the SparkSession nbgov starts when none is active (engine 'spark')."
    ).tag(config=True)
    compile_trees = Bool(
        True, help="Score tree ensembles with compiled native code when the rows repay compiling."
    ).tag(config=True)
    explain_width = Integer(
        WIDTH, help=f"Characters per line of --explain's text (at least {MIN_WIDTH}): the output area's width."
    ).tag(config=True)

    @validate("displaylimit")
    def _displaylimit_counts_rows(self, proposal: Bunch) -> int:
        """Rows, 0 or more (0 shows all), as ``--limit``: a negative one showed all, unsaid."""
        rows = int(proposal["value"])
        if rows < 0:
            raise TraitError(f"SqlML.displaylimit expects a whole number of rows, 0 or more (0 shows all); got {rows}")
        return rows

    @validate("explain_width")
    def _explain_width_fits(self, proposal: Bunch) -> int:
        """A width the plan's text can be laid out in, refused in one line when too narrow."""
        width = int(proposal["value"])
        if width < MIN_WIDTH:
            raise TraitError(f"SqlML.explain_width expects an integer of at least {MIN_WIDTH}, got {width}")
        return width

    def __init__(self, shell: Any = None, recorder: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.recorder = recorder
        self._engine: Engine | None = None
        self._spark: SparkEngine | None = None
        self._shown: dict[int, tuple[weakref.ref[pd.DataFrame], int]] = {}
        self._warned = False

    @property
    def duckdb(self) -> Engine:
        """The DuckDB engine for ``self.database``; reopened when the setting changes."""
        return self._duckdb_on(self.database)

    def _duckdb_on(self, database: str) -> Engine:
        """The engine on ``database``. A new one is opened before the current one is closed,
        so a path that cannot be opened leaves the session's database (and the tables and
        models of an in-memory one) as it was."""
        if self._engine is None or self._engine.database != database:
            from nbgov.sqlml.engine import Engine

            try:
                engine = Engine(database)
            except NbgovError as error:
                raise UsageError(str(error)) from None
            engine.progress = ScoringProgress()
            if self._engine is not None:
                self._engine.close()
            self._engine = engine
        self._engine.compile_trees = self.compile_trees
        return self._engine

    @property
    def spark(self) -> SparkEngine:
        """The Spark engine: on the active SparkSession, else on one started on ``spark_master``."""
        if self._spark is None or self._spark.master != self.spark_master:
            if self._spark is not None:
                self._spark.close()
                self._spark = None
            from nbgov.sqlml.spark.engine import SparkEngine

            try:
                self._spark = SparkEngine(self.spark_master)
            except NbgovError as error:
                raise UsageError(str(error)) from None
        self._spark.compile_trees = self.compile_trees
        return self._spark

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self._spark is not None:
            self._spark.close()
            self._spark = None

    @no_var_expand  # `$name` is a bound parameter, never text pasted by IPython
    @magic_arguments()
    @argument("-o", "--out", metavar="NAME", help="Assign the full result DataFrame to NAME.")
    @argument("--db", metavar="PATH", help="Use (and switch to) this DuckDB file (shell quoting); ':memory:' for memory.")
    @argument("--limit", metavar="N", help="Show at most N rows of the result (0: all).")
    @argument("--explain", action="store_true", help="Show the plan and the model-call notes; run nothing.")
    @argument("--no-optimize", action="store_true", help="Turn every model rewrite and batching off.")
    @argument("--engine", metavar="NAME", help="Run this cell on 'duckdb' or 'spark' (default: SqlML.engine).")
    @line_cell_magic
    def sqlml(self, line: str, cell: str | None = None) -> Any:
        """Run SQL (with predict(...) and model statements) on the kernel's DuckDB."""
        flags, sql = split_flags(line)
        args = self._parse_flags(flags)
        assigned: str | None = None
        if cell is not None:
            if sql:
                # JupySQL's cell form puts the assignment on the magic's line: %%sql name <<
                assigned, rest = split_assignment(sql)
                if assigned is None or rest:
                    raise UsageError(f"unexpected text after the flags of %%sqlml: {sql!r}; put the SQL in the cell")
            sql = cell
        first_line, sql = split_assignment(sql)
        target = result_name(args.out, assigned, first_line)
        limit = self.displaylimit if args.limit is None else row_limit(args.limit)
        if target is not None and (not target.isidentifier() or keyword.iskeyword(target)):
            # a keyword (`class`, `None`) is no name code can read the result back by
            what = " (a Python keyword)" if keyword.iskeyword(target) else ""
            raise UsageError(f"-o expects a Python variable name, got {target!r}{what}")
        if not sql.strip():
            raise UsageError("no SQL given; usage: %%sqlml [flags] then SQL statements")
        engine_name = (args.engine or self.engine).lower()
        if engine_name not in ENGINES:
            raise UsageError(f"unknown engine {args.engine!r}; expected one of: {', '.join(ENGINES)}")
        if args.db and engine_name != "duckdb":
            raise UsageError("--db names a DuckDB file; it does not apply to --engine spark")
        if args.db is not None and not args.db.strip():
            raise UsageError("--db expects a DuckDB file path or ':memory:', got an empty path")
        if args.db:
            # open first: a path that fails leaves the session's database and setting as they were;
            # one that opens becomes the database of the cells after it (SqlML.database)
            self._duckdb_on(args.db)
            self.database = args.db
        engine = self.spark if engine_name == "spark" else self.duckdb
        namespace = self.shell.user_ns if self.shell is not None else {}
        optimize = not args.no_optimize
        if args.explain:
            try:
                print(engine.explain(sql, params=namespace, frames=namespace, optimize=optimize, width=self.explain_width))
            except NbgovError as error:
                raise UsageError(str(error)) from None
            return None
        last = self._run_all(engine, sql, namespace, optimize)
        if last is None or last.df is None:
            return None
        if target is not None:
            namespace[target] = last.df
        self._limit_display(last.df, limit)
        return last.df

    def _parse_flags(self, flags: str) -> Any:
        """The flags as parsed; an option %%sqlml does not have is named with the ones it has
        (argparse reported only the text after it: ``-x 3`` read as flag ``-x`` and SQL ``3``)."""
        parser = self.sqlml.parser
        args, extra = parser.parse_known_args(flag_words(flags))
        unknown = [word for word in extra if word.startswith("-")]
        if unknown:
            usage = " ".join(parser.format_usage().split())
            raise UsageError(f"unknown option {unknown[0].split('=')[0]} for %%sqlml; expected: {usage[usage.find('['):]}")
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
        return args

    def _run_all(self, engine: BaseEngine, sql: str, namespace: dict[str, Any], optimize: bool) -> StatementResult | None:
        statements = engine.split(sql)
        last: StatementResult | None = None
        for statement in statements:
            try:
                results = engine.execute(statement, params=namespace, frames=namespace, optimize=optimize)
            except NbgovError as error:
                raise UsageError(str(error)) from None
            for result in results:
                self._note(result.activity)
                if result.df is None and result.summary:
                    print(result.summary)
                last = result
        return last

    def _note(self, activity: Activity) -> None:
        if self.recorder is None:
            return
        try:
            self.recorder.note_sql(activity)
        except Exception as error:  # recording must never break a user's cell
            if not self._warned:
                self._warned = True
                warnings.warn(f"nbgov: could not record SQL lineage ({error})", stacklevel=2)

    def _limit_display(self, frame: pd.DataFrame, limit: int) -> None:
        """Show ``frame`` cut to ``limit`` rows until this cell ends (``cell_ended``)."""
        self._shown = {k: v for k, v in self._shown.items() if v[0]() is not None}
        if limit > 0 and len(frame) > limit:
            self._shown[id(frame)] = (weakref.ref(frame), limit)

    def cell_ended(self, result: Any = None) -> None:
        """IPython's ``post_run_cell``: the limit is the magic's cell's own output; the same
        DataFrame shown later (``res``, ``display(res)``, ``Out[n]``) is shown whole."""
        self._shown.clear()

    def limited(self, frame: Any) -> tuple[pd.DataFrame, int] | None:
        """(rows to show, total) when ``frame`` is a result displayed with a row limit."""
        entry = self._shown.get(id(frame))
        if entry is None:
            return None
        shown = entry[0]()
        if shown is None or shown is not frame:
            return None
        return shown.head(entry[1]), len(shown)


class _Installed:
    """Undo handle returned by ``install``."""

    def __init__(self, shell: Any, magics: SqlML) -> None:
        self._shell = shell
        self._magics = magics
        self._previous: dict[str, Any] = {}
        self._cell_ended = magics.cell_ended
        shell.events.register("post_run_cell", self._cell_ended)
        formatters = getattr(getattr(shell, "display_formatter", None), "formatters", {})
        for mime, render in (("text/html", self._html), ("text/plain", self._plain)):
            formatter = formatters.get(mime)
            if formatter is None:
                continue
            self._previous[mime] = _frame_printer(formatter)
            for frame_type in _frame_types():
                formatter.for_type(frame_type, render)

    def _html(self, frame: pd.DataFrame) -> str | None:
        limited = self._magics.limited(frame)
        if limited is None:
            previous = self._previous.get("text/html")
            return previous(frame) if previous else frame._repr_html_()
        head, total = limited
        return str(head._repr_html_()) + f"<p>{len(head)} of {total:,} rows shown (--limit / SqlML.displaylimit)</p>"

    def _plain(self, frame: pd.DataFrame, printer: Any, cycle: bool) -> None:
        limited = self._magics.limited(frame)
        if limited is None:
            previous = self._previous.get("text/plain")
            if previous is not None:
                previous(frame, printer, cycle)
            else:
                _lines(printer, repr(frame))
            return
        head, total = limited
        _lines(printer, f"{head!r}\n{len(head)} of {total:,} rows shown")

    def uninstall(self) -> None:
        shell = self._shell
        manager = getattr(shell, "magics_manager", None)
        if manager is not None:
            for kind in ("line", "cell"):
                manager.magics[kind].pop("sqlml", None)
            if self._magics in manager.registry.values():
                manager.registry.pop(type(self._magics).__name__, None)
        if self._magics in getattr(shell, "configurables", []):
            shell.configurables.remove(self._magics)
        try:
            shell.events.unregister("post_run_cell", self._cell_ended)
        except ValueError:  # already gone
            pass
        formatters = getattr(getattr(shell, "display_formatter", None), "formatters", {})
        for mime, previous in self._previous.items():
            formatter = formatters.get(mime)
            if formatter is None:
                continue
            for name in _FRAME_NAMES:
                formatter.pop(name, None)
            if previous is not None:
                formatter.for_type(_frame_types()[0], previous)
        self._magics.close()


def _lines(printer: Any, text: str) -> None:
    """``text`` as IPython prints a repr without a printer of its own: one break per line,
    so a DataFrame inside a tuple or list (``df.head(), df.shape``) is indented and laid out
    as it is without nbgov (one ``text`` call with newlines in it is not)."""
    with printer.group():
        for index, line in enumerate(text.splitlines()):
            if index:
                printer.break_()
            printer.text(line)


def _frame_types() -> list[Any]:
    """pandas' DataFrame when pandas is loaded, else its dotted names (IPython then binds
    the formatter when the first DataFrame is shown), so loading stays light."""
    pandas = sys.modules.get("pandas")
    return [pandas.DataFrame] if pandas is not None else list(_FRAME_NAMES)


def _frame_printer(formatter: Any) -> Any:
    """The printer registered for DataFrame before ours, if any."""
    for name in _FRAME_NAMES:
        try:
            return formatter.lookup_by_type(name)
        except KeyError:
            continue
    return None


def install(shell: Any, recorder: Any = None) -> _Installed:
    """Register %%sqlml / %sqlml and the SqlML config on ``shell``."""
    magics = SqlML(shell=shell, recorder=recorder)
    shell.register_magics(magics)
    return _Installed(shell, magics)
