"""`%lineage`: the session's lineage inline, as an ipywidgets widget (timeline + details).

For frontends without the nbgov labextension (classic tools, VS Code, Colab-like hosts).
Everything from the notebook (code, names, paths, messages) is escaped before it reaches
an HTML widget, and the timeline is a Select whose options are plain text.
"""

from __future__ import annotations

import html
import shlex
import warnings
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from nbgov.errors import NbgovError
from nbgov.lineage.record import ExecutionRecord, Fingerprint, LogEntry

DEFAULT_LAST = 200
MAX_LIVE = 3


class LineageUsageError(NbgovError):
    """Bad arguments to %lineage."""


class Recorder(Protocol):
    """The part of the lineage recorder the widget reads."""

    @property
    def records(self) -> list[LogEntry]: ...

    def subscribe(self, callback: Callable[[LogEntry], None]) -> Callable[[], None]: ...

    def stale(self, now_files: bool = True) -> dict[str, list[str]]: ...


def short(hash_: str | None, n: int = 8) -> str:
    """First characters of a hash, for display."""
    return hash_[:n] if hash_ else "—"


def _clock(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%H:%M:%S")
    except (ValueError, AttributeError):
        return str(iso)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def timeline_rows(
    records: Sequence[ExecutionRecord],
    stale: Mapping[str, Sequence[str]],
    last: int = DEFAULT_LAST,
) -> list[tuple[str, str]]:
    """(label, record id) per execution, newest first: count, time, duration, status, stale."""
    rows: list[tuple[str, str]] = []
    for record in list(records)[::-1][:last]:
        first_line = record.code.strip().splitlines()[0:1]
        parts = [
            record.label,
            _clock(record.started),
            _duration(record.duration_s),
            "ok" if record.status == "ok" else "ERROR",
        ]
        if record.id in stale:
            parts.append("STALE")
        parts.append((first_line[0][:60] if first_line else ""))
        rows.append(("  ".join(parts), record.id))
    return rows


def _fp(fp: Fingerprint | None) -> str:
    if fp is None:
        return "—"
    text = " ".join(x for x in (fp.kind, fp.summary) if x)
    return f"{text} {short(fp.hash)}" + (" (weak)" if fp.weak else "")


def details_text(record: ExecutionRecord, by_id: Mapping[str, ExecutionRecord], stale: Sequence[str]) -> str:
    """One execution as plain text: status, code, reads/writes, files, models, SQL."""

    def producer(source: str | None) -> str:
        if not source:
            return "before lineage"
        other = by_id.get(source)
        return other.label if other else source

    lines = [f"Execution {record.label}  {_clock(record.started)}  {_duration(record.duration_s)}  {record.status}"]
    if record.error is not None:
        lines.append(f"error: {record.error.type}: {record.error.message}")
    lines += [f"stale: {reason}" for reason in stale]
    lines += ["", "code as executed:", record.code]
    sections: list[tuple[str, list[str]]] = [
        ("reads", [f"{r.name}: {_fp(r.fingerprint)} from {producer(r.source)}" for r in record.reads]),
        ("writes", [f"{w.name}: {_fp(w.fingerprint)}" + (" (mutated)" if w.mutated else "") for w in record.writes]),
        ("result", [_fp(record.result)] if record.result else []),
        ("deletes", list(record.deletes)),
        ("files", [f"{f.mode} {f.path} {short(f.hash)}" for f in record.files]),
        ("models", [f"{m.role} {m.key} sha256 {short(m.sha256)} {m.producer or ''} opset {m.opset}"
                    for m in record.models]),
        ("sql", [f"{q.kind}: {q.statement}" for q in record.sql]),
        ("notes", list(record.notes)),
    ]
    for title, items in sections:
        if items:
            lines += ["", f"{title}:"] + [f"  {item}" for item in items]
    return "\n".join(lines)


class LineageWidget:
    """Timeline (a Select of text rows) above the selected execution's details; live."""

    def __init__(self, recorder: Recorder, last: int = DEFAULT_LAST) -> None:
        import ipywidgets as w

        self._recorder = recorder
        self._last = last
        self._by_id: dict[str, ExecutionRecord] = {}
        self._stale_now: Mapping[str, Sequence[str]] = {}
        self.timeline = w.Select(options=[], rows=12, layout=w.Layout(width="100%"))
        self.details = w.HTML()
        self.header = w.Label()
        self.widget = w.VBox([self.header, self.timeline, self.details])
        self.timeline.observe(lambda _change: self._show_details(), names="value")
        self._unsubscribe: Callable[[], None] | None = recorder.subscribe(self._on_entry)
        self.refresh()

    def _on_entry(self, entry: LogEntry) -> None:
        # The recorder lists the entry before telling subscribers, so a refresh sees it;
        # a display problem must never break the user's cell.
        try:
            self.refresh()
        except Exception as exc:
            warnings.warn(f"nbgov: %lineage widget not updated: {type(exc).__name__}: {exc}", stacklevel=2)

    def _records(self) -> list[ExecutionRecord]:
        return [e.record for e in self._recorder.records if e.record is not None]

    def _stale(self) -> Mapping[str, Sequence[str]]:
        # cheap: the recorder keeps the one stale rule current per entry, no sidecar reread
        try:
            return self._recorder.stale(now_files=False)
        except Exception:
            return {}

    def refresh(self) -> None:
        """Rebuild the timeline from the recorder (keeps the selection when still there)."""
        records = self._records()
        self._by_id = {r.id: r for r in records}
        self._stale_now = self._stale()
        rows = timeline_rows(records, self._stale_now, self._last)
        shown = min(self._last, len(records))
        self.header.value = f"Lineage: {len(records)} executions (newest first, showing {shown})"
        selected = self.timeline.value
        self.timeline.options = rows
        if rows:
            self.timeline.value = selected if selected in {rid for _, rid in rows} else rows[0][1]
        self._show_details()

    def _show_details(self) -> None:
        body = self._by_id.get(str(self.timeline.value))
        if body is None:
            self.details.value = "<i>No executions recorded yet.</i>"
            return
        text = details_text(body, self._by_id, self._stale_now.get(body.id, []))
        self.details.value = f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"

    def stop(self) -> None:
        """Stop following the recorder (the view stays, frozen)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def close(self) -> None:
        """Stop following the recorder and close the widgets."""
        self.stop()
        self.widget.close()


def parse_args(line: str) -> int:
    """`%lineage [--last N]` → N."""
    try:
        args = shlex.split(line)
    except ValueError as exc:
        raise LineageUsageError(f"%lineage: {exc} (expected: %lineage [--last N])") from None
    if not args:
        return DEFAULT_LAST
    if len(args) == 2 and args[0] == "--last" and args[1].isdigit() and int(args[1]) > 0:
        return int(args[1])
    raise LineageUsageError(
        f"%lineage: unexpected arguments {line.strip()!r} (expected: %lineage [--last N], N > 0)"
    )


class InstalledLineageMagic:
    """The registered %lineage magic; ``uninstall()`` removes it and closes its widgets."""

    def __init__(self, shell: Any, recorder: Recorder) -> None:
        self._shell = shell
        self._recorder = recorder
        self.widgets: list[LineageWidget] = []
        shell.register_magic_function(self.lineage, magic_kind="line", magic_name="lineage")

    def lineage(self, line: str = "") -> None:
        """Show this session's lineage: a timeline of executions and the selected one's details."""
        from IPython.core.error import UsageError
        from IPython.display import display

        try:
            last = parse_args(line)
        except NbgovError as exc:
            raise UsageError(str(exc)) from None
        view = LineageWidget(self._recorder, last)
        self.widgets.append(view)
        for old in self.widgets[:-MAX_LIVE]:
            old.stop()  # only the newest few keep updating, so many %lineage calls stay cheap
        display(view.widget)

    def uninstall(self) -> None:
        """Unregister %lineage and stop every widget it created."""
        for view in self.widgets:
            view.close()
        self.widgets.clear()
        self._shell.magics_manager.magics["line"].pop("lineage", None)


def install(shell: Any, recorder: Recorder) -> InstalledLineageMagic:
    """Register `%lineage` on ``shell`` for ``recorder``'s session."""
    return InstalledLineageMagic(shell, recorder)
