"""Messages the cockpit's workers post to the UI thread; fast streams coalesce (a newer one replaces it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from cockpit.core.models import Task
from cockpit.tui.repo_model import Attention


@dataclass
class TasksChanged(Message, bubble=False):
    """Some of the repo's tasks changed; the receiver takes the ids from `RepoModel.take_dirty`."""

    repo: str

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TasksChanged) and message.repo == self.repo


@dataclass
class LinkChanged(Message, bubble=False):
    """The repo's link changed mode (live, store, offline...)."""

    repo: str
    mode: str
    detail: str = ""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, LinkChanged) and message.repo == self.repo


@dataclass
class AttentionNeeded(Message, bubble=False):
    """A peer's task waits for approval here, or an agent waits for input."""

    note: Attention


@dataclass
class AgentOutput(Message, bubble=False):
    """The latest tail of a task's agent pane."""

    repo: str
    task_id: int
    lines: list[str]
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AgentOutput) and (message.repo, message.task_id) == (
            self.repo,
            self.task_id,
        )


@dataclass
class OpFinished(Message, bubble=False):
    """A request to a daemon (or a local store) finished; `error` is the refusal, shown inline."""

    repo: str
    op: str
    task_id: int | None
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class Flash:
    """The flash line's one line: the last outcome, in the conversation's words."""

    text: str = ""
    level: str = "info"  # info | ok | warning | error


@dataclass
class Say(Message):
    """A screen's words for the flash line (the app shows them: every flash goes through `CockpitApp.say`)."""

    text: str
    level: str = "info"


@dataclass
class TaskAction(Message):
    """A person asked for `action` on a task (a key, a button, the palette): the app's actions carry it out.

    `action` is one of `actions.TASK_ACTIONS`; `context` is the agent output on screen (for an answer),
    `message` a review comment (for a rework)."""

    action: str
    repo: str
    task: Task
    context: list[str] = field(default_factory=list)
    message: str = ""


@dataclass
class RepoAction(Message):
    """A person asked for `action` on a repo (`start_daemon`)."""

    action: str
    repo: str
