"""Messages the cockpit's workers post to the UI thread; fast streams coalesce (a newer one replaces it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

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
