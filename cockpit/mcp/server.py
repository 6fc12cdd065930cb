"""The cockpit MCP server (`cockpit mcp`): cross-repo delegation tools, over stdio, for the agent in a repo.

Every tool runs one op of the repo's own ops table, through its daemon when it is up and straight against its
store otherwise (`core.backend`), so the links between tasks are recorded in the repo either way. Every result
is a JSON object with a short `hint` of what to do next; a refusal is an error result with the same shape
(`error.code`, `error.message`, `hint`).

The human gate holds here too: `approve_remote_task` approves only what the peer's `[task] remote_approval`
allows; anything else is refused with the way for a person to approve it in the peer repo.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import Field

from cockpit import __version__
from cockpit.core.backend import backend_for
from cockpit.core.delegation import DEFAULT_WAIT_CLASSIFIED_S, main_repo_of
from cockpit.core.errors import CockpitError
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.core.states import FINISHED
from cockpit.core.workspace import repo_identity

SERVER_NAME = "cockpit"
# While wait_remote_task blocks, a progress notification goes out on every change and at least this often.
HEARTBEAT_ENV = "COCKPIT_MCP_HEARTBEAT_S"
DEFAULT_HEARTBEAT_S = 10.0
TASK_ENV = "COCKPIT_TASK_ID"

INSTRUCTIONS = """\
Tools of agent-cockpit for the repository you work in. Cross-repo work is explicit: when your plan has a
`delegate` step, call create_remote_task(repo, text) with what the peer repo must do (a contract, not a diff),
then wait_remote_task(repo, id) until it is done before the steps that depend on it. Large peer tasks must be
approved by a person in the peer repo: do not try to get around that; say what you are waiting for."""

RepoArg = Annotated[str, Field(description="a peer repo of the workspace, by name (list_peers shows them)")]
IdArg = Annotated[int, Field(description="the task id in that repo", ge=1)]


def _result(data: JSON, hint: str) -> CallToolResult:
    body = {"ok": True, **data, "hint": hint}
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body, indent=2, default=str))],
                          structured_content=body)


def _error(exc: CockpitError) -> CallToolResult:
    hints = {
        "human_gate": "a person must approve it in the peer repo; tell them, then wait_remote_task",
        "duplicate": "a similar task exists there: get_remote_task / show_task it, or pass force=true",
        "no_workspace": "this repo has no peers until it is in a cockpit-workspace.toml",
        "not_in_workspace": "add this repo to the workspace with `cockpit workspace add`",
        "not_found": "check the repo name (list_peers) and the task id",
        "not_initialised": "the peer repo needs `cockpit daemon start` (or `cockpit init`) first",
    }
    body = {"ok": False, "error": exc.to_json(), "hint": hints.get(exc.code, "fix the request and try again")}
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body, indent=2, default=str))],
                          structured_content=body, is_error=True)


def _compact(task: JSON) -> JSON:
    return {k: task.get(k) for k in ("id", "state", "scope", "title", "parent", "children", "needs_input",
                                     "failure")}


class CockpitTools:
    """The tools' bodies, bound to one repo (and, inside a task's worktree, to that task)."""

    def __init__(self, paths: RepoPaths, task_id: int | None, heartbeat_s: float) -> None:
        self.paths = paths
        self.task_id = task_id
        self.heartbeat_s = heartbeat_s

    async def call(self, op: str, args: dict[str, Any]) -> JSON:
        async with backend_for(self.paths) as backend:
            return await backend.call(op, args)

    async def create_remote_task(self, repo: str, text: str, source_task_id: int | None, step: int | None,
                                 wait_classified_s: float | None, force: bool) -> CallToolResult:
        parent = source_task_id if source_task_id is not None else self.task_id
        args: JSON = {"repo": repo, "text": text, "force": force, "wait_classified_s": wait_classified_s}
        if parent is not None:
            args["source_task_id"] = parent
        if step is not None:
            args["step"] = step
        result = await self.call("create_remote_task", args)
        return _result(_without_task(result), str(result["hint"]))

    async def get_remote_task(self, repo: str, task_id: int) -> CallToolResult:
        result = await self.call("get_remote_task", {"repo": repo, "id": task_id})
        return _result(result, str(result["hint"]))

    async def approve_remote_task(self, repo: str, task_id: int) -> CallToolResult:
        result = await self.call("approve_remote_task", {"repo": repo, "id": task_id})
        return _result(_without_task(result), str(result["hint"]))

    async def wait_remote_task(self, repo: str, task_id: int, until: list[str] | None,
                               timeout_s: float | None, ctx: Context[Any, Any]) -> CallToolResult:
        started = time.monotonic()
        deadline = None if timeout_s is None else started + timeout_s
        current = await self.call("get_remote_task", {"repo": repo, "id": task_id})
        last = str(current["state"])
        await ctx.report_progress(0.0, timeout_s, str(current["status"]))
        result = current
        reached = last in {s.value for s in FINISHED} or last in (until or [])
        timed_out = False
        while not reached:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if remaining == 0:
                timed_out = True
                break
            step = self.heartbeat_s if remaining is None else min(self.heartbeat_s, remaining)
            result = await self.call("wait_remote_task", {"repo": repo, "id": task_id, "until": until or [],
                                                          "timeout_s": step, "since_state": last})
            reached = bool(result.get("reached"))
            elapsed = round(time.monotonic() - started, 3)
            waited = "" if reached else f" (waiting {elapsed:.0f}s)"
            await ctx.report_progress(max(elapsed, 0.001), timeout_s, f"{result['status']}{waited}")
            last = str(result["state"])
        body = _without_task(result)
        body.update(reached=reached, timed_out=timed_out, waited_s=round(time.monotonic() - started, 3))
        hint = str(result["hint"])
        if timed_out:
            hint = f"timed out after {timeout_s:g}s: {result['status']}. {hint}"
        return _result(body, hint)

    async def list_peers(self) -> CallToolResult:
        result = await self.call("list_peers", {})
        names = ", ".join(p["name"] for p in result["peers"]) or "none"
        down = [p["name"] for p in result["peers"] if p["daemon"] != "up"]
        hint = f"peers: {names}. create_remote_task(repo, text) delegates work to one"
        if down:
            hint += f"; daemon down in {', '.join(down)}: requests there wait in `created` until it starts"
        return _result(result, hint)

    async def list_tasks(self, all_tasks: bool, states: list[str] | None) -> CallToolResult:
        result = await self.call("list_tasks", {"all": all_tasks, "states": states or []})
        tasks = [_compact(t) for t in result["tasks"]]
        return _result({"repo": repo_identity(self.paths.root)[0], "tasks": tasks},
                       "show_task(id) shows one task with its plan" if tasks else
                       "no tasks" + ("" if all_tasks else " (all=true includes finished ones)"))

    async def show_task(self, task_id: int) -> CallToolResult:
        task = await self.call("get_task", {"id": task_id})
        waiting = [s for s in task.get("plan", [])
                   if s.get("verb") == "delegate" and s.get("status") == "waiting"]
        if waiting:
            s = waiting[0]
            hint = (f"step {s['n']} waits on {s['peer']}#{s['peer_task_id']} "
                    f"({s.get('peer_state') or 'unknown'}): "
                    f"wait_remote_task(repo={s['peer']!r}, id={s['peer_task_id']})")
        else:
            hint = f"task {task_id} is {task['state']}"
        return _result({"task": task}, hint)

    async def create_task(self, text: str, force: bool) -> CallToolResult:
        task = await self.call("create_task", {"text": text, "force": force})
        state = task["state"]
        hint = {"pending": "a person approves it in this repo's cockpit tab (`cockpit task approve ID`)",
                "pending_clarification": "it has questions for a person (show_task lists them)",
                "approved": "approved: it runs when an execution slot is free",
                "rejected": f"rejected: {task.get('reason') or ''}"}.get(state, f"task is {state}")
        return _result({"task": task}, f"task {task['id']} created: {hint}")


def _without_task(result: JSON) -> JSON:
    """The summary without the full task document (plan, state and scope are at the top level already)."""
    return {k: v for k, v in result.items() if k not in ("task", "hint")}


def build_server(start: Path | None = None, *, task_id: int | None = None,
                 heartbeat_s: float | None = None) -> MCPServer:
    """The MCP server for the repo around `start` (a task worktree counts as its repo, and names the task)."""
    root, worktree_task = main_repo_of(start)
    here_root, here_task = main_repo_of(Path.cwd()) if start is not None else (root, worktree_task)
    if task_id is None:
        env_task = os.environ.get(TASK_ENV, "")
        if env_task.isdigit():
            task_id = int(env_task)
        elif worktree_task is not None:
            task_id = worktree_task
        elif here_root == root:
            task_id = here_task
    if heartbeat_s is None:
        try:
            heartbeat_s = float(os.environ.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S))
        except ValueError:
            heartbeat_s = DEFAULT_HEARTBEAT_S
    tools = CockpitTools(RepoPaths(root), task_id, max(0.05, heartbeat_s))
    server: MCPServer = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__,
                                  log_level="WARNING")

    async def guarded(body: Any) -> CallToolResult:
        try:
            result: CallToolResult = await body
        except CockpitError as exc:
            return _error(exc)
        return result

    @server.tool(description=(
        "Create a task in a peer repo of the workspace (through its daemon, or written into its store when "
        "the daemon is down). Returns the peer task's id, scope, state and plan."))
    async def create_remote_task(
        repo: RepoArg,
        text: Annotated[str, Field(description="what the peer repo must do: the contract, briefly")],
        source_task_id: Annotated[int | None, Field(
            description="the task in this repo it belongs to (default: this worktree's task)")] = None,
        step: Annotated[int | None, Field(description="the delegate step of that task's plan")] = None,
        wait_classified_s: Annotated[float, Field(
            description="seconds to wait for the peer to classify it", ge=0)] = DEFAULT_WAIT_CLASSIFIED_S,
        force: Annotated[bool, Field(description="create it even if the peer has a similar task")] = False,
    ) -> CallToolResult:
        return await guarded(
            tools.create_remote_task(repo, text, source_task_id, step, wait_classified_s, force))

    @server.tool(description="Show a task of a peer repo: state, scope, plan, and what it waits for.")
    async def get_remote_task(repo: RepoArg, id: IdArg) -> CallToolResult:
        return await guarded(tools.get_remote_task(repo, id))

    @server.tool(description=(
        "Approve a pending task in a peer repo, only as far as that repo's [task] remote_approval allows "
        "(by default: small tasks). Large ones need a person there."))
    async def approve_remote_task(repo: RepoArg, id: IdArg) -> CallToolResult:
        return await guarded(tools.approve_remote_task(repo, id))

    @server.tool(description=(
        "Block until a peer repo's task is done, failed, interrupted, rejected, cancelled or rolled back (or "
        "in one of `until`, e.g. awaiting_review), sending a progress notification on every change."))
    async def wait_remote_task(
        repo: RepoArg, id: IdArg, ctx: Context[Any, Any],
        until: Annotated[list[str] | None, Field(description="extra states to stop at")] = None,
        timeout_s: Annotated[float | None, Field(description="give up after this many seconds", ge=0)] = None,
    ) -> CallToolResult:
        return await guarded(tools.wait_remote_task(repo, id, until, timeout_s, ctx))

    @server.tool(description="The peer repos of the workspace: path, daemon up or down, tasks by state.")
    async def list_peers() -> CallToolResult:
        return await guarded(tools.list_peers())

    @server.tool(description="List this repo's tasks (active ones unless all=true).")
    async def list_tasks(
        all: Annotated[bool, Field(description="include finished tasks")] = False,
        states: Annotated[list[str] | None, Field(description="only tasks in these states")] = None,
    ) -> CallToolResult:
        return await guarded(tools.list_tasks(all, states))

    @server.tool(description="Show one task of this repo, with its plan, parent and delegated children.")
    async def show_task(id: IdArg) -> CallToolResult:
        return await guarded(tools.show_task(id))

    @server.tool(description="Create a task in this repo; it is classified, then waits for a person.")
    async def create_task(
        text: Annotated[str, Field(description="what should be done")],
        force: Annotated[bool, Field(description="create it even if a similar task exists")] = False,
    ) -> CallToolResult:
        return await guarded(tools.create_task(text, force))

    return server


async def serve(start: Path | None = None) -> None:
    await build_server(start).run_stdio_async()
