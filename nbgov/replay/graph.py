"""The lineage graph: executions, and the variables, files and models that flow between them.

DOT for graphviz users, and an SVG drawn here (a timeline: one row per execution,
data-flow arcs on the left, files and models on the right) so the HTML report and
`nbgov graph --format svg` work without graphviz installed. A model is drawn from
the cell that created it to the cells that scored with it. Every text from the
notebook goes through nbgov.replay.safe_text, so the SVG is well-formed XML
whatever the cells hold.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from nbgov.errors import NbgovError
from nbgov.lineage.record import ExecutionRecord
from nbgov.replay.compare import created_models, is_own_source
from nbgov.replay.safe_text import for_terminal, for_xml, preview

STATUS_COLORS = {"reproduced": "#2e7d32", "diverged": "#c62828", "unverifiable": "#ef6c00", None: "#455a64"}
FAILED_FILL, STALE_FILL, PLAIN_FILL = "#ffebee", "#fff8e1", "#ffffff"


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str  # "execution" | "file" | "model"
    row: int
    title: str = ""  # shown on hover: full ids, error, stale reasons
    failed: bool = False
    stale: bool = False


@dataclass
class LineageGraph:
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # (src, dst) -> labels

    def add_edge(self, src: str, dst: str, label: str) -> None:
        labels = self.edges.setdefault((src, dst), [])
        if label not in labels:
            labels.append(label)

    def executions(self) -> list[Node]:
        return sorted((n for n in self.nodes.values() if n.kind == "execution"), key=lambda n: n.row)


def _execution_node(record: ExecutionRecord, row: int, stale: Sequence[str]) -> Node:
    title = [f"[{record.execution_count}] cell {record.cell_id or '—'}", f"record {record.id}"]
    if record.error is not None:
        title.append(f"failed: {record.error.type}: {record.error.message}")
    title += [f"stale: {reason}" for reason in stale]
    return Node(record.id, f"[{record.execution_count}] {preview(record.code, 48)}", "execution", row,
                "\n".join(title), failed=record.status != "ok", stale=bool(stale))


def build_graph(records: Sequence[ExecutionRecord], stale: Mapping[str, Sequence[str]] | None = None
                ) -> LineageGraph:
    """Nodes and edges from execution records, in log order; ``stale`` flags record ids."""
    stale = stale or {}
    graph = LineageGraph()
    ids = {r.id for r in records}
    for row, record in enumerate(records):
        rid = record.id
        graph.nodes[rid] = _execution_node(record, row, stale.get(rid, ()))
        for read in record.reads:
            if read.source in ids and read.source != rid:
                graph.add_edge(str(read.source), rid, read.name)
        for file in record.files:
            if is_own_source(file):
                continue
            fid = f"file:{file.abspath or file.path}"
            graph.nodes.setdefault(fid, Node(fid, file.path, "file", row, file.abspath or file.path))
            if file.mode == "write":
                graph.add_edge(rid, fid, "removes" if file.removed else "writes")
            else:
                graph.add_edge(fid, rid, "reads")
        created = created_models(record)
        for model in record.models:
            label = f"{model.name}@{model.version}"
            mid = f"model:{label}"
            graph.nodes.setdefault(mid, Node(mid, f"{model.name} v{model.version} ({model.sha256[:8]})", "model",
                                             row, f"{label} sha256 {model.sha256}"))
            if label in created:
                graph.add_edge(rid, mid, "creates")
                continue
            if model.role == "dropped":  # its creator draws its own edge; a drop is not a use
                graph.add_edge(rid, mid, "drops")
                continue
            if model.source in ids and model.source != rid:
                graph.add_edge(str(model.source), mid, "creates")
            graph.add_edge(mid, rid, "uses")
    return graph


def _dot_id(text: str) -> str:
    safe = for_terminal(text, keep_newlines=False)
    return '"' + safe.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: LineageGraph) -> str:
    """Graphviz DOT text; failed executions filled red, stale ones amber."""
    shapes = {"execution": "box", "file": "note", "model": "component"}
    lines = ["digraph lineage {", "  rankdir=TB;", '  node [fontname="monospace"];']
    for node in graph.nodes.values():
        style = ""
        if node.failed or node.stale:
            fill = FAILED_FILL if node.failed else STALE_FILL
            style = f', style=filled, fillcolor="{fill}"'
        tooltip = f", tooltip={_dot_id(node.title)}" if node.title else ""
        lines.append(f"  {_dot_id(node.id)} [label={_dot_id(node.label)}, shape={shapes[node.kind]}"
                     f"{style}{tooltip}];")
    for (src, dst), labels in graph.edges.items():
        lines.append(f"  {_dot_id(src)} -> {_dot_id(dst)} [label={_dot_id(', '.join(labels))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


ROW_H, BOX_W, BOX_H, LEFT, RIGHT_X, SIDE_W = 46, 420, 30, 190, 700, 270
LABEL_H = 12


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


class _Labels:
    """Places edge labels so that no two overlap: a taken slot moves the next one down."""

    def __init__(self) -> None:
        self.taken: list[tuple[float, float, float]] = []  # (x, y, width)

    def place(self, x: float, y: float, text: str) -> tuple[float, float]:
        width = 6.2 * len(text)
        while any(abs(y - ty) < LABEL_H and x < tx + tw and tx < x + width for tx, ty, tw in self.taken):
            y += LABEL_H
        self.taken.append((x, y, width))
        return x, y


def to_svg(graph: LineageGraph, status: Mapping[str, str] | None = None) -> str:
    """A self-contained SVG (no fonts or links fetched); every label escaped."""
    status = status or {}
    rows = max((n.row for n in graph.nodes.values()), default=0) + 1
    pos: dict[str, tuple[float, float, float]] = {}  # id -> (x, y_center, width)
    side_y = 0.0  # files and models stack down the right column, never overlapping
    for node in sorted(graph.nodes.values(), key=lambda n: (n.row, n.kind != "execution")):
        y = 20 + node.row * ROW_H + BOX_H / 2
        if node.kind == "execution":
            pos[node.id] = (LEFT, y, BOX_W)
        else:
            side_y = max(y, side_y + BOX_H - 2)
            pos[node.id] = (RIGHT_X, side_y, SIDE_W - 20)
    height = int(max([rows * ROW_H + 40, side_y + BOX_H + 20]))
    width = RIGHT_X + SIDE_W + 20
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#607d8b"/></marker></defs>',
    ]
    labels = _Labels()
    arcs = 0
    for (src, dst), names in graph.edges.items():
        sx, sy, sw = pos[src]
        dx, dy, dw = pos[dst]
        text = _fit(", ".join(names), 24)
        if graph.nodes[src].kind == "execution" and graph.nodes[dst].kind == "execution":
            arcs += 1
            bend = LEFT - 24 - min(150, abs(dy - sy) / 3) - 6 * (arcs % 4)
            path = f"M{sx},{sy} C{bend},{sy} {bend},{dy} {dx},{dy}"
            lx, ly = labels.place(max(2.0, bend - 6.2 * len(text) / 2), (sy + dy) / 2 + 4, text)
        else:
            x1 = sx + sw if sx < dx else sx
            x2 = dx if sx < dx else dx + dw
            path = f"M{x1},{sy} L{x2},{dy}"
            lx, ly = labels.place(x1 + 8 if sx < dx else x2 + 8, (sy if sx < dx else dy) - 4, text)
        out.append(f'<path d="{path}" fill="none" stroke="#90a4ae" marker-end="url(#arrow)"/>')
        out.append(f'<text x="{lx:.0f}" y="{ly:.0f}" fill="#37474f" font-size="10">{for_xml(text)}</text>')
    for node in graph.nodes.values():
        x, y, w = pos[node.id]
        top = y - BOX_H / 2
        title = for_xml(node.title or node.id)
        if node.kind == "execution":
            state = status.get(node.id)
            color = STATUS_COLORS.get(state, STATUS_COLORS[None])
            fill = FAILED_FILL if node.failed else STALE_FILL if node.stale else PLAIN_FILL
            dash = ' stroke-dasharray="5,3"' if node.stale and not node.failed else ""
            badge = " ✗ failed" if node.failed else " ⚠ stale" if node.stale else ""
            hover = for_xml(f"{node.title}\n{state}") if state else title
            out.append(f'<g class="execution"><title>{hover}</title><rect x="{x}" y="{top}" width="{w}" '
                       f'height="{BOX_H}" rx="4" fill="{fill}" stroke="{color}" stroke-width="2"{dash}/>')
            label = _fit(node.label, 56 - len(badge))
            badge_color = "#c62828" if node.failed else "#ef6c00"
            out.append(f'<text x="{x + 8}" y="{y + 4}" fill="#212121">{for_xml(label)}'
                       f'<tspan fill="{badge_color}">{for_xml(badge)}</tspan></text></g>')
        else:
            fill = "#e3f2fd" if node.kind == "file" else "#fff3e0"
            out.append(f'<g class="{node.kind}"><title>{title}</title><rect x="{x}" y="{top + 4}" width="{w}" '
                       f'height="{BOX_H - 8}" rx="10" fill="{fill}" stroke="#90a4ae"/>')
            label = node.label if len(node.label) <= 34 else "…" + node.label[-33:]
            out.append(f'<text x="{x + 8}" y="{y + 4}" fill="#212121">{for_xml(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_svg(graph: LineageGraph) -> str:
    """SVG through graphviz `dot` when it is installed, else the built-in timeline drawing."""
    dot = shutil.which("dot")
    if dot is None:
        return to_svg(graph)
    done = subprocess.run([dot, "-Tsvg"], input=to_dot(graph), capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        first = done.stderr.strip().splitlines()[0] if done.stderr.strip() else "?"
        raise NbgovError(f"graphviz dot failed: {first}")
    return done.stdout
