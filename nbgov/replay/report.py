"""How results reach a reviewer: rich tables in the terminal, and a self-contained HTML page.

Everything that comes from the notebook (code, names, messages) goes through
html.escape before it reaches the page; the page loads nothing from the network.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from nbgov.replay.graph import build_graph, to_svg
from nbgov.replay.replayer import ReplayResult, StepResult
from nbgov.replay.verify import VerifyResult


def first_line(code: str, width: int = 60) -> str:
    line = next((ln.strip() for ln in code.splitlines() if ln.strip()), "")
    return line if len(line) <= width else line[: width - 1] + "…"


def _names(items: Any, key: str = "name") -> str:
    return ", ".join(str(i.get(key)) for i in items or [] if isinstance(i, Mapping))


def log_table(executions: list[dict[str, Any]], title: str) -> Table:
    """`nbgov show`: one row per recorded execution."""
    table = Table(title=Text(title), title_justify="left")
    for column in ("seq", "#", "cell", "status", "s", "reads", "writes", "files", "models", "code"):
        table.add_column(column, overflow="fold")
    for entry in executions:
        body = entry["body"]
        status = Text(str(body.get("status")), style="green" if body.get("status") == "ok" else "red")
        files = ", ".join(f"{f.get('mode')[0]}:{f.get('path')}" for f in body.get("files") or [])
        models = ", ".join(f"{m.get('name')}@{m.get('version')}" for m in body.get("models") or [])
        table.add_row(
            str(entry["seq"]), str(body.get("execution_count")), Text(str(body.get("cell_id") or "")[:8]),
            status, f"{float(body.get('duration_s') or 0):.3f}", Text(_names(body.get("reads"))),
            Text(_names(body.get("writes"))), Text(files), Text(models),
            Text(first_line(str(body.get("code", "")))),
        )
    return table


def print_replay(result: ReplayResult, console: Console) -> None:
    """Summary table, then the first divergence in a panel, then the others."""
    table = Table(title=Text(f"replay of {result.notebook.name}"), title_justify="left")
    for column in ("step", "#", "cell", "result", "recorded s", "replay s", "code"):
        table.add_column(column, overflow="fold")
    for step in result.steps:
        style = "green" if not step.causes else "red"
        table.add_row(str(step.step), str(step.execution_count), Text(str(step.cell_id or "")[:8]),
                      Text(step.status, style=style), f"{step.recorded_seconds:.3f}",
                      f"{step.replay_seconds:.3f}", Text(first_line(step.code)))
    console.print(table)
    first = result.first_divergence
    if first is None:
        console.print(Text(f"all {len(result.steps)} steps reproduced", style="bold green"))
    else:
        lines = "\n".join(f"• {c.text()}" for c in first.causes)
        console.print(Panel(Text(f"step {first.step} ([{first.execution_count}] cell {first.cell_id}):\n"
                                 f"{first_line(first.code, 100)}\n{lines}"),
                            title="first divergence", border_style="red"))
        others = [s for s in result.steps if s.causes and s is not first]
        if others:
            more = Table(title="other divergences", title_justify="left")
            more.add_column("step")
            more.add_column("cause", overflow="fold")
            for step in others:
                more.add_row(str(step.step), Text("\n".join(c.text() for c in step.causes)))
            console.print(more)
        reproduced = sum(1 for s in result.steps if not s.causes)
        console.print(Text(f"{reproduced} of {len(result.steps)} steps reproduced; "
                           f"{len(result.steps) - reproduced} diverged", style="bold red"))
    if len(result.steps) < result.total_steps:
        console.print(f"stopped after step {len(result.steps)} of {result.total_steps} (--until)")
    console.print(f"replay {result.wall_seconds:.2f}s (kernel start {result.kernel_seconds:.2f}s) "
                  f"vs recorded {result.recorded_seconds:.2f}s")


def print_verify(result: VerifyResult, console: Console) -> None:
    for notice in result.notices:
        console.print(Text(f"note: {notice}", style="yellow"), soft_wrap=True)
    if result.problems:
        for problem in result.problems:
            console.print(Text(f"✗ {problem}", style="red"), soft_wrap=True)
        console.print(Text(f"{result.notebook.name}: lineage tampered or inconsistent "
                           f"({len(result.problems)} problems)", style="bold red"))
    else:
        console.print(Text(f"{result.notebook.name}: lineage intact ({result.sidecar_entries} sidecar entries, "
                           f"{result.metadata_entries} in notebook metadata)", style="bold green"))


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#212121}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #cfd8dc;padding:4px 8px;
vertical-align:top;text-align:left}pre{margin:0;white-space:pre-wrap;font-size:12px}
.ok{color:#2e7d32}.bad{color:#c62828;font-weight:bold}
.first{border:2px solid #c62828;padding:1rem;background:#ffebee;margin:1rem 0}
"""


def _step_row(step: StepResult) -> str:
    cls = "ok" if not step.causes else "bad"
    causes = "<br>".join(escape(c.text()) for c in step.causes) or "—"
    return (f"<tr id='step-{step.step}'><td>{step.step}</td><td>{escape(str(step.execution_count))}</td>"
            f"<td>{escape(str(step.cell_id or ''))}</td><td class='{cls}'>{escape(step.status)}</td>"
            f"<td>{step.recorded_seconds:.3f}</td><td>{step.replay_seconds:.3f}</td>"
            f"<td><pre>{escape(step.code)}</pre></td><td>{causes}</td></tr>")


def replay_html(result: ReplayResult) -> str:
    """The whole report as one HTML string: no scripts, no external assets."""
    first = result.first_divergence
    if first is None:
        verdict = f"<p class='ok'>All {len(result.steps)} steps reproduced.</p>"
    else:
        items = "".join(f"<li>{escape(c.text())}</li>" for c in first.causes)
        verdict = (f"<div class='first'><h2>First divergence: step {first.step}</h2>"
                   f"<p>[{escape(str(first.execution_count))}] cell {escape(str(first.cell_id))}</p>"
                   f"<pre>{escape(first.code)}</pre><ul>{items}</ul></div>")
    status = {s.record_id: s.status for s in result.steps}
    svg = to_svg(build_graph(result.log.executions()), status)
    diverged = [s for s in result.steps if s.causes]
    div_rows = "".join(f"<tr><td><a href='#step-{s.step}'>{s.step}</a></td><td>"
                       + "<br>".join(escape(c.text()) for c in s.causes) + "</td></tr>" for s in diverged)
    rows = "".join(_step_row(s) for s in result.steps)
    title = escape(f"nbgov replay: {result.notebook.name}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{_CSS}</style></head>
<body><h1>{title}</h1>
<p>{len(result.steps)} steps replayed from {escape(result.log.source)}; replay {result.wall_seconds:.2f}s
(kernel start {result.kernel_seconds:.2f}s) vs recorded {result.recorded_seconds:.2f}s.</p>
{verdict}
<h2>Divergences</h2>
{'<table><tr><th>step</th><th>causes</th></tr>' + div_rows + '</table>' if diverged else '<p>none</p>'}
<h2>Steps</h2>
<table><tr><th>step</th><th>[n]</th><th>cell</th><th>result</th><th>recorded s</th><th>replay s</th>
<th>code</th><th>causes</th></tr>{rows}</table>
<h2>Lineage graph</h2>
{svg}
</body></html>
"""
