"""The request operations of the daemon socket (docs/design.md), as one dispatch table.

The daemon serves these over its socket and the CLI runs them in-process when no daemon is up, so both paths
share argument checking, errors and results. Streaming operations (`subscribe`, `wait_task`) are transport
specific and live with each transport.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from cockpit.core import principals
from cockpit.core.errors import UsageError
from cockpit.core.events import EventType
from cockpit.core.models import JSON, Task
from cockpit.core.protocol import PROTOCOL_VERSION
from cockpit.core.service import TaskService
from cockpit.core.states import CLOSED, State, parse_state

Handler = Callable[[dict[str, Any]], Awaitable[JSON]]

# list_tasks pages: at most this many tasks, and no more once their text passes LIST_PAGE_TEXT characters, so
# a reply stays far below a client's read limit however much a peer wrote.
LIST_PAGE = 500
LIST_PAGE_TEXT = 8 * 1024 * 1024


async def all_tasks(call: Callable[[str, dict[str, Any]], Awaitable[JSON]],
                    args: dict[str, Any]) -> list[JSON]:
    """Every task `list_tasks` with `args` names, page after page."""
    tasks: list[JSON] = []
    cursor: int | None = 0
    while cursor is not None:
        page = await call("list_tasks", {**args, "cursor": cursor})
        tasks.extend(page["tasks"])
        cursor = page.get("next_cursor")
    return tasks

def arg_int(args: dict[str, Any], name: str) -> int:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UsageError(f"{name} must be a task id (a whole number)", code="bad_request")
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name} must be a task id (a whole number), not {value!r}",
                         code="bad_request") from None


def arg_str(args: dict[str, Any], name: str, default: str | None = None) -> str:
    value = args.get(name, default)
    if not isinstance(value, str):
        raise UsageError(f"{name} must be a string", code="bad_request")
    return value


def arg_opt_str(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{name} must be a string", code="bad_request")
    return value


def arg_bool(args: dict[str, Any], name: str, default: bool = False) -> bool:
    value = args.get(name, default)
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be true or false", code="bad_request")
    return value


def arg_strs(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UsageError(f"{name} must be a list of strings", code="bad_request")
    return list(value)


def arg_states(args: dict[str, Any], name: str) -> list[State]:
    return [parse_state(s) for s in arg_strs(args, name)]


def _by(args: dict[str, Any]) -> str:
    """Who the event records as acting: the caller's label, never "person" for a peer."""
    return principals.by_label(arg_opt_str(args, "by"))


class Ops:
    """Dispatch a request to the service: the task ops. `optable.build_ops` adds the other modules' ops
    (execution, merge, delegation, review); the daemon adds those that need it."""

    def __init__(self, service: TaskService) -> None:
        self.service = service
        self.handlers: dict[str, Handler] = {
            "ping": self.ping,
            "status": self.status,
            "create_task": self.create_task,
            "get_task": self.get_task,
            "list_tasks": self.list_tasks,
            "approve_task": self.approve_task,
            "reject_task": self.reject_task,
            "cancel_task": self.cancel_task,
            "retry_task": self.retry_task,
            "clarify_task": self.clarify_task,
            "classify_task": self.classify_task,
            "events": self.events,
        }
        # Hooks that decorate a task's JSON for display (e.g. live states of delegated children).
        self.task_decorators: list[Callable[[Task, JSON], Awaitable[None]]] = []

    async def dispatch(self, op: str, args: dict[str, Any],
                       context: principals.OpContext | None = None) -> JSON:
        """Run `op` as `context`'s principal (the peer's when none is given); handlers read it with
        `principals.current()`."""
        handler = self.handlers.get(op)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            raise UsageError(f"unknown op {op!r}; ops are: {known}", code="unknown_op")
        with principals.acting_as(context or principals.current()):
            if op in principals.PERSON_OPS:
                principals.require_person(op)
            return await handler(args)

    async def task_json(self, task: Task) -> JSON:
        data = task.to_json()
        for decorate in self.task_decorators:
            await decorate(task, data)
        return data

    async def ping(self, args: dict[str, Any]) -> JSON:
        return {"pong": True}

    async def status(self, args: dict[str, Any]) -> JSON:
        s = self.service
        return {
            "repo": s.repo_name, "root": str(s.paths.root), "pid": os.getpid(), "protocol": PROTOCOL_VERSION,
            "counts": await s.store.counts(), "last_seq": await s.store.last_seq(), "peers": s.peers,
        }

    async def create_task(self, args: dict[str, Any]) -> JSON:
        text = args.get("text", args.get("description"))
        if not isinstance(text, str):
            raise UsageError("create_task needs text: the task description", code="bad_request")
        source_task = args.get("source_task_id")
        if args.get("script") is not None:
            principals.require_person("a task with a script")
        task = await self.service.create_task(
            text,
            force=arg_bool(args, "force"),
            script=arg_opt_str(args, "script"),
            source_repo=arg_opt_str(args, "source_repo"),
            source_task_id=arg_int(args, "source_task_id") if source_task is not None else None,
            key=arg_opt_str(args, "key"),
            classify=not arg_bool(args, "no_wait"),
            by=_by(args),
            on_behalf_of=arg_int(args, "on_behalf_of") if args.get("on_behalf_of") is not None else None,
        )
        return await self.task_json(task)

    async def get_task(self, args: dict[str, Any]) -> JSON:
        return await self.task_json(await self.service.store.get_task(arg_int(args, "id")))

    async def list_tasks(self, args: dict[str, Any]) -> JSON:
        """One page of tasks in id order: at most `limit` (default and most: `LIST_PAGE`), and fewer when
        their text is long; `next_cursor` (the last id, or null at the end) asks for the next page."""
        states = arg_states(args, "states")
        if not states and not arg_bool(args, "all"):
            states = [s for s in State if s not in CLOSED]
        limit = args.get("limit", LIST_PAGE)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= LIST_PAGE:
            raise UsageError(f"limit must be a whole number from 1 to {LIST_PAGE}", code="bad_request")
        cursor = args.get("cursor") or 0
        if isinstance(cursor, bool) or not isinstance(cursor, int) or cursor < 0:
            raise UsageError("cursor must be the next_cursor of the page before", code="bad_request")
        tasks = await self.service.store.list_tasks(states or None, after_id=cursor, limit=limit + 1)
        more = len(tasks) > limit
        page: list[JSON] = []
        size = 0
        for task in tasks[:limit]:
            if page and size > LIST_PAGE_TEXT:
                more = True
                break
            page.append(await self.task_json(task))
            size += len(task.description) + len(task.title) + 200 * len(task.plan)
        return {"tasks": page, "next_cursor": page[-1]["id"] if more and page else None,
                "usage": await self.repo_usage()}

    async def repo_usage(self) -> JSON:
        """Token usage of every task of the repo (not only those listed): the last reading of each run."""
        rows = await self.service.store.query(
            "SELECT SUM(json_extract(data, '$.input_tokens')), SUM(json_extract(data, '$.output_tokens')),"
            " SUM(json_extract(data, '$.cost_usd')), COUNT(json_extract(data, '$.cost_usd'))"
            " FROM events AS e WHERE type = ? AND seq = (SELECT MAX(seq) FROM events AS l"
            "  WHERE l.type = ? AND l.task_id = e.task_id"
            "  AND json_extract(l.data, '$.run') = json_extract(e.data, '$.run'))",
            (EventType.AGENT_USAGE, EventType.AGENT_USAGE),
        )
        tokens_in, tokens_out, cost, costed = rows[0] if rows else (None, None, None, 0)
        return {"input_tokens": int(tokens_in or 0), "output_tokens": int(tokens_out or 0),
                "cost_usd": round(float(cost), 6) if costed else None, "repo": self.service.repo_name}

    async def approve_task(self, args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        remote = arg_opt_str(args, "from_repo")
        if remote is not None:
            return await self.task_json(await self.service.approve_remote(task_id, from_repo=remote))
        principals.require_person(f"approving task {task_id}")
        return await self.task_json(await self.service.approve(task_id, by=_by(args)))

    async def reject_task(self, args: dict[str, Any]) -> JSON:
        return await self.task_json(await self.service.reject(
            arg_int(args, "id"), reason=arg_str(args, "reason", ""), by=_by(args)))

    async def cancel_task(self, args: dict[str, Any]) -> JSON:
        return await self.task_json(await self.service.cancel(
            arg_int(args, "id"), by=_by(args), reason=arg_str(args, "reason", "")))

    async def retry_task(self, args: dict[str, Any]) -> JSON:
        return await self.task_json(await self.service.retry(
            arg_int(args, "id"), fresh=arg_bool(args, "fresh"), by=_by(args)))

    async def clarify_task(self, args: dict[str, Any]) -> JSON:
        return await self.task_json(await self.service.clarify(
            arg_int(args, "id"), arg_strs(args, "answers"), by=_by(args)))

    async def classify_task(self, args: dict[str, Any]) -> JSON:
        return await self.task_json(await self.service.classify_task(arg_int(args, "id")))

    async def events(self, args: dict[str, Any]) -> JSON:
        since = args.get("since", 0)
        limit = args.get("limit")
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise UsageError("since must be a sequence number (0 or more)", code="bad_request")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise UsageError("limit must be a positive whole number", code="bad_request")
        events = await self.service.store.events_since(since, limit)
        return {"events": [e.to_json() for e in events]}
