"""The projection: a pure fold of events into tasks.

The store applies it inside the transaction that appends each event, and `replay` applies it to every event
from scratch; both use this one function, so replaying rebuilds the projections exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cockpit.core.events import EventType, event_type
from cockpit.core.models import (
    Classification,
    Event,
    GateResult,
    Link,
    MergeInfo,
    PlanStep,
    RunUsage,
    Task,
)
from cockpit.core.states import State

E = EventType

# Events that move a task to a fixed state. Events whose target depends on their data are in `target_state`.
EVENT_STATE: dict[str, State] = {
    E.TASK_CLARIFICATION_REQUESTED: State.PENDING_CLARIFICATION,
    E.TASK_APPROVED: State.APPROVED,
    E.TASK_REJECTED: State.REJECTED,
    E.TASK_CANCELLED: State.CANCELLED,
    E.TASK_EXECUTING: State.EXECUTING,
    E.TASK_INTERRUPTED: State.INTERRUPTED,
    E.TASK_FAILED: State.FAILED,
    E.TASK_GATING: State.GATING,
    E.TASK_AWAITING_REVIEW: State.AWAITING_REVIEW,
    E.MERGE_STARTED: State.MERGING,
    E.MERGE_FINISHED: State.DONE,
    E.MERGE_ROLLED_BACK: State.ROLLED_BACK,
    E.TASK_DONE: State.DONE,
    E.TASK_REWORK_REQUESTED: State.EXECUTING,
}
MAX_MESSAGE = 2000


def target_state(task: Task, type_: str, data: dict[str, Any]) -> State | None:
    """The state an event moves `task` to, or None when it leaves the state alone."""
    if type_ in (E.TASK_CLASSIFIED, E.TASK_CLARIFIED):
        return State(data["state"])
    if type_ == E.TASK_STOPPED:
        # A stop leaves the task interrupted; a cancel's stop is followed by task.cancelled (one transaction).
        return None if data.get("then") == "cancel" else State.INTERRUPTED
    if type_ == E.MERGE_REFUSED:
        # A refusal during preflight leaves awaiting_review as it is; during a merge it returns there.
        return State.AWAITING_REVIEW if task.state is State.MERGING else None
    return EVENT_STATE.get(event_type(type_))


def _apply_classification(task: Task, data: dict[str, Any]) -> None:
    c = Classification.from_json(data)
    task.scope = c.scope
    task.reason = (f"{c.reason} (classifier fell back: {c.fallback_reason})" if c.fallback_reason
                   else c.reason)
    task.classifier = c.classifier
    task.plan = c.plan
    task.questions = c.questions
    if c.title:
        task.title = c.title


def _step(task: Task, n: int) -> PlanStep | None:
    return next((s for s in task.plan if s.n == n), None)


def _created(event: Event) -> Task:
    d = event.data
    assert event.task_id is not None
    return Task(
        id=event.task_id,
        title=str(d.get("title") or d["description"])[:200],
        description=str(d["description"]),
        source_repo=d.get("source_repo"),
        source_task_id=d.get("source_task_id"),
        script=d.get("script"),
        created_by=d.get("by"),
        on_behalf_of=d.get("on_behalf_of"),
        created_at=event.ts,
        updated_at=event.ts,
    )


def _state_only(task: Task, event: Event) -> None:
    """The event moves the task's state (or only its `updated_at`) and changes nothing else."""


def _classified(task: Task, event: Event) -> None:
    _apply_classification(task, event.data)


def _clarification_requested(task: Task, event: Event) -> None:
    task.questions = [str(q) for q in event.data.get("questions", [])]


def _clarified(task: Task, event: Event) -> None:
    d = event.data
    task.answers = [*task.answers, *[str(a) for a in d.get("answers", [])]]
    _apply_classification(task, d)


def _approved(task: Task, event: Event) -> None:
    d = event.data
    task.approved_by = d.get("by")
    task.failure = None
    if d.get("fresh"):
        task.branch = task.worktree = task.base_sha = task.pane = task.gated_sha = None
        task.attempt = 0
    if d.get("retry") or d.get("fresh"):
        # A retried task's delegate steps that failed are tried again; the children its agent made that
        # failed no longer hold it (its new run may delegate again).
        for planned in task.plan:
            if planned.status == "failed":
                planned.status = "pending"
        for child in task.children:
            if child.step is None and child.state is not None and child.state != State.DONE.value:
                child.released = True
        task.child_failure = None


def _ended(task: Task, event: Event) -> None:
    """rejected, cancelled, failed, interrupted, stopped: the reason kept, the agent no longer running."""
    task.failure = event.data.get("reason") or task.failure
    task.needs_input = False
    if event.type != E.TASK_FAILED or task.agent_status == "running":
        task.agent_status = "exited" if task.agent_status != "idle" else "idle"


def _executing(task: Task, event: Event) -> None:
    d = event.data
    for name in ("branch", "worktree", "base_sha", "pane", "agent"):
        if d.get(name) is not None:
            setattr(task, name, d[name])
    task.attempt = int(d.get("attempt", task.attempt + 1))
    if not d.get("gates_only"):  # a re-run of the gates alone starts no agent
        task.agent_status = "running"
    task.needs_input = False
    task.progress = None


def _pane(task: Task, event: Event) -> None:
    task.pane = event.data.get("pane")


def _worktree_removed(task: Task, event: Event) -> None:
    task.worktree = None
    task.pane = None


def _progress(task: Task, event: Event) -> None:
    task.progress = str(event.data.get("text", ""))


def _needs_input(task: Task, event: Event) -> None:
    task.needs_input = True
    task.agent_status = "needs_input"


def _input_resolved(task: Task, event: Event) -> None:
    task.needs_input = False
    if task.agent_status == "needs_input":
        task.agent_status = "running"


def _exited(task: Task, event: Event) -> None:
    task.agent_status = "exited"
    task.needs_input = False


def _turn_ended(task: Task, event: Event) -> None:
    if event.data.get("message"):
        task.last_message = str(event.data["message"])[:MAX_MESSAGE]


def _agent_done(task: Task, event: Event) -> None:
    if event.data.get("message"):
        task.last_message = str(event.data["message"])[:MAX_MESSAGE]
    task.needs_input = False
    if task.agent_status != "exited":
        task.agent_status = "done"


def _usage(task: Task, event: Event) -> None:
    usage = RunUsage.from_json(event.data)
    task.usage_runs = [u for u in task.usage_runs if u.run != usage.run] + [usage]


def _rework_requested(task: Task, event: Event) -> None:
    task.failure = None
    task.needs_input = False
    task.progress = None


def _gating(task: Task, event: Event) -> None:
    task.gates = []
    task.gated_sha = None


def _awaiting_review(task: Task, event: Event) -> None:
    task.gated_sha = event.data.get("gated_sha")


def _gate_finished(task: Task, event: Event) -> None:
    result = GateResult.from_json(event.data)
    task.gates = [g for g in task.gates if g.name != result.name] + [result]


def _merge_preflight(task: Task, event: Event) -> None:
    d = event.data
    if task.merge is None or task.merge.state != "merged":
        task.merge = MergeInfo(state="preflight", target=str(d.get("target", "")),
                               strategy=str(d.get("strategy", "merge")))


def _merge_started(task: Task, event: Event) -> None:
    d = event.data
    task.merge = MergeInfo(state="merging", target=d["target"], merge_sha=d.get("merge_sha"),
                           rollback_sha=d.get("rollback_sha"), strategy=d.get("strategy", "merge"))


def _merge_finished(task: Task, event: Event) -> None:
    d = event.data
    task.merge = MergeInfo(state="merged", target=d["target"], merge_sha=d.get("merge_sha"),
                           rollback_sha=d.get("rollback_sha"), strategy=d.get("strategy", "merge"))
    # The worktree is removed after a merge unless it held uncommitted work (then its path is kept).
    task.worktree = d.get("worktree_kept")
    task.pane = None


def _merge_rebased(task: Task, event: Event) -> None:
    # The task branch was rebased onto the target's new tip before merging: that tip is its new base.
    task.base_sha = event.data.get("base_sha") or task.base_sha


def _merge_refused(task: Task, event: Event) -> None:
    d = event.data
    restored = d.get("branch_restored")
    if isinstance(restored, dict) and restored.get("base_sha"):
        task.base_sha = restored["base_sha"]  # the refused merge put the branch back where it was
    if task.merge is not None and task.merge.state != "merged":
        task.merge.state = "refused"
        task.merge.detail = d.get("reason")


def _merge_needs_attention(task: Task, event: Event) -> None:
    if task.merge is not None:
        task.merge.state = "needs_attention"
        task.merge.detail = event.data.get("reason")


def _merge_rolled_back(task: Task, event: Event) -> None:
    if task.merge is not None:
        task.merge.state = "rolled_back"
        task.merge.rollback_method = event.data.get("method")


def _step_updated(task: Task, event: Event) -> None:
    d = event.data
    step = _step(task, int(d["n"]))
    if step is not None:
        for name in ("status", "detail", "peer_task_id", "peer_state"):
            if name in d:
                setattr(step, name, d[name])


def _delegation_sent(task: Task, event: Event) -> None:
    d = event.data
    step_n = d.get("step")
    link = Link(str(d["repo"]), int(d["id"]), step=int(step_n) if step_n is not None else None)
    if all((c.repo, c.id) != (link.repo, link.id) for c in task.children):
        task.children = [*task.children, link]
    step = _step(task, int(d["step"])) if d.get("step") is not None else None
    if step is not None:
        step.peer_task_id = link.id
        step.status = "waiting"


def _delegation_finished(task: Task, event: Event) -> None:
    d = event.data
    for finished in task.children:
        if (finished.repo, finished.id) == (d.get("repo"), d.get("id")):
            finished.state = d.get("state")
    if not d.get("ok") and task.state in (State.AWAITING_REVIEW, State.MERGING, State.DONE):
        # Too late to fail it: mark it, so the cockpit and `task show` say which child went wrong.
        task.child_failure = str(d.get("reason") or f"{d.get('repo')}#{d.get('id')} {d.get('state')}")
    step = _step(task, int(d["step"])) if d.get("step") is not None else None
    if step is not None:
        step.peer_state = d.get("state")
        step.status = "done" if d.get("ok") else "failed"
        step.detail = d.get("reason")


Fold = Callable[[Task, Event], None]
# How each event type changes the task it is about, after `target_state` set its state. `task.created` makes
# the task instead (see `apply`); every other member of the vocabulary has its fold here.
FOLDS: dict[EventType, Fold] = {
    E.TASK_CLASSIFIED: _classified,
    E.TASK_CLARIFICATION_REQUESTED: _clarification_requested,
    E.TASK_CLARIFIED: _clarified,
    E.TASK_APPROVED: _approved,
    E.TASK_REJECTED: _ended,
    E.TASK_CANCELLED: _ended,
    E.TASK_FAILED: _ended,
    E.TASK_INTERRUPTED: _ended,
    E.TASK_STOPPED: _ended,
    E.TASK_EXECUTING: _executing,
    E.TASK_PANE: _pane,
    E.TASK_GATING: _gating,
    E.TASK_AWAITING_REVIEW: _awaiting_review,
    E.TASK_REWORK_REQUESTED: _rework_requested,
    E.TASK_DONE: _state_only,
    E.WORKTREE_REMOVED: _worktree_removed,
    E.AGENT_PROGRESS: _progress,
    E.AGENT_NEEDS_INPUT: _needs_input,
    E.AGENT_INPUT_RESOLVED: _input_resolved,
    E.AGENT_EXITED: _exited,
    E.AGENT_TURN_ENDED: _turn_ended,
    E.AGENT_DONE: _agent_done,
    E.AGENT_USAGE: _usage,
    E.GATE_STARTED: _state_only,
    E.GATE_FINISHED: _gate_finished,
    E.MERGE_PREFLIGHT: _merge_preflight,
    E.MERGE_REBASED: _merge_rebased,
    E.MERGE_STARTED: _merge_started,
    E.MERGE_FINISHED: _merge_finished,
    E.MERGE_REFUSED: _merge_refused,
    E.MERGE_NEEDS_ATTENTION: _merge_needs_attention,
    E.MERGE_ROLLED_BACK: _merge_rolled_back,
    E.DELEGATION_SENT: _delegation_sent,
    E.DELEGATION_FINISHED: _delegation_finished,
    E.STEP_UPDATED: _step_updated,
}


def apply(tasks: dict[int, Task], event: Event) -> Task | None:
    """Fold one event into `tasks`; return the task it changed (None for events about no task, which are
    the repo's notes and fold into nothing). An event about a task whose type is outside the vocabulary is
    refused (`events.event_type`), never skipped."""
    if event.task_id is None:
        return None
    type_ = event_type(event.type)
    if type_ is E.TASK_CREATED:
        created = _created(event)
        tasks[created.id] = created
        return created
    task = tasks.get(event.task_id)
    if task is None:
        return None
    state = target_state(task, type_, event.data)
    if state is not None:
        task.state = state
    task.updated_at = event.ts
    FOLDS[type_](task, event)
    return task
