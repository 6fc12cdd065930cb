"""What the flash line and the confirmations say: an op's outcome, a watched task's next move, a merge's
preflight and a rollback's plan, in words for a person."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from cockpit.core.models import JSON, Task
from cockpit.core.states import IN_EXECUTION, State

# How each op's success reads on the flash line.
DONE_VERBS = {
    "approve_task": "approved",
    "reject_task": "rejected",
    "clarify_task": "answered",
    "cancel_task": "cancelled",
    "retry_task": "sent back to work",
    "create_task": "created",
    "send_input": "answer sent to",
    "run_gates": "gates started for",
    "merge_task": "merged",
    "rollback_task": "rolled back",
    "stop_task": "stopped",
    "done_task": "marked done:",
    "rework_task": "sent back with your comments:",
}


# What the flash line adds after an op's verb: what happens next (reported again when it happens).
AFTER_OP = {
    "approve_task": " · it starts when a slot is free",
    "run_gates": " · the result shows here when they finish",
    "retry_task": " · the agent starts again",
    "clarify_task": " · classifying it again",
}


def transition_note(repo: str, task: Task, before: State | None) -> tuple[str, str]:
    """The flash line for a watched task that moved: what happened, and what the person can do now."""
    where = f"{repo}#{task.id}"
    state = task.state
    if state is State.FAILED:
        failed = [g.name for g in task.gates if g.status != "passed"]
        why = f"gate {', '.join(failed)} failed" if failed else (task.failure or "the agent failed")
        retried = before in IN_EXECUTION and task.attempt > 1
        again = " again" if retried else ""
        return f"{where} failed{again}: {why} · l shows the log, R retries", "warning"
    if state is State.AWAITING_REVIEW:
        return f"{where} passed its gates: awaiting review · d diff, m merge", "ok"
    if state is State.EXECUTING and before is State.GATING:
        return f"{where}: a gate failed, the agent is fixing it (attempt {task.attempt})", "warning"
    if state is State.EXECUTING:
        return f"{where} is executing (agent {task.agent or '?'})", "info"
    if state is State.GATING:
        return f"{where}: the agent finished, gates running", "info"
    if state is State.DONE:
        return f"{where} merged into {task.merge.target if task.merge else 'the target'}", "ok"
    if state is State.PENDING_CLARIFICATION:
        return f"{where} still needs answers: {len(task.questions)} question(s) · c answers", "warning"
    if state is State.PENDING:
        return f"{where} is planned ({task.scope}) and waits for approval · a approves", "warning"
    return f"{where} is {state.value}", "info"


def preflight_report(result: JSON) -> tuple[RenderableType, bool]:
    """The daemon's dry-run merge answer as text for a person, and whether the merge may go ahead."""
    found = result.get("preflight")
    report: JSON = found if isinstance(found, dict) else result
    ok = bool(report.get("ok", True))
    target = str(report.get("target") or "the target")
    branch = str(report.get("branch") or "the task's branch")
    head = Text.assemble(("merge ", "bold"), (branch, "cyan"), (" into ", "bold"), (target, "cyan"))
    checks = Table.grid(padding=(0, 1))
    checks.add_column(width=1)
    checks.add_column(style="bold", no_wrap=True)
    checks.add_column()
    for check in report.get("checks") or []:
        if isinstance(check, dict):
            good = bool(check.get("ok"))
            checks.add_row(Text("✓" if good else "✗", style="green" if good else "bold red"),
                           str(check.get("name", "")).replace("_", " "), str(check.get("detail", "")))
    parts: list[RenderableType] = [head, checks]
    conflicts = report.get("conflicts") or []
    if conflicts:
        parts.append(Text(f"conflicts in: {', '.join(map(str, conflicts))}", style="red"))
    if report.get("target_moved"):
        parts.append(Text(f"{target} moved since the task started: the branch is rebased and the gates run "
                          "again before the merge", style="yellow"))
    parts.append(Text(""))
    parts.append(Text("A rollback point (the target's tip) is recorded before the target moves; u undoes it."
                      if ok else "The merge cannot go ahead: fix what failed above.",
                      style="dim" if ok else "bold red"))
    return Group(*parts), ok


def rollback_plan(repo: str, task: Task, method: str) -> tuple[RenderableType, bool]:
    m = task.merge
    assert m is not None
    merge_sha = (m.merge_sha or "?")[:10]
    rollback_sha = (m.rollback_sha or "?")[:10]
    head = Text.assemble(("roll back ", "bold"), f"{repo}#{task.id} ", (task.title, "italic"), "\n")
    if method == "reset":
        body = Text(
            f"{m.target} is still at the merge {merge_sha}: it will be reset to {rollback_sha}, its tip "
            "before the merge (a compare-and-set; uncommitted work is never touched)."
        )
    elif method == "remote":
        body = Text(
            f"{m.target} is moved back from the merge {merge_sha} on the repo's host: reset to "
            f"{rollback_sha} "
            "while the merge is still its tip, else a revert commit (uncommitted work is never touched)."
        )
    elif method == "revert":
        body = Text(
            f"{m.target} has commits after the merge {merge_sha}: a revert commit undoing it will be "
            f"created on top of {m.target} (history is kept)."
        )
    else:
        return Group(
            head,
            Text(
                f"the merge {merge_sha} is not in {m.target}'s history any more: nothing to roll back",
                style="bold red",
            ),
        ), False
    return Group(
        head,
        body,
        Text(""),
        Text("The task becomes rolled_back; its branch is kept, so it can be retried.", style="dim"),
    ), True
