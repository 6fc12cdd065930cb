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

from cockpit.core.models import Event, Task
from cockpit.core.projection import apply
from cockpit.core.states import NEEDS_PERSON, State

# Link modes, shown in the repo's tab.
CONNECTING = "connecting"
LIVE = "live"  # subscribed to the daemon
STORE = "store"  # daemon down: following the store's file
UNINITIALISED = "uninitialised"  # no .cockpit/ store yet
OFFLINE = "offline"  # neither reachable (retrying)

FINISHED_STATES = frozenset({State.DONE, State.REJECTED, State.CANCELLED})


@dataclass(frozen=True)
class Attention:
    """Something a person should hear about the moment it happens (a toast)."""

    repo: str
    task_id: int
    kind: str  # "pending" (a peer's task waits for approval) | "needs_input"
    title: str


def needs_person(task: Task) -> bool:
    return task.state in NEEDS_PERSON or (task.needs_input and task.state is State.EXECUTING)


def attention_kind(task: Task) -> str | None:
    """Why the task needs a person, in the words of the inbox; None when it does not."""
    if task.needs_input and task.state is State.EXECUTING:
        return "needs input"
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
            task = apply(self.tasks, event)
            if task is None:
                continue
            if event.type == "agent.progress":
                self.progress[task.id] = dict(event.data)
            if self.trace is not None:
                self.trace.append((task.id, event.ts))
            self.dirty.add(task.id)
            if event.seq > quiet_until:
                note = self._attention(task, before_state, before_input)
                if note is not None:
                    notes.append(note)
        return notes

    @staticmethod
    def _in_snapshot(task: Task | None, event: Event) -> bool:
        if task is None:
            return False
        if event.type == "task.created":
            return True
        return task.updated_at >= event.ts

    def _attention(self, task: Task, before_state: State | None, before_input: bool) -> Attention | None:
        if task.needs_input and not before_input and task.state is State.EXECUTING:
            return Attention(self.name, task.id, "needs_input", task.title)
        waiting = (State.PENDING, State.PENDING_CLARIFICATION)
        if task.source_repo is not None and task.state in waiting and before_state not in waiting:
            return Attention(self.name, task.id, "pending", task.title)
        return None

    def take_dirty(self) -> set[int]:
        dirty, self.dirty = self.dirty, set()
        return dirty

    # -- summaries for the tab title and the inbox ----------------------------------------------------------

    def active_count(self) -> int:
        return sum(1 for t in self.tasks.values() if t.state not in FINISHED_STATES)

    def waiting(self) -> list[Task]:
        """Tasks that need a person, the longest-waiting first."""
        return sorted((t for t in self.tasks.values() if needs_person(t)), key=lambda t: (t.updated_at, t.id))

    def waiting_count(self) -> int:
        return sum(1 for t in self.tasks.values() if needs_person(t))
