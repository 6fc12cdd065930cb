"""How a task's fields read in the cockpit: state colours, ages, agent status, parent/child marks."""

from __future__ import annotations

from rich.text import Text

from cockpit.core.models import Task
from cockpit.core.printable import printable
from cockpit.core.states import State
from cockpit.render import STATE_STYLES

AGENT_STYLES = {"running": "bold blue", "needs input": "bold reverse red", "idle": "dim", "exited": "dim"}
BRANCH_PREFIX = "cockpit/"


def age_text(seconds: float) -> str:
    """Compact age: 'now' under a minute (so a screen does not change every second), then 5m, 3h, 2d."""
    s = max(0, int(seconds))
    if s < 60:
        return "now"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def agent_status(task: Task) -> str:
    if task.needs_input and task.state is State.EXECUTING:
        return "needs input"
    if task.agent is None and task.pane is None and task.agent_status == "idle":
        return ""
    return task.agent_status.replace("_", " ")


def marks(task: Task) -> str:
    """'← backend#3' for work delegated here, '→ 2' for work this task delegated."""
    parts: list[str] = []
    if task.source_repo is not None:
        parts.append(f"← {task.source_repo}#{task.source_task_id}")
    if task.children:
        parts.append(f"→ {len(task.children)}")
    if task.child_failure:
        parts.append("child failed!")
    return " ".join(parts)


def short_branch(branch: str | None) -> str:
    if not branch:
        return ""
    return branch[len(BRANCH_PREFIX) :] if branch.startswith(BRANCH_PREFIX) else branch


# The table's columns: key, header, width.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("id", "#", 4),
    ("title", "title", 38),
    ("state", "state", 21),
    ("scope", "scope", 9),
    ("agent", "agent", 11),
    ("age", "age", 4),
    ("branch", "branch", 26),
    ("links", "links", 14),
)


def row_plain(task: Task, now: float) -> tuple[str, ...]:
    """The row as plain strings: compared to find the cells that changed. The title may be a peer's text:
    no escape sequence or line break reaches the table."""
    return (
        str(task.id),
        printable(task.title, one_line=True),
        task.state.value,
        task.scope or "",
        agent_status(task),
        age_text(now - task.created_at),
        short_branch(task.branch),
        marks(task),
    )


def row_cells(plain: tuple[str, ...]) -> list[Text]:
    """The row's cells, styled. All are Text: a str cell would be parsed as markup (a title holding "[x]"
    would lose it), and parsed again on every render."""
    cells = [Text(value, no_wrap=True, overflow="ellipsis") for value in plain]
    cells[0] = Text(plain[0], style="dim", justify="right")
    cells[2] = state_text(plain[2])
    cells[4] = Text(plain[4], style=AGENT_STYLES.get(plain[4], ""))
    cells[5] = Text(plain[5], style="dim")
    cells[7] = Text(plain[7], style="italic")
    return cells
