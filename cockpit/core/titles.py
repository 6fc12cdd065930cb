"""What a task's text may hold: no control characters at intake, and a safe one-line form for git.

A task's description (its title is made from it) arrives from people, peers and agents. Control characters
have no place in it: a NUL cannot be passed to any process (every merge of the task failed), and escape
sequences rewrite a terminal. Tabs and line breaks are text. Tasks recorded before this check may still hold
such characters, so whatever puts a title into a git command goes through `one_line` first.
"""

from __future__ import annotations

import re

from cockpit.core.errors import UsageError

__all__ = ["check_text", "control_characters", "one_line"]

# C0 controls, DEL and C1 controls (category Cc), except tab and line breaks.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_NAMES = {0x00: "NUL", 0x07: "BEL", 0x08: "BS", 0x1B: "ESC", 0x7F: "DEL"}


def control_characters(text: str) -> list[tuple[int, str]]:
    """(position, character) of every control character in `text` other than tab, CR and LF."""
    return [(m.start(), m.group()) for m in _CONTROL.finditer(text)]


def check_text(text: str, what: str = "the task description") -> None:
    """Raise UsageError naming the first control character in `text` and where it is."""
    found = control_characters(text)
    if not found:
        return
    position, char = found[0]
    code = ord(char)
    name = f"U+{code:04X}" + (f" {_NAMES[code]}" if code in _NAMES else "")
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    raise UsageError(
        f"{what} contains a control character ({name}) at position {position}{more}; "
        "remove it and send the text again",
        details={"position": position, "codepoint": code},
    )


def one_line(text: str, limit: int = 200) -> str:
    """`text` as one line with no control characters (each run of them and of whitespace becomes a space)."""
    cleaned = _CONTROL.sub(" ", text)
    return " ".join(cleaned.split())[:limit] or "(untitled)"
