"""The shape of a task's plan for delegation: its delegate steps and children, which local steps wait for
them, which delegate steps can go now, and the prompt of the run that continues after them."""

from __future__ import annotations

from collections.abc import Iterable

from cockpit.core.models import Link, PlanStep, Task
from cockpit.core.states import State


def delegate_steps(task: Task) -> list[PlanStep]:
    return [s for s in task.plan if s.verb == "delegate" and s.peer]


def agent_children(task: Task) -> list[Link]:
    """Children the task's agent created itself (no plan step), that still hold it."""
    return [c for c in task.children if c.step is None and not c.released]


def open_children(task: Task) -> list[Link]:
    """Agent children not finished yet (a finish records their state)."""
    return [c for c in agent_children(task) if c.state is None]


def failed_children(task: Task) -> list[Link]:
    return [c for c in agent_children(task) if c.state is not None and c.state != State.DONE.value]


def holds(task: Task) -> bool:
    """Whether delegated work still holds the task before its gates."""
    return any(s.status != "done" for s in delegate_steps(task)) or bool(
        open_children(task) or failed_children(task))


def waits_on_delegates(task: Task) -> list[PlanStep]:
    """Local steps that depend, directly or through other steps, on a delegate step that is not done yet."""
    by_n = {s.n: s for s in task.plan}
    memo: dict[int, bool] = {}

    def blocked(n: int, seen: frozenset[int]) -> bool:
        if n in memo:
            return memo[n]
        step = by_n.get(n)
        if step is None or n in seen:
            return False
        if step.verb == "delegate":
            result = step.status != "done"
        else:
            result = any(blocked(d, seen | {n}) for d in step.depends_on)
        memo[n] = result
        return result

    local = [s for s in task.plan if s.verb != "delegate"]
    return [s for s in local
            if s.status != "done" and any(blocked(d, frozenset({s.n})) for d in s.depends_on)]


def ready_delegates(task: Task) -> list[PlanStep]:
    """Delegate steps to send or follow now: every delegate step they depend on (transitively) is done.

    Local dependencies do not hold a delegate step back: the peer gets the contract in the step's text, never
    this repo's diff, so it can start while the agent works here.
    """
    by_n = {s.n: s for s in task.plan}

    def delegate_deps(step: PlanStep, seen: frozenset[int]) -> Iterable[PlanStep]:
        for d in step.depends_on:
            dep = by_n.get(d)
            if dep is None or d in seen:
                continue
            if dep.verb == "delegate":
                yield dep
            else:
                yield from delegate_deps(dep, seen | {d})

    return [s for s in delegate_steps(task) if s.status in ("pending", "waiting")
            and all(d.status == "done" for d in delegate_deps(s, frozenset({s.n})))]


def continuation_prompt(task: Task, held: list[PlanStep], base_prompt: str) -> str:
    """The prompt of the run that does the steps held back for delegated work, now that it is done."""
    lines = [f"# Continue task {task.id}: {task.title}", "",
             "The delegated work these steps waited for is finished:", ""]
    for s in delegate_steps(task):
        where = f"{s.peer}#{s.peer_task_id}" if s.peer_task_id is not None else str(s.peer)
        state = s.peer_state or s.status
        lines.append(f"- step {s.n} [delegate to {s.peer}] {s.description}: {where} {state}")
    lines += ["", "Now do these remaining steps, in this same worktree (your earlier commits are here):", ""]
    for s in held:
        after = f" (after step {', '.join(map(str, s.depends_on))})" if s.depends_on else ""
        lines.append(f"{s.n}. [{s.verb}] {s.description}{after}")
    lines += ["", "The whole task, for reference, follows.", "", "---", "", base_prompt]
    return "\n".join(lines)
