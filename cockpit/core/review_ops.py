"""Ops that show a task's work to a reviewer who may be on another machine: its diff and its gate log.

`task_diff {id}`: the unified diff of the task's branch since it forked from its target (once merged: since
target's tip before the merge). `gate_log {id, lines?}`: the last lines of the task's gate log. A cockpit
reaching a repo over ssh reads these through the daemon, never the repo's files.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cockpit.core import git
from cockpit.core.models import JSON, Task
from cockpit.core.ops import Ops, arg_int
from cockpit.core.states import State

GATE_LOG_LINES = 200
MAX_GATE_LOG_LINES = 5000


def diff_base(task: Task, target: str) -> str:
    """What to diff against: the target, or once merged the target's tip before the merge."""
    if task.state in (State.DONE, State.ROLLED_BACK) and task.merge and task.merge.rollback_sha:
        return task.merge.rollback_sha
    return task.merge.target if task.merge else target


def _tail(text: str, lines: int) -> list[str]:
    return text.splitlines()[-lines:]


def install_ops(ops: Ops) -> None:
    service = ops.service

    async def task_diff(args: dict[str, Any]) -> JSON:
        task = await service.store.get_task(arg_int(args, "id"))
        if not task.branch:
            return {"id": task.id, "base": "", "branch": None, "text": "",
                    "message": f"task {task.id} has no branch yet: nothing to diff"}
        base = diff_base(task, service.settings.target_branch)
        text = await asyncio.to_thread(git.diff, service.paths.root, base, task.branch)
        return {"id": task.id, "base": base, "branch": task.branch, "text": text}

    async def gate_log(args: dict[str, Any]) -> JSON:
        task = await service.store.get_task(arg_int(args, "id"))
        lines = args.get("lines", GATE_LOG_LINES)
        if isinstance(lines, bool) or not isinstance(lines, int) or not 0 < lines <= MAX_GATE_LOG_LINES:
            lines = GATE_LOG_LINES
        path = service.paths.gate_log(task.id)

        def read() -> str:
            try:
                return path.read_text(errors="replace")
            except FileNotFoundError:
                return ""

        return {"id": task.id, "lines": _tail(await asyncio.to_thread(read), lines)}

    ops.handlers["task_diff"] = task_diff
    ops.handlers["gate_log"] = gate_log


__all__ = ["diff_base", "install_ops"]
