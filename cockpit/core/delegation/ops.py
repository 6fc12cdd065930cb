"""The delegation socket ops: the sender side (`create_remote_task`, `get_remote_task`, `approve_remote_task`,
`wait_remote_task`, `list_peers`), the peer side (`task_states`, `child_finished`), and the task decorator
that fills in the live states of a task's delegated children."""

from __future__ import annotations

from typing import Any

from cockpit.core import limits
from cockpit.core.delegation.peers import store_states
from cockpit.core.delegation.sender import DEFAULT_WAIT_CLASSIFIED_S, Delegation
from cockpit.core.errors import (
    NotFoundError,
    UsageError,
)
from cockpit.core.models import JSON
from cockpit.core.ops import Ops, arg_bool, arg_int, arg_opt_str
from cockpit.core.states import FINISHED, parse_state


def _arg_float(args: dict[str, Any], name: str, default: float | None) -> float | None:
    return limits.seconds(args.get(name), name, default)


def _arg_opt_int(args: dict[str, Any], name: str) -> int | None:
    return arg_int(args, name) if args.get(name) is not None else None


def _arg_states(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UsageError(f"{name} must be a state or a list of states", code="bad_request")
    return [parse_state(x).value for x in value]


def _arg_repo(args: dict[str, Any]) -> str:
    repo = args.get("repo")
    if not isinstance(repo, str) or not repo:
        raise UsageError("repo must name a peer repo of the workspace (list_peers shows them)",
                         code="bad_request")
    return repo


def install_ops(ops: Ops) -> None:
    delegation = Delegation(ops.service)

    async def create_remote_task(args: dict[str, Any]) -> JSON:
        text = args.get("text", args.get("description"))
        if not isinstance(text, str) or not text.strip():
            raise UsageError("create_remote_task needs text: what the peer repo should do",
                             code="bad_request")
        return await delegation.create(
            _arg_repo(args), text, source_task_id=_arg_opt_int(args, "source_task_id"),
            step=_arg_opt_int(args, "step"), key=arg_opt_str(args, "key"), force=arg_bool(args, "force"),
            wait_classified_s=_arg_float(args, "wait_classified_s", DEFAULT_WAIT_CLASSIFIED_S),
            by=arg_opt_str(args, "by"), on_behalf_of=_arg_opt_int(args, "on_behalf_of"))

    async def get_remote_task(args: dict[str, Any]) -> JSON:
        return await delegation.show(_arg_repo(args), arg_int(args, "id"))

    async def approve_remote_task(args: dict[str, Any]) -> JSON:
        return await delegation.approve(_arg_repo(args), arg_int(args, "id"))

    async def wait_remote_task(args: dict[str, Any]) -> JSON:
        since = arg_opt_str(args, "since_state")
        return await delegation.wait(
            _arg_repo(args), arg_int(args, "id"), until=_arg_states(args, "until"),
            timeout_s=_arg_float(args, "timeout_s", None),
            since_state=parse_state(since).value if since is not None else None)

    async def list_peers(args: dict[str, Any]) -> JSON:
        return await delegation.list_peers()

    async def child_finished(args: dict[str, Any]) -> JSON:
        """A child's repo says the child finished: read its state back from there and record it."""
        parent_id, repo, child_id = arg_int(args, "id"), _arg_repo(args), arg_int(args, "child")
        parent = await ops.service.store.get_task(parent_id)
        if all((c.repo, c.id) != (repo, child_id) for c in parent.children):
            raise NotFoundError(f"{repo}#{child_id} is not a child of task {parent_id}")
        shown = await delegation.show(repo, child_id)
        if shown["state"] in {s.value for s in FINISHED}:
            await delegation.record_finished(delegation.sender().name, repo, shown["task"])
        return {"id": parent_id, "child": {"repo": repo, "id": child_id, "state": shown["state"]}}

    async def task_states(args: dict[str, Any]) -> JSON:
        ids = args.get("ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise UsageError("ids must be a list of task ids", code="bad_request")
        states = await store_states(ops.service.store, sorted(set(ids)))
        return {"states": {str(k): v for k, v in states.items()}}

    ops.handlers.update({
        "create_remote_task": create_remote_task,
        "get_remote_task": get_remote_task,
        "approve_remote_task": approve_remote_task,
        "wait_remote_task": wait_remote_task,
        "list_peers": list_peers,
        "task_states": task_states,
        "child_finished": child_finished,
    })
    ops.task_decorators.append(delegation.child_states)
