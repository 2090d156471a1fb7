"""Which notebook names a cell reads, writes and deletes — from its AST.

The cell is analysed after IPython's input transforms (``%magic`` and ``!cmd``
become real Python), in evaluation order, so ``x = x + 1`` reads ``x`` before
it writes it. Stores to an attribute or item of a name (``df['a'] = 1``,
``obj.x = 2``) and augmented assignments count as in-place writes of that name.
Function bodies only contribute the globals they read or declare ``global``; those are
reads of the cell when it runs that code: a lambda made in an expression
(``df.apply(lambda r: r.a * k)``), or a function or class the cell defines and then uses
(``def g(): return a`` then ``q = g()``).
"""

from __future__ import annotations

import ast
import functools
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from IPython.core.error import UsageError
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.magic import Magics

from nbgov.lineage import environment_variables
from nbgov.lineage.output_history import HistoryUses
from nbgov.lineage.output_history import uses as history_uses
from nbgov.lineage.sql_names import sql_variables

_DYNAMIC = frozenset({"get_ipython", "exec", "eval", "globals", "vars", "locals", "__import__", "setattr", "delattr"})


@dataclass
class CellNames:
    """Names at notebook (module) level, by what the cell does with them."""

    loads: set[str] = field(default_factory=set)  # read before (or without) being stored
    stores: set[str] = field(default_factory=set)  # rebound
    mutates: set[str] = field(default_factory=set)  # attribute/item store, augmented assignment
    deletes: set[str] = field(default_factory=set)
    referenced: set[str] = field(default_factory=set)  # every global name mentioned at all
    syntax_ok: bool = True
    dynamic: bool = False  # uses exec/globals()/magics: may rebind any name
    impure: set[str] = field(default_factory=set)  # used other than as an operand (may escape/mutate)
    # how the cell reads names its code does not spell out ("eval", "globals()"): its reads may be incomplete
    dynamic_reads: set[str] = field(default_factory=set)
    strings: tuple[str, ...] = ()  # string constants that could be file paths (see path_literals)
    attributes: frozenset[str] = frozenset()  # every attribute name the code reads or sets (`m.predict`)
    history: HistoryUses | None = None  # reads of IPython's output history (`_`, `Out[3]`); None: none
    environment: environment_variables.EnvironmentUses | None = None  # `os.environ['X']`, `os.getenv('X')`...; None: none
    # names used only as the object of a read-only model method (`model.predict(X)`), never
    # otherwise, changed, rebound or deleted: a library's fitted model is left as it was
    read_calls: frozenset[str] = frozenset()
    # names a call made as the cell runs is made on (`con.sql(q)`, `rel.df()`) or hands on
    # (`read_sql(q, con)`): a connection opened earlier may read its database through them
    called_on: set[str] = field(default_factory=set)

    def pure_only(self, name: str) -> bool:
        """Every use is an operand of an operator/comparison or an argument of a builtin
        like len/print: for numpy/pandas values such uses cannot change the value."""
        return name in self.referenced and name not in self.impure

    def note_dynamic(self, name: str) -> None:
        if name in _DYNAMIC:
            self.dynamic = True

    @property
    def candidates(self) -> set[str]:
        """Names whose values the cell may touch: fingerprinted before and after."""
        return self.referenced


_NEEDS_TRANSFORM = re.compile(r"[%!?]|^\s*(>>>|In \[|\.\.\.)", re.MULTILINE)


def transform(shell: Any, raw_cell: str) -> str:
    """The Python IPython will actually run for ``raw_cell`` (magics expanded).

    Plain Python (no %, !, ? or pasted prompts) is returned as is: IPython's
    transformers would not change it, and they cost more than the rest of a record.
    """
    if not _NEEDS_TRANSFORM.search(raw_cell):
        return raw_cell
    try:
        return str(shell.transform_cell(raw_cell))
    except Exception:
        return raw_cell


_CACHE_SIZE = 256


def analyze(code: str) -> CellNames:
    """Parse transformed cell code; a syntax error yields empty sets (syntax_ok False).

    Re-run cells are common, so results are cached by code (treat them as read-only).
    """
    return _analyze_cached(code)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _analyze_cached(code: str) -> CellNames:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return CellNames(syntax_ok=False, dynamic=True)
    visitor = _CellVisitor()
    # the environment is named in the text of any code that goes through it (each word has "env" in
    # it): most cells skip its checks
    if "env" in code and any(word in code for word in _ENV_WORDS):
        visitor.env_start()
    for stmt in tree.body:
        visitor.visit(stmt)
    if visitor.env_text:
        visitor.env_whole(tree)
        if visitor.env.uses:
            visitor.names.environment = visitor.env
    # a string constant needs a quote in the source: most cells have none, and skip two tree walks
    visitor.names.strings = path_literals(tree) if "'" in code or '"' in code else ()
    if "." in code:  # an attribute needs a dot: most cells that have none skip a tree walk
        visitor.names.attributes = frozenset(n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute))
    visitor.names.history = history_uses(tree, visitor.names.loads)
    if visitor.receivers:
        names = visitor.names
        names.read_calls = frozenset(visitor.receivers - names.impure - names.mutates - names.stores - names.deletes)
        names.impure |= visitor.receivers  # elsewhere a method call is a use like any other
    return visitor.names


MAX_PATH_LITERAL = 4096
MAX_PATH_LITERALS = 256
_PATH_CALLS = frozenset({"Path", "PurePath", "PosixPath", "WindowsPath", "PurePosixPath"})


def plausible_path(text: str) -> bool:
    """A string a file could be named by: not empty, one line, not a URL, not huge."""
    return (
        0 < len(text) <= MAX_PATH_LITERAL
        and "\n" not in text
        and "\0" not in text
        and "://" not in text
        and text.strip() == text
    )


def path_literals(tree: ast.AST) -> tuple[str, ...]:
    """String constants of the code, plus constant path joins (``Path('d') / 'x.csv'``,
    ``os.path.join('d', 'x.csv')``): the paths native readers and writers may open,
    where Python's audit hook cannot see them."""
    found: dict[str, None] = {}
    skip = _metadata_only_args(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        value: str | None = None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
        elif isinstance(node, (ast.BinOp, ast.Call)):
            value = _joined_path(node)
        if value is not None and plausible_path(value):
            found[value] = None
            if len(found) >= MAX_PATH_LITERALS:
                break
    return tuple(found)


# Calls that look at a file's name or metadata, never its content: not evidence of a read.
_METADATA_CALLS = frozenset({
    "exists", "isfile", "isdir", "islink", "lexists", "getsize", "getmtime", "getctime", "getatime",
    "stat", "lstat", "access", "remove", "unlink", "rmdir", "basename", "dirname", "splitext",
    "is_file", "is_dir", "touch", "with_suffix", "with_name",
})

# How IPython's transformers call a magic: the first argument is the magic's name, never a path.
_MAGIC_CALLS = frozenset({"run_cell_magic", "run_line_magic"})


# Magics whose text is Python run as is in the notebook's namespace (IPython's ``exec``):
# `%%time` and `%%capture`'s body, `%time`'s line, `%prun`'s code (profiled with the notebook's
# namespace as globals and locals). Their reads are the cell's reads.
_BODY_MAGICS = {"run_cell_magic": frozenset({"time", "capture"}), "run_line_magic": frozenset({"time"})}
_PRUN_OPTIONS = "D:l:rs:T:q"  # IPython's ``%prun`` options (its code follows them)
_TIMEIT_OPTIONS = "n:r:tcp:qov:"  # IPython's ``%timeit`` options (the statement follows them)


class _NoDefaultOptions:
    """What ``Magics.parse_options`` reads of its magics object: no default options."""

    options_table: dict[str, str] = {}


def _magic_call(node: ast.Call) -> tuple[str, str, str | None] | None:
    """(name, line, cell) of ``get_ipython().run_line_magic(name, line)`` or
    ``run_cell_magic(name, line, cell)`` with constant text (cell None for a line magic)."""
    func = node.func
    if (not isinstance(func, ast.Attribute) or func.attr not in _MAGIC_CALLS or not _is_get_ipython(func)
            or node.keywords or len(node.args) != (3 if func.attr == "run_cell_magic" else 2)):
        return None
    texts = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    if len(texts) != len(node.args):
        return None
    return texts[0], texts[1], texts[2] if len(texts) > 2 else None


def _magic_code(call: tuple[str, str, str | None]) -> str | None:
    """The code a magic runs as is in the notebook's namespace, or None: another magic, or
    ``%prun`` options that stop it first."""
    name, line, cell = call
    if name in _BODY_MAGICS["run_line_magic" if cell is None else "run_cell_magic"]:
        return line if cell is None else cell
    if name != "prun":
        return None
    try:
        _, code = Magics.parse_options(_NoDefaultOptions(), line, _PRUN_OPTIONS,  # type: ignore[arg-type]
                                       list_all=True, posix=False)
    except UsageError:
        return None
    return str(code) if cell is None else f"{code}\n{cell}"


def _timeit_texts(call: tuple[str, str, str | None]) -> tuple[str, str] | None:
    """The setup and statement of ``%timeit``/``%%timeit`` as IPython splits them, or None:
    another magic, or options that stop it first."""
    name, line, cell = call
    if name != "timeit":
        return None
    try:
        _, stmt = Magics.parse_options(_NoDefaultOptions(), line, _TIMEIT_OPTIONS,  # type: ignore[arg-type]
                                       posix=False, strict=False, preserve_non_opts=True)
    except UsageError:
        return None
    return ("pass", stmt) if cell is None else (stmt, cell)


def _timed_function(body: list[ast.stmt]) -> ast.FunctionDef:
    """``def inner(_it, _timer)`` around the timed code, as ``timeit.Timer`` runs it:
    the notebook's names are its globals, its own assignments are local."""
    arguments = ast.arguments(posonlyargs=[], args=[ast.arg("_it"), ast.arg("_timer")], kwonlyargs=[],
                              kw_defaults=[], defaults=[])
    return ast.FunctionDef("inner", arguments, body or [ast.Pass()], [], None, None)




def _metadata_only_args(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``os.path.exists('x')``, ``Path('x').is_file()`` and the like,
    and of a magic's name and a cell magic's body in IPython's
    ``get_ipython().run_cell_magic('sqlml', '-o out', 'SELECT …')``: the body is the cell's
    SQL or script, whose own reads are reported (``%%sqlml``) or seen opened; its argument
    line, which may name a file (``--db shop.db``), is kept."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _MAGIC_CALLS and node.args and _is_get_ipython(func):
            skip.add(id(node.args[0]))
            if name == "run_cell_magic" and len(node.args) > 2:
                skip.add(id(node.args[2]))
        if name not in _METADATA_CALLS:
            continue
        roots: list[ast.AST] = list(node.args)
        if isinstance(func, ast.Attribute) and _is_path_call(func.value):
            roots.append(func.value)  # Path('x').exists()
        for root in roots:
            skip.update(id(sub) for sub in ast.walk(root))
    return skip


def _joined_path(node: ast.expr, depth: int = 0) -> str | None:
    """The path a join of string constants builds, or None if it is not one."""
    if depth > 8:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _joined_path(node.left, depth + 1), _joined_path(node.right, depth + 1)
        is_path = _is_path_call(node.left) or _is_path_call(node.right) or isinstance(node.left, ast.BinOp)
        if left is None or right is None or not is_path:
            return None
        return posixpath.join(left, right)
    if isinstance(node, ast.Call) and not node.keywords and node.args:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _PATH_CALLS or (name == "join" and _dotted(func).endswith("path.join")):
            parts = [_joined_path(arg, depth + 1) for arg in node.args]
            if any(p is None for p in parts):
                return None
            return posixpath.join(*[p for p in parts if p is not None])
    return None


def _is_path_call(node: ast.expr) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return name in _PATH_CALLS


def _is_get_ipython(func: ast.expr) -> bool:
    """``get_ipython().<method>``: a call on the shell, as IPython writes magics."""
    shell = func.value if isinstance(func, ast.Attribute) else None
    return (isinstance(shell, ast.Call) and isinstance(shell.func, ast.Name) and shell.func.id == "get_ipython"
            and not shell.args and not shell.keywords)


def _dotted(node: ast.expr) -> str:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


_NAMESPACE_CALLS = frozenset({"globals", "vars", "locals"})
_CODE_CALLS = frozenset({"eval", "exec"})
_NAMESPACE_WRITES = frozenset({"update", "clear"})  # methods of the namespace dict that read no name
MAX_CODE_TEXT = 100_000  # a constant longer than this given to eval/exec is not parsed (its reads are unknown)
_MAX_CODE_DEPTH = 4  # exec('exec("...")'): constant code inside constant code, followed this deep


def _constant_name(node: ast.expr) -> str | None:
    """The text of a string constant (a key of the namespace), else None."""
    return node.value if isinstance(node, ast.Constant) and type(node.value) is str else None


_CODE_READING_NAMES = frozenset({"eval", "exec", "globals"})  # in a function's code: reads by name at run time


def dynamic_reads_note(names: CellNames, called_globals: set[str]) -> str | None:
    """The note of a cell whose reads may be incomplete: it (or notebook code it runs, whose
    ``eval`` arguments are not read from its bytecode) reads names by text at run time."""
    how = set(names.dynamic_reads)
    if called_globals and not called_globals.isdisjoint(_CODE_READING_NAMES):
        how |= {"eval" if name == "eval" else "exec" if name == "exec" else "globals()"
                for name in called_globals & _CODE_READING_NAMES}
    if not how:
        return None
    return f"the cell reads names dynamically ({', '.join(sorted(how))}): its inputs may be incomplete"


_EXPRESSION_CALLS = frozenset({"query", "eval"})
_AT_NAME = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")


def expression_variables(call: ast.Call) -> list[str]:
    """Variables a pandas expression string reads from the calling frame: ``@name`` in the
    text given to ``df.query``, ``df.eval`` or ``pd.eval`` (pandas looks them up in the
    cell's namespace, so the code never names them)."""
    func = call.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    if name not in _EXPRESSION_CALLS:
        return []
    texts = [call.args[0]] if call.args else []
    texts += [k.value for k in call.keywords if k.arg == "expr"]
    found: list[str] = []
    for text in texts:
        if isinstance(text, ast.Constant) and isinstance(text.value, str):
            found += _AT_NAME.findall(text.value)
    return found


_VISIT: dict[type, Callable[[_CellVisitor, Any], None]] = {}  # node class -> its _CellVisitor method
_OS_MEMBERS = ("environ", "getenv", "putenv", "unsetenv")  # what `from os import ...` may bind for the environment
_ENV_WORDS = (*_OS_MEMBERS, "'env'", "set_env")  # IPython's transform of `%env`, `%set_env`


class _CellVisitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.names = CellNames()
        self._first: dict[str, str] = {}  # name -> "load" | "store": first event at module level
        self._scopes: list[_Scope] = []  # function/lambda/comprehension/class scopes
        # a function or class the cell defines at module level -> the globals its code names:
        # read when the cell uses it (`def g(): return a` then `q = g()` reads `a`)
        self._bodies: dict[str, set[str]] = {}
        self._collecting: list[set[str]] = []  # the globals of the definitions being visited
        self._lambda_named: ast.expr | None = None  # the lambda of `f = lambda ...` at module level
        self._lambda_found: set[str] | None = None
        self._code_depth = 0  # constant code of eval/exec being visited, nested
        self.env_text = False  # the code names the environment: its uses are looked for (``env_start``)
        self.receivers: set[str] = set()  # names read-only model methods were called on (``_read_only_call``)

    # environment variables (``environment_variables``), set up by ``env_start`` only for code that names them
    env: environment_variables.EnvironmentUses
    _env_bare: dict[str, str]
    _env_seen: set[int]  # ids of `os.environ` nodes a use was found through (no whole read)
    _env_of: dict[int, tuple[set[str], list[environment_variables.EnvUse]]]  # a definition's globals -> its uses

    def env_start(self) -> None:
        self.env_text = True
        self.env = environment_variables.EnvironmentUses()
        self._env_bare = self.env.bare()
        self._env_seen = set()
        self._env_of = {}

    def visit(self, node: ast.AST) -> None:
        """NodeVisitor's dispatch, with each node class's method found once per class (it
        builds the method's name and looks it up on every node)."""
        kind = type(node)
        method = _VISIT.get(kind)
        if method is None:
            method = _VISIT[kind] = getattr(_CellVisitor, "visit_" + kind.__name__, _CellVisitor.generic_visit)
        method(self, node)

    def visit_Constant(self, node: ast.Constant) -> None:
        """A literal names nothing (NodeVisitor's own looks for the old visit_Str and the like)."""

    # -- events ------------------------------------------------------------
    def _deferred(self) -> bool:
        """Inside a def/lambda body: runs later, when called, not when the cell runs."""
        return bool(self._scopes) and any(scope.deferred for scope in self._scopes)

    def _load(self, name: str) -> None:
        if self._scopes and self._scopes[-1].is_local(name):
            return
        self.names.referenced.add(name)
        self.names.note_dynamic(name)
        if self._deferred():
            if not any(scope.is_local(name) for scope in self._scopes):
                for found in self._collecting:
                    found.add(name)
            return
        if self._first.setdefault(name, "load") == "load":
            self.names.loads.add(name)
        if name in self._bodies:
            self._run(self._bodies[name])

    def _run(self, named: set[str]) -> None:
        """Code the cell defined runs (it was used: called, passed on, or a lambda made in an
        expression): the globals it names, and those of the cell's definitions they name, are
        read unless the cell stored them first, as the module-level loads are."""
        seen: set[str] = set()
        todo = list(named)
        self._env_run(named)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo += self._bodies.get(name, ())
            self._env_run(self._bodies.get(name))
            if self._first.setdefault(name, "load") == "load":
                self.names.loads.add(name)
                self.names.impure.add(name)

    def _store(self, name: str) -> None:
        if self._scopes:
            scope = self._scopes[-1]
            if name not in scope.globals:
                scope.locals.add(name)
                return
        self.names.referenced.add(name)
        if self._deferred():
            return
        self._first.setdefault(name, "store")
        self.names.stores.add(name)
        self.names.deletes.discard(name)
        self._bodies.pop(name, None)

    def _delete(self, name: str) -> None:
        if self._scopes and name not in self._scopes[-1].globals:
            self._scopes[-1].locals.discard(name)
            return
        self.names.referenced.add(name)
        if self._deferred():
            return
        self._bodies.pop(name, None)
        self.names.deletes.add(name)
        self.names.stores.discard(name)

    # -- environment variables: `os.environ['X']` and the like ------------------------
    def _env_found(self, found: tuple[ast.expr, list[environment_variables.EnvUse]] | None) -> None:
        """Uses found: now (module level), or when the definition they are in runs."""
        if found is None:
            return
        node, uses = found
        self._env_seen.add(id(node))
        if not self._deferred():
            self.env.uses += uses
            return
        for collected in self._collecting:
            self._env_of.setdefault(id(collected), (collected, []))[1].extend(uses)

    def _env_run(self, named: set[str] | None) -> None:
        kept = self._env_of.get(id(named)) if named is not None and self.env_text and self._env_of else None
        if kept is not None and kept[0] is named:
            self.env.uses += kept[1]

    def env_whole(self, tree: ast.AST) -> None:
        """``os.environ`` (or ``os.getenv``) used other than through a use found by name
        (iterated, copied, handed on), anywhere in the code: it may read any variable. A walk of
        its own, so a cell that does not name the environment pays no check per node."""
        bare = self.env.bare()
        for node in ast.walk(tree):
            if isinstance(node, (ast.Attribute, ast.Name)) and id(node) not in self._env_seen:
                use = environment_variables.whole_use(node, bare)
                if use is not None:
                    self.env.uses.append(use)

    def _mutate(self, target: ast.expr) -> None:
        if self.env_text and isinstance(target, ast.Subscript):
            self._env_found(environment_variables.subscript_uses(target, self._env_bare, write=True, read=False))
        root = _root_name(target)
        if root is None:
            self.visit(target)
            return
        self._load(root)
        self.names.impure.add(root)
        if not (self._scopes and self._scopes[-1].is_local(root)) and not self._deferred():
            self.names.mutates.add(root)
        # visit subscripts/attribute chains for the names used inside (df[col] loads col)
        self._visit_target_parts(target)

    def _visit_target_parts(self, node: ast.expr) -> None:
        while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            if isinstance(node, ast.Subscript):
                self.visit(node.slice)
            node = node.value
        if not isinstance(node, ast.Name):
            self.visit(node)

    def _target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._store(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for elt in target.elts:
                self._target(elt)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        elif isinstance(target, (ast.Attribute, ast.Subscript)):
            self._mutate(target)
        else:
            self.visit(target)

    # -- pure uses: operands cannot escape or be changed by the operation ----
    def _operand(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if self._deferred():
                self.names.impure.add(node.id)
            self._load(node.id)
        else:
            self.visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        self._operand(node.left)
        self._operand(node.right)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        self._operand(node.operand)

    def visit_Compare(self, node: ast.Compare) -> None:
        if self.env_text:
            self._env_found(environment_variables.contains_uses(node, self._env_bare))
        if (len(node.ops) == 1 and isinstance(node.ops[0], (ast.In, ast.NotIn))
                and _constant_name(node.left) is not None and self._namespace_call(node.comparators[0])):
            self._namespace_used(node.comparators[0])  # `'df' in globals()`: whether it exists, not its value
            return
        self._operand(node.left)
        for comp in node.comparators:
            self._operand(comp)

    def visit_Call(self, node: ast.Call) -> None:
        if self.env_text:
            self._env_found(environment_variables.call_uses(node, self._env_bare))
        func = node.func
        if isinstance(func, ast.Name) and func.id in _PURE_CALLS and not node.keywords:
            self.visit(func)
            for arg in node.args:
                self._operand(arg)
            return
        if isinstance(func, ast.Name) and func.id in _CODE_CALLS:
            self._code_call(func.id, node)
            return
        if self._read_only_call(node):
            return
        magic = _magic_call(node)
        if magic is not None and self._python_magic(node, magic):
            return
        if isinstance(func, ast.Attribute) and self._namespace_call(func.value):
            key = _constant_name(node.args[0]) if node.args else None
            if (func.attr == "get" and key is not None) or func.attr in _NAMESPACE_WRITES:
                self._namespace_used(func.value)  # globals().get('thr'): a read of thr
                if key is not None and func.attr == "get":
                    self.names.impure.add(key)
                    self._load(key)
                for arg in [*node.args[1 if key is not None else 0:], *(k.value for k in node.keywords)]:
                    self.visit(arg)
                return
        if not self._deferred():
            self._call_objects(node)
        self.generic_visit(node)
        if isinstance(func, ast.Name) and func.id in _NAMESPACE_CALLS and self._namespace_call(node):
            self.names.dynamic_reads.add(f"{func.id}()")  # the namespace handed on or looked into by name
        for name in (*expression_variables(node), *sql_variables(node)):
            self.names.impure.add(name)
            self._load(name)

    def _call_objects(self, node: ast.Call) -> None:
        """The notebook names a call run now is made on or hands on (``CellNames.called_on``)."""
        func = node.func
        objects = [func.value] if isinstance(func, ast.Attribute) and func.attr not in _NO_QUERY_METHODS else []
        objects += [arg for arg in (*node.args, *(k.value for k in node.keywords)) if isinstance(arg, ast.Name)]
        for expr in objects:
            root = _root_name(expr)
            if root is not None and not (self._scopes and self._scopes[-1].is_local(root)):
                self.names.called_on.add(root)

    def _read_only_call(self, node: ast.Call) -> bool:
        """``model.predict(X)`` on a notebook name, run now: the name is a receiver (see
        ``CellNames.read_calls``), the arguments are visited as usual."""
        func = node.func
        if not (isinstance(func, ast.Attribute) and func.attr in _READ_ONLY_METHODS
                and isinstance(func.value, ast.Name) and not self._scopes):
            return False
        self.receivers.add(func.value.id)
        self._load(func.value.id)
        for arg in [*node.args, *(k.value for k in node.keywords)]:
            self.visit(arg)
        return True

    # -- names read through the namespace: globals()['x'], eval('x + 1') -------
    def _namespace_call(self, node: ast.expr) -> bool:
        """``globals()``, or ``vars()``/``locals()`` at module level: the notebook's namespace
        (in a function, ``vars()`` and ``locals()`` are its own locals)."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args
                and not node.keywords):
            return False
        name = node.func.id
        return name == "globals" or (name in _NAMESPACE_CALLS and not self._scopes)

    def _namespace_used(self, call: ast.expr) -> None:
        """The namespace call of a use resolved exactly: its function is named (the cell is
        still dynamic: it may rebind any name), no dynamic read."""
        if isinstance(call, ast.Call):
            self.visit(call.func)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if self.env_text and isinstance(node.ctx, ast.Load):
            self._env_found(environment_variables.subscript_uses(node, self._env_bare, write=False, read=True))
        key = _constant_name(node.slice)
        if key is None or not self._namespace_call(node.value):
            self.generic_visit(node)
            return
        self._namespace_used(node.value)
        if isinstance(node.ctx, ast.Load):
            self.names.impure.add(key)
            self._load(key)
        elif not self._scopes:  # `globals()['x'] = 1` binds (or deletes) x, as `x = 1` does
            if isinstance(node.ctx, ast.Store):
                self._store(key)
            else:
                self._delete(key)

    def _code_call(self, kind: str, node: ast.Call) -> None:
        """``eval``/``exec``: code given as a constant runs in the cell's namespace (unless it
        is handed another one), so its names are read, bound and deleted as if the cell's
        own code named them; code built at run time leaves the cell's reads unknown."""
        self.visit(node.func)
        spaces = [*node.args[1:], *(k.value for k in node.keywords)]
        notebook = not spaces  # run in the cell's own namespace, or given it (`exec(code, globals())`)
        for space in spaces:
            if self._namespace_call(space):
                self._namespace_used(space)
                notebook = True
            else:
                self.visit(space)
        if not node.args:
            return
        code = node.args[0]
        value = code.value if isinstance(code, ast.Constant) else None
        text = value if isinstance(value, (str, bytes)) else None
        if not notebook or text is None:  # another namespace: the code reads what it holds
            self.visit(code)
            if notebook:
                self.names.dynamic_reads.add(kind)
            return
        self._code_text(kind, text)

    def _python_magic(self, node: ast.Call, magic: tuple[str, str, str | None]) -> bool:
        """A magic that runs Python of the cell (``%%time``, ``%prun``, ``%timeit``): its code
        read as the cell's own, magics in it expanded as IPython expands them. False: another."""
        code = _magic_code(magic)
        timed = _timeit_texts(magic) if code is None else None
        if code is None and timed is None:
            return False
        self.generic_visit(node)
        if code is not None:
            self._code_text("exec", code, expand=True)
        elif timed is not None:
            self._timeit(*timed)
        return True

    def _code_text(self, kind: str, text: str | bytes, expand: bool = False) -> None:
        """Constant code run in the cell's namespace (``expand``: a magic's, with IPython's
        transforms), read as if the cell named its names."""
        tree = self._parse(kind, text, expand)
        if tree is None:
            return
        self._code_depth += 1
        try:
            if isinstance(tree, ast.Expression):
                self.visit(tree.body)
            elif isinstance(tree, ast.Module):
                for stmt in tree.body:
                    self.visit(stmt)
        finally:
            self._code_depth -= 1

    def _timeit(self, setup: str, statement: str) -> None:
        """``%timeit``'s code, run in a function of its own with the notebook's names as globals."""
        trees = [self._parse("timeit", text, expand=True) for text in (setup, statement)]
        modules = [tree for tree in trees if isinstance(tree, ast.Module)]
        if len(modules) != len(trees):
            return
        self._code_depth += 1
        try:
            self._function(_timed_function([stmt for module in modules for stmt in module.body]), run_now=True)
        finally:
            self._code_depth -= 1

    def _parse(self, kind: str, text: str | bytes, expand: bool) -> ast.AST | None:
        """The code's tree, or None: code the parser refuses makes the call raise before it
        reads anything; code too long or too deep to follow leaves the cell's reads unknown."""
        if len(text) > MAX_CODE_TEXT or self._code_depth >= _MAX_CODE_DEPTH:
            self.names.dynamic_reads.add(kind)
            return None
        try:
            if expand and isinstance(text, str):
                text = TransformerManager().transform_cell(text)
            return ast.parse(text, mode="eval" if kind == "eval" else "exec")
        except (SyntaxError, ValueError):
            return None
        except (RecursionError, MemoryError):  # too deep for the parser here: Python may still run it
            self.names.dynamic_reads.add(kind)
            return None

    # -- evaluation order ----------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.names.impure.add(node.id)
            self._load(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._store(node.id)
        else:
            self._delete(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        named = (isinstance(node.value, ast.Lambda) and not self._scopes and len(node.targets) == 1
                 and isinstance(node.targets[0], ast.Name))
        self._lambda_named = node.value if named else None
        self._lambda_found = None
        self.visit(node.value)
        for target in node.targets:
            self._target(target)
        if named and self._lambda_found is not None:
            self._bodies[node.targets[0].id] = self._lambda_found
        self._lambda_named = None

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._target(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if self.env_text and isinstance(node.target, ast.Subscript):  # `os.environ['P'] += ':x'` reads it first
            self._env_found(environment_variables.subscript_uses(node.target, self._env_bare, write=False, read=True))
        if isinstance(node.target, ast.Name):
            name = node.target.id
            self._load(name)
            self.names.impure.add(name)
            if not (self._scopes and self._scopes[-1].is_local(name)) and not self._deferred():
                self.names.mutates.add(name)  # `lst += [1]` mutates a list in place
            self._store(name)
        else:
            self._mutate(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._target(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._target(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._store(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if self.env_text and (alias.name == "os" or (alias.name.startswith("os.") and not alias.asname)):
                self.env.imports.add((alias.asname or "os", "os"))  # binds the module os
            self._store(alias.asname or alias.name.split(".", 1)[0])

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if self.env_text and node.module == "os" and not node.level:
            for alias in node.names:
                if alias.name in _OS_MEMBERS:
                    self.env.imports.add((alias.asname or alias.name, alias.name))
            self._env_bare = self.env.bare()
        for alias in node.names:
            if alias.name != "*":
                self._store(alias.asname or alias.name)

    def visit_Global(self, node: ast.Global) -> None:
        if self._scopes:
            self._scopes[-1].globals.update(node.names)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, (ast.Attribute, ast.Subscript)):
                self._mutate(target)  # `del df['a']` changes df
            else:
                self.visit(target)

    # -- scopes ------------------------------------------------------------
    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda, run_now: bool = False) -> None:
        """A definition: the globals its body names are read when it runs (``run_now``: the
        cell runs it at once and binds no name for it, as ``%timeit`` does)."""
        for default in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(default)
        if not isinstance(node, ast.Lambda):
            for deco in node.decorator_list:
                self.visit(deco)
        scope = _Scope(deferred=True)
        args = node.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs:
            scope.locals.add(arg.arg)
        if args.vararg:
            scope.locals.add(args.vararg.arg)
        if args.kwarg:
            scope.locals.add(args.kwarg.arg)
        body: list[ast.stmt] = node.body if isinstance(node.body, list) else [ast.Expr(node.body)]
        scope.locals.update(_local_stores(body))
        scope.globals.update(_global_decls(body))
        scope.locals.difference_update(scope.globals)
        at_module_level = not self._scopes
        immediate = not self._deferred()  # a lambda made now, not inside code that runs later
        found: set[str] = set()
        self._collecting.append(found)
        self._scopes.append(scope)
        for stmt in body:
            self.visit(stmt)
        self._scopes.pop()
        self._collecting.pop()
        if run_now:
            self._run(found)
        elif not isinstance(node, ast.Lambda):
            self._store(node.name)
            if at_module_level:
                self._bodies[node.name] = found
        elif self._lambda_named is node:  # `f = lambda ...`: a definition, as `def f` is
            self._lambda_found = found
        elif immediate:  # `df.apply(lambda r: r.a * k)`: handed to code that runs it now
            self._run(found)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._function(node)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._function(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.bases + [k.value for k in node.keywords] + node.decorator_list:
            self.visit(expr)
        scope = _Scope()
        scope.locals.update(_local_stores(node.body))
        at_module_level = not self._scopes
        found: set[str] = set()  # what its methods name (its body's own loads are read now)
        self._collecting.append(found)
        self._scopes.append(scope)
        for stmt in node.body:
            self.visit(stmt)
        self._scopes.pop()
        self._collecting.pop()
        self._store(node.name)
        if at_module_level:
            self._bodies[node.name] = found

    def _comprehension(self, node: Any, elements: list[ast.expr]) -> None:
        generators: list[ast.comprehension] = node.generators
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        scope = _Scope()
        for gen in generators:
            for n in ast.walk(gen.target):
                if isinstance(n, ast.Name):
                    scope.locals.add(n.id)
        if self._scopes:
            scope.globals.update(self._scopes[-1].globals)
            scope.locals.update(self._scopes[-1].locals)
        self._scopes.append(scope)
        for i, gen in enumerate(generators):
            if i:
                self.visit(gen.iter)
            for cond in gen.ifs:
                self.visit(cond)
        for element in elements:
            self.visit(element)
        self._scopes.pop()

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node, [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._comprehension(node, [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._comprehension(node, [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])


# scikit-learn's and LightGBM's methods that read a fitted model and leave it as it was
_READ_ONLY_METHODS = frozenset({
    "predict", "predict_proba", "predict_log_proba", "decision_function", "score", "score_samples",
    "transform", "staged_predict", "staged_predict_proba", "get_params", "get_feature_names_out",
})
# methods of a database connection that query none of its tables (``CellNames.called_on``)
_NO_QUERY_METHODS = frozenset({"close", "cursor", "commit", "rollback", "begin", "interrupt", "register", "unregister",
                               "create_function", "remove_function"})
_PURE_CALLS = frozenset({"len", "print", "repr", "str", "type", "isinstance", "id", "display", "bool", "hash"})


@dataclass
class _Scope:
    locals: set[str] = field(default_factory=set)
    globals: set[str] = field(default_factory=set)
    deferred: bool = False

    def is_local(self, name: str) -> bool:
        return name in self.locals and name not in self.globals


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _local_stores(body: list[ast.stmt]) -> set[str]:
    """Names bound anywhere in a function body (not in nested functions)."""
    found: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            found.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found.add(node.name)
            continue
        elif isinstance(node, ast.Lambda):
            continue
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                found.add(alias.asname or alias.name.split(".", 1)[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            found.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _global_decls(body: list[ast.stmt]) -> set[str]:
    found: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global):
            found.update(node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        stack.extend(ast.iter_child_nodes(node))
    return found
