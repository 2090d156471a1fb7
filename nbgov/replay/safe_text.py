"""Notebook text made safe for where it is shown: terminals, and XML (HTML report, SVG).

Cell code, names and messages come from whoever wrote the notebook. In a terminal an
escape sequence can recolour, hide or rewrite what a reviewer reads (a bidi override
can make injected code look like a comment); in XML a NUL or a lone surrogate makes the
document unreadable. Both helpers show such characters as visible escapes instead.
"""

from __future__ import annotations

import re
from html import escape

# C0 and C1 controls, DEL, format characters that reorder or hide text (bidi
# overrides and isolates, zero-width characters), line/paragraph separators, and
# lone surrogates.
_TERMINAL_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069"
    "\ufeff\ufff9-\ufffb\ud800-\udfff]"
)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str, keep_newlines: bool = True) -> str:
    """``text`` with every control, invisible or reordering character shown as an escape.

    Newlines (and tabs) stay when ``keep_newlines``, so multi-line code still reads as code.
    """
    safe = _TERMINAL_UNSAFE.sub(_visible, text)
    if not keep_newlines:
        safe = safe.replace("\n", "\\n").replace("\t", "\\t")
    return safe


def for_xml(text: str) -> str:
    """``text`` escaped for XML text and attribute values, illegal characters made visible."""
    return escape(_TERMINAL_UNSAFE.sub(_visible, _XML_ILLEGAL.sub(_visible, text)), quote=True)


def preview(code: str, width: int = 60) -> str:
    """One line that tells cells apart: the first code line; for a cell magic
    (``%%sqlml``) the magic line joined with its first statement line."""
    lines = [ln.strip() for ln in code.splitlines() if ln.strip()]
    if not lines:
        return ""
    line = " ".join(lines[:2]) if lines[0].startswith("%%") else lines[0]
    line = for_terminal(line, keep_newlines=False)
    return line if len(line) <= width else line[: width - 1] + "…"


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a decoded str holds a surrogate only when it is alone


def where_surrogate(text: str) -> str | None:
    """'\\ud800 at line 1, column 6' for the first lone surrogate in ``text``, or None."""
    found = _LONE_SURROGATE.search(text)
    if found is None:
        return None
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    return f"\\u{ord(found.group()):04x} at line {line}, column {column}"
