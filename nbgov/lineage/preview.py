"""One-line previews of executed code, so runs can be told apart at a glance.

Used wherever a list of executions is shown (the `%lineage` view; the sidebar has the
same rules in TypeScript, labextension/src/preview.ts). A `%%sqlml` cell previews its
first SQL line rather than the magic line, so nine failed SQL cells do not all read
"%%sqlml".
"""

from __future__ import annotations

ELLIPSIS = "…"
SQL_MAGIC = "%%sqlml"
# Bidirectional overrides and isolates: they reorder how text reads on screen ("Trojan source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """``text`` safe for a terminal or a plain-text view: control characters (escape
    sequences, carriage returns, bidi overrides) are shown as ``\\x1b``-style escapes."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch == "\n" or ch == "\t":
            out.append(ch)
        elif code < 0x20 or 0x7F <= code < 0xA0 or ch in _BIDI_CONTROLS:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        else:
            out.append(ch)
    return "".join(out)


def code_preview(code: str) -> str:
    """The first meaningful line of a cell: for `%%sqlml`, its first SQL line."""
    lines = [printable(line.strip()) for line in code.splitlines() if line.strip()]
    if not lines:
        return ""
    first = lines[0]
    if _is_sqlml_magic(first) and len(lines) > 1:
        return lines[1]
    return first


def _is_sqlml_magic(line: str) -> bool:
    head = line.split(maxsplit=1)[0]
    return head == SQL_MAGIC


def clip_words(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters at a word boundary, with an ellipsis when cut.

    A single word longer than half the width is cut inside it rather than dropped.
    """
    if width < 2:
        raise ValueError(f"width must be at least 2, got {width}")
    if len(text) <= width:
        return text
    room = width - 1
    cut = text.rfind(" ", 0, room + 1)
    if cut < room // 2:
        cut = room
    return text[:cut].rstrip() + ELLIPSIS


def short_label(execution_count: int | None, code: str, width: int = 40) -> str:
    """``[n] first line``: how an execution is named in lists, graphs and reports."""
    count = "?" if execution_count is None else str(execution_count)
    prefix = f"[{count}] "
    return prefix + clip_words(code_preview(code), max(2, width - len(prefix)))
