"""The merge orchestrator (DESIGN section 8): verified merges with a recorded rollback point, and rollback.

This module drives the git engine of `cockpit.core.merge` and records what happens as events:

merge (`merge_task`), for a task in awaiting_review
  1. preflight (`merge.preflight`, every check's result); a failed check is `merge.refused`. A dry run stops
     here.
  2. when the target moved since the task branched: rebase the task branch in its worktree (`merge.rebased`)
     and run the gates again; a conflicting rebase is aborted and refused with the files named.
  3. build the merge commit with plumbing and record `merge.started` with the rollback point (the target ref's
     tip) and the planned merge commit, before any ref moves: the task is `merging`.
  4. with `[merge] verify`, run the gates on a scratch worktree of the merge result.
  5. move the target by compare-and-set; if it moved underneath, nothing is written and the merge is refused.
  6. remove the task's worktree (kept, and said so, when it holds uncommitted work), record `merge.finished`.

rollback (`rollback_task`), for a done task: `merge.rollback` resets the target while the merge is its tip and
makes a revert commit (built with plumbing, no checkout) once later commits exist; `merge.rolled_back` records
the method and both SHAs.

Git processes are most of a merge's cost, so the engine's results are passed on instead of read again: the
preflight's tips and merged tree to the build, its checkout list to the move (when no gates ran in between),
one read of the target to the rollback.

Crash safety: everything runs under a cross-process lock (`.cockpit/merge.lock`, flock), so a daemon and a CLI
never merge at once in one repo. A process that dies between `merge.started` and `merge.finished` leaves the
task `merging`; `reconcile_merging` (the daemon runs it on start, and a later merge of the task runs it first)
reads the target ref: at the planned merge the record is completed, at the rollback point the task returns to
awaiting_review, anything else is flagged for a person (`merge.needs_attention`) and nothing is touched.

Test hook: with `COCKPIT_MERGE_PAUSE_AT=<step>[,<step>...]` in the environment (steps: preflight, rebased,
started, verified, moved, rolled_back) the orchestrator writes `.cockpit/merge-paused.<step>` when it reaches
that step and then blocks forever, so a test can kill -9 the process at exactly that point. It has no other
use.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import functools
import json
import logging
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from cockpit.core import git, merge
from cockpit.core.config import Settings
from cockpit.core.errors import CockpitError, RefusedError
from cockpit.core.gates import TddRule, run_gates
from cockpit.core.models import JSON, GateResult, Task
from cockpit.core.ops import arg_bool, arg_int
from cockpit.core.paths import RepoPaths
from cockpit.core.states import State
from cockpit.core.store import Store
from cockpit.core.titles import one_line

if TYPE_CHECKING:
    from cockpit.core.ops import Ops

log = logging.getLogger("cockpit.merge")

__all__ = [
    "LOCK_NAME",
    "PAUSE_ENV",
    "PAUSE_STEPS",
    "LockBusy",
    "MergeContext",
    "MergeOutcome",
    "RollbackOutcome",
    "install_ops",
    "list_merges",
    "merge_lock",
    "merge_task",
    "reconcile_merging",
    "rollback_task",
]

LOCK_NAME = "merge.lock"
PAUSE_ENV = "COCKPIT_MERGE_PAUSE_AT"
PAUSE_STEPS = ("preflight", "rebased", "started", "verified", "moved", "rolled_back")
# Merge states of `list_merges` by default: a merge was planned or published (refused attempts need --all).
LISTED = frozenset({"merging", "merged", "needs_attention", "rolled_back"})

T = TypeVar("T")


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "(none)"


def _files(files: list[str], limit: int = 8) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


# ------------------------------------------------------------------------------------------------ context


@dataclass
class MergeContext:
    """What a merge needs: the repo's store, its paths and its settings (target, strategy, verify, gates)."""

    store: Store
    paths: RepoPaths
    settings: Settings

    @property
    def root(self) -> Path:
        return self.paths.root

    @property
    def scratch(self) -> Path:
        """Scratch worktrees of verified merges; only ever used under the merge lock (reverts need none)."""
        return self.paths.scratch / "merge"

    def tdd_rule(self) -> TddRule:
        s = self.settings
        return TddRule.from_settings(s.tdd_enabled, s["tdd.source_patterns"], s["tdd.test_patterns"])


# --------------------------------------------------------------------------------------------------- lock


class LockBusy(CockpitError):
    code = "merge_busy"


def _close_when_done(fd: int) -> Callable[[asyncio.Future[Any]], None]:
    def close(_future: asyncio.Future[Any]) -> None:
        os.close(fd)

    return close


@contextlib.asynccontextmanager
async def merge_lock(paths: RepoPaths, *, wait: bool = True) -> AsyncIterator[None]:
    """Hold the repo's merge lock (flock on `.cockpit/merge.lock`), across processes and within one.

    The uncontended case takes it without a thread; a contended one waits in a thread so the event loop never
    blocks. With `wait=False` a held lock raises LockBusy at once. The kernel drops the lock when its holder
    dies, so a killed process never leaves it held.
    """
    paths.cockpit.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.cockpit / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LockBusy("another merge or rollback is running in this repo") from None
            waiter = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
            try:
                await asyncio.shield(waiter)
            except asyncio.CancelledError:
                # The thread still waits on fd: close it (and so drop the lock) once that returns.
                waiter.add_done_callback(_close_when_done(fd))
                fd = -1
                raise
        yield
    finally:
        if fd >= 0:
            os.close(fd)


# ----------------------------------------------------------------------------------------------- helpers


async def pause_point(paths: RepoPaths, step: str) -> None:
    """Test hook (see the module docstring): block forever at `step` when COCKPIT_MERGE_PAUSE_AT names it."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or step not in {s.strip() for s in wanted.split(",")}:
        return
    marker = paths.cockpit / f"merge-paused.{step}"
    marker.write_text(f"{os.getpid()}\n")
    log.warning("test hook %s: paused at merge step %r", PAUSE_ENV, step)
    await asyncio.Event().wait()


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking step that may move a ref in a thread. A cancelled caller still waits for it to end, so
    nothing changes behind the back of whoever decides what the cancellation left behind."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await _drain(future)
        raise


async def _drain(future: asyncio.Future[Any]) -> None:
    """Wait for a shielded future to end and take its outcome, so no error goes unreported."""
    await asyncio.wait([future])
    if not future.cancelled() and future.exception() is not None:
        log.info("step ended after its caller was cancelled: %s", future.exception())


def _clean_scratch(ctx: MergeContext) -> None:
    """Remove scratch worktrees a killed merge left behind (callers hold the merge lock: none is in use)."""
    if not ctx.scratch.is_dir():
        return
    leftovers = list(ctx.scratch.iterdir())
    for path in leftovers:
        git.run_git(ctx.root, "worktree", "remove", "--force", "--force", str(path), check=False)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
    if leftovers:
        git.run_git(ctx.root, "worktree", "prune", check=False)


def _scratch_dir(ctx: MergeContext, what: str, task_id: int) -> Path:
    if ctx.scratch.is_dir() and any(ctx.scratch.iterdir()):
        _clean_scratch(ctx)
    return ctx.scratch / f"{what}-{task_id}-{os.getpid()}"


async def _run_gates(ctx: MergeContext, task_id: int, worktree: Path, base_sha: str,
                     phase: str) -> list[GateResult]:
    """The repo's gates in `worktree`, recorded as gate.started / gate.finished events like the execution
    layer's, plus the phase ("rebase": the rebased task branch, "verify": the merge result)."""
    attempt = (await ctx.store.get_task(task_id)).attempt

    async def started(name: str) -> None:
        await ctx.store.append(task_id, "gate.started", {"name": name, "attempt": attempt, "phase": phase})

    async def finished(result: GateResult) -> None:
        await ctx.store.append(task_id, "gate.finished",
                               {**result.to_json(), "attempt": attempt, "phase": phase})

    return await run_gates(worktree, base_sha, ctx.settings.gates, tdd=ctx.tdd_rule(),
                           log_path=ctx.paths.gate_log(task_id), on_started=started, on_finished=finished)


def _failed_gates(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if r.status != "passed"]


def _gates_text(failed: list[GateResult]) -> str:
    return ", ".join(f"{g.name} ({g.reason})" if g.reason else g.name for g in failed)


@dataclass(frozen=True)
class _Rebase:
    """A rebase this merge made of the task branch: what a refusal puts back."""

    worktree: Path
    rebased: str  # the branch's tip after the rebase
    original: str  # its tip before: the gated commit
    base_sha: str | None  # the task's base before


async def _refuse(ctx: MergeContext, task_id: int, step: str, message: str, *,
                  details: dict[str, Any] | None = None, undo: _Rebase | None = None) -> NoReturn:
    """Record merge.refused (a merging task returns to awaiting_review) and raise the refusal. With `undo`,
    the task branch this merge rebased is first put back exactly where it was."""
    extra = dict(details or {})
    cause = extra.pop("reason", None)
    if undo is not None:
        left = await _blocking(merge.restore_branch, undo.worktree, undo.rebased, undo.original)
        if left is None:
            message += f"; the task branch was put back at {_short(undo.original)}, where it was before"
            extra["branch_restored"] = {"from_sha": undo.rebased, "to_sha": undo.original,
                                        "base_sha": undo.base_sha}
        else:
            message += f"; the rebased task branch could not be put back at {_short(undo.original)}: {left}"
            extra["branch_left"] = left
    data: dict[str, Any] = {"step": step, "reason": message, **extra}
    if cause is not None:
        data["cause"] = cause
    await ctx.store.append(task_id, "merge.refused", data)
    raise RefusedError(message, details={"task_id": task_id, "step": step,
                                         **({"reason": cause} if cause else {}), **extra})


# ---------------------------------------------------------------------------------------------- outcomes


@dataclass
class MergeOutcome:
    task: Task
    merge: JSON
    preflight: JSON | None
    rebased: bool = False
    dry_run: bool = False
    already_merged: bool = False

    async def to_json(self, task_json: Callable[[Task], Awaitable[JSON]] | None = None) -> JSON:
        task = await task_json(self.task) if task_json else self.task.to_json()
        return {"task": task, "merge": self.merge, "preflight": self.preflight, "rebased": self.rebased,
                "dry_run": self.dry_run, "already_merged": self.already_merged}


@dataclass
class RollbackOutcome:
    task: Task
    rollback: JSON
    already_rolled_back: bool = False

    async def to_json(self, task_json: Callable[[Task], Awaitable[JSON]] | None = None) -> JSON:
        task = await task_json(self.task) if task_json else self.task.to_json()
        return {"task": task, "rollback": self.rollback, "already_rolled_back": self.already_rolled_back}


def _merge_json(task: Task, **extra: Any) -> JSON:
    data: JSON = task.merge.to_json() if task.merge is not None else {}
    return {**data, **extra}


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
        task = await _settle(ctx, task, "a previous merge of this task was interrupted")
        if task.state is State.MERGING:
            m = task.merge
            raise RefusedError(
                (m.detail if m and m.detail else f"task {task_id}'s interrupted merge needs a person")
                + f"; once {m.target if m else 'the target'} is back at the rollback point or at the merge, "
                f"run `cockpit task merge {task_id}` again",
                code="needs_attention",
                details={"task_id": task_id, "merge": _merge_json(task)},
            )
    if task.state is State.DONE and task.merge is not None and task.merge.state == "merged":
        return MergeOutcome(task, _merge_json(task), None, dry_run=dry_run, already_merged=True)
    if unfinished and task.state is State.AWAITING_REVIEW and await _put_back(
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
    pf = await asyncio.to_thread(functools.partial(merge.preflight, ctx.root, branch, target,
                                                   gated=task.gated_sha or ""))
    report = pf.to_json()
    await store.append(task_id, "merge.preflight", {**report, "strategy": strategy, "dry_run": dry_run})
    if dry_run:
        task = await store.get_task(task_id)
        return MergeOutcome(task, _merge_json(task, would_rebase=pf.target_moved), report, dry_run=True)
    if not pf.ok:
        hint = ""
        if any(check.name == "branch_gated" for check in pf.failed()):
            hint = f"; run `cockpit task gates {task_id}` to check the branch's tip, then merge again"
        await _refuse(ctx, task_id, "preflight", f"merge of task {task_id} refused: {pf.summary()}{hint}",
                      details={"reason": pf.reason(), "conflicts": list(pf.conflicts),
                               "files": pf.refused_files(), "preflight": report})
    await pause_point(ctx.paths, "preflight")

    undo: _Rebase | None = None
    commit = pf.branch_sha
    if pf.target_moved:
        try:
            undo = await _rebase_and_regate(ctx, task, pf)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await _put_back(ctx, await store.get_task(task_id), "the merge was cancelled")
            raise
        commit = undo.rebased
    rebased = undo is not None

    # Without a rebase the preflight's tips and merged tree are fresh: the build is one `commit-tree`. After a
    # rebase (the gates ran meanwhile) the build reads the target again and merges the rebased commit.
    try:
        planned = await asyncio.to_thread(functools.partial(
            merge.build_merge_commit, ctx.root, branch, target, strategy, message,
            preflight=None if rebased else pf, commit=commit))
    except CockpitError as exc:  # a conflict that appeared meanwhile, nothing to merge, a git failure
        await _refuse(ctx, task_id, "build", f"merge of task {task_id} refused: {exc.message}",
                      details=exc.details, undo=undo)
    # The rollback point and the planned merge are on record before anything moves.
    await store.append(task_id, "merge.started", {**planned.to_json(), "branch": branch})

    # Where the preflight found the target checked out (and clean), unless time passed since: the gates of a
    # rebase or of verify ran, so the move lists the checkouts and checks them again.
    checkouts: list[Path] | None = None if rebased or ctx.settings.merge_verify else pf.checkouts
    step = "started"
    try:
        await pause_point(ctx.paths, "started")
        if ctx.settings.merge_verify:
            step = "verify"
            failed = _failed_gates(await _verify(ctx, task_id, planned))
            if failed:
                raise RefusedError(
                    f"the gates failed on the merge result {_short(planned.merge_sha)}: "
                    f"{_gates_text(failed)}; {target} was not moved (see `cockpit task show {task_id}` and "
                    "the gate log)",
                    details={"reason": "verify_failed", "gates": [g.to_json() for g in failed]})
        await pause_point(ctx.paths, "verified")
        step = "move"
        await _blocking(functools.partial(merge.move_target, ctx.root, planned, checkouts=checkouts))
        step = "finish"
        await pause_point(ctx.paths, "moved")
    except RefusedError as exc:
        # A verify failure or a refused compare-and-set: nothing was written, the task can be merged again.
        await _refuse(ctx, task_id, step, f"merge of task {task_id} refused: {exc.message}",
                      details=exc.details, undo=undo)
    except BaseException as exc:
        # Anything unexpected (or a cancellation) after merge.started: the ref says what happened.
        reason = "the merge was cancelled" if isinstance(exc, asyncio.CancelledError) else \
            f"the merge failed at step {step}: {exc}"
        with contextlib.suppress(Exception):
            settled = await _settle(ctx, await store.get_task(task_id), reason)
            if settled.state is State.DONE and not isinstance(exc, asyncio.CancelledError):
                return MergeOutcome(settled, _merge_json(settled), report, rebased=rebased)
            if settled.state is State.AWAITING_REVIEW:
                await _put_back(ctx, settled, reason)
        raise
    task, finished = await _finish(ctx, task_id, planned.target, planned.merge_sha, planned.rollback_sha,
                                   planned.strategy)
    return MergeOutcome(task, _merge_json(task, **finished), report, rebased=rebased)


# Events after a merge.rebased that settle what became of the rebased branch.
_REBASE_SETTLED = frozenset({"merge.finished", "task.awaiting_review", "task.executing", "task.approved"})


async def _dangling_rebase(ctx: MergeContext, task: Task) -> _Rebase | None:
    """The rebase a merge made of the task branch and never concluded (merged, or put back), if any."""
    kinds = sorted({*_REBASE_SETTLED, "merge.rebased", "merge.refused"})
    rows = await ctx.store.query(
        f"SELECT type, data FROM events WHERE task_id = ? AND type IN ({','.join('?' * len(kinds))}) "
        "ORDER BY seq DESC LIMIT 100", (task.id, *kinds))
    for kind, raw in rows:
        d = json.loads(raw)
        concluded = kind == "merge.refused" and ("branch_restored" in d or "branch_left" in d)
        if kind in _REBASE_SETTLED or concluded:
            return None
        if kind == "merge.rebased":
            if not task.worktree or not d.get("from_sha") or not d.get("to_sha"):
                return None
            return _Rebase(Path(task.worktree), str(d["to_sha"]), str(d["from_sha"]),
                           d.get("previous_base_sha"))
    return None


async def _put_back(ctx: MergeContext, task: Task, why: str) -> bool:
    """Put back a task branch that a stopped merge rebased (see `_dangling_rebase`); True when it recorded
    something."""
    undo = await _dangling_rebase(ctx, task)
    if undo is None:
        return False
    left = await _blocking(merge.restore_branch, undo.worktree, undo.rebased, undo.original)
    data: dict[str, Any] = {"step": "reconcile", "cause": "interrupted"}
    if left is None:
        data["reason"] = f"{why}; the task branch was put back at {_short(undo.original)} (before the rebase)"
        data["branch_restored"] = {"from_sha": undo.rebased, "to_sha": undo.original,
                                   "base_sha": undo.base_sha}
    else:
        data["reason"] = f"{why}; the rebased task branch could not be put back: {left}"
        data["branch_left"] = left
    await ctx.store.append(task.id, "merge.refused", data)
    return True


async def _rebase_and_regate(ctx: MergeContext, task: Task, pf: merge.Preflight) -> _Rebase:
    """The target moved since the task branched: rebase the task branch onto its tip, run the gates again.

    Any refusal once the branch is rebased puts it back where it was (the gated commit)."""
    task_id = task.id
    target = pf.target
    onto = pf.target_sha
    original = pf.branch_sha
    assert onto is not None and original is not None  # preflight passed
    worktree = Path(task.worktree) if task.worktree else None
    if worktree is None or not await asyncio.to_thread(worktree.is_dir):
        await _refuse(ctx, task_id, "rebase",
                      f"{target} moved since task {task_id} branched and the task's worktree is gone, so its "
                      f"branch cannot be rebased; run it again with `cockpit task retry {task_id}`",
                      details={"reason": "no_worktree"})
    try:
        conflicts = await _blocking(functools.partial(merge.rebase_branch, worktree, onto,
                                                      expected_head=original))
    except CockpitError as exc:
        await _refuse(ctx, task_id, "rebase", f"merge of task {task_id} refused: {exc.message}",
                      details={**exc.details, "reason": exc.details.get("reason", "rebase_failed")})
    if conflicts:
        await _refuse(
            ctx, task_id, "rebase",
            f"{target} moved since task {task_id} branched and rebasing {pf.branch} onto it conflicts in "
            f"{_files(conflicts)}; the rebase was aborted and nothing changed: resolve it in {worktree} or "
            f"run the task again with `cockpit task retry {task_id}`",
            details={"reason": "conflicts", "conflicts": conflicts})
    head = await asyncio.to_thread(git.head_sha, worktree)
    assert head is not None  # the rebase just succeeded
    undo = _Rebase(worktree, head, original, task.base_sha)
    await ctx.store.append(task_id, "merge.rebased", {"onto": onto, "base_sha": onto, "target": target,
                                                      "from_sha": original, "to_sha": head,
                                                      "previous_base_sha": task.base_sha})
    await pause_point(ctx.paths, "rebased")
    if head == onto:
        await _refuse(ctx, task_id, "rebase",
                      f"rebasing {pf.branch} onto {target}'s new tip {_short(onto)} left no commits: "
                      f"{target} already has the task's changes, so there is nothing to merge",
                      details={"reason": "nothing_to_merge"}, undo=undo)
    failed = _failed_gates(await _run_gates(ctx, task_id, worktree, onto, "rebase"))
    if failed:
        await _refuse(ctx, task_id, "gates",
                      f"task {task_id} was rebased onto {target}'s new tip {_short(onto)} and the gates "
                      f"failed there: {_gates_text(failed)}; {target} was not moved (fix the branch, or "
                      "retry the task)",
                      details={"reason": "gates_failed", "gates": [g.to_json() for g in failed]}, undo=undo)
    after = await asyncio.to_thread(git.head_sha, worktree)
    if after != head:
        await _refuse(ctx, task_id, "gates",
                      f"the task branch moved while the gates ran on the rebased commit {_short(head)} (now "
                      f"{_short(after)}); nothing was merged: run `cockpit task gates {task_id}` and merge "
                      "again", details={"reason": "branch_moved"}, undo=undo)
    return undo


async def _verify(ctx: MergeContext, task_id: int, planned: merge.PlannedMerge) -> list[GateResult]:
    """Run the gates on a scratch worktree of the (unpublished) merge commit."""
    loop = asyncio.get_running_loop()
    results: list[GateResult] = []
    running: list[concurrent.futures.Future[list[GateResult]]] = []

    def check(path: Path) -> bool:  # runs in the engine's thread; the gates run on the event loop
        future = asyncio.run_coroutine_threadsafe(
            _run_gates(ctx, task_id, path, planned.rollback_sha, "verify"), loop)
        running.append(future)
        results.extend(future.result())
        return not _failed_gates(results)

    scratch = await asyncio.to_thread(_scratch_dir, ctx, "verify", task_id)
    job = asyncio.ensure_future(asyncio.to_thread(merge.verify_in_scratch, ctx.root, planned.merge_sha,
                                                  scratch, check))
    try:
        await asyncio.shield(job)
    except asyncio.CancelledError:
        for future in running:
            future.cancel()
        await _drain(job)
        raise
    return results


async def _finish(ctx: MergeContext, task_id: int, target: str, merge_sha: str, rollback_sha: str,
                  strategy: str, *, reconciled: bool = False) -> tuple[Task, JSON]:
    """The target is at the merge: remove the task's worktree (kept if it has uncommitted work), record it."""
    task = await ctx.store.get_task(task_id)
    kept: str | None = None
    note: str | None = None
    if task.worktree:
        try:
            await _blocking(git.remove_worktree, ctx.root, Path(task.worktree))
        except CockpitError as exc:
            kept, note = task.worktree, f"worktree kept: {exc.message}"
    data: dict[str, Any] = {"target": target, "merge_sha": merge_sha, "rollback_sha": rollback_sha,
                            "strategy": strategy, "worktree_removed": bool(task.worktree) and kept is None,
                            "worktree_kept": kept, "note": note}
    if reconciled:
        data["reconciled"] = True
    _, after = await ctx.store.append(task_id, "merge.finished", data)
    assert after is not None
    return after, {k: data[k] for k in ("worktree_removed", "worktree_kept", "note")}


# --------------------------------------------------------------------------------------------- reconcile


async def _settle(ctx: MergeContext, task: Task, why: str) -> Task:
    """Decide a task left `merging` from the target ref; never moves a ref."""
    m = task.merge
    if task.state is not State.MERGING:
        return task
    if m is None or not m.merge_sha or not m.rollback_sha:
        await ctx.store.append(task.id, "merge.needs_attention", {
            "reason": f"{why}; task {task.id} is merging but no planned merge is on record: a person must "
                      "look"})
        return await ctx.store.get_task(task.id)
    outcome = await asyncio.to_thread(merge.reconcile, ctx.root, m.target, m.merge_sha, m.rollback_sha)
    if outcome == "merged":
        log.info("task %d: %s is at the planned merge %s; completing the record", task.id, m.target,
                 m.merge_sha)
        settled, _ = await _finish(ctx, task.id, m.target, m.merge_sha, m.rollback_sha, m.strategy,
                                   reconciled=True)
        return settled
    if outcome == "not_merged":
        await ctx.store.append(task.id, "merge.refused", {
            "step": "reconcile", "cause": "interrupted",
            "reason": f"{why}; {m.target} is still at the rollback point {_short(m.rollback_sha)}, so "
                      f"nothing was merged: merge it again"})
        return await ctx.store.get_task(task.id)
    tip = await asyncio.to_thread(git.ref_sha, ctx.root, git.branch_ref(m.target))
    reason = (f"{why}; {m.target} is at {_short(tip) if tip else '(missing)'}, which is neither the planned "
              f"merge {_short(m.merge_sha)} nor the rollback point {_short(m.rollback_sha)}: a person must "
              "look (nothing was changed)")
    if m.state != "needs_attention" or m.detail != reason:
        await ctx.store.append(task.id, "merge.needs_attention", {
            "reason": reason, "target": m.target, "tip": tip, "merge_sha": m.merge_sha,
            "rollback_sha": m.rollback_sha})
    return await ctx.store.get_task(task.id)


async def reconcile_merging(ctx: MergeContext, *, wait: bool = True) -> list[Task]:
    """Settle every task left `merging` by a process that died mid-merge, and drop stale scratch worktrees.

    Returns the settled tasks. With `wait=False` it raises LockBusy when another process holds the merge lock.
    """
    async with merge_lock(ctx.paths, wait=wait):
        await asyncio.to_thread(_clean_scratch, ctx)
        settled: list[Task] = []
        why = "the merge was interrupted (the process running it stopped)"
        for task in await ctx.store.list_tasks([State.MERGING]):
            settled.append(await _settle(ctx, task, why))
        # A merge that stopped after rebasing the task branch (killed, or cancelled) puts it back.
        for task in await ctx.store.list_tasks([State.AWAITING_REVIEW]):
            if await _put_back(ctx, task, why):
                settled.append(await ctx.store.get_task(task.id))
        return settled


# ---------------------------------------------------------------------------------------------- rollback


def _find_revert(repo: Path, target: str, merge_sha: str) -> tuple[str, str] | None:
    """(revert, its parent): a commit on `target` after `merge_sha` that says it reverts it (a rollback whose
    record was lost), or None."""
    out = git.run_git(repo, "log", "--format=%H %P", "-F", f"--grep=This reverts commit {merge_sha}",
                      f"{merge_sha}..{git.branch_ref(target)}", "--", check=False)
    lines = out.stdout.splitlines() if out.ok else []
    fields = lines[0].split() if lines else []
    return (fields[0], fields[1]) if len(fields) >= 2 else None


def _undo(ctx: MergeContext, target: str, merge_sha: str, rollback_sha: str,
          message: str) -> tuple[merge.RollbackResult, str | None]:
    """The blocking part of a rollback (one thread hop): (result, note). A rollback whose ref move happened
    but whose record was lost (a crash) is found and reported, never done twice: its revert would change
    nothing, so the target's history is searched for it then, and only then."""
    plan = merge.rollback_plan(ctx.root, target, merge_sha)
    try:
        return merge.rollback(ctx.root, target, merge_sha, rollback_sha, message, plan=plan), None
    except merge.AlreadyReverted as exc:
        reverted = _find_revert(ctx.root, target, merge_sha)
        if reverted is not None:
            return (merge.RollbackResult(method="revert", from_sha=reverted[1], to_sha=reverted[0]),
                    f"{target} already has the revert commit {_short(reverted[0])}")
        assert plan.tip is not None
        return merge.RollbackResult(method="revert", from_sha=plan.tip, to_sha=plan.tip), exc.message
    except RefusedError:
        if git.ref_sha(ctx.root, git.branch_ref(target)) == rollback_sha:
            return (merge.RollbackResult(method="reset", from_sha=merge_sha, to_sha=rollback_sha),
                    f"{target} was already back at the rollback point")
        raise


async def rollback_task(ctx: MergeContext, task_id: int) -> RollbackOutcome:
    """Undo a done task's merge: reset the target while the merge is its tip, else commit a revert."""
    async with merge_lock(ctx.paths):
        return await _rollback_locked(ctx, task_id)


async def _recorded_rollback(ctx: MergeContext, task_id: int) -> JSON:
    for event in reversed(await ctx.store.task_events(task_id)):
        if event.type == "merge.rolled_back":
            return {k: event.data.get(k) for k in ("method", "from_sha", "to_sha")}
    return {}


async def _rollback_locked(ctx: MergeContext, task_id: int) -> RollbackOutcome:
    task = await ctx.store.get_task(task_id)
    m = task.merge
    if task.state is State.ROLLED_BACK and m is not None and m.state == "rolled_back":
        return RollbackOutcome(task, await _recorded_rollback(ctx, task_id), already_rolled_back=True)
    if task.state is not State.DONE:
        raise RefusedError(f"task {task_id} is {task.state.value}; only a done (merged) task can be rolled "
                           "back", details={"task_id": task_id, "state": task.state.value})
    if m is None or m.state != "merged" or not m.merge_sha or not m.rollback_sha:
        raise RefusedError(f"task {task_id} is done but no merge of it is on record; there is nothing to "
                           "roll back", details={"task_id": task_id})
    target, merge_sha, rollback_sha = m.target, m.merge_sha, m.rollback_sha
    message = (f'Revert "Merge task {task_id}: {one_line(task.title)} (cockpit)"\n\n'
               f"This reverts commit {merge_sha}, rolling back task {task_id}.")
    try:
        result, note = await _blocking(_undo, ctx, target, merge_sha, rollback_sha, message)
    except RefusedError as exc:
        raise RefusedError(f"rollback of task {task_id} refused: {exc.message}",
                           details={"task_id": task_id, **exc.details}) from None
    await pause_point(ctx.paths, "rolled_back")
    data: dict[str, Any] = {**result.to_json(), "target": target, "merge_sha": merge_sha,
                            "rollback_sha": rollback_sha}
    if note:
        data["note"] = note
    _, after = await ctx.store.append(task_id, "merge.rolled_back", data)
    assert after is not None
    return RollbackOutcome(after, result.to_json())


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
        "SELECT task_id, MAX(ts) FROM events WHERE type IN ('merge.started', 'merge.finished', "
        "'merge.preflight') GROUP BY task_id") if r[0] is not None}
    rows = [_Row(t, stamps.get(t.id, t.updated_at)) for t in tasks]

    def methods() -> None:
        for row in rows:
            m = row.task.merge
            if m is not None and m.state == "merged" and m.merge_sha and row.task.state is State.DONE:
                row.rollback_now = merge.rollback_method(ctx.root, m.target, m.merge_sha)

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
