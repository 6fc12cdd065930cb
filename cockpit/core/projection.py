"""The projection: a pure fold of events into tasks.

The store applies it inside the transaction that appends each event, and `replay` applies it to every event
from scratch; both use this one function, so replaying rebuilds the projections exactly.
"""

from __future__ import annotations

from typing import Any

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

# Events that move a task to a fixed state. Events whose target depends on their data are in `target_state`.
EVENT_STATE: dict[str, State] = {
    "task.clarification_requested": State.PENDING_CLARIFICATION,
    "task.approved": State.APPROVED,
    "task.rejected": State.REJECTED,
    "task.cancelled": State.CANCELLED,
    "task.executing": State.EXECUTING,
    "task.interrupted": State.INTERRUPTED,
    "task.failed": State.FAILED,
    "task.gating": State.GATING,
    "task.awaiting_review": State.AWAITING_REVIEW,
    "merge.started": State.MERGING,
    "merge.finished": State.DONE,
    "merge.rolled_back": State.ROLLED_BACK,
    "task.done": State.DONE,
    "task.rework_requested": State.EXECUTING,
}
MAX_MESSAGE = 2000


def target_state(task: Task, type_: str, data: dict[str, Any]) -> State | None:
    """The state an event moves `task` to, or None when it leaves the state alone."""
    if type_ in ("task.classified", "task.clarified"):
        return State(data["state"])
    if type_ == "task.stopped":
        # A stop leaves the task interrupted; a cancel's stop is followed by task.cancelled (one transaction).
        return None if data.get("then") == "cancel" else State.INTERRUPTED
    if type_ == "merge.refused":
        # A refusal during preflight leaves awaiting_review as it is; during a merge it returns there.
        return State.AWAITING_REVIEW if task.state is State.MERGING else None
    return EVENT_STATE.get(type_)


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


def apply(tasks: dict[int, Task], event: Event) -> Task | None:
    """Fold one event into `tasks`; return the task it changed (None for events about no task)."""
    if event.task_id is None:
        return None
    d = event.data
    if event.type == "task.created":
        created = Task(
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
        tasks[created.id] = created
        return created
    task = tasks.get(event.task_id)
    if task is None:
        return None
    state = target_state(task, event.type, d)
    if state is not None:
        task.state = state
    task.updated_at = event.ts
    t = event.type
    if t == "task.classified":
        _apply_classification(task, d)
    elif t == "task.clarification_requested":
        task.questions = [str(q) for q in d.get("questions", [])]
    elif t == "task.clarified":
        task.answers = [*task.answers, *[str(a) for a in d.get("answers", [])]]
        _apply_classification(task, d)
    elif t == "task.approved":
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
    elif t in ("task.rejected", "task.cancelled", "task.failed", "task.interrupted", "task.stopped"):
        task.failure = d.get("reason") or task.failure
        task.needs_input = False
        if t != "task.failed" or task.agent_status == "running":
            task.agent_status = "exited" if task.agent_status != "idle" else "idle"
    elif t == "task.executing":
        for name in ("branch", "worktree", "base_sha", "pane", "agent"):
            if d.get(name) is not None:
                setattr(task, name, d[name])
        task.attempt = int(d.get("attempt", task.attempt + 1))
        if not d.get("gates_only"):  # a re-run of the gates alone starts no agent
            task.agent_status = "running"
        task.needs_input = False
        task.progress = None
    elif t == "task.pane":
        task.pane = d.get("pane")
    elif t == "worktree.removed":
        task.worktree = None
        task.pane = None
    elif t == "agent.progress":
        task.progress = str(d.get("text", ""))
    elif t == "agent.needs_input":
        task.needs_input = True
        task.agent_status = "needs_input"
    elif t == "agent.input_resolved":
        task.needs_input = False
        if task.agent_status == "needs_input":
            task.agent_status = "running"
    elif t == "agent.exited":
        task.agent_status = "exited"
        task.needs_input = False
    elif t == "agent.turn_ended":
        if d.get("message"):
            task.last_message = str(d["message"])[:MAX_MESSAGE]
    elif t == "agent.done":
        if d.get("message"):
            task.last_message = str(d["message"])[:MAX_MESSAGE]
        task.needs_input = False
        if task.agent_status != "exited":
            task.agent_status = "done"
    elif t == "agent.usage":
        usage = RunUsage.from_json(d)
        task.usage_runs = [u for u in task.usage_runs if u.run != usage.run] + [usage]
    elif t == "task.rework_requested":
        task.failure = None
        task.needs_input = False
        task.progress = None
    elif t == "task.gating":
        task.gates = []
        task.gated_sha = None
    elif t == "task.awaiting_review":
        task.gated_sha = d.get("gated_sha")
    elif t == "gate.finished":
        result = GateResult.from_json(d)
        task.gates = [g for g in task.gates if g.name != result.name] + [result]
    elif t == "merge.preflight":
        if task.merge is None or task.merge.state != "merged":
            task.merge = MergeInfo(state="preflight", target=str(d.get("target", "")),
                                   strategy=str(d.get("strategy", "merge")))
    elif t == "merge.started":
        task.merge = MergeInfo(state="merging", target=d["target"], merge_sha=d.get("merge_sha"),
                               rollback_sha=d.get("rollback_sha"), strategy=d.get("strategy", "merge"))
    elif t == "merge.finished":
        task.merge = MergeInfo(state="merged", target=d["target"], merge_sha=d.get("merge_sha"),
                               rollback_sha=d.get("rollback_sha"), strategy=d.get("strategy", "merge"))
        # The worktree is removed after a merge unless it held uncommitted work (then its path is kept).
        task.worktree = d.get("worktree_kept")
        task.pane = None
    elif t == "merge.rebased":
        # The task branch was rebased onto the target's new tip before merging: that tip is its new base.
        task.base_sha = d.get("base_sha") or task.base_sha
    elif t == "merge.refused":
        restored = d.get("branch_restored")
        if isinstance(restored, dict) and restored.get("base_sha"):
            task.base_sha = restored["base_sha"]  # the refused merge put the branch back where it was
        if task.merge is not None and task.merge.state != "merged":
            task.merge.state = "refused"
            task.merge.detail = d.get("reason")
    elif t == "merge.needs_attention":
        if task.merge is not None:
            task.merge.state = "needs_attention"
            task.merge.detail = d.get("reason")
    elif t == "merge.rolled_back":
        if task.merge is not None:
            task.merge.state = "rolled_back"
            task.merge.rollback_method = d.get("method")
    elif t == "step.updated":
        step = _step(task, int(d["n"]))
        if step is not None:
            for name in ("status", "detail", "peer_task_id", "peer_state"):
                if name in d:
                    setattr(step, name, d[name])
    elif t == "delegation.sent":
        step_n = d.get("step")
        link = Link(str(d["repo"]), int(d["id"]), step=int(step_n) if step_n is not None else None)
        if all((c.repo, c.id) != (link.repo, link.id) for c in task.children):
            task.children = [*task.children, link]
        step = _step(task, int(d["step"])) if d.get("step") is not None else None
        if step is not None:
            step.peer_task_id = link.id
            step.status = "waiting"
    elif t == "delegation.finished":
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
    return task
