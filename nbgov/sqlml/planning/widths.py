"""How wide EXPLAIN's text is laid out, apart from ``plantext`` so the magic can declare
``SqlML.explain_width`` without loading sqlglot."""

from __future__ import annotations

WIDTH = 100
"""Characters per line unless the caller knows its own (``SqlML.explain_width``): a
notebook's output area at its default font shows about 100."""

MIN_WIDTH = 40
"""The narrowest width asked for: a plan's text keeps this many columns however deep its
tree is indented, so narrower would not hold."""
