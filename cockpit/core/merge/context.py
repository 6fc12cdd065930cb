"""What every merge step shares: the context (store, paths, settings), gates run and recorded, refusals
recorded, the outcomes, and the record of a finished merge."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from cockpit.core import git
from cockpit.core.config import Settings
from cockpit.core.errors import CockpitError, RefusedError
from cockpit.core.events import EventType
from cockpit.core.gates import TddRule, run_gates
from cockpit.core.merge.plumbing import short
from cockpit.core.merge.rebase import restore_branch
from cockpit.core.models import JSON, GateResult, Task
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store

log = logging.getLogger("cockpit.merge")


T = TypeVar("T")


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


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking step that may move a ref in a thread. A cancelled caller still waits for it to end, so
    nothing changes behind the back of whoever decides what the cancellation left behind."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await drain(future)
        raise


async def drain(future: asyncio.Future[Any]) -> None:
    """Wait for a shielded future to end and take its outcome, so no error goes unreported."""
    await asyncio.wait([future])
    if not future.cancelled() and future.exception() is not None:
        log.info("step ended after its caller was cancelled: %s", future.exception())


def clean_scratch(ctx: MergeContext) -> None:
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


def scratch_for(ctx: MergeContext, what: str, task_id: int) -> Path:
    if ctx.scratch.is_dir() and any(ctx.scratch.iterdir()):
        clean_scratch(ctx)
    return ctx.scratch / f"{what}-{task_id}-{os.getpid()}"


async def run_recorded_gates(ctx: MergeContext, task_id: int, worktree: Path, base_sha: str,
                     phase: str) -> list[GateResult]:
    """The repo's gates in `worktree`, recorded as gate.started / gate.finished events like the execution
    layer's, plus the phase ("rebase": the rebased task branch, "verify": the merge result)."""
    attempt = (await ctx.store.get_task(task_id)).attempt

    async def started(name: str) -> None:
        await ctx.store.append(task_id, EventType.GATE_STARTED, {"name": name, "attempt": attempt,
                                                                 "phase": phase})

    async def finished(result: GateResult) -> None:
        await ctx.store.append(task_id, EventType.GATE_FINISHED,
                               {**result.to_json(), "attempt": attempt, "phase": phase})

    return await run_gates(worktree, base_sha, ctx.settings.gates, tdd=ctx.tdd_rule(),
                           log_path=ctx.paths.gate_log(task_id), on_started=started, on_finished=finished)


def failed_gates(results: list[GateResult]) -> list[GateResult]:
    return [r for r in results if r.status != "passed"]


def gates_text(failed: list[GateResult]) -> str:
    return ", ".join(f"{g.name} ({g.reason})" if g.reason else g.name for g in failed)


@dataclass(frozen=True)
class BranchRebase:
    """A rebase this merge made of the task branch: what a refusal puts back."""

    worktree: Path
    rebased: str  # the branch's tip after the rebase
    original: str  # its tip before: the gated commit
    base_sha: str | None  # the task's base before


async def refuse(ctx: MergeContext, task_id: int, step: str, message: str, *,
                  details: dict[str, Any] | None = None, undo: BranchRebase | None = None) -> NoReturn:
    """Record merge.refused (a merging task returns to awaiting_review) and raise the refusal. With `undo`,
    the task branch this merge rebased is first put back exactly where it was."""
    extra = dict(details or {})
    cause = extra.pop("reason", None)
    if undo is not None:
        left = await in_thread(restore_branch, undo.worktree, undo.rebased, undo.original)
        if left is None:
            message += f"; the task branch was put back at {short(undo.original)}, where it was before"
            extra["branch_restored"] = {"from_sha": undo.rebased, "to_sha": undo.original,
                                        "base_sha": undo.base_sha}
        else:
            message += f"; the rebased task branch could not be put back at {short(undo.original)}: {left}"
            extra["branch_left"] = left
    data: dict[str, Any] = {"step": step, "reason": message, **extra}
    if cause is not None:
        data["cause"] = cause
    await ctx.store.append(task_id, EventType.MERGE_REFUSED, data)
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


def merge_json(task: Task, **extra: Any) -> JSON:
    data: JSON = task.merge.to_json() if task.merge is not None else {}
    return {**data, **extra}


async def finish(ctx: MergeContext, task_id: int, target: str, merge_sha: str, rollback_sha: str,
                  strategy: str, *, reconciled: bool = False) -> tuple[Task, JSON]:
    """The target is at the merge: remove the task's worktree (kept if it has uncommitted work), record it."""
    task = await ctx.store.get_task(task_id)
    kept: str | None = None
    note: str | None = None
    if task.worktree:
        try:
            await in_thread(git.remove_worktree, ctx.root, Path(task.worktree))
        except CockpitError as exc:
            kept, note = task.worktree, f"worktree kept: {exc.message}"
    data: dict[str, Any] = {"target": target, "merge_sha": merge_sha, "rollback_sha": rollback_sha,
                            "strategy": strategy, "worktree_removed": bool(task.worktree) and kept is None,
                            "worktree_kept": kept, "note": note}
    if reconciled:
        data["reconciled"] = True
    _, after = await ctx.store.append(task_id, EventType.MERGE_FINISHED, data)
    assert after is not None
    return after, {k: data[k] for k in ("worktree_removed", "worktree_kept", "note")}
