"""`%lineage`: the notebook's lineage inline, for frontends without the nbgov sidebar.

One displayed object carries three representations: a live ipywidgets view
(timeline + details, updated as cells run), and a static HTML table and a text
table for frontends that cannot show widgets (nbconvert, GitHub, a terminal,
`nbgov run --print-outputs`). All three are built from the same typed records and
say the same counts. Notebook content (code, names, paths, messages) is escaped
before it reaches any HTML, and the widget's timeline is a Select of plain text.
"""

from __future__ import annotations

import html
import shlex
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from nbgov.errors import NbgovError
from nbgov.lineage.record import ExecutionRecord, Fingerprint, LogEntry, ModelRole, RecordError, parse_entry, result_name
from nbgov.lineage.store import SidecarStore, count_entries

DEFAULT_LAST = 200
MAX_LIVE = 3
PREVIEW_WIDTH = 60
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
MODEL_VERBS: dict[ModelRole, str] = {"input": "used", "output": "created", "dropped": "dropped"}


class LineageUsageError(NbgovError):
    """Bad arguments to %lineage."""


class LineageSource(Protocol):
    """The part of the lineage recorder `%lineage` reads."""

    @property
    def store(self) -> SidecarStore | None: ...

    def entries(self) -> list[LogEntry]: ...

    def subscribe(self, callback: Callable[[LogEntry], None]) -> Callable[[], None]: ...

    def stale(self, now_files: bool = True) -> dict[str, list[str]]: ...


def plural(n: int, word: str, words: str | None = None) -> str:
    """``1 execution``, ``2 executions``: the one wording for counts."""
    return f"{n:,} {word if n == 1 else (words or word + 's')}"


def short(hash_: str | None, n: int = 8) -> str:
    """First characters of a hash, for display."""
    return hash_[:n] if hash_ else "—"


def clock(iso: str) -> str:
    """``13:04:05`` from an ISO timestamp (the text itself when it does not parse)."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).strftime("%H:%M:%S")
    except ValueError:
        return iso


def duration(seconds: float | None) -> str:
    """``17 ms``, ``2.31 s``."""
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


class NotebookLog:
    """The notebook's log as typed entries, in log order, each once (by hash)."""

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []  # sessions and repairs too, for the counts
        self.executions: list[ExecutionRecord] = []
        self.unreadable = 0
        self._hashes: set[str] = set()
        self._by_id: dict[str, ExecutionRecord] = {}

    def add_stored(self, raw: Mapping[str, Any]) -> bool:
        """Take one entry as stored in the sidecar; one without the recorded shape is
        counted as unreadable (`nbgov verify` says why), never shown."""
        digest = raw.get("hash")
        if isinstance(digest, str) and digest in self._hashes:
            return False
        try:
            entry = parse_entry(raw)
        except RecordError:
            if isinstance(digest, str):
                self._hashes.add(digest)
            self.unreadable += 1
            return False
        return self.add(entry)

    def add(self, entry: LogEntry) -> bool:
        """Take one typed entry (ignored when already seen); True when an execution was added."""
        if entry.hash in self._hashes:
            return False
        self._hashes.add(entry.hash)
        self.entries.append(entry)
        record = entry.record
        if record is None:
            return False
        self.executions.append(record)
        self._by_id[record.id] = record
        return True

    def by_id(self, record_id: str) -> ExecutionRecord | None:
        return self._by_id.get(record_id)


@dataclass(frozen=True)
class TimelineRow:
    """One execution as the timeline shows it."""

    record_id: str
    execution_count: int
    started: str
    duration: str
    ok: bool
    preview: str
    error: str | None
    stale: tuple[str, ...]

    @property
    def status(self) -> str:
        return "ok" if self.ok else "error"


@dataclass(frozen=True)
class Snapshot:
    """What a view shows at one moment: the newest rows and the counts of the whole log."""

    rows: tuple[TimelineRow, ...]
    counts: str  # "15 entries: 1 session, 14 executions", as `nbgov show` and `verify` say
    executions: int
    failed: int
    stale: int
    unreadable: int

    @property
    def headline(self) -> str:
        parts = [self.counts]
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.stale:
            parts.append(f"{self.stale:,} stale")
        if self.unreadable:
            parts.append(plural(self.unreadable, "unreadable entry", "unreadable entries"))
        shown = f"newest {len(self.rows):,} shown" if len(self.rows) < self.executions else "newest first"
        return f"Lineage: {' · '.join(parts)} ({shown})"


def snapshot(log: NotebookLog, stale: Mapping[str, Sequence[str]], last: int = DEFAULT_LAST) -> Snapshot:
    """The newest ``last`` executions as rows, with counts over the whole log."""
    rows = tuple(_row(record, stale.get(record.id, ())) for record in reversed(log.executions[-last:]))
    return Snapshot(
        rows=rows,
        counts=count_entries(entry.raw for entry in log.entries),
        executions=len(log.executions),
        failed=sum(1 for r in log.executions if r.status != "ok"),
        stale=sum(1 for r in log.executions if stale.get(r.id)),
        unreadable=log.unreadable,
    )


def _row(record: ExecutionRecord, stale: Sequence[str]) -> TimelineRow:
    from nbgov.replay.safe_text import for_terminal, preview  # when a view is built, not at load

    error = for_terminal(f"{record.error.type}: {record.error.message}", keep_newlines=False) if record.error else None
    return TimelineRow(
        record_id=record.id,
        execution_count=record.execution_count,
        started=clock(record.started),
        duration=duration(record.duration_s),
        ok=record.status == "ok",
        preview=preview(record.code, PREVIEW_WIDTH),
        error=error,
        stale=tuple(for_terminal(reason, keep_newlines=False) for reason in stale),
    )


def row_label(row: TimelineRow) -> str:
    """One line per execution: count, time, duration, status, stale mark, code preview."""
    marks = row.status + (" · stale" if row.stale else "")
    return f"[{row.execution_count}]  {row.started}  {row.duration}  {marks}  {row.preview}"


def render_text(snap: Snapshot) -> str:
    """The snapshot as plain text: a headline, then one line per execution and its problems."""
    lines = [snap.headline]
    if not snap.rows:
        lines.append("  No executions recorded yet.")
    width = max((len(f"[{r.execution_count}]") for r in snap.rows), default=0)
    for r in snap.rows:
        count = f"[{r.execution_count}]".rjust(width)
        status = ("ok" if r.ok else "ERROR") + (" STALE" if r.stale else "")
        lines.append(f"  {count}  {r.started}  {r.duration:>8}  {status:<11}  {r.preview}")
        indent = " " * (width + 4)
        if r.error:
            lines.append(f"{indent}{r.error if len(r.error) <= 100 else r.error[:99] + '…'}")
        lines.extend(f"{indent}stale: {reason}" for reason in r.stale)
    return "\n".join(lines)


_CELL = "padding:2px 8px;text-align:left;vertical-align:top"


def render_html(snap: Snapshot) -> str:
    """The snapshot as a self-contained HTML table (all notebook text escaped)."""
    esc = html.escape
    head = "".join(f"<th style='{_CELL}'>{h}</th>" for h in ("#", "time", "duration", "status", "code"))
    body = []
    for r in snap.rows:
        status_colour = "#2e7d32" if r.ok else "#c62828"
        status = f"<span style='color:{status_colour}'>{r.status}</span>"
        if r.stale:
            status += " <span style='color:#b26a00;font-weight:600'>stale</span>"
        notes = []
        if r.error:
            notes.append(f"<div style='color:#c62828'>{esc(r.error)}</div>")
        notes += [f"<div style='color:#b26a00'>stale: {esc(reason)}</div>" for reason in r.stale]
        code = f"<code>{esc(r.preview)}</code>{''.join(notes)}"
        cells = (f"[{r.execution_count}]", esc(r.started), esc(r.duration), status, code)
        body.append("<tr>" + "".join(f"<td style='{_CELL}'>{c}</td>" for c in cells) + "</tr>")
    if not body:
        body.append(f"<tr><td colspan='5' style='{_CELL}'><i>No executions recorded yet.</i></td></tr>")
    return (
        f"<div class='nbgov-lineage'><p><b>{esc(snap.headline)}</b></p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _fp(fingerprint: Fingerprint) -> str:
    """Type, summary and short hash; a weak one says so, and why (a weak hash proves nothing)."""
    text = " ".join(x for x in (fingerprint.kind, fingerprint.summary) if x)
    weak = f" (weak: {fingerprint.reason})" if fingerprint.weak and fingerprint.reason else " (weak)"
    return f"{text} {short(fingerprint.hash)}" + (weak if fingerprint.weak else "")


def details_text(record: ExecutionRecord, log: NotebookLog, stale: Sequence[str]) -> str:
    """One execution as plain text: status, code, reads/writes, files, models, SQL."""
    from nbgov.replay.safe_text import for_terminal  # when a view is built, not at load

    def producer(source: str | None) -> str:
        if not source:
            return "before lineage"
        other = log.by_id(source)
        return f"[{other.execution_count}]" if other else source

    lines = [
        f"Execution [{record.execution_count}]  {clock(record.started)}"
        f"  {duration(record.duration_s)}  {record.status}",
    ]
    if record.error:
        lines.append(f"error: {record.error.type}: {record.error.message}")
    lines += [f"stale: {reason}" for reason in stale]
    lines += ["", "code as executed:", record.code]
    sections: list[tuple[str, list[str]]] = [
        ("reads", [f"{r.name}: {_fp(r.fingerprint)} from {producer(r.source)}" for r in record.reads]),
        (
            "writes",
            [f"{w.name}: {_fp(w.fingerprint)}" + (" (mutated)" if w.mutated else "") for w in record.writes]
            + ([f"{result_name(record.execution_count)}: {_fp(record.result)}"] if record.result else []),
        ),
        ("deletes", list(record.deletes)),
        ("files", [f"{'removed' if f.removed else f.mode} {f.path} {short(f.hash)}" for f in record.files]),
        (
            "models",
            [
                f"{m.name}@{m.version} {MODEL_VERBS[m.role]}"
                f" sha256 {short(m.sha256)}"
                f" {m.producer or ''} opset {m.opset}"
                for m in record.models
            ],
        ),
        ("sql", [f"{q.kind}: {q.statement}" for q in record.sql]),
    ]
    for title, items in sections:
        if items:
            lines += ["", f"{title}:"] + [f"  {item}" for item in items]
    return for_terminal("\n".join(lines))


class LineageFeed:
    """The notebook's log kept current: the sidecar (or this session) at creation, then
    each entry the recorder appends. Live updates never reread the sidecar."""

    def __init__(self, source: LineageSource) -> None:
        self._source = source
        self.log = NotebookLog()
        for raw in self._stored_entries():
            self.log.add_stored(raw)
        for entry in source.entries():  # this session's entries may not all be stored
            self.log.add(entry)
        self._listeners: list[Callable[[], None]] = []
        self._unsubscribe: Callable[[], None] | None = source.subscribe(self._on_entry)

    def _stored_entries(self) -> list[dict[str, Any]]:
        store = self._source.store
        if store is None:
            return []
        try:
            return store.entries()
        except Exception:  # an unreadable sidecar: `nbgov verify` says why; show this session
            return []

    def stale(self) -> Mapping[str, Sequence[str]]:
        """Stale flags, kept current by the recorder per entry (no sidecar reread)."""
        try:
            return self._source.stale(now_files=False)
        except Exception:
            return {}

    def listen(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def _on_entry(self, entry: LogEntry) -> None:
        # The recorder lists the entry before telling subscribers; a display problem must
        # never break the user's cell.
        self.log.add(entry)
        for callback in list(self._listeners):
            try:
                callback()
            except Exception as exc:
                warnings.warn(f"nbgov: %lineage view not updated: {type(exc).__name__}: {exc}", stacklevel=2)

    @property
    def live(self) -> bool:
        return self._unsubscribe is not None

    def stop(self) -> None:
        """Stop following the recorder (the views stay, frozen)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._listeners.clear()


class LineageWidget:
    """ipywidgets controls over a feed: headline, a Select of text rows, the selected details."""

    def __init__(self, feed: LineageFeed, last: int) -> None:
        import ipywidgets as w

        self._feed = feed
        self._last = last
        self._stale: Mapping[str, Sequence[str]] = {}
        self.header = w.Label()
        self.timeline = w.Select(options=[], rows=12, layout=w.Layout(width="100%"))
        self.details = w.HTML()
        self.box = w.VBox([self.header, self.timeline, self.details])
        self.timeline.observe(lambda _change: self._show_details(), names="value")

    def refresh(self, snap: Snapshot, stale: Mapping[str, Sequence[str]]) -> None:
        """Show ``snap`` (keeps the selection while it is still listed)."""
        self._stale = stale
        rows = [(row_label(r), r.record_id) for r in snap.rows]
        self.header.value = snap.headline
        selected = self.timeline.value
        self.timeline.options = rows
        if rows:
            self.timeline.value = selected if selected in {rid for _, rid in rows} else rows[0][1]
        self._show_details()

    def _show_details(self) -> None:
        record = self._feed.log.by_id(str(self.timeline.value))
        if record is None:
            self.details.value = "<i>No executions recorded yet.</i>"
            return
        text = details_text(record, self._feed.log, self._stale.get(record.id, ()))
        self.details.value = f"<pre style='white-space: pre-wrap'>{html.escape(text)}</pre>"

    def close(self) -> None:
        self.box.close()


class LineageView:
    """What `%lineage` displays: a live widget plus HTML and text representations of the
    same snapshot, so every frontend shows the log and the same counts."""

    def __init__(self, source: LineageSource, last: int = DEFAULT_LAST) -> None:
        self.last = last
        self.feed = LineageFeed(source)
        self.widget = LineageWidget(self.feed, last)
        self._after_next_entry: list[Callable[[], None]] = []
        self.feed.listen(self._on_entry)
        self.refresh()

    # the ipywidgets controls, for callers and tests
    @property
    def timeline(self) -> Any:
        return self.widget.timeline

    @property
    def details(self) -> Any:
        return self.widget.details

    @property
    def header(self) -> Any:
        return self.widget.header

    def snapshot(self) -> Snapshot:
        return snapshot(self.feed.log, self.feed.stale(), self.last)

    def refresh(self) -> None:
        """Rebuild the widget from the feed."""
        stale = self.feed.stale()
        self.widget.refresh(snapshot(self.feed.log, stale, self.last), stale)

    def after_next_entry(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, after the next recorded entry (the displaying cell's own)."""
        self._after_next_entry.append(callback)

    def _on_entry(self) -> None:
        self.refresh()
        pending, self._after_next_entry = self._after_next_entry, []
        for callback in pending:
            callback()

    def stop(self) -> None:
        """Stop following the recorder (the view stays, frozen)."""
        self.feed.stop()

    def close(self) -> None:
        """Stop following the recorder and close the widgets."""
        self.stop()
        self.widget.close()

    # -- representations ---------------------------------------------------
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": repr(self), "text/html": self._repr_html_()}
        widget_bundle = self.widget.box._repr_mimebundle_()
        if widget_bundle and WIDGET_VIEW_MIME in widget_bundle:
            bundle[WIDGET_VIEW_MIME] = widget_bundle[WIDGET_VIEW_MIME]
        return bundle

    def _repr_html_(self) -> str:
        return render_html(self.snapshot())

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))

    def __repr__(self) -> str:
        return render_text(self.snapshot())


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
    """The registered %lineage magic; ``uninstall()`` removes it and closes its views."""

    def __init__(self, shell: Any, recorder: LineageSource) -> None:
        self._shell = shell
        self._recorder = recorder
        self.views: list[LineageView] = []
        shell.register_magic_function(self.lineage, magic_kind="line", magic_name="lineage")

    def lineage(self, line: str = "") -> None:
        """Show the notebook's lineage: a timeline of executions and the selected one's details."""
        from IPython.core.error import UsageError
        from IPython.display import display

        try:
            last = parse_args(line)
        except NbgovError as exc:
            raise UsageError(str(exc)) from None
        view = LineageView(self._recorder, last)
        self.views.append(view)
        for old in self.views[:-MAX_LIVE]:
            old.stop()  # only the newest few keep updating, so many %lineage calls stay cheap
        handle = display(view, display_id=True)
        if handle is not None and getattr(self._shell, "kernel", None) is not None:
            # Once this cell's own record exists, refresh the static HTML/text so they list
            # it too (a terminal prints each update again, so only kernels get one).
            view.after_next_entry(lambda: handle.update(view))

    def uninstall(self) -> None:
        """Unregister %lineage and stop every view it created."""
        for view in self.views:
            view.close()
        self.views.clear()
        self._shell.magics_manager.magics["line"].pop("lineage", None)


def install(shell: Any, recorder: LineageSource) -> InstalledLineageMagic:
    """Register `%lineage` on ``shell`` for ``recorder``'s notebook."""
    return InstalledLineageMagic(shell, recorder)
