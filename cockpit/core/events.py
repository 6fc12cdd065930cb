"""The event vocabulary (docs/design.md, "Events"): every type an event row may hold, written once.

`EventType` is a `StrEnum`, so a member compares equal to the string stored in the `events` table and a
row's type reads back as a member with `event_type`. The projection folds every member and refuses anything
else, so a misspelt type fails at the write instead of being silently ignored.
"""

from __future__ import annotations

from enum import StrEnum

from cockpit.core.errors import UsageError


class EventType(StrEnum):
    # A task's life, from intake to the end of its agent's work.
    TASK_CREATED = "task.created"
    TASK_CLASSIFIED = "task.classified"
    TASK_CLARIFICATION_REQUESTED = "task.clarification_requested"
    TASK_CLARIFIED = "task.clarified"
    TASK_APPROVED = "task.approved"
    TASK_REJECTED = "task.rejected"
    TASK_CANCELLED = "task.cancelled"
    TASK_EXECUTING = "task.executing"
    TASK_PANE = "task.pane"
    TASK_INTERRUPTED = "task.interrupted"
    TASK_STOPPED = "task.stopped"
    TASK_FAILED = "task.failed"
    TASK_GATING = "task.gating"
    TASK_AWAITING_REVIEW = "task.awaiting_review"
    TASK_REWORK_REQUESTED = "task.rework_requested"
    TASK_DONE = "task.done"
    WORKTREE_REMOVED = "worktree.removed"
    # What the agent in the task's pane does.
    AGENT_PROGRESS = "agent.progress"
    AGENT_NEEDS_INPUT = "agent.needs_input"
    AGENT_INPUT_RESOLVED = "agent.input_resolved"
    AGENT_EXITED = "agent.exited"
    AGENT_TURN_ENDED = "agent.turn_ended"
    AGENT_DONE = "agent.done"
    AGENT_USAGE = "agent.usage"
    # The gates.
    GATE_STARTED = "gate.started"
    GATE_FINISHED = "gate.finished"
    # The merge and its rollback.
    MERGE_PREFLIGHT = "merge.preflight"
    MERGE_REBASED = "merge.rebased"
    MERGE_STARTED = "merge.started"
    MERGE_FINISHED = "merge.finished"
    MERGE_REFUSED = "merge.refused"
    MERGE_NEEDS_ATTENTION = "merge.needs_attention"
    MERGE_ROLLED_BACK = "merge.rolled_back"
    # Delegation to other repos.
    DELEGATION_SENT = "delegation.sent"
    DELEGATION_FINISHED = "delegation.finished"
    STEP_UPDATED = "step.updated"


def event_type(value: str) -> EventType:
    """`value` as a member of the vocabulary; refused (nothing written) when it is not one."""
    try:
        return EventType(value)
    except ValueError:
        raise UsageError(f"unknown event type {value!r}; event types are listed in cockpit/core/events.py",
                         code="bad_request") from None
