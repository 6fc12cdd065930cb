"""How long a title, a plan and a step's text may be; a task's title made from its description."""

from __future__ import annotations

MAX_STEPS = 50
MAX_STEP_TEXT = 500  # characters of one step's description; the task's own text says the rest
TITLE_MAX = 72


def make_title(description: str) -> str:
    """The first non-empty line, whitespace collapsed, cut on a word boundary to at most 72 characters."""
    line = next((ln for ln in description.splitlines() if ln.strip()), "")
    line = " ".join(line.split())
    if not line:
        return "(untitled)"
    if len(line) <= TITLE_MAX:
        return line
    cut = line[: TITLE_MAX - 1]
    space = cut.rfind(" ")
    if space >= TITLE_MAX // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-") + "…"


def cap_step_text(text: str) -> str:
    return text if len(text) <= MAX_STEP_TEXT else text[: MAX_STEP_TEXT - 1].rstrip() + "…"
