"""The text a headless run computed: what a user would have read under each cell."""

from __future__ import annotations

from collections.abc import Iterator

import nbformat

MAX_LINES_PER_CELL = 12


def _output_text(output: nbformat.NotebookNode) -> str:
    if output.get("output_type") == "stream":
        return str(output.get("text", ""))
    if output.get("output_type") in ("execute_result", "display_data"):
        return str(output.get("data", {}).get("text/plain", ""))
    if output.get("output_type") == "error":
        return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    return ""


def cell_texts(nb: nbformat.NotebookNode) -> Iterator[tuple[int | None, str]]:
    """(execution count, plain text of its outputs, cut to MAX_LINES_PER_CELL) per code cell."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        text = "".join(_output_text(out) for out in cell.get("outputs", [])).rstrip()
        if not text:
            continue
        lines = text.splitlines()
        if len(lines) > MAX_LINES_PER_CELL:
            hidden = len(lines) - MAX_LINES_PER_CELL
            lines = [*lines[:MAX_LINES_PER_CELL], f"… ({hidden} more lines)"]
        yield cell.get("execution_count"), "\n".join(lines)
