"""The task state machine (docs/design.md, Task states): every transition is checked here and nowhere else."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from cockpit.core.errors import TransitionError, UsageError


class State(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    PENDING_CLARIFICATION = "pending_clarification"
    APPROVED = "approved"
    EXECUTING = "executing"
    GATING = "gating"
    AWAITING_REVIEW = "awaiting_review"
    MERGING = "merging"
    DONE = "done"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolled_back"


S = State
TRANSITIONS: dict[State, frozenset[State]] = {
    S.CREATED: frozenset({S.PENDING, S.PENDING_CLARIFICATION, S.APPROVED, S.REJECTED}),
    S.PENDING: frozenset({S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.PENDING_CLARIFICATION: frozenset({S.PENDING, S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.APPROVED: frozenset({S.EXECUTING, S.CANCELLED}),
    # EXECUTING/GATING -> CANCELLED: a cancel stops the agent first (task.stopped, then task.cancelled).
    S.EXECUTING: frozenset({S.GATING, S.FAILED, S.INTERRUPTED, S.CANCELLED}),
    # GATING -> EXECUTING is the fix cycle: a failed gate re-runs the agent without passing through failed,
    # so a waiting sender never sees a transient failure. GATING -> INTERRUPTED is a stop during the gates.
    S.GATING: frozenset({S.AWAITING_REVIEW, S.FAILED, S.EXECUTING, S.INTERRUPTED, S.CANCELLED}),
    # AWAITING_REVIEW -> EXECUTING: a reviewer's request for changes, typed into the same agent session.
    S.AWAITING_REVIEW: frozenset({S.MERGING, S.REJECTED, S.APPROVED, S.EXECUTING}),
    S.MERGING: frozenset({S.DONE, S.AWAITING_REVIEW}),
    S.DONE: frozenset({S.ROLLED_BACK}),
    S.FAILED: frozenset({S.APPROVED, S.CANCELLED}),
    S.INTERRUPTED: frozenset({S.APPROVED, S.CANCELLED}),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.ROLLED_BACK: frozenset({S.APPROVED}),
}

# States an event may re-enter without leaving: another round of questions, a new agent attempt, the gates run
# again after a restart, a merge resumed. Any other same-state event is a transition like the rest and refused
# (rejecting a rejected task, finishing a done one, rolling back a rolled-back merge).
REENTRANT: frozenset[State] = frozenset({S.PENDING_CLARIFICATION, S.EXECUTING, S.GATING, S.MERGING})

# States with no way out (rejected, cancelled): `cockpit gc` collects their worktrees.
TERMINAL: frozenset[State] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)
# States of a task whose work is over, merged or abandoned (done, rejected, cancelled): dedup no longer
# compares new tasks with it, `task list` leaves it out without --all, and the cockpit stops following it.
CLOSED: frozenset[State] = frozenset({S.DONE}) | TERMINAL
# States in which the task's agent or its gates run now: a stop applies, delegation follows the task.
RUNNING: frozenset[State] = frozenset({S.EXECUTING, S.GATING})
# States in which the executor holds the task (approved and waiting for a slot, or running); the agent may
# still write to its log.
IN_EXECUTION: frozenset[State] = frozenset({S.APPROVED}) | RUNNING
# What a waiting sender treats as "finished" (remote wait's default).
FINISHED: frozenset[State] = frozenset(
    {S.DONE, S.FAILED, S.INTERRUPTED, S.REJECTED, S.CANCELLED, S.ROLLED_BACK}
)
# States where nothing happens until a person acts, or the task is finished: `task wait`'s default.
SETTLED: frozenset[State] = FINISHED | frozenset({S.PENDING, S.PENDING_CLARIFICATION, S.AWAITING_REVIEW})
# States that need a person to act.
NEEDS_PERSON: frozenset[State] = frozenset({S.PENDING, S.PENDING_CLARIFICATION, S.AWAITING_REVIEW})


def parse_state(value: str) -> State:
    try:
        return State(value)
    except ValueError:
        names = ", ".join(s.value for s in State)
        raise UsageError(f"unknown state {value!r}; states are: {names}", code="bad_request") from None


def reachable(current: State) -> frozenset[State]:
    """Every state a task in `current` can still get to (itself included)."""
    seen = {current}
    todo = [current]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)


def check_transition(task_id: int, current: State, target: State, action: str) -> None:
    """Raise TransitionError naming the current state and the allowed next states."""
    allowed = TRANSITIONS[current]
    if target in allowed or (target is current and current in REENTRANT):
        return
    nxt = ", ".join(sorted(s.value for s in allowed)) or "none (terminal)"
    raise TransitionError(
        f"cannot {action} task {task_id}: it is {current.value}, which can only move to: {nxt}"
    )


def check_reachable(task_id: int, current: State, wanted: Iterable[State]) -> None:
    """Refuse to wait for states a task in `current` can never reach (a rejected task never gets to done)."""
    wanted = frozenset(wanted)
    if wanted & reachable(current):
        return
    names = ", ".join(sorted(s.value for s in wanted))
    raise TransitionError(f"task {task_id} is {current.value} and can never reach {names}",
                          code="unreachable")
