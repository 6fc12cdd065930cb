"""Merging a task (`merge_task`): the engine's steps, each recorded as an event, under the merge lock.

For a task in awaiting_review:
  1. preflight (`merge.preflight`, every check's result); a failed check is `merge.refused`. A dry run stops
     here.
  2. when the target moved since the task branched: rebase the task branch in its worktree (`merge.rebased`)
     and run the gates again; a conflicting rebase is aborted and refused with the files named.
  3. build the merge commit with plumbing and record `merge.started` with the rollback point (the target ref's
     tip) and the planned merge commit, before any ref moves: the task is `merging`.
  4. with `[merge] verify`, run the gates on a scratch worktree of the merge result.
  5. move the target by compare-and-set; if it moved underneath, nothing is written and the merge is refused.
  6. remove the task's worktree (kept, and said so, when it holds uncommitted work), record `merge.finished`.

Git processes are most of a merge's cost, so the engine's results are passed on instead of read again: the
preflight's tips and merged tree to the build, its checkout list to the move (when no gates ran in between).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
from pathlib import Path

from cockpit.core import git
from cockpit.core.errors import CockpitError, RefusedError
from cockpit.core.events import EventType
from cockpit.core.merge.context import (
    BranchRebase,
    MergeContext,
    MergeOutcome,
    drain,
    failed_gates,
    finish,
    gates_text,
    in_thread,
    merge_json,
    refuse,
    run_recorded_gates,
    scratch_for,
)
from cockpit.core.merge.engine import PlannedMerge, build_merge_commit, move_target, verify_in_scratch
from cockpit.core.merge.lock import merge_lock, pause_point
from cockpit.core.merge.plumbing import list_files, short
from cockpit.core.merge.preflight import Preflight, preflight
from cockpit.core.merge.rebase import rebase_branch
from cockpit.core.merge.reconcile import put_back, settle
from cockpit.core.models import GateResult, Task
from cockpit.core.states import State
from cockpit.core.titles import one_line

log = logging.getLogger("cockpit.merge")


# ------------------------------------------------------------------------------------------------- merge


async def merge_task(ctx: MergeContext, task_id: int, *, dry_run: bool = False) -> MergeOutcome:
    """Merge a task in awaiting_review into the target branch (see the module docstring for the steps)."""
    async with merge_lock(ctx.paths):
        return await _merge_locked(ctx, task_id, dry_run)


async def _merge_locked(ctx: MergeContext, task_id: int, dry_run: bool) -> MergeOutcome:
    store = ctx.store
    task = await store.get_task(task_id)
    # A merge attempt that never recorded its end (killed, or cancelled) may have left the branch rebased.
    unfinished = task.state is State.MERGING or (task.merge is not None and task.merge.state == "preflight")
    if task.state is State.MERGING:
        # Left merging by a process that died mid-merge: the ref says how far it got.
        task = await settle(ctx, task, "a previous merge of this task was interrupted")
        if task.state is State.MERGING:
            m = task.merge
            raise RefusedError(
                (m.detail if m and m.detail else f"task {task_id}'s interrupted merge needs a person")
                + f"; once {m.target if m else 'the target'} is back at the rollback point or at the merge, "
                f"run `cockpit task merge {task_id}` again",
                code="needs_attention",
                details={"task_id": task_id, "merge": merge_json(task)},
            )
    if task.state is State.DONE and task.merge is not None and task.merge.state == "merged":
        return MergeOutcome(task, merge_json(task), None, dry_run=dry_run, already_merged=True)
    if unfinished and task.state is State.AWAITING_REVIEW and await put_back(
            ctx, task, "a previous merge of this task stopped after rebasing its branch"):
        task = await store.get_task(task_id)
    if task.state is not State.AWAITING_REVIEW:
        hints = {State.ROLLED_BACK: f"; run it again with `cockpit task retry {task_id}` first",
                 State.DONE: " without a merge (a read-only result); there is nothing to merge"}
        hint = hints.get(task.state, "")
        raise RefusedError(f"task {task_id} is {task.state.value}; only a task awaiting review can be "
                           f"merged{hint}", details={"task_id": task_id, "state": task.state.value})
    if not task.branch:
        raise RefusedError(f"task {task_id} has no branch to merge; run it again with `cockpit task retry "
                           f"{task_id}`", details={"task_id": task_id})
    branch = task.branch
    target = ctx.settings.target_branch
    strategy = ctx.settings.merge_strategy
    message = f"Merge task {task_id}: {one_line(task.title)} (cockpit)"

    # What is merged is the commit the gates passed on, never a later tip of the branch.
    pf = await asyncio.to_thread(functools.partial(preflight, ctx.root, branch, target,
                                                   gated=task.gated_sha or ""))
    report = pf.to_json()
    await store.append(task_id, EventType.MERGE_PREFLIGHT, {**report, "strategy": strategy,
                                                            "dry_run": dry_run})
    if dry_run:
        task = await store.get_task(task_id)
        return MergeOutcome(task, merge_json(task, would_rebase=pf.target_moved), report, dry_run=True)
    if not pf.ok:
        hint = ""
        if any(check.name == "branch_gated" for check in pf.failed()):
            hint = f"; run `cockpit task gates {task_id}` to check the branch's tip, then merge again"
        await refuse(ctx, task_id, "preflight", f"merge of task {task_id} refused: {pf.summary()}{hint}",
                      details={"reason": pf.reason(), "conflicts": list(pf.conflicts),
                               "files": pf.refused_files(), "preflight": report})
    await pause_point(ctx.paths, "preflight")

    undo: BranchRebase | None = None
    commit = pf.branch_sha
    if pf.target_moved:
        try:
            undo = await _rebase_and_regate(ctx, task, pf)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await put_back(ctx, await store.get_task(task_id), "the merge was cancelled")
            raise
        commit = undo.rebased
    rebased = undo is not None

    # Without a rebase the preflight's tips and merged tree are fresh: the build is one `commit-tree`. After a
    # rebase (the gates ran meanwhile) the build reads the target again and merges the rebased commit.
    try:
        planned = await asyncio.to_thread(functools.partial(
            build_merge_commit, ctx.root, branch, target, strategy, message,
            preflight=None if rebased else pf, commit=commit))
    except CockpitError as exc:  # a conflict that appeared meanwhile, nothing to merge, a git failure
        await refuse(ctx, task_id, "build", f"merge of task {task_id} refused: {exc.message}",
                      details=exc.details, undo=undo)
    # The rollback point and the planned merge are on record before anything moves.
    await store.append(task_id, EventType.MERGE_STARTED, {**planned.to_json(), "branch": branch})

    # Where the preflight found the target checked out (and clean), unless time passed since: the gates of a
    # rebase or of verify ran, so the move lists the checkouts and checks them again.
    checkouts: list[Path] | None = None if rebased or ctx.settings.merge_verify else pf.checkouts
    step = "started"
    try:
        await pause_point(ctx.paths, "started")
        if ctx.settings.merge_verify:
            step = "verify"
            failed = failed_gates(await _verify(ctx, task_id, planned))
            if failed:
                raise RefusedError(
                    f"the gates failed on the merge result {short(planned.merge_sha)}: "
                    f"{gates_text(failed)}; {target} was not moved (see `cockpit task show {task_id}` and "
                    "the gate log)",
                    details={"reason": "verify_failed", "gates": [g.to_json() for g in failed]})
        await pause_point(ctx.paths, "verified")
        step = "move"
        await in_thread(functools.partial(move_target, ctx.root, planned, checkouts=checkouts))
        step = "finish"
        await pause_point(ctx.paths, "moved")
    except RefusedError as exc:
        # A verify failure or a refused compare-and-set: nothing was written, the task can be merged again.
        await refuse(ctx, task_id, step, f"merge of task {task_id} refused: {exc.message}",
                      details=exc.details, undo=undo)
    except BaseException as exc:
        # Anything unexpected (or a cancellation) after merge.started: the ref says what happened.
        reason = "the merge was cancelled" if isinstance(exc, asyncio.CancelledError) else \
            f"the merge failed at step {step}: {exc}"
        with contextlib.suppress(Exception):
            settled = await settle(ctx, await store.get_task(task_id), reason)
            if settled.state is State.DONE and not isinstance(exc, asyncio.CancelledError):
                return MergeOutcome(settled, merge_json(settled), report, rebased=rebased)
            if settled.state is State.AWAITING_REVIEW:
                await put_back(ctx, settled, reason)
        raise
    task, finished = await finish(ctx, task_id, planned.target, planned.merge_sha, planned.rollback_sha,
                                   planned.strategy)
    return MergeOutcome(task, merge_json(task, **finished), report, rebased=rebased)


async def _rebase_and_regate(ctx: MergeContext, task: Task, pf: Preflight) -> BranchRebase:
    """The target moved since the task branched: rebase the task branch onto its tip, run the gates again.

    Any refusal once the branch is rebased puts it back where it was (the gated commit)."""
    task_id = task.id
    target = pf.target
    onto = pf.target_sha
    original = pf.branch_sha
    assert onto is not None and original is not None  # preflight passed
    worktree = Path(task.worktree) if task.worktree else None
    if worktree is None or not await asyncio.to_thread(worktree.is_dir):
        await refuse(ctx, task_id, "rebase",
                      f"{target} moved since task {task_id} branched and the task's worktree is gone, so its "
                      f"branch cannot be rebased; run it again with `cockpit task retry {task_id}`",
                      details={"reason": "no_worktree"})
    try:
        conflicts = await in_thread(functools.partial(rebase_branch, worktree, onto,
                                                      expected_head=original))
    except CockpitError as exc:
        await refuse(ctx, task_id, "rebase", f"merge of task {task_id} refused: {exc.message}",
                      details={**exc.details, "reason": exc.details.get("reason", "rebase_failed")})
    if conflicts:
        await refuse(
            ctx, task_id, "rebase",
            f"{target} moved since task {task_id} branched and rebasing {pf.branch} onto it conflicts in "
            f"{list_files(conflicts)}; the rebase was aborted and nothing changed: resolve it in {worktree} "
            "or "
            f"run the task again with `cockpit task retry {task_id}`",
            details={"reason": "conflicts", "conflicts": conflicts})
    head = await asyncio.to_thread(git.head_sha, worktree)
    assert head is not None  # the rebase just succeeded
    undo = BranchRebase(worktree, head, original, task.base_sha)
    await ctx.store.append(task_id, EventType.MERGE_REBASED, {"onto": onto, "base_sha": onto,
                                                              "target": target,
                                                      "from_sha": original, "to_sha": head,
                                                      "previous_base_sha": task.base_sha})
    await pause_point(ctx.paths, "rebased")
    if head == onto:
        await refuse(ctx, task_id, "rebase",
                      f"rebasing {pf.branch} onto {target}'s new tip {short(onto)} left no commits: "
                      f"{target} already has the task's changes, so there is nothing to merge",
                      details={"reason": "nothing_to_merge"}, undo=undo)
    failed = failed_gates(await run_recorded_gates(ctx, task_id, worktree, onto, "rebase"))
    if failed:
        await refuse(ctx, task_id, "gates",
                      f"task {task_id} was rebased onto {target}'s new tip {short(onto)} and the gates "
                      f"failed there: {gates_text(failed)}; {target} was not moved (fix the branch, or "
                      "retry the task)",
                      details={"reason": "gates_failed", "gates": [g.to_json() for g in failed]}, undo=undo)
    after = await asyncio.to_thread(git.head_sha, worktree)
    if after != head:
        await refuse(ctx, task_id, "gates",
                      f"the task branch moved while the gates ran on the rebased commit {short(head)} (now "
                      f"{short(after)}); nothing was merged: run `cockpit task gates {task_id}` and merge "
                      "again", details={"reason": "branch_moved"}, undo=undo)
    return undo


async def _verify(ctx: MergeContext, task_id: int, planned: PlannedMerge) -> list[GateResult]:
    """Run the gates on a scratch worktree of the (unpublished) merge commit."""
    loop = asyncio.get_running_loop()
    results: list[GateResult] = []
    running: list[concurrent.futures.Future[list[GateResult]]] = []

    def check(path: Path) -> bool:  # runs in the engine's thread; the gates run on the event loop
        future = asyncio.run_coroutine_threadsafe(
            run_recorded_gates(ctx, task_id, path, planned.rollback_sha, "verify"), loop)
        running.append(future)
        results.extend(future.result())
        return not failed_gates(results)

    scratch = await asyncio.to_thread(scratch_for, ctx, "verify", task_id)
    job = asyncio.ensure_future(asyncio.to_thread(verify_in_scratch, ctx.root, planned.merge_sha,
                                                  scratch, check))
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        for future in running:
            future.cancel()
        await drain(job)
        raise
    return results
