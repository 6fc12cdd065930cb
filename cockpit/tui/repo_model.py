"""What the cockpit knows about one repo: its tasks, folded from the repo's events exactly as the store does.

The model holds no widgets. Its link feeds it a snapshot and then every event in order; the fold is the
store's own `projection.apply`, so the cockpit's tasks are the projection, field for field, without asking the
daemon for each task that changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core.events import EventType
from cockpit.core.models import Event, Task
from cockpit.core.projection import apply
from cockpit.core.states import CLOSED, State
from cockpit.tui.usage import Usage

# Link modes, shown in the repo's tab.
CONNECTING = "connecting"
LIVE = "live"  # subscribed to the daemon
STORE = "store"  # daemon down: following the store's file
UNINITIALISED = "uninitialised"  # no .cockpit/ store yet
OFFLINE = "offline"  # neither reachable (retrying)



@dataclass(frozen=True)
class Attention:
    """Something a person should hear about the moment it happens (a toast)."""

    repo: str
    task_id: int
    kind: str  # "pending" (a peer's task waits for approval) | "needs_input" | "waiting" (anything else)
    title: str
    why: str = ""  # the inbox's words: "awaiting review", "failed", ...


# Children in these states leave their parent waiting on a person.
CHILD_FAILED = frozenset({State.FAILED.value, State.INTERRUPTED.value, State.REJECTED.value,
                          State.CANCELLED.value})


def failed_child(task: Task) -> str | None:
    """'frontend#2' when a task this one delegated to failed and the parent is still at work."""
    if task.state in CLOSED or task.state is State.FAILED:
        return None
    if task.child_failure:
        return "a delegated task"
    for child in task.children:
        if child.state in CHILD_FAILED:
            return f"{child.repo}#{child.id}"
    return None


def needs_person(task: Task) -> bool:
    return attention_kind(task) is not None


def attention_kind(task: Task) -> str | None:
    """Why the task needs a person, in the words of the inbox; None when it does not."""
    if task.needs_input and task.state is State.EXECUTING:
        return "needs input"
    if task.state is State.FAILED:
        return "failed"
    if (child := failed_child(task)) is not None:
        return f"waits on {child}, which failed"
    if task.state is State.PENDING:
        return "pending approval"
    if task.state is State.PENDING_CLARIFICATION:
        return "needs answers"
    if task.state is State.AWAITING_REVIEW:
        return "awaiting review"
    return None


@dataclass
class RepoModel:
    name: str
    root: Path
    tasks: dict[int, Task] = field(default_factory=dict)
    # The ssh destination of a repo on another machine (its `root` is a path there); None when local.
    host: str | None = None
    last_seq: int = 0
    loaded: bool = False
    mode: str = CONNECTING
    detail: str = ""
    # Per task, the data of its last agent.progress event (the projection keeps only the text).
    progress: dict[int, dict[str, Any]] = field(default_factory=dict)
    # Ids changed since the UI last looked; the UI takes them with `take_dirty`.
    dirty: set[int] = field(default_factory=set)
    # When a list, (task id, commit time) of every event folded is appended (the event_to_screen benchmark).
    trace: list[tuple[int, float]] | None = None
    # Events up to this seq may already be in the snapshot (see `load`).
    _overlap_until: int = 0
    # Kept up to date as tasks change, so the tab titles and the bar never walk every task: the ids of the
    # open tasks and of those needing a person, and each task's token usage (tasks that have some).
    _open: set[int] = field(default_factory=set)
    _waiting: set[int] = field(default_factory=set)
    _usage: dict[int, Usage] = field(default_factory=dict)
    # Moves on whenever what `waiting()` returns may have changed (the inbox keeps its order until it does).
    waiting_version: int = 0

    def load(self, tasks: Iterable[Task], seq_before: int, seq_after: int) -> None:
        """Take a snapshot read between `seq_before` and `seq_after` (the store's last seq either side).

        Events after `seq_before` are replayed on top; those up to `seq_after` may already be in the
        snapshot, which shows in the task's `updated_at` (the time of the last event folded into it).
        """
        self.tasks = {t.id: t for t in tasks}
        self.last_seq = seq_before
        self._overlap_until = seq_after
        self.loaded = True
        self.dirty.update(self.tasks)
        self._open.clear()
        self._waiting.clear()
        self._usage.clear()
        self.waiting_version += 1
        for task in self.tasks.values():
            self._track(task)

    def apply(self, events: Sequence[Event], *, quiet_until: int = 0) -> list[Attention]:
        """Fold events in order; return what deserves a toast (events up to `quiet_until` are history)."""
        notes: list[Attention] = []
        for event in events:
            if event.seq <= self.last_seq:
                continue
            self.last_seq = event.seq
            if event.task_id is None:
                continue
            before = self.tasks.get(event.task_id)
            if event.seq <= self._overlap_until and self._in_snapshot(before, event):
                continue
            before_state = before.state if before is not None else None
            before_input = before.needs_input if before is not None else False
            before_kind = attention_kind(before) if before is not None else None
            task = apply(self.tasks, event)
            if task is None:
                continue
            if event.type == EventType.AGENT_PROGRESS:
                self.progress[task.id] = dict(event.data)
            if self.trace is not None:
                self.trace.append((task.id, event.ts))
            self.dirty.add(task.id)
            self._track(task)
            if event.seq > quiet_until:
                note = self._attention(task, before_state, before_input, before_kind)
                if note is not None:
                    notes.append(note)
        return notes

    @staticmethod
    def _in_snapshot(task: Task | None, event: Event) -> bool:
        if task is None:
            return False
        if event.type == EventType.TASK_CREATED:
            return True
        return task.updated_at >= event.ts

    def _attention(self, task: Task, before_state: State | None, before_input: bool,
                   before_kind: str | None) -> Attention | None:
        """What newly needs a person: an agent asking, a peer's task to approve, any other inbox item."""
        kind = attention_kind(task)
        if task.needs_input and not before_input and task.state is State.EXECUTING:
            return Attention(self.name, task.id, "needs_input", task.title, kind or "")
        waiting = (State.PENDING, State.PENDING_CLARIFICATION)
        if task.source_repo is not None and task.state in waiting and before_state not in waiting:
            return Attention(self.name, task.id, "pending", task.title, kind or "")
        if kind is not None and kind != before_kind and task.state is not State.CREATED:
            return Attention(self.name, task.id, "waiting", task.title, kind)
        return None

    def take_dirty(self) -> set[int]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    def _track(self, task: Task) -> None:
        """Bring the summaries up to date with one task's change."""
        task_id = task.id
        if task.state in CLOSED:
            self._open.discard(task_id)
        else:
            self._open.add(task_id)
        if needs_person(task):
            self._waiting.add(task_id)
            self.waiting_version += 1
        elif task_id in self._waiting:
            self._waiting.discard(task_id)
            self.waiting_version += 1
        if task.usage_runs:
            self._usage[task_id] = Usage.of_runs(task.usage_runs)
        else:
            self._usage.pop(task_id, None)

    # -- summaries for the tab title, the bar and the inbox -------------------------------------------------

    def active_count(self) -> int:
        return len(self._open)

    def waiting(self) -> list[Task]:
        """Tasks that need a person, the longest-waiting first."""
        return sorted((self.tasks[i] for i in self._waiting), key=lambda t: (t.updated_at, t.id))

    def waiting_count(self) -> int:
        return len(self._waiting)

    def usage(self, since: float | None = None) -> Usage:
        """Tokens and cost of every task of the repo (what `list_tasks` totals), or of the tasks that moved
        at `since` or later: a usage reading moves its task, so a task still since then read none since."""
        chosen = (u for i, u in self._usage.items() if since is None or self.tasks[i].updated_at >= since)
        return Usage.total(chosen)
