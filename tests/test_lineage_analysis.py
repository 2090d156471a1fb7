"""Static reads/writes of a cell, in evaluation order, after IPython's transforms."""

from __future__ import annotations

import pytest
from IPython.core.interactiveshell import InteractiveShell

from nbgov.lineage.analysis import analyze, transform


@pytest.mark.parametrize(
    ("code", "loads", "stores", "mutates", "deletes"),
    [
        ("x = x + 1", {"x"}, {"x"}, set(), set()),
        ("x = 1\nprint(x)", {"print"}, {"x"}, set(), set()),
        ("df['a'] = 1\nb = df", {"df"}, {"b"}, {"df"}, set()),
        ("obj.attr.deep = value", {"obj", "value"}, set(), {"obj"}, set()),
        ("lst.append(3)", {"lst"}, set(), set(), set()),
        ("n += 1", {"n"}, {"n"}, {"n"}, set()),
        ("del z\nq = 1", set(), {"q"}, set(), {"z"}),
        ("del df['col']", {"df"}, set(), {"df"}, set()),
        ("for i in items:\n    total = total + i", {"items", "total"}, {"i", "total"}, set(), set()),
        ("[i * k for i in rng if i > lim]", {"k", "rng", "lim"}, set(), set(), set()),
        ("import numpy as np, os.path\nfrom json import dumps as d", set(), {"np", "os", "d"}, set(), set()),
        ("with open(p) as fh:\n    text = fh.read()", {"open", "p"}, {"fh", "text"}, set(), set()),
        ("if (m := compute()):\n    pass", {"compute"}, {"m"}, set(), set()),
        ("try:\n    risky()\nexcept ValueError as err:\n    e2 = err", {"risky", "ValueError"}, {"err", "e2"}, set(), set()),
    ],
)
def test_module_level_names(code: str, loads: set[str], stores: set[str], mutates: set[str], deletes: set[str]) -> None:
    names = analyze(code)
    assert names.syntax_ok
    assert names.loads == loads
    assert names.stores == stores
    assert names.mutates == mutates
    assert names.deletes == deletes


def test_function_bodies_run_later_so_only_their_globals_become_candidates() -> None:
    names = analyze("def f(a):\n    global g\n    g = a + h\n    t = 1\n    return t\n")
    assert names.stores == {"f"}
    assert names.loads == set()  # defining f reads nothing yet
    assert {"g", "h"} <= names.referenced and "t" not in names.referenced and "a" not in names.referenced
    lam = analyze("key = lambda row: row[col]")
    assert lam.stores == {"key"} and lam.loads == set() and "col" in lam.referenced


def test_class_bodies_run_immediately() -> None:
    names = analyze("class C(Base):\n    size = default_size\n    def m(self):\n        return q\n")
    assert names.loads == {"Base", "default_size"} and names.stores == {"C"}


def test_syntax_errors_yield_no_names_and_are_marked() -> None:
    names = analyze("x = (")
    assert not names.syntax_ok and names.loads == set() and names.dynamic


def test_exec_globals_and_magics_mark_the_cell_dynamic() -> None:
    assert analyze("exec('y = 1')").dynamic
    assert analyze("globals()['y'] = 2").dynamic
    assert not analyze("y = 2").dynamic



@pytest.mark.parametrize(
    ("code", "loads", "stores", "why"),
    [
        ("g = globals()['thr'] * 10", {"thr"}, {"g"}, set()),
        ("x = globals().get('k', 0)", {"k"}, {"x"}, set()),
        ("e = eval('thr + 1')", {"thr"}, {"e"}, set()),
        ("exec('import os\\nc = os.sep + w', globals())", {"w"}, {"c", "os"}, set()),
        ("exec('exec(\"a = b\")')", {"b"}, {"a"}, set()),
        ("globals()['z'] = y", {"y"}, {"z"}, set()),
        ("if 'df' not in globals():\n    df = 1", set(), {"df"}, set()),  # whether it exists, not its value
        ("eval('x', {'x': y})", {"y"}, set(), set()),  # another namespace: what it holds
        ("eval('(')", set(), set(), set()),  # raises before reading anything
        ("e = eval(text)", {"text"}, {"e"}, {"eval"}),
        ("exec(code, globals())", {"code"}, set(), {"exec"}),
        ("name = 'thr'\nv = globals()[name]", set(), {"name", "v"}, {"globals()"}),
        ("v = vars()", set(), {"v"}, {"vars()"}),
        ("f(locals())", {"f"}, set(), {"locals()"}),
        ("def f():\n    return locals()['a']", set(), {"f"}, set()),  # a function's own locals
        ("def f():\n    return eval(s)", set(), {"f"}, {"eval"}),
    ],
)
def test_names_read_through_the_namespace(code: str, loads: set[str], stores: set[str], why: set[str]) -> None:
    """``globals()['thr']`` and ``eval('thr + 1')`` read thr: a constant key or code is read
    exactly; a name or code known only at run time makes the cell's reads incomplete, and
    says how (the cell stays dynamic either way: it may rebind any name)."""
    names = analyze(code)
    builtins = {"globals", "vars", "locals", "eval", "exec"}
    assert names.loads - builtins == loads
    assert names.stores == stores
    assert names.dynamic_reads == why
    assert names.dynamic


def test_a_magics_name_and_body_are_not_paths_its_argument_line_may_be(bare_shell: InteractiveShell) -> None:
    cell = analyze(transform(bare_shell, "%%sqlml --db shop.duckdb\nSELECT 1"))
    assert "sqlml" not in cell.strings and "--db shop.duckdb" in cell.strings
    assert "SELECT 1" not in cell.strings  # the SQL: its files are what %%sqlml reports
    assert analyze(transform(bare_shell, "%%bash\ncat data.csv")).strings == ()
    assert analyze(transform(bare_shell, "%run script.py")).strings == ("script.py",)
    # the same name given to anything else is still a path the code names
    assert analyze("open('sqlml')").strings == ("sqlml",)
    assert analyze("shell.run_cell_magic('sqlml', '', 'data.csv')").strings == ("sqlml", "data.csv")


def test_magics_are_analysed_after_ipython_transforms(bare_shell: InteractiveShell) -> None:
    code = transform(bare_shell, "files = !ls {folder}\n%time total = compute(files)")
    assert "get_ipython()" in code
    names = analyze(code)
    assert "files" in names.stores and "folder" not in names.stores
    assert names.dynamic  # get_ipython().run_line_magic may bind anything
    plain = "x = 1\n"
    assert transform(bare_shell, plain) == plain


@pytest.mark.parametrize(("code", "exact", "unresolved"), [
    ("y = _", [("_", 1, 0)], []),
    ("y = (__, ___)", [("__", 2, 0), ("___", 3, 0)], []),
    ("y = _3 + Out[3] + Out.get(4) + _oh[5]", [("_3", 0, 3), ("Out[3]", 0, 3), ("Out.get(4)", 0, 4),
                                               ("_oh[5]", 0, 5)], []),
    ("y = Out[i]", [], ["Out"]),
    ("n = len(Out) + len(_oh.values())", [], ["Out", "_oh"]),
    ("y = Out.get(k, 0) + Out[-1]", [], ["Out"]),
])
def test_reads_of_the_output_history_name_one_result_only_by_a_constant(
    code: str, exact: list[tuple[str, int, int]], unresolved: list[str]
) -> None:
    history = analyze(code).history
    assert history is not None
    assert sorted((r.spelled, r.back, r.count) for r in history.refs) == sorted(exact)
    assert list(history.unresolved) == unresolved


@pytest.mark.parametrize("code", ["x = 1", "_ = 5", "for _ in range(3):\n    pass", "q = [_ for _ in range(3)]",
                                  "Out = {}\ny = Out[1]", "def f(_):\n    return _", "_private = 1\ny = _private"])
def test_cells_that_read_no_output_history_have_none(code: str) -> None:
    assert analyze(code).history is None


@pytest.mark.parametrize(
    ("cell", "loads", "why"),
    [
        ("%timeit -n 3 -r 1 rows.sum() * k", {"rows", "k"}, set()),
        ("%%timeit -r 2 scaled = rows * k\ntotal = scaled.sum() + bias", {"rows", "k", "bias"}, set()),
        ("%%timeit\nlog.append(1)\n%time w.sum()", {"log", "w"}, set()),  # a magic inside, expanded as IPython does
        ("%timeit -x rows", set(), set()),  # an option the magic refuses: nothing runs
        ("%timeit rows +", set(), set()),  # code that does not compile: nothing runs
        ("%timeit " + "x = rows; " * 12_000, set(), {"timeit"}),  # too long to follow: reads unknown
    ],
)
def test_timeit_code_reads_the_notebook_names_it_uses(
        bare_shell: InteractiveShell, cell: str, loads: set[str], why: set[str]) -> None:
    names = analyze(transform(bare_shell, cell))
    assert names.loads - {"get_ipython", "exec"} == loads
    assert names.stores == set()  # its assignments are the timed function's locals
    assert names.dynamic_reads == why


@pytest.mark.parametrize(
    ("cell", "loads", "stores"),
    [
        ("%prun -q -l 5 model = fit(rows, k)", {"fit", "rows", "k"}, {"model"}),  # run in the notebook's namespace
        ("%%prun -s cumulative\nscaled = rows * k\ntotal = scaled.sum()", {"rows", "k"}, {"scaled", "total"}),
        ("%%time\n%prun total = rows.sum()\nlater = total + k", {"rows", "k"}, {"total", "later"}),  # magics inside
        ("%%time\n!ls\nseen = rows", {"rows"}, {"seen"}),
        ("%prun -Z rows.sum()", set(), set()),  # an option the magic refuses: nothing runs
    ],
)
def test_code_profiled_or_timed_in_the_notebooks_namespace_reads_and_binds_its_names(
        bare_shell: InteractiveShell, cell: str, loads: set[str], stores: set[str]) -> None:
    names = analyze(transform(bare_shell, cell))
    assert names.loads - {"get_ipython"} == loads
    assert names.stores == stores
    assert names.dynamic_reads == set()
