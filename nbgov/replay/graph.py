"""The lineage graph: executions, and the variables, files and models that flow between them.

DOT for graphviz users, and an SVG drawn here (a timeline: one row per execution,
data-flow arcs on the left, files and models on the right) so the HTML report and
`nbgov graph --format svg` work without graphviz installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from nbgov.errors import NbgovError
from nbgov.replay.compare import is_own_source

STATUS_COLORS = {"reproduced": "#2e7d32", "diverged": "#c62828", None: "#455a64"}


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    kind: str  # "execution" | "file" | "model"
    row: int


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


def _first_line(code: str, width: int = 40) -> str:
    """The first code line; a cell magic line is joined with the line after it."""
    lines = [ln.strip() for ln in code.splitlines() if ln.strip()]
    line = " ".join(lines[:2]) if lines and lines[0].startswith("%%") else (lines[0] if lines else "")
    return line if len(line) <= width else line[: width - 1] + "…"


def build_graph(executions: Sequence[Mapping[str, Any]]) -> LineageGraph:
    """Nodes and edges from execution entries (record bodies), in log order."""
    graph = LineageGraph()
    ids = {str(e["body"].get("id")) for e in executions}
    for row, entry in enumerate(executions):
        body = entry["body"]
        rid = str(body.get("id"))
        cell = f" {str(body.get('cell_id'))[:8]}" if body.get("cell_id") else ""
        label = f"[{body.get('execution_count', '?')}]{cell}  {_first_line(str(body.get('code', '')))}"
        graph.nodes[rid] = Node(rid, label, "execution", row)
        for read in body.get("reads") or []:
            if read.get("source") in ids:
                graph.add_edge(str(read["source"]), rid, str(read.get("name")))
        for file in body.get("files") or []:
            if is_own_source(file):
                continue
            fid = f"file:{file.get('abspath') or file.get('path')}"
            graph.nodes.setdefault(fid, Node(fid, str(file.get("path")), "file", row))
            if file.get("mode") == "write":
                graph.add_edge(rid, fid, "writes")
            else:
                graph.add_edge(fid, rid, "reads")
        for model in body.get("models") or []:
            mid = f"model:{model.get('name')}@{model.get('version')}"
            label = f"{model.get('name')} v{model.get('version')} ({str(model.get('sha256'))[:8]})"
            graph.nodes.setdefault(mid, Node(mid, label, "model", row))
            if model.get("source") in ids and model.get("source") != rid:
                graph.add_edge(str(model["source"]), mid, "creates")
            graph.add_edge(mid, rid, "uses")
    return graph


def _dot_id(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: LineageGraph) -> str:
    """Graphviz DOT text."""
    shapes = {"execution": "box", "file": "note", "model": "component"}
    lines = ["digraph lineage {", "  rankdir=TB;", '  node [fontname="monospace"];']
    for node in graph.nodes.values():
        lines.append(f"  {_dot_id(node.id)} [label={_dot_id(node.label)}, shape={shapes[node.kind]}];")
    for (src, dst), labels in graph.edges.items():
        lines.append(f"  {_dot_id(src)} -> {_dot_id(dst)} [label={_dot_id(', '.join(labels))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


ROW_H, BOX_W, BOX_H, LEFT, RIGHT_X, SIDE_W = 46, 420, 30, 160, 680, 260


def to_svg(graph: LineageGraph, status: Mapping[str, str] | None = None) -> str:
    """A self-contained SVG (no fonts or links fetched); every label escaped."""
    status = status or {}
    rows = max((n.row for n in graph.nodes.values()), default=0) + 1
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#607d8b"/></marker></defs>',
    ]
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
    out[0] = out[0].format(width=width, height=height)
    for (src, dst), labels in graph.edges.items():
        sx, sy, sw = pos[src]
        dx, dy, dw = pos[dst]
        text = escape(", ".join(labels))
        if graph.nodes[src].kind == "execution" and graph.nodes[dst].kind == "execution":
            bend = LEFT - 30 - min(120, abs(dy - sy) / 3)
            path = f"M{sx},{sy} C{bend},{sy} {bend},{dy} {dx},{dy}"
            lx, ly = bend + 4, (sy + dy) / 2
        else:
            x1 = sx + sw if sx < dx else sx
            x2 = dx if sx < dx else dx + dw
            path = f"M{x1},{sy} L{x2},{dy}"
            lx, ly = (x1 + x2) / 2 - 20, (sy + dy) / 2 - 3
        out.append(f'<path d="{path}" fill="none" stroke="#90a4ae" marker-end="url(#arrow)"/>')
        out.append(f'<text x="{lx:.0f}" y="{ly:.0f}" fill="#37474f" font-size="10">{text}</text>')
    for node in graph.nodes.values():
        x, y, w = pos[node.id]
        top = y - BOX_H / 2
        if node.kind == "execution":
            color = STATUS_COLORS.get(status.get(node.id), STATUS_COLORS[None])
            title = escape(f"{node.id}: {status.get(node.id, 'recorded')}")
            out.append(f'<g><title>{title}</title><rect x="{x}" y="{top}" width="{w}" height="{BOX_H}" '
                       f'rx="4" fill="#fff" stroke="{color}" stroke-width="2"/>')
            out.append(f'<text x="{x + 8}" y="{y + 4}" fill="#212121">{escape(node.label)}</text></g>')
        else:
            fill = "#e3f2fd" if node.kind == "file" else "#fff3e0"
            out.append(f'<g><title>{escape(node.id)}</title><rect x="{x}" y="{top + 4}" width="{w}" '
                       f'height="{BOX_H - 8}" rx="10" fill="{fill}" stroke="#90a4ae"/>')
            label = node.label if len(node.label) <= 34 else "…" + node.label[-33:]
            out.append(f'<text x="{x + 8}" y="{y + 4}" fill="#212121">{escape(label)}</text></g>')
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
        raise NbgovError(f"graphviz dot failed: {done.stderr.strip().splitlines()[0] if done.stderr else '?'}")
    return done.stdout
