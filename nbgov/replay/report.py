"""How results reach a reviewer: rich tables in the terminal, and a self-contained HTML page.

Everything that comes from the notebook (code, names, messages) goes through
nbgov.replay.safe_text before it reaches a terminal or the page; the page loads
nothing from the network, runs no script, and is well-formed XML (XHTML) whatever the
notebook holds. The replay output shows each step's whole code: a reviewer sees
every line that ran.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nbgov.lineage.placement import relocated
from nbgov.lineage.record import ExecutionRecord, Fingerprint, as_entries, result_name
from nbgov.lineage.stale import stale_records
from nbgov.lineage.store import count_entries
from nbgov.replay.graph import build_graph, to_svg
from nbgov.replay.replayer import DIVERGED, REPRODUCED, UNVERIFIABLE, ReplayResult, StepResult
from nbgov.replay.safe_text import for_terminal, for_xml, preview
from nbgov.replay.source import LineageLog
from nbgov.replay.verify import VerifyResult
from nbgov.widgets import plural

STATUS_STYLE = {REPRODUCED: "green", DIVERGED: "red", UNVERIFIABLE: "yellow"}


def _t(text: object) -> Text:
    """Notebook text for a rich table cell: escaped, never read as markup."""
    return Text(for_terminal(str(text), keep_newlines=False))


def _names(items: Sequence[Any]) -> str:
    return ", ".join(str(i.name) for i in items)


def stale_of(log: LineageLog) -> dict[str, list[str]]:
    """Record id -> why it is stale (the one rule, nbgov.lineage.stale), with the files read
    where a replay would read them now (nbgov.lineage.placement): a copied folder is
    checked in the copy, not in the folder it was copied from."""
    return stale_records(relocated(as_entries(log.entries), log.notebook))


def weak_writes(record: ExecutionRecord) -> list[dict[str, str]]:
    """The values the execution wrote (its displayed result too) whose fingerprint is weak,
    with why: replay cannot compare them, so `show` must not let the row look exact."""
    written: list[tuple[str, Fingerprint]] = [(w.name, w.fingerprint) for w in record.writes]
    if record.result is not None:
        written.append((result_name(record.execution_count), record.result))
    if record.more_writes is not None:
        written.append((f"{plural(record.more_writes.count, 'more name')}", record.more_writes.fingerprint))
    return [{"name": name, "reason": fp.reason or fp.summary or f"a {fp.kind} nbgov cannot read"}
            for name, fp in written if fp.weak or fp.hash is None]


def weak_note(record: ExecutionRecord) -> str | None:
    """One short line naming the weak written values and why, each reason to its first
    clause (``show --json`` has them whole); None when every value is exact."""
    weak = weak_writes(record)
    if not weak:
        return None
    return "unverifiable: " + ", ".join(f"{w['name']} ({w['reason'].split(': ')[0]})" for w in weak)


# -- nbgov show ----------------------------------------------------------------------

WIDE = 120  # from this terminal width on, `show` adds the duration and data-flow columns


def log_table(records: Sequence[ExecutionRecord], stale: Mapping[str, Sequence[str]], title: str,
              width: int) -> Table:
    """`nbgov show`: one row per recorded execution, fitted to ``width`` columns: narrow
    terminals keep the count, cell, status, code preview and error or stale reason. The
    record's own notes (what it could not record exactly, and why) come before the stale
    reasons: a reviewer reading only this table must see that a record is incomplete."""
    wide = width >= WIDE
    fixed = {"#": 4, "cell": 8, "status": 12, **({"s": 6} if wide else {})}
    shares = {"code": 3, **({"reads → writes": 2} if wide else {}), "error / stale": 3}
    room = max(30, width - sum(fixed.values()) - 2 * (len(fixed) + len(shares)))
    table = Table(title=_t(title), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, expand=False)
    for name, size in fixed.items():
        table.add_column(name, justify="right" if name in ("#", "s") else "left", no_wrap=True, max_width=size)
    for name, share in shares.items():
        table.add_column(name, overflow="ellipsis", no_wrap=True,
                         width=max(8, room * share // sum(shares.values())))
    for record in records:
        reasons = stale.get(record.id, ())
        status = Text(record.status, style="green" if record.status == "ok" else "red")
        if reasons:
            status.append(" stale", style="yellow")
        notes = ([f"{record.error.type}: {record.error.message}"] if record.error else [])
        notes += [*record.notes, *filter(None, [weak_note(record)]), *(f"stale: {reason}" for reason in reasons)]
        note = Text(for_terminal("; ".join(notes), keep_newlines=False), style="red" if record.error else "yellow")
        row: list[Text | str] = [str(record.execution_count), _t((record.cell_id or "")[:8]), status]
        if wide:
            row.append(f"{record.duration_s:.2f}")
        row.append(_t(preview(record.code, 200)))
        if wide:
            row.append(_t(f"{_names(record.reads) or '—'} → {_names(record.writes) or '—'}"))
        row.append(note)
        table.add_row(*row)
    return table


def print_log(log: LineageLog, console: Console) -> None:
    records = log.execution_records()
    title = f"{log.notebook.name} — {count_entries(log.entries)} ({log.source})"
    console.print(log_table(records, stale_of(log), title, console.width))


def log_json(log: LineageLog) -> dict[str, Any]:
    """`nbgov show --json`: a summary per execution (with stale reasons) and the raw entries."""
    stale = stale_of(log)
    return {
        "notebook": str(log.notebook),
        "source": log.source,
        "counts": count_entries(log.entries),
        "executions": [{
            "seq": entry["seq"], "id": record.id, "execution_count": record.execution_count,
            "cell_id": record.cell_id, "status": record.status,
            "error": record.error.to_json() if record.error else None,
            "preview": preview(record.code, 200), "notes": list(record.notes), "stale": stale.get(record.id, []),
            "weak": weak_writes(record),
        } for entry, record in zip(log.executions(), log.execution_records())],
        "entries": log.entries,
    }


# -- nbgov replay ----------------------------------------------------------------------

def _step_header(step: StepResult) -> Text:
    text = Text(f"step {step.step}  [{step.execution_count}]  cell {for_terminal(step.cell_id or '—')}  ")
    text.append(step.status, style=STATUS_STYLE[step.status])
    text.append(f"  ({step.recorded_seconds:.2f}s recorded, {step.replay_seconds:.2f}s now)", style="dim")
    return text


def _step_body(step: StepResult) -> Text:
    lines = for_terminal(step.code).splitlines() or [""]
    text = Text("\n".join(f"  │ {line}" for line in lines), style="cyan")
    for cause in step.causes:
        text.append(f"\n  ✗ {for_terminal(cause.text(), keep_newlines=False)}", style="red")
    for what in step.verdict.unverifiable:
        text.append(f"\n  ? not compared: {for_terminal(what, keep_newlines=False)}", style="yellow")
    for note in step.verdict.notes:
        text.append(f"\n  · {for_terminal(note.text(), keep_newlines=False)}", style="dim")
    return text


def print_replay(result: ReplayResult, console: Console) -> None:
    """Every step with its whole code, then the first divergence and a one-line verdict."""
    if result.unverified:
        console.print(Text(f"UNVERIFIED LOG: {for_terminal(result.unverified, keep_newlines=False)}",
                           style="bold red"))
    console.print(Text(f"replay of {for_terminal(result.notebook.name)}", style="bold"))
    for note in result.notes:
        console.print(Text(f"note: {for_terminal(note, keep_newlines=False)}", style="yellow"), soft_wrap=True)
    for step in result.steps:
        console.print(_step_header(step))
        console.print(_step_body(step))
    first = result.first_divergence
    done = len(result.steps)
    counts = (f"{result.count(REPRODUCED)} reproduced, {result.count(DIVERGED)} diverged, "
              f"{result.count(UNVERIFIABLE)} unverifiable")
    if first is not None:
        console.print(Text(f"first divergence: step {first.step} ([{first.execution_count}]): "
                           + for_terminal("; ".join(c.text() for c in first.causes), keep_newlines=False),
                           style="bold red"))
        console.print(Text(f"{plural(done, 'step')}: {counts}", style="bold red"))
    elif result.count(UNVERIFIABLE):
        console.print(Text(f"{plural(done, 'step')}: {counts} (the '? not compared' lines say what could not be "
                           "compared exactly, and why)", style="bold yellow"))
    else:
        console.print(Text("1 step reproduced" if done == 1 else f"all {done} steps reproduced", style="bold green"))
    if result.stopped is not None:
        console.print(Text(f"stopped at step {done} of {result.total_steps}: "
                           + for_terminal(result.stopped, keep_newlines=False), style="bold red"), soft_wrap=True)
    elif done < result.total_steps:
        console.print(f"stopped after step {done} of {result.total_steps} (--until)")
    console.print(f"replay {result.wall_seconds:.2f}s (kernel start {result.kernel_seconds:.2f}s) "
                  f"vs recorded {result.recorded_seconds:.2f}s")


# -- nbgov verify ----------------------------------------------------------------------

def print_verify(result: VerifyResult, console: Console) -> None:
    for notice in result.notices:
        console.print(Text(f"note: {for_terminal(notice, keep_newlines=False)}", style="yellow"), soft_wrap=True)
    for signer in result.signers:
        console.print(Text(f"✓ {for_terminal(signer, keep_newlines=False)}", style="green"), soft_wrap=True)
    name = for_terminal(result.notebook.name)
    if result.problems:
        for problem in result.problems:
            console.print(Text(f"✗ {for_terminal(problem, keep_newlines=False)}", style="red"), soft_wrap=True)
        console.print(Text(f"{name}: lineage tampered, corrupted or inconsistent "
                           f"({plural(len(result.problems), 'problem')})", style="bold red"))
    else:
        console.print(Text(f"{name}: lineage intact ({result.counts or 'no entries'}; {result.sidecar_entries} "
                           f"in the sidecar, {result.metadata_entries} in the notebook metadata)",
                           style="bold green"), soft_wrap=True)


# -- the HTML report ---------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#212121;max-width:1200px}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #cfd8dc;padding:4px 8px;
vertical-align:top;text-align:left}pre{margin:0;white-space:pre-wrap;font-size:12px;max-width:640px}
.reproduced{color:#2e7d32}.diverged{color:#c62828;font-weight:bold}.unverifiable{color:#ef6c00;font-weight:bold}
tr.row-diverged td{background:#ffebee}tr.row-unverifiable td{background:#fff8e1}
.first{border:2px solid #c62828;padding:1rem;background:#ffebee;margin:1rem 0}
.warning{border:2px solid #c62828;padding:.5rem 1rem;background:#fff3e0}
.cell{font-family:monospace;font-size:12px}.note{color:#546e7a}.stale{color:#ef6c00}.failed{color:#c62828}
"""


def _step_row(step: StepResult, stale: Sequence[str]) -> str:
    causes = "".join(f"<div>✗ {for_xml(c.text())}</div>" for c in step.causes)
    error = step.original.error
    if error is not None:
        causes += f"<div class='failed'>failed when recorded: {for_xml(f'{error.type}: {error.message}')}</div>"
    causes += "".join(f"<div class='stale'>⚠ stale: {for_xml(reason)}</div>" for reason in stale)
    causes += "".join(f"<div>? not compared: {for_xml(u)}</div>" for u in step.verdict.unverifiable)
    causes += "".join(f"<div class='note'>· {for_xml(n.text())}</div>" for n in step.verdict.notes)
    cell = step.cell_id or ""
    return (f"<tr id='step-{step.step}' class='row-{step.status}'><td>{step.step}</td>"
            f"<td>{step.execution_count}</td>"
            f"<td class='cell' title='{for_xml(cell)}'>{for_xml(cell[:8])}</td>"
            f"<td class='{step.status}'>{step.status}</td>"
            f"<td>{step.recorded_seconds:.3f}</td><td>{step.replay_seconds:.3f}</td>"
            f"<td><pre>{for_xml(step.code)}</pre></td><td>{causes or '—'}</td></tr>")


def replay_html(result: ReplayResult) -> str:
    """The whole report as one XHTML string: no scripts, no external assets."""
    first = result.first_divergence
    counts = (f"{result.count(REPRODUCED)} reproduced, {result.count(DIVERGED)} diverged, "
              f"{result.count(UNVERIFIABLE)} unverifiable")
    if first is None:
        tone = UNVERIFIABLE if result.count(UNVERIFIABLE) else REPRODUCED
        verdict = f"<p class='{tone}'>{plural(len(result.steps), 'step')}: {counts}.</p>"
    else:
        items = "".join(f"<li>{for_xml(c.text())}</li>" for c in first.causes)
        verdict = (f"<div class='first'><h2>First divergence: step {first.step}</h2>"
                   f"<p>[{first.execution_count}] cell {for_xml(str(first.cell_id))}</p>"
                   f"<pre>{for_xml(first.code)}</pre><ul>{items}</ul><p>{counts}</p></div>")
    notes = "".join(f"<p class='note'>note: {for_xml(n)}</p>" for n in result.notes)
    warning = (f"<p class='warning'>Unverified log: {for_xml(result.unverified)}</p>" if result.unverified else "")
    if result.stopped is not None:
        warning += (f"<p class='warning'>Stopped at step {len(result.steps)} of {result.total_steps}: "
                    f"{for_xml(result.stopped)}</p>")
    status = {s.record_id: s.status for s in result.steps}
    stale = stale_of(result.log)
    svg = to_svg(build_graph(result.log.execution_records(), stale), status)
    rows = "".join(_step_row(s, stale.get(s.record_id, ())) for s in result.steps)
    title = for_xml(f"nbgov replay: {result.notebook.name}")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head><meta charset="utf-8"/><title>{title}</title>
<style>{_CSS}</style></head>
<body><h1>{title}</h1>
{warning}
{notes}<p>{plural(len(result.steps), 'step')} replayed from {for_xml(result.log.source)};
replay {result.wall_seconds:.2f}s (kernel start {result.kernel_seconds:.2f}s)
vs recorded {result.recorded_seconds:.2f}s.</p>
{verdict}
<h2>Steps</h2>
<table><tr><th>step</th><th>[n]</th><th>cell</th><th>result</th><th>recorded s</th><th>replay s</th>
<th>code</th><th>causes</th></tr>{rows}</table>
<h2>Lineage graph</h2>
{svg}
</body></html>
"""
