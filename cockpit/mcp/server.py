"""The cockpit MCP server (`cockpit mcp`): cross-repo delegation tools, over stdio, for the agent in a repo.

Every tool runs one op of the repo's own ops table, through its daemon when it is up and straight against its
store otherwise (`core.backend`), so the links between tasks are recorded in the repo either way. Every result
is a JSON object with a short `hint` of what to do next; a refusal, bad arguments included, is an error
result with the same shape (`ok: false`, `error.code`, `error.message`, `hint`).

Where it runs: `--repo PATH` or `COCKPIT_REPO`, else the repo around the working directory, so it starts from
any directory. Which task it speaks for: `COCKPIT_TASK_ID` (an agent's pane sets it, and so does the
per-task config of `cockpit.core.mcp_config`), else the task whose worktree it runs in. A tool call is the
agent's: what it creates is recorded `by: agent`, `on_behalf_of` its task.

The human gate holds here too: `approve_remote_task` approves only what the peer's `[task] remote_approval`
allows; anything else is refused with the way for a person to approve it in the peer repo.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field, Strict, ValidationError

from cockpit import __version__
from cockpit.core import daemonfile
from cockpit.core.backend import backend_for
from cockpit.core.client import DaemonClient
from cockpit.core.delegation.peers import main_repo_of
from cockpit.core.delegation.sender import DEFAULT_WAIT_CLASSIFIED_S
from cockpit.core.errors import CockpitError, DaemonUnavailable, UsageError
from cockpit.core.mcp_config import HEARTBEAT_ENV, REPO_ENV, SERVER_NAME, TASK_ENV, TOOL_NAMES
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.core.states import FINISHED
from cockpit.core.workspace import repo_identity

DEFAULT_HEARTBEAT_S = 10.0
# Common MCP clients give up on a request after 60 s: a wait returns before that, and is called again.
DEFAULT_WAIT_S = 45.0
# The principal of every tool call: the agent, on behalf of its task.
AGENT = "agent"
# Reads that are safe to run again on the store when the daemon goes away mid-call.
RETRYABLE = frozenset({"get_remote_task", "wait_remote_task", "list_peers", "list_tasks", "get_task"})

INSTRUCTIONS = """\
Tools of agent-cockpit for the repository you work in. Cross-repo work is explicit: when your plan has a
`delegate` step, call create_remote_task(repo, text) with what the peer repo must do (a contract, not a diff),
then wait_remote_task(repo, id) before the steps that depend on it. A wait returns within a minute; when it
says timed_out, call wait_remote_task again (wait, and wait again) until the task is finished. Your task does
not go to review before the tasks it delegated are done. Large peer tasks must be approved by a person in the
peer repo: do not try to get around that; say what you are waiting for. When your work is finished, call
report_done."""

StateName = Literal[
    "created", "pending", "pending_clarification", "approved", "executing", "gating", "awaiting_review",
    "merging", "done", "failed", "interrupted", "rejected", "cancelled", "rolled_back"]
STATE_NAMES: tuple[str, ...] = get_args(StateName)

RepoArg = Annotated[str, Strict(), Field(min_length=1, description=(
    "a peer repo of the workspace, by name (list_peers shows them)"))]
IdArg = Annotated[int, Strict(), Field(ge=1, description="the task id in that repo")]
Text = Annotated[str, Strict(), Field(min_length=1)]
Flag = Annotated[bool, Strict()]
Seconds = Annotated[float, Strict(), Field(ge=0)]

READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)

HINTS = {
    "human_gate": "a person must approve it in the peer repo; tell them, then wait_remote_task",
    "duplicate": "a similar task exists there: get_remote_task / show_task it, or pass force=true",
    "no_workspace": "this repo has no peers until it is in a cockpit-workspace.toml",
    "not_in_workspace": "add this repo to the workspace with `cockpit workspace add`",
    "not_found": "check the repo name (list_peers) and the task id",
    "not_initialised": "a person must set the peer repo up first (`cockpit init` there)",
    "peer_missing": "the peer repo's path is gone: a person must fix the workspace file; do not retry",
    "bad_request": "fix the arguments as the message says (see the input schema) and call again",
    "not_executing": "only a task that is executing can delegate; its state is in show_task",
    "no_task": "this tool speaks for a task: it works in a task's agent pane (COCKPIT_TASK_ID)",
    "other_task": "this server speaks for one task only; leave the id out",
    "not_classified": "wait for the peer to classify it (get_remote_task), then try again",
    "invalid_transition": "the task's state does not allow this; show_task / get_remote_task shows it",
    "daemon_unavailable": "the repo's daemon went away; call the tool again (it falls back to the store)",
    "unknown_op": "this cockpit does not have that operation yet; tell the person",
}


def _body_result(body: JSON, *, error: bool = False) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(body, indent=2, default=str))],
                          structured_content=body, is_error=error)


def _result(data: JSON, hint: str) -> CallToolResult:
    return _body_result({"ok": True, **data, "hint": hint})


def _error(exc: CockpitError) -> CallToolResult:
    body = {"ok": False, "error": exc.to_json(), "hint": HINTS.get(exc.code, "fix the request and try again")}
    return _body_result(body, error=True)


def _compact(task: JSON) -> JSON:
    return {k: task.get(k) for k in ("id", "state", "scope", "title", "parent", "children", "needs_input",
                                     "failure")}


def _validation_message(tool: str, exc: ValidationError) -> str:
    """One line per bad argument, without pydantic's URLs or the caller's values echoed at length."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "arguments"
        if err["type"] == "missing":
            parts.append(f"{where} is required")
            continue
        got = type(err.get("input")).__name__
        parts.append(f"{where}: {err['msg'][:1].lower()}{err['msg'][1:]} (got {got})")
    return f"bad arguments for {tool}: " + "; ".join(parts)


class CockpitServer(MCPServer):
    """The SDK's server, strict: unknown ones and type errors are refused in the tools' shape."""

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None) -> Any:
        tool = self._tool_manager.get_tool(name)
        if tool is None:
            return _error(UsageError(f"no tool {name!r}; tools are: {', '.join(TOOL_NAMES)}",
                                     code="bad_request"))
        known = set(tool.parameters.get("properties", {}))
        unknown = sorted(set(arguments) - known)
        if unknown:
            return _error(UsageError(
                f"unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} for {name}; "
                f"it takes: {', '.join(sorted(known)) or 'none'}", code="bad_request"))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                return _error(UsageError(_validation_message(name, exc.__cause__), code="bad_request"))
            raise


class CockpitTools:
    """The tools' bodies, bound to one repo and, in an agent's pane, to its task."""

    def __init__(self, paths: RepoPaths, task_id: int | None, heartbeat_s: float) -> None:
        self.paths = paths
        self.task_id = task_id
        self.heartbeat_s = heartbeat_s
        # One connection to the repo's daemon for every call (they are multiplexed), while that daemon lives.
        self._client: DaemonClient | None = None

    async def _daemon(self) -> DaemonClient | None:
        """The connection to the repo's live daemon (re-made when it restarted), or None when it is down."""
        info = daemonfile.read_live(self.paths.daemon_json)
        client = self._client
        stale = client is not None and (info is None or client.closed.is_set()
                                        or client.hello.get("pid") != info.pid)
        if client is not None and stale:
            self._client = None
            await client.close()
        if info is None:
            return None
        if self._client is None:
            self._client = await DaemonClient.for_repo(self.paths)
        return self._client

    async def call(self, op: str, args: dict[str, Any]) -> JSON:
        client = await self._daemon()
        if client is not None:
            try:
                return await client.call(op, args)
            except CockpitError as exc:
                # The connection dropped, or the call failed inside the daemon (as when it shuts down).
                if not isinstance(exc, DaemonUnavailable) and exc.code != "internal":
                    raise
                self._client = None
                await client.close()
                if op not in RETRYABLE:
                    raise
        # No daemon, or it stopped during the call (a read, safe to run again): straight against the store.
        async with backend_for(self.paths, prefer_daemon=client is None) as backend:
            return await backend.call(op, args)

    def principal(self) -> JSON:
        who: JSON = {"by": AGENT}
        if self.task_id is not None:
            who["on_behalf_of"] = self.task_id
        return who

    def _parent(self, source_task_id: int | None) -> int | None:
        if self.task_id is not None and source_task_id not in (None, self.task_id):
            raise UsageError(f"this server speaks for task {self.task_id}: it links remote tasks to that "
                             f"task only, not to task {source_task_id}", code="other_task")
        return source_task_id if source_task_id is not None else self.task_id

    async def create_remote_task(self, repo: str, text: str, source_task_id: int | None, step: int | None,
                                 wait_classified_s: float, force: bool) -> CallToolResult:
        parent = self._parent(source_task_id)
        args: JSON = {"repo": repo, "text": text, "force": force, "wait_classified_s": wait_classified_s,
                      **self.principal()}
        if parent is not None:
            args["source_task_id"] = parent
        if step is not None:
            args["step"] = step
        result = await self.call("create_remote_task", args)
        hint = str(result["hint"])
        if parent is not None and result.get("state") not in {s.value for s in FINISHED}:
            hint += f"; task {parent} holds before its gates until {repo}#{result['id']} is done"
        return _result(_without_task(result), hint)

    async def get_remote_task(self, repo: str, task_id: int) -> CallToolResult:
        result = await self.call("get_remote_task", {"repo": repo, "id": task_id})
        return _result(result, str(result["hint"]))

    async def approve_remote_task(self, repo: str, task_id: int) -> CallToolResult:
        result = await self.call("approve_remote_task", {"repo": repo, "id": task_id})
        return _result(_without_task(result), str(result["hint"]))

    async def wait_remote_task(self, repo: str, task_id: int, until: list[str] | None, timeout_s: float,
                               ctx: Context[Any, Any]) -> CallToolResult:
        started = time.monotonic()
        deadline = started + timeout_s
        current = await self.call("get_remote_task", {"repo": repo, "id": task_id})
        last = str(current["state"])
        await ctx.report_progress(0.0, timeout_s, str(current["status"]))
        result = current
        reached = last in {s.value for s in FINISHED} or last in (until or [])
        timed_out = False
        while not reached:
            remaining = max(0.0, deadline - time.monotonic())
            if remaining == 0:
                timed_out = True
                break
            step = min(self.heartbeat_s, remaining)
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
            hint = (f"timed out after {timeout_s:g}s: {result['status']}. It is still under way: call "
                    f"wait_remote_task(repo={repo!r}, id={task_id}) again to keep waiting. {hint}")
        return _result(body, hint)

    async def list_peers(self) -> CallToolResult:
        result = await self.call("list_peers", {})
        peers = result["peers"]
        names = ", ".join(p["name"] for p in peers) or "none"
        hint = f"peers: {names}. create_remote_task(repo, text) delegates work to one"
        notes = []
        missing = [p["name"] for p in peers if not p.get("exists", True)]
        bare = [p["name"] for p in peers if p.get("exists", True) and not p.get("initialised", True)]
        down = [p["name"] for p in peers if p.get("exists", True) and p.get("initialised", True)
                and p["daemon"] != "up"]
        if down:
            notes.append(f"daemon down in {', '.join(down)}: requests there wait in `created` until it "
                         "starts")
        if bare:
            notes.append(f"not set up yet: {', '.join(bare)} (requests there are refused until a person runs "
                         "`cockpit init` there)")
        if missing:
            notes.append(f"path missing: {', '.join(missing)} (requests there are refused; a person must fix "
                         "the workspace file)")
        if notes:
            hint += "; " + "; ".join(notes)
        return _result(result, hint)

    async def list_tasks(self, all_tasks: bool, states: list[str] | None) -> CallToolResult:
        result = await self.call("list_tasks", {"all": all_tasks, "states": states or []})
        tasks = [_compact(t) for t in result["tasks"]]
        return _result({"repo": repo_identity(self.paths.root)[0], "tasks": tasks},
                       "show_task(id) shows one task with its plan" if tasks else
                       "no tasks" + ("" if all_tasks else " (all=true includes finished ones)"))

    async def show_task(self, task_id: int | None) -> CallToolResult:
        if task_id is None:
            if self.task_id is None:
                raise UsageError("show_task needs an id here (this server speaks for no task)",
                                 code="bad_request")
            task_id = self.task_id
        task = await self.call("get_task", {"id": task_id})
        waiting = [s for s in task.get("plan", [])
                   if s.get("verb") == "delegate" and s.get("status") == "waiting"]
        open_children = [c for c in task.get("children", [])
                         if c.get("state") not in {s.value for s in FINISHED}]
        if waiting:
            s = waiting[0]
            hint = (f"step {s['n']} waits on {s['peer']}#{s['peer_task_id']} "
                    f"({s.get('peer_state') or 'unknown'}): "
                    f"wait_remote_task(repo={s['peer']!r}, id={s['peer_task_id']})")
        elif open_children:
            c = open_children[0]
            hint = (f"task {task_id} is {task['state']}; it waits on {c['repo']}#{c['id']} "
                    f"({c.get('state') or 'unknown'}): wait_remote_task(repo={c['repo']!r}, id={c['id']})")
        else:
            hint = f"task {task_id} is {task['state']}"
        return _result({"task": task}, hint)

    async def create_task(self, text: str, force: bool) -> CallToolResult:
        task = await self.call("create_task", {"text": text, "force": force, **self.principal()})
        state = task["state"]
        hint = {"pending": "a person approves it in this repo's cockpit tab (`cockpit task approve ID`)",
                "pending_clarification": "it has questions for a person (show_task lists them)",
                "approved": "approved: it runs when an execution slot is free",
                "rejected": f"rejected: {task.get('reason') or ''}"}.get(state, f"task is {state}")
        return _result({"task": task}, f"task {task['id']} created: {hint}")

    async def report_done(self, message: str | None) -> CallToolResult:
        if self.task_id is None:
            raise UsageError("report_done speaks for the task of an agent's pane, and this server has none "
                             f"({TASK_ENV} is not set)", code="no_task")
        args: JSON = {"id": self.task_id, **self.principal()}
        if message is not None:
            args["message"] = message
        result = await self.call("done_task", args)
        task = result.get("task", result)
        state = task.get("state") if isinstance(task, Mapping) else None
        return _result({"task_id": self.task_id, "state": state, "result": result},
                       f"task {self.task_id} is reported done: cockpit runs its gates (after the tasks it "
                       "delegated are done); stop working on it unless you are asked for more")


def _without_task(result: JSON) -> JSON:
    """The summary without the full task document (plan, state and scope are at the top level already)."""
    return {k: v for k, v in result.items() if k not in ("task", "hint")}


def _task_from_env(env: Mapping[str, str]) -> int | None:
    raw = env.get(TASK_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise UsageError(f"{TASK_ENV}={raw!r} is not a task id; set it to the id of the task (a whole "
                         "number) or leave it unset")
    return int(raw)


def resolve_scope(repo: Path | None = None, env: Mapping[str, str] | None = None,
                  cwd: Path | None = None) -> tuple[Path, int | None]:
    """The repo and task the server speaks for: `--repo`, else COCKPIT_REPO, else the working directory's
    repo; COCKPIT_TASK_ID, else the task whose worktree holds that path (or the working directory)."""
    env = os.environ if env is None else env
    if repo is None and env.get(REPO_ENV, "").strip():
        repo = Path(env[REPO_ENV]).expanduser()
    if repo is not None:
        root, task_id = main_repo_of(repo.resolve())
        if task_id is None:
            # Started inside one of that repo's task worktrees, with the repo named: that task.
            here = (cwd or Path.cwd()).resolve()
            worktrees = root / ".cockpit" / "worktrees"
            if here.is_relative_to(worktrees):
                task_id = main_repo_of(here)[1]
    else:
        root, task_id = main_repo_of(cwd)
    from_env = _task_from_env(env)
    return root, from_env if from_env is not None else task_id


def build_server(start: Path | None = None, *, task_id: int | None = None,
                 heartbeat_s: float | None = None) -> MCPServer:
    """The MCP server for the repo `start` (else COCKPIT_REPO, else the working directory's)."""
    root, scoped = resolve_scope(start)
    if task_id is None:
        task_id = scoped
    if heartbeat_s is None:
        try:
            heartbeat_s = float(os.environ.get(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S))
        except ValueError:
            heartbeat_s = DEFAULT_HEARTBEAT_S
    tools = CockpitTools(RepoPaths(root), task_id, max(0.05, heartbeat_s))
    server = CockpitServer(SERVER_NAME, instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    async def guarded(body: Awaitable[CallToolResult]) -> CallToolResult:
        try:
            return await body
        except CockpitError as exc:
            return _error(exc)

    @server.tool(title="Create a task in a peer repo", description=(
        "Create a task in a peer repo of the workspace (through its daemon, or written into its store when "
        "the daemon is down), linked to your task, which then holds before its gates until it is done. "
        "Returns the peer task's id, scope, state and plan."),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                    open_world_hint=False))
    async def create_remote_task(
        repo: RepoArg,
        text: Annotated[Text, Field(description="what the peer repo must do: the contract, briefly")],
        source_task_id: Annotated[int | None, Strict(), Field(
            ge=1, description="the task in this repo it belongs to (default: your task)")] = None,
        step: Annotated[int | None, Strict(), Field(
            ge=1, description="the delegate step of that task's plan")] = None,
        wait_classified_s: Annotated[Seconds, Field(
            description="seconds to wait for the peer to classify it")] = DEFAULT_WAIT_CLASSIFIED_S,
        force: Annotated[Flag, Field(description="create it even if the peer has a similar task")] = False,
    ) -> CallToolResult:
        return await guarded(
            tools.create_remote_task(repo, text, source_task_id, step, wait_classified_s, force))

    @server.tool(title="Show a peer repo's task", annotations=READ,
                 description="Show a task of a peer repo: state, scope, plan, and what it waits for.")
    async def get_remote_task(repo: RepoArg, id: IdArg) -> CallToolResult:
        return await guarded(tools.get_remote_task(repo, id))

    @server.tool(title="Approve a peer repo's task", description=(
        "Approve a pending task in a peer repo, only as far as that repo's [task] remote_approval allows "
        "(by default: small tasks). Large ones need a person there."),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False))
    async def approve_remote_task(repo: RepoArg, id: IdArg) -> CallToolResult:
        return await guarded(tools.approve_remote_task(repo, id))

    @server.tool(title="Wait for a peer repo's task", annotations=READ, description=(
        "Wait until a peer repo's task is done, failed, interrupted, rejected, cancelled or rolled back (or "
        f"in one of `until`), with a progress notification on every change. Returns within timeout_s "
        f"({DEFAULT_WAIT_S:g}s by default) with timed_out=true if it is still under way: then call it "
        "again."))
    async def wait_remote_task(
        repo: RepoArg, id: IdArg, ctx: Context[Any, Any],
        until: Annotated[list[StateName] | None, Field(description="extra states to stop at")] = None,
        timeout_s: Annotated[Seconds, Field(
            description="return after this many seconds if it is still under way")] = DEFAULT_WAIT_S,
    ) -> CallToolResult:
        return await guarded(tools.wait_remote_task(repo, id, list(until or []), timeout_s, ctx))

    @server.tool(title="List the peer repos", annotations=READ,
                 description="The peer repos of the workspace: path, daemon up or down, tasks by state.")
    async def list_peers() -> CallToolResult:
        return await guarded(tools.list_peers())

    @server.tool(title="List this repo's tasks", annotations=READ,
                 description="List this repo's tasks (active ones unless all=true).")
    async def list_tasks(
        all: Annotated[Flag, Field(description="include finished tasks")] = False,
        states: Annotated[list[StateName] | None, Field(description="only tasks in these states")] = None,
    ) -> CallToolResult:
        return await guarded(tools.list_tasks(all, list(states or [])))

    @server.tool(title="Show a task of this repo", annotations=READ, description=(
        "Show one task of this repo (default: your task), with its plan, parent and delegated children."))
    async def show_task(
        id: Annotated[int | None, Strict(), Field(
            ge=1, description="the task id (default: your task)")] = None,
    ) -> CallToolResult:
        return await guarded(tools.show_task(id))

    @server.tool(title="Create a task in this repo", description=(
        "Create a task in this repo, recorded as yours (an agent's, on behalf of your task); it is "
        "classified, then waits for a person."),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False,
                                    open_world_hint=False))
    async def create_task(
        text: Annotated[Text, Field(description="what should be done")],
        force: Annotated[Flag, Field(description="create it even if a similar task exists")] = False,
    ) -> CallToolResult:
        return await guarded(tools.create_task(text, force))

    @server.tool(title="Report your task done", description=(
        "Tell cockpit that your task's work is finished: it runs the gates (once the tasks you delegated are "
        "done) and a person reviews the result."),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False))
    async def report_done(
        message: Annotated[str | None, Strict(), Field(
            min_length=1, description="a line for the reviewer: what you did")] = None,
    ) -> CallToolResult:
        return await guarded(tools.report_done(message))

    return server


async def serve(start: Path | None = None) -> None:
    await build_server(start).run_stdio_async()


__all__ = ["DEFAULT_WAIT_S", "HEARTBEAT_ENV", "STATE_NAMES", "TASK_ENV", "build_server", "resolve_scope",
           "serve"]
