"""Seeding the demo: driving both daemons through their sockets (the ops the CLI and the cockpit send) until
every task is where the demo wants it, waiting on their event streams, never on a clock."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from cockpit.core.client import DaemonClient
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.demo.scripts import SEEDED
from cockpit.demo.workspace import SEED_TIMEOUT_S, DemoError, DemoWorkspace, Progress

ENDED = frozenset({"failed", "interrupted", "cancelled", "rejected", "rolled_back", "done"})


# -- seeding -------------------------------------------------------------------------------------------------

async def _connect(paths: RepoPaths) -> DaemonClient:
    client = await DaemonClient.for_repo(paths, person=True)
    if client is None:
        raise DemoError(f"the daemon of {paths.root} is not running; start it with "
                        f"`cockpit daemon start --repo {paths.root}`", code="daemon_unavailable")
    return client


def _why(task: JSON) -> str:
    failure = str(task.get("failure") or "").strip()
    return f": {failure.splitlines()[0]}" if failure else ""


def _settled(paths: RepoPaths, task: JSON, check: Callable[[JSON], bool], what: str,
             expect_end: bool) -> bool:
    if check(task):
        return True
    if not expect_end and task.get("state") in ENDED:
        raise DemoError(f"{paths.root.name}#{task['id']} should be {what} but is {task['state']}{_why(task)}")
    return False


async def watch(paths: RepoPaths, task_id: int, check: Callable[[JSON], bool], *, what: str,
                timeout_s: float = SEED_TIMEOUT_S, expect_end: bool = False) -> JSON:
    """Wait until `check(task)` holds for the task, woken by the daemon's event stream (no polling).

    A task that ends some other way (failed, interrupted ...) is a DemoError at once, unless `expect_end`.
    """
    client = await _connect(paths)
    task: JSON = {}
    try:
        async with asyncio.timeout(timeout_s):
            since = int((await client.call("status"))["last_seq"])
            task = await client.call("get_task", {"id": task_id})
            if _settled(paths, task, check, what, expect_end):
                return task
            async for event in client.subscribe(since):
                if event.task_id != task_id:
                    continue
                task = await client.call("get_task", {"id": task_id})
                if _settled(paths, task, check, what, expect_end):
                    return task
            raise DemoError(f"the daemon of {paths.root} went away while {paths.root.name}#{task_id} "
                            f"was on its way to {what}")
    except TimeoutError:
        raise DemoError(f"{paths.root.name}#{task_id} is not {what} after {timeout_s:g}s: it is "
                        f"{task.get('state', 'unknown')}{_why(task)}") from None
    finally:
        await client.close()


def _delegate_step(task: JSON) -> JSON | None:
    return next((s for s in task.get("plan", []) if s.get("verb") == "delegate"), None)


def _waits_for_pending_peer(task: JSON) -> bool:
    step = _delegate_step(task)
    return (step is not None and step.get("peer_task_id") is not None and step.get("peer_state") == "pending"
            and task.get("agent_status") == "exited" and task.get("state") == "executing")


async def seed(ws: DemoWorkspace, *, progress: Progress | None = None,
               timeout_s: float = SEED_TIMEOUT_S) -> dict[str, JSON]:
    """Create, approve and steer the demo's tasks until each is in its state (see the module docstring).

    Returns `{role: {"repo", "id", "state"}}` and records it in the workspace's state file.
    """
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    backend = ws.paths("backend")
    frontend = ws.paths("frontend")
    client = await _connect(backend)
    ids: dict[str, int] = {}
    try:
        for role, text, steps in SEEDED:
            task = await client.call("create_task", {"text": text, "script": steps, "force": True,
                                                     "by": "person"})
            ids[role] = int(task["id"])
            # Approved as a person would in the cockpit: the daemon starts it in a worktree of its own.
            await client.call("approve_task", {"id": ids[role], "by": "person"})
            say(f"backend#{ids[role]} {task['scope']}, approved: {task['title']}")
            # One at a time into a worktree: concurrent `git worktree add`s in one repo can trip over each
            # other's half-made entries ("failed to read .git/worktrees/<other>/commondir").
            await watch(backend, ids[role], lambda t: t.get("state") != "approved", what="started",
                        timeout_s=timeout_s, expect_end=True)
    finally:
        await client.close()

    def elapsed() -> str:
        return f"{time.monotonic() - started:.1f}s"

    async def delegating() -> JSON:
        task = await watch(backend, ids["delegating"], _waits_for_pending_peer,
                           what="waiting for its delegated frontend task", timeout_s=timeout_s)
        step = _delegate_step(task)
        assert step is not None
        child = int(step["peer_task_id"])
        await watch(frontend, child, lambda t: t.get("state") == "pending", what="pending",
                    timeout_s=timeout_s)
        say(f"backend#{task['id']} did its part and waits for frontend#{child}, pending approval there "
            f"({elapsed()})")
        return {"repo": "frontend", "id": child, "state": "pending", "parent": {"repo": "backend",
                                                                                "id": task["id"]}}

    async def asking() -> JSON:
        task = await watch(backend, ids["asking"], lambda t: bool(t.get("needs_input")),
                           what="asking a question", timeout_s=timeout_s)
        say(f"backend#{task['id']}'s agent asks a question ({elapsed()})")
        return task

    async def review() -> JSON:
        task = await watch(backend, ids["review"], lambda t: t.get("state") == "awaiting_review",
                           what="awaiting review", timeout_s=timeout_s)
        say(f"backend#{task['id']} passed its gates and awaits review ({elapsed()})")
        return task

    async def merged() -> JSON:
        task_id = ids["merged"]
        await watch(backend, task_id, lambda t: t.get("state") == "awaiting_review", what="awaiting review",
                    timeout_s=timeout_s)
        merger = await _connect(backend)
        try:
            result = await merger.call("merge_task", {"id": task_id}, timeout=timeout_s)
        finally:
            await merger.close()
        task: JSON = result["task"]
        if task.get("state") != "done":
            raise DemoError(f"backend#{task_id} was not merged: it is {task.get('state')}{_why(task)}")
        sha = str((task.get("merge") or {}).get("rollback_sha") or "")[:10]
        say(f"backend#{task_id} merged into main, rollback point {sha} ({elapsed()})")
        return task

    async def failed() -> JSON:
        task = await watch(backend, ids["failed"], lambda t: t.get("state") == "failed", what="failed",
                           timeout_s=timeout_s, expect_end=True)
        say(f"backend#{task['id']} failed its tests gate, after a fix attempt ({elapsed()})")
        return task

    results = await asyncio.gather(delegating(), asking(), review(), merged(), failed())
    roles = ("delegated", "asking", "review", "merged", "failed")
    seeded: dict[str, JSON] = {
        "delegating": {"repo": "backend", "id": ids["delegating"], "state": "executing"}}
    for role, task in zip(roles, results, strict=True):
        seeded[role] = {"repo": task.get("repo", "backend"), "id": int(task["id"]), "state": task["state"]}
        if role == "delegated":
            seeded[role]["parent"] = task["parent"]
    ws.tasks = seeded
    ws.seed_s = round(time.monotonic() - started, 2)
    ws.save()
    return seeded
