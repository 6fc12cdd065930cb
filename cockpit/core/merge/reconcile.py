"""Crash reconcile: what an interrupted merge (merge.started, no merge.finished) left, read from the ref.

Everything runs under the merge lock (`lock`), so a daemon and a CLI never merge at once in one repo. A
process that dies between `merge.started` and `merge.finished` leaves the task `merging`; `reconcile_merging`
(the daemon runs it on start, and a later merge of the task runs it first) reads the target ref: at the
planned merge the record is completed, at the rollback point the task returns to awaiting_review, anything
else is flagged for a person (`merge.needs_attention`) and nothing is touched. A merge that stopped after
rebasing the task branch puts the branch back (`put_back`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from cockpit.core import git
from cockpit.core.events import EventType
from cockpit.core.merge.context import BranchRebase, MergeContext, clean_scratch, finish, in_thread
from cockpit.core.merge.lock import merge_lock
from cockpit.core.merge.plumbing import short
from cockpit.core.merge.rebase import restore_branch
from cockpit.core.merge.rollback import rollback_plan
from cockpit.core.models import Task
from cockpit.core.states import State

log = logging.getLogger("cockpit.merge")


# -------------------------------------------------------------------------------------------- reconcile


def reconcile(repo: Path, target: str, planned_merge_sha: str, rollback_sha: str) -> str:
    """After a crash between merge.started and merge.finished, say what the ref shows; change nothing.

    "merged": the target tip is the planned merge or contains it; "not_merged": the tip is still the
    rollback point; "diverged": anything else (a person must look).
    """
    plan = rollback_plan(repo, target, planned_merge_sha)
    if plan.tip is None:
        return "diverged"
    if plan.tip == planned_merge_sha:
        return "merged"
    if plan.tip == rollback_sha:
        return "not_merged"
    return "merged" if plan.contains_merge else "diverged"


# Events after a merge.rebased that settle what became of the rebased branch.
_REBASE_SETTLED = frozenset({EventType.MERGE_FINISHED, EventType.TASK_AWAITING_REVIEW,
                             EventType.TASK_EXECUTING, EventType.TASK_APPROVED})


async def _dangling_rebase(ctx: MergeContext, task: Task) -> BranchRebase | None:
    """The rebase a merge made of the task branch and never concluded (merged, or put back), if any."""
    kinds = sorted({*_REBASE_SETTLED, EventType.MERGE_REBASED, EventType.MERGE_REFUSED})
    rows = await ctx.store.query(
        f"SELECT type, data FROM events WHERE task_id = ? AND type IN ({','.join('?' * len(kinds))}) "
        "ORDER BY seq DESC LIMIT 100", (task.id, *kinds))
    for kind, raw in rows:
        d = json.loads(raw)
        concluded = kind == EventType.MERGE_REFUSED and ("branch_restored" in d or "branch_left" in d)
        if kind in _REBASE_SETTLED or concluded:
            return None
        if kind == EventType.MERGE_REBASED:
            if not task.worktree or not d.get("from_sha") or not d.get("to_sha"):
                return None
            return BranchRebase(Path(task.worktree), str(d["to_sha"]), str(d["from_sha"]),
                           d.get("previous_base_sha"))
    return None


async def put_back(ctx: MergeContext, task: Task, why: str) -> bool:
    """Put back a task branch that a stopped merge rebased (see `_dangling_rebase`); True when it recorded
    something."""
    undo = await _dangling_rebase(ctx, task)
    if undo is None:
        return False
    left = await in_thread(restore_branch, undo.worktree, undo.rebased, undo.original)
    data: dict[str, Any] = {"step": "reconcile", "cause": "interrupted"}
    if left is None:
        data["reason"] = f"{why}; the task branch was put back at {short(undo.original)} (before the rebase)"
        data["branch_restored"] = {"from_sha": undo.rebased, "to_sha": undo.original,
                                   "base_sha": undo.base_sha}
    else:
        data["reason"] = f"{why}; the rebased task branch could not be put back: {left}"
        data["branch_left"] = left
    await ctx.store.append(task.id, EventType.MERGE_REFUSED, data)
    return True


# ---------------------------------------------------------------------------------------- reconcile, recorded


async def settle(ctx: MergeContext, task: Task, why: str) -> Task:
    """Decide a task left `merging` from the target ref; never moves a ref."""
    m = task.merge
    if task.state is not State.MERGING:
        return task
    if m is None or not m.merge_sha or not m.rollback_sha:
        await ctx.store.append(task.id, EventType.MERGE_NEEDS_ATTENTION, {
            "reason": f"{why}; task {task.id} is merging but no planned merge is on record: a person must "
                      "look"})
        return await ctx.store.get_task(task.id)
    outcome = await asyncio.to_thread(reconcile, ctx.root, m.target, m.merge_sha, m.rollback_sha)
    if outcome == "merged":
        log.info("task %d: %s is at the planned merge %s; completing the record", task.id, m.target,
                 m.merge_sha)
        settled, _ = await finish(ctx, task.id, m.target, m.merge_sha, m.rollback_sha, m.strategy,
                                   reconciled=True)
        return settled
    if outcome == "not_merged":
        await ctx.store.append(task.id, EventType.MERGE_REFUSED, {
            "step": "reconcile", "cause": "interrupted",
            "reason": f"{why}; {m.target} is still at the rollback point {short(m.rollback_sha)}, so "
                      f"nothing was merged: merge it again"})
        return await ctx.store.get_task(task.id)
    tip = await asyncio.to_thread(git.ref_sha, ctx.root, git.branch_ref(m.target))
    reason = (f"{why}; {m.target} is at {short(tip) if tip else '(missing)'}, which is neither the planned "
              f"merge {short(m.merge_sha)} nor the rollback point {short(m.rollback_sha)}: a person must "
              "look (nothing was changed)")
    if m.state != "needs_attention" or m.detail != reason:
        await ctx.store.append(task.id, EventType.MERGE_NEEDS_ATTENTION, {
            "reason": reason, "target": m.target, "tip": tip, "merge_sha": m.merge_sha,
            "rollback_sha": m.rollback_sha})
    return await ctx.store.get_task(task.id)


async def reconcile_merging(ctx: MergeContext, *, wait: bool = True) -> list[Task]:
    """Settle every task left `merging` by a process that died mid-merge, and drop stale scratch worktrees.

    Returns the settled tasks. With `wait=False` it raises LockBusy when another process holds the merge lock.
    """
    async with merge_lock(ctx.paths, wait=wait):
        await asyncio.to_thread(clean_scratch, ctx)
        settled: list[Task] = []
        why = "the merge was interrupted (the process running it stopped)"
        for task in await ctx.store.list_tasks([State.MERGING]):
            settled.append(await settle(ctx, task, why))
        # A merge that stopped after rebasing the task branch (killed, or cancelled) puts it back.
        for task in await ctx.store.list_tasks([State.AWAITING_REVIEW]):
            if await put_back(ctx, task, why):
                settled.append(await ctx.store.get_task(task.id))
        return settled
