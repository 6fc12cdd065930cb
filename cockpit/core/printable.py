"""Untrusted text made safe for a terminal: no escape sequences, no control characters.

Titles, descriptions, plans, agent output and error messages may come from a peer or an agent. Printed raw,
an OSC or CSI sequence could retitle the window, clear the screen or move the cursor to fake a line such as
"approved by person". `printable` removes whole sequences (not just the ESC byte), C0 and C1 controls other
than newline and tab, and the bidi overrides that reorder what a line appears to say. Rich or Textual markup
is a separate matter: the CLI and the cockpit escape it where they render (`rich.markup.escape`).
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_SEQUENCE = (
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: cursor moves, colours, clear screen
    r"|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC: window title, hyperlinks, clipboard
    r"|\x1b[P^_X][^\x1b\x9c]*(?:\x1b\\|\x9c)?"  # DCS, PM, APC, SOS strings
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
    r"|\x9d[^\x07\x1b\x9c]*(?:\x07|\x9c)?"  # 8-bit OSC
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
_CONTROLS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
_UNSAFE = re.compile(f"{_SEQUENCE}|{_CONTROLS}")
_UNSAFE_LINE = re.compile(f"{_SEQUENCE}|{_CONTROLS}|[\\n\\t]")


def printable(text: object, *, one_line: bool = False) -> str:
    """`text` without terminal escape sequences or control characters (newline and tab kept unless
    `one_line`, where they become spaces)."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable():
        return s
    if one_line:
        return _UNSAFE_LINE.sub(lambda m: " " if m.group() in "\n\t" else "", s)
    return _UNSAFE.sub("", s)
