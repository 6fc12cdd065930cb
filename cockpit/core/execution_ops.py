"""Socket ops of the execution layer that work with or without a daemon.

- `send_input {id, text, enter=true}`: type an answer into the task's agent pane; clears `needs_input`.
- `tail {id, lines=50}`: the last lines of the task's agent log (`.cockpit/logs/task-<id>.log`), cleaned of
  terminal escapes.
- `gc {dry_run=false}`: remove the worktrees of rejected and cancelled tasks and orphaned ones (never one
  with uncommitted work), and close those tasks' tmux windows.
- `attach_info {id}`: where the task's pane is and the tmux argv that shows it.
- `done_task {id, message?}`: the agent's work is done (`agent.done`); the daemon runs the gates next with the
  agent's session still open.
- `rework_task {id, message}`: a reviewer's request for changes on an awaiting_review task
  (`task.rework_requested`, back to executing); the daemon types it into the agent's session.
- `stop_task {id, reason?}`: end the agent and leave the task interrupted (`task.stopped`), worktree and
  branch kept. With a daemon, its executor ends the agent gracefully (exit, then TERM, then KILL); without
  one the pane's processes are ended here. `cancel_task` of an executing or gating task stops it the same
  way first.

`run_gates {id}` needs the daemon (it runs the gates in the background and moves the task); the daemon's
execution extension adds it. Every blocking call (git, tmux, file reads) runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

from cockpit.core.errors import RefusedError, TmuxError, UsageError
from cockpit.core.events import EventType
from cockpit.core.models import JSON, Task
from cockpit.core.ops import Ops, arg_bool, arg_int, arg_opt_str, arg_str
from cockpit.core.service import TaskService
from cockpit.core.states import CLOSED, RUNNING, State
from cockpit.core.tmux import PaneRef, TmuxPanes
from cockpit.core.worktrees import gc_worktrees

__all__ = [
    "TAIL_READ_BYTES",
    "clean_output",
    "died_signal_path",
    "find_task_pane",
    "install_ops",
    "log_tail",
    "panes_for",
    "read_log_tail",
    "record_stop",
    "session_name",
    "window_name",
]

TAIL_READ_BYTES = 512 * 1024
MAX_TAIL_LINES = 10_000
MAX_MESSAGE = 20_000

# CSI / OSC / two-character escapes, as a terminal would consume them.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1b[()][0-9A-Za-z]"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def window_name(task_id: int) -> str:
    return f"task-{task_id}"


def session_name(repo_name: str) -> str:
    return f"cockpit-{repo_name}"


def shell_session_name(repo_name: str, task_id: int) -> str:
    """A person's shell in a task's worktree has a session of its own: when the shell exits the session
    ends and the person's terminal comes back, instead of landing on the agent's (maybe dead) window."""
    return f"{session_name(repo_name)}-shell-{task_id}"


def panes_for(service: TaskService) -> TmuxPanes:
    """The repo's agent panes on the configured tmux server (`[tmux] socket_name`)."""
    return TmuxPanes(service.settings.tmux_socket, session_name(service.repo_name))


def died_signal_path(signals_dir: Path, task_id: int) -> Path:
    """Where tmux's pane-died hook writes the exit status of the task's agent (a sub-folder of signals/)."""
    return signals_dir / "died" / f"task-{task_id}.status"


def find_task_pane(panes: TmuxPanes, task_id: int) -> PaneRef | None:
    """The task's pane (a live one first), or None when its window is gone. Blocks."""
    return panes.find_pane(window_name(task_id))


def clean_output(text: str) -> list[str]:
    """Terminal output as plain lines: escapes removed, a carriage return overwrites what came before it."""
    lines: list[str] = []
    for raw in text.split("\n"):
        line = _ANSI.sub("", raw)
        if "\r" in line:
            parts = [p for p in line.split("\r") if p]
            line = parts[-1] if parts else ""
        lines.append(_CONTROL.sub("", line).rstrip())
    return lines


def read_log_tail(path: Path, lines: int) -> list[str]:
    """The last `lines` lines of a log written by pipe-pane, cleaned; [] when there is no log yet. Blocks."""
    return log_tail(path, lines)[0]


def log_tail(path: Path, lines: int) -> tuple[list[str], int, int, bool]:
    """(last lines, bytes read, end of the last complete line, whether the last line given is partial).

    A follower continues from the end of the last complete line, so the partial line prints once, whole.
    """
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            end = fh.tell()
            start = max(0, end - TAIL_READ_BYTES)
            fh.seek(start)
            data = fh.read()
    except FileNotFoundError:
        return [], 0, 0, False
    size = start + len(data)
    cut = data.rfind(b"\n") + 1
    complete = start + cut
    text = data.decode("utf-8", errors="replace")
    if start > 0:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    out = clean_output(text)
    partial = bool("".join(clean_output(data[cut:].decode("utf-8", errors="replace"))).strip())
    while out and not out[-1].strip():
        out.pop()
    return (out[-lines:] if lines > 0 else []), size, complete, partial and lines > 0


def _pane_json(panes: TmuxPanes, pane: PaneRef, alive: bool) -> JSON:
    return {
        "pane": pane.target,
        "pane_id": pane.pane_id,
        "session": pane.session,
        "window": pane.window,
        "socket_name": panes.socket_name,
        "alive": alive,
    }


async def record_stop(
    service: TaskService, task_id: int, *, by: str, reason: str, how: str, cancel: bool = False
) -> Task:
    """Record that the task's agent was stopped: interrupted, or (a cancel) cancelled, in one transaction."""
    text = reason or (
        f"cancelled by {by}" if cancel else
        f"stopped by {by}; the worktree and branch are kept: `cockpit task retry {task_id}` runs it again"
    )
    async with service.store.tx() as tx:
        task = await tx.get_task(task_id)
        if task.state in RUNNING:
            data: JSON = {"by": by, "reason": text, "how": how, "attempt": task.attempt}
            if cancel:
                data["then"] = "cancel"
            await tx.append(task_id, EventType.TASK_STOPPED, data, action="stop")
        if cancel:
            await tx.append(task_id, EventType.TASK_CANCELLED, {"by": by, "reason": reason or None},
                            action="cancel")
        return await tx.get_task(task_id)


def install_ops(ops: Ops) -> None:
    service = ops.service
    paths = service.paths

    async def task_pane(task: Task) -> tuple[TmuxPanes, PaneRef, bool]:
        panes = panes_for(service)
        pane = await asyncio.to_thread(find_task_pane, panes, task.id)
        if pane is None:
            raise RefusedError(
                f"task {task.id} has no tmux pane (it is {task.state.value}); "
                + (
                    "retry it with `cockpit task retry " + str(task.id) + "`"
                    if task.state in (State.FAILED, State.INTERRUPTED)
                    else "its agent is not running"
                ),
                code="no_pane",
            )
        alive = await asyncio.to_thread(panes.pane_alive, pane)
        return panes, pane, alive

    async def send_input(args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        text = arg_str(args, "text")
        enter = arg_bool(args, "enter", True)
        task = await service.store.get_task(task_id)
        if task.state is not State.EXECUTING:
            raise RefusedError(
                f"task {task_id} is {task.state.value}; only an executing task's agent takes input",
                code="not_executing",
            )
        panes, pane, alive = await task_pane(task)
        if not alive:
            raise RefusedError(
                f"the agent of task {task_id} has exited; it takes no more input", code="agent_exited"
            )
        from cockpit.core.agents import ADAPTERS
        from cockpit.core.sessions import submit

        agent = ADAPTERS.get(task.agent or "")
        style = agent.submit if agent is not None else "enter"
        composer = agent.composer if agent is not None else None
        try:
            await submit(
                panes, pane, text, style, enter=enter, log_path=paths.task_log(task_id), composer=composer
            )
        except TmuxError as exc:
            raise RefusedError(exc.message, code="agent_exited") from None
        async with service.store.tx() as tx:
            current = await tx.get_task(task_id)
            if current.needs_input and current.state is State.EXECUTING:
                await tx.append(task_id, EventType.AGENT_INPUT_RESOLVED, {"source": "send"})
            after = await tx.get_task(task_id)
        return {
            "sent": True,
            "text": text,
            "enter": enter,
            "pane": pane.target,
            "task": await ops.task_json(after),
        }

    async def tail(args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        count = args.get("lines", 50)
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_TAIL_LINES:
            raise UsageError(f"lines must be a whole number from 0 to {MAX_TAIL_LINES}", code="bad_request")
        task = await service.store.get_task(task_id)
        log = paths.task_log(task_id)
        lines, size, complete, partial = await asyncio.to_thread(log_tail, log, count)
        return {
            "size": size,
            "complete_size": complete,
            "partial": partial,
            "id": task_id,
            "state": task.state.value,
            "path": str(log),
            "exists": log.exists(),
            "lines": lines,
        }

    async def gc(args: dict[str, Any]) -> JSON:
        dry_run = arg_bool(args, "dry_run")
        force = arg_bool(args, "force")
        tasks = await service.store.list_tasks()
        report = await asyncio.to_thread(gc_worktrees, paths.root, paths.worktrees, tasks, dry_run=dry_run,
                                         force=force)
        result = report.to_json()
        removed_tasks = {int(item["task"]) for item in report.removed if item.get("task") is not None}
        if not dry_run:
            for task_id in sorted(removed_tasks):
                await service.store.append(task_id, EventType.WORKTREE_REMOVED, {"by": "gc"})
        # Close the windows of tasks that are over (their panes are kept after exit for reading).
        closed: list[str] = []
        over = [t.id for t in tasks if t.state in CLOSED]
        if over:
            panes = panes_for(service)
            try:
                existing = set(await asyncio.to_thread(panes.list_windows))
                for task in tasks:
                    name = window_name(task.id)
                    if task.id in over and name in existing:
                        if not dry_run:
                            # Closing the window only hangs up on the agent: one that ignores SIGHUP would
                            # live on, reparented to init. End it first (TERM, then KILL).
                            await end_here(task)
                            await asyncio.to_thread(panes.kill_window, name)
                        closed.append(name)
            except TmuxError as exc:
                result["tmux_error"] = exc.message
        result["windows_closed"] = closed
        return result

    async def attach_info(args: dict[str, Any]) -> JSON:
        task = await service.store.get_task(arg_int(args, "id"))
        panes, pane, alive = await task_pane(task)
        return {**_pane_json(panes, pane, alive), "argv": panes.attach_argv(pane)}

    async def open_shell(args: dict[str, Any]) -> JSON:
        """A shell in the task's worktree (an open one is reused), and the argv that attaches to it."""
        task = await service.store.get_task(arg_int(args, "id"))
        worktree = Path(task.worktree) if task.worktree else None
        if worktree is None or not worktree.is_dir():
            raise RefusedError(f"task {task.id} has no worktree", code="no_worktree")
        panes = TmuxPanes(service.settings.tmux_socket, shell_session_name(service.repo_name, task.id))
        pane = await asyncio.to_thread(panes.open_shell, f"shell-{task.id}", worktree)
        return {**_pane_json(panes, pane, True), "argv": panes.attach_argv(pane), "worktree": str(worktree)}

    async def done_task(args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        message = arg_opt_str(args, "message")
        by = arg_str(args, "by", "person")
        async with service.store.tx() as tx:
            task = await tx.get_task(task_id)
            finished = task.agent_status in ("done", "exited")
            if task.state in (State.GATING, State.AWAITING_REVIEW) and finished:
                pass  # reported already: the gates are running or have passed
            elif task.state is not State.EXECUTING:
                raise RefusedError(
                    f"task {task_id} is {task.state.value}; only an executing task's agent can be done",
                    code="not_executing",
                )
            else:
                data: JSON = {"by": by, "attempt": task.attempt, "source": arg_str(args, "source", "op")}
                if message:
                    data["message"] = message[:MAX_MESSAGE]
                await tx.append(task_id, EventType.AGENT_DONE, data)
            after = await tx.get_task(task_id)
        return await ops.task_json(after)

    async def rework_task(args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        message = arg_str(args, "message").strip()
        if not message:
            raise UsageError("rework_task needs a message: what the agent should change", code="bad_request")
        if len(message) > MAX_MESSAGE:
            raise UsageError(f"the message is longer than {MAX_MESSAGE} characters", code="bad_request")
        by = arg_str(args, "by", "person")
        task = await service.store.get_task(task_id)
        if task.state is not State.AWAITING_REVIEW:
            raise RefusedError(
                f"task {task_id} is {task.state.value}; changes can be requested only while it awaits review",
                code="not_in_review",
            )
        if not task.worktree:
            raise RefusedError(
                f"task {task_id} has no worktree any more; run it again with `cockpit task retry {task_id}`",
                code="no_worktree",
            )
        _, after = await service.store.append(
            task_id, EventType.TASK_REWORK_REQUESTED, {"message": message,
                                                       "by": by}, action="request changes to"
        )
        assert after is not None
        return await ops.task_json(after)

    async def end_here(task: Task) -> str:
        """No daemon: end the task's agent from this process (the pane's processes, then its window)."""
        from cockpit.core import sessions

        panes = panes_for(service)
        try:
            pane = await asyncio.to_thread(find_task_pane, panes, task.id)
        except TmuxError:
            return "gone"
        if pane is None:
            return "gone"
        how = await sessions.end_agent(
            panes, pane, exit_text=None, graceful=False, term_s=service.settings.stop_grace_s
        )
        return how

    async def stop_task(args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        by = arg_str(args, "by", "person")
        reason = arg_str(args, "reason", "")
        task = await service.store.get_task(task_id)
        if task.state not in RUNNING:
            raise RefusedError(
                f"task {task_id} is {task.state.value}; only an executing or gating task can be stopped",
                code="not_running",
            )
        how = await end_here(task)
        return await ops.task_json(await record_stop(service, task_id, by=by, reason=reason, how=how))

    plain_cancel = ops.handlers["cancel_task"]

    async def cancel_task(args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        task = await service.store.get_task(task_id)
        if task.state not in RUNNING:
            return await plain_cancel(args)
        by = arg_str(args, "by", "person")
        how = await end_here(task)
        reason = arg_str(args, "reason", "")
        stopped = await record_stop(service, task_id, by=by, reason=reason, how=how, cancel=True)
        return await ops.task_json(stopped)

    plain_reject = ops.handlers["reject_task"]

    async def reject_task(args: dict[str, Any]) -> JSON:
        task = await service.store.get_task(arg_int(args, "id"))
        rejected = await plain_reject(args)
        if task.state is State.AWAITING_REVIEW:
            # Without a daemon nobody else ends the session kept open through review (the daemon's own
            # reject leaves that to its executor, which ends it gracefully).
            await end_here(task)
        return rejected

    ops.handlers["send_input"] = send_input
    ops.handlers["reject_task"] = reject_task
    ops.handlers["done_task"] = done_task
    ops.handlers["rework_task"] = rework_task
    ops.handlers["stop_task"] = stop_task
    ops.handlers["cancel_task"] = cancel_task
    ops.handlers["tail"] = tail
    ops.handlers["gc"] = gc
    ops.handlers["attach_info"] = attach_info
    ops.handlers["open_shell"] = open_shell
