"""The merge ops: merge_task {id, dry_run}, rollback_task {id}, list_merges {all}; the same code in daemon and
CLI."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cockpit.core.events import EventType
from cockpit.core.models import JSON, Task
from cockpit.core.ops import arg_bool, arg_int
from cockpit.core.states import State

if TYPE_CHECKING:
    from cockpit.core.ops import Ops
from cockpit.core.merge.context import MergeContext
from cockpit.core.merge.orchestrator import merge_task
from cockpit.core.merge.rollback import rollback_method, rollback_task

# Merge states of `list_merges` by default: a merge was planned or published (refused attempts need --all).
LISTED = frozenset({"merging", "merged", "needs_attention", "rolled_back"})


# -------------------------------------------------------------------------------------------------- list


@dataclass
class _Row:
    task: Task
    ts: float
    rollback_now: str | None = None


async def list_merges(ctx: MergeContext, *, include_all: bool = False) -> list[JSON]:
    """The repo's merges, newest first, with what a rollback would do right now (reset, revert or gone)."""
    store = ctx.store
    tasks = [t for t in await store.list_tasks() if t.merge is not None
             and (include_all or (t.merge.state in LISTED and t.merge.merge_sha))]
    stamps = {int(r[0]): float(r[1]) for r in await store.query(
        "SELECT task_id, MAX(ts) FROM events WHERE type IN (?, ?, ?) GROUP BY task_id",
        (EventType.MERGE_STARTED, EventType.MERGE_FINISHED, EventType.MERGE_PREFLIGHT)) if r[0] is not None}
    rows = [_Row(t, stamps.get(t.id, t.updated_at)) for t in tasks]

    def methods() -> None:
        for row in rows:
            m = row.task.merge
            if m is not None and m.state == "merged" and m.merge_sha and row.task.state is State.DONE:
                row.rollback_now = rollback_method(ctx.root, m.target, m.merge_sha)

    await asyncio.to_thread(methods)
    rows.sort(key=lambda r: (r.ts, r.task.id), reverse=True)
    out: list[JSON] = []
    for row in rows:
        m = row.task.merge
        assert m is not None
        out.append({
            "task_id": row.task.id, "title": row.task.title, "task_state": row.task.state.value,
            "target": m.target, "state": m.state, "merge_sha": m.merge_sha, "rollback_sha": m.rollback_sha,
            "strategy": m.strategy, "rollback_method": m.rollback_method, "rollback_now": row.rollback_now,
            "detail": m.detail, "at": row.ts,
        })
    return out


# --------------------------------------------------------------------------------------------------- ops


def context_for(ops: Ops) -> MergeContext:
    service = ops.service
    return MergeContext(service.store, service.paths, service.settings)


def install_ops(ops: Ops) -> None:
    """merge_task {id, dry_run}, rollback_task {id}, list_merges {all}: the same code in daemon and CLI."""

    async def merge_op(args: dict[str, Any]) -> JSON:
        outcome = await merge_task(context_for(ops), arg_int(args, "id"), dry_run=arg_bool(args, "dry_run"))
        return await outcome.to_json(ops.task_json)

    async def rollback_op(args: dict[str, Any]) -> JSON:
        outcome = await rollback_task(context_for(ops), arg_int(args, "id"))
        return await outcome.to_json(ops.task_json)

    async def list_op(args: dict[str, Any]) -> JSON:
        return {"merges": await list_merges(context_for(ops), include_all=arg_bool(args, "all"))}

    ops.handlers["merge_task"] = merge_op
    ops.handlers["rollback_task"] = rollback_op
    ops.handlers["list_merges"] = list_op
