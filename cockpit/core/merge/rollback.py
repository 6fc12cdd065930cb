"""Rollback: the git side (reset while the merge is the tip, a plumbing-built revert once later commits exist)
and `rollback_task`, which records it (merge.rolled_back) under the merge lock."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core import git, gitobjects
from cockpit.core.errors import GitError, RefusedError
from cockpit.core.events import EventType
from cockpit.core.git import (
    WorktreeInfo,
    branch_ref,
    checkout_infos,
    checkout_paths,
    head_sha,
    is_ancestor,
    ref_sha,
    run_git,
    short_branch,
)
from cockpit.core.merge.context import MergeContext, RollbackOutcome, in_thread
from cockpit.core.merge.engine import cas_update_ref, ff_checkout, moved_refusal, sole
from cockpit.core.merge.lock import merge_lock, pause_point
from cockpit.core.merge.plumbing import SHA_RE, commit_tree, list_files, rev_parse, revert_tree, short
from cockpit.core.models import JSON
from cockpit.core.states import State
from cockpit.core.titles import one_line

# --------------------------------------------------------------------------------------------- rollback


@dataclass(frozen=True)
class RollbackResult:
    method: str  # "reset" | "revert"
    from_sha: str
    to_sha: str

    def to_json(self) -> dict[str, str]:
        return {"method": self.method, "from_sha": self.from_sha, "to_sha": self.to_sha}


@dataclass(frozen=True)
class RollbackPlan:
    """What a rollback of `merge_sha` from `target` would do right now, read in one git call."""

    target: str
    merge_sha: str
    tip: str | None  # the target's tip, None when the target does not exist
    parents: tuple[str, ...]  # the merge commit's parents (empty when it does not exist)
    contains_merge: bool  # the tip is the merge or has it in its history
    tip_tree: str = ""  # the tip's tree: a revert that would leave it as it is has nothing to undo
    first_parent_tree: str = ""  # the tree a revert goes back to (empty when it was not read)

    @property
    def method(self) -> str:
        """ "reset" while the tip is the merge, "revert" once later commits exist, else "gone"."""
        if self.tip is None or not self.contains_merge:
            return "gone"
        return "reset" if self.tip == self.merge_sha else "revert"


def rollback_plan(repo: Path, target: str, merge_sha: str) -> RollbackPlan:
    """Read the target's tip and its tree, the merge's parents, its first parent's tree and whether the tip
    contains the merge: from git's files where that is sure (`_plan_from_files`: no git process), else in one
    `rev-parse` (`<ref> <merge>...<ref> <ref>^{tree} <merge>^1^{tree} <merge>^@`, the symmetric difference
    giving the merge base)."""
    name = short_branch(target)
    ref = branch_ref(name)
    read_here = _plan_from_files(repo, name, ref, merge_sha)
    if read_here is not None:
        return read_here
    got = None
    if SHA_RE.fullmatch(merge_sha):
        got = rev_parse(repo, ref, f"{merge_sha}...{ref}", f"{ref}^{{tree}}", f"{merge_sha}^1^{{tree}}",
                         f"{merge_sha}^@")
        if got is not None and len(got[0]) >= 5:
            positive, bases = got
            return RollbackPlan(name, merge_sha, positive[0], tuple(positive[5:]), bases == [merge_sha],
                                tip_tree=positive[3], first_parent_tree=positive[4])
        # Missing target or merge commit, or a merge without parents: read again, without the parent's tree.
        got = rev_parse(repo, ref, f"{merge_sha}...{ref}", f"{ref}^{{tree}}", f"{merge_sha}^@")
    if got is None or len(got[0]) < 4:  # the target or the merge commit does not exist
        return RollbackPlan(name, merge_sha, ref_sha(repo, ref), (), False)
    positive, bases = got
    return RollbackPlan(name, merge_sha, positive[0], tuple(positive[4:]), bases == [merge_sha],
                        tip_tree=positive[3])


# How far below the tip (first parents) the plan read from files looks for the merge before asking git.
_PLAN_DEPTH = 32


def _plan_from_files(repo: Path, name: str, ref: str, merge_sha: str) -> RollbackPlan | None:
    """The plan read by this process from git's files, with no git process, where that is sure: the merge is
    the tip or a few first-parent commits below it, every commit on the way still a loose object. None
    otherwise (`rollback_plan` asks git then)."""
    git_dir = gitobjects.plain_git_dir(repo)
    tip = gitobjects.read_ref(git_dir, ref) if git_dir is not None else None
    if git_dir is None or tip is None:
        return None
    merge = gitobjects.read_commit(git_dir, merge_sha)
    if merge is None or not merge.parents:
        return None
    parent = gitobjects.read_commit(git_dir, merge.parents[0])
    parent_tree = parent.tree if parent is not None else ""  # a revert's stand-in needs it (else commit-tree)
    if tip == merge_sha:
        return RollbackPlan(name, merge_sha, tip, merge.parents, True, tip_tree=merge.tree,
                            first_parent_tree=parent_tree)
    head = gitobjects.read_commit(git_dir, tip)
    commit = head
    for _ in range(_PLAN_DEPTH):
        if commit is None or not commit.parents:
            return None
        if commit.parents[0] == merge_sha:
            assert head is not None
            return RollbackPlan(name, merge_sha, tip, merge.parents, True, tip_tree=head.tree,
                                first_parent_tree=parent_tree)
        commit = gitobjects.read_commit(git_dir, commit.parents[0])
    return None


def rollback_method(repo: Path, target: str, merge_sha: str) -> str:
    """ "reset" while the target tip is the merge, "revert" once later commits exist, else "gone"."""
    return rollback_plan(repo, target, merge_sha).method


def _holder_at_tip(repo: Path, plan: RollbackPlan) -> WorktreeInfo | None:
    """The checkout that has the target checked out, if any, with the tip `plan` read as its HEAD.

    Read from git's admin files, no git process: that checkout's HEAD is the branch, so its commit is the tip
    the plan's `rev-parse` just read. Falls back to `git worktree list` where the layout is unusual.
    """
    paths = checkout_paths(repo, plan.target)
    if paths is None:
        return sole(plan.target, checkout_infos(repo, plan.target))
    return sole(plan.target, [WorktreeInfo(path, plan.target, plan.tip or "") for path in paths])


def _reset_back(repo: Path, plan: RollbackPlan, rollback_sha: str) -> RollbackResult:
    target, merge_sha = plan.target, plan.merge_sha
    if plan.parents[:1] != (rollback_sha,) and not is_ancestor(repo, rollback_sha, merge_sha):
        raise RefusedError(
            f"rollback point {short(rollback_sha)} is not an ancestor of merge {short(merge_sha)}; "
            f"refusing to move {target} there"
        )
    holder = _holder_at_tip(repo, plan)
    if holder is None:
        cas_update_ref(
            repo, target, rollback_sha, merge_sha, "rollback", f"cockpit: roll back merge {merge_sha}"
        )
    else:
        # The plan read the checkout's HEAD (its branch's tip) just now: the compare of the compare-and-set.
        if holder.head != merge_sha:
            raise moved_refusal(target, merge_sha, holder.head or None, "rollback")
        result = run_git(holder.path, "reset", "--keep", "--quiet", rollback_sha, check=False)
        if not result.ok:
            if head_sha(holder.path) != merge_sha:  # never expected: reset --keep is all or nothing
                raise GitError(f"`git reset --keep` in {holder.path} failed part way; inspect {target} there")
            raise RefusedError(
                f"cannot roll back {target} at {holder.path} without touching local changes: "
                f"{result.first_error_line()}; nothing was changed, commit or stash them and retry",
                details={"reason": "local_changes", "checkout": str(holder.path)},
            )
    return RollbackResult(method="reset", from_sha=merge_sha, to_sha=rollback_sha)


def _revert_message(repo: Path, merge_sha: str, message: str) -> str:
    if message.strip():
        return message.strip()
    subject = run_git(repo, "log", "-1", "--format=%s", merge_sha, "--").stdout
    return f'Revert "{subject}"\n\nThis reverts commit {merge_sha}.'


class AlreadyReverted(RefusedError):
    """The target's tip no longer has what the merge changed (a revert is there already): nothing to build."""


def _build_revert(repo: Path, plan: RollbackPlan, message: str) -> str:
    """Create (never publish) a commit on top of the tip that undoes the merge; return its sha."""
    target, merge_sha, tip = plan.target, plan.merge_sha, plan.tip
    assert tip is not None
    if len(plan.parents) > 2:
        raise RefusedError(f"{short(merge_sha)} is an octopus merge; revert it by hand")
    if not plan.parents:
        raise RefusedError(f"{short(merge_sha)} has no parent to revert to; revert it by hand")
    # mainline: the target's side
    reverted = revert_tree(repo, tip, merge_sha, plan.parents[0], plan.first_parent_tree)
    if not reverted.clean:
        raise RefusedError(
            f"reverting {short(merge_sha)} conflicts with later commits on {target} in "
            f"{list_files(reverted.conflicts)}; nothing was changed, revert it by hand",
            details={"reason": "conflicts", "conflicts": list(reverted.conflicts)},
        )
    if reverted.tree == plan.tip_tree:
        raise AlreadyReverted(f"{target} no longer has the changes of merge {short(merge_sha)}")
    text = _revert_message(repo, merge_sha, message)
    return commit_tree(repo, reverted.tree, [tip], text, "the revert")


def rollback(
    repo: Path,
    target: str,
    merge_sha: str,
    rollback_sha: str,
    message: str = "",
    *,
    plan: RollbackPlan | None = None,
) -> RollbackResult:
    """Undo a published merge of `merge_sha` into `target`.

    While the merge is still the tip, the target moves back to `rollback_sha` (compare-and-set, or
    `reset --keep` in its checkout): three git calls. Once later commits exist, a revert commit is built
    with plumbing (no checkout; see `revert_tree`) and the target fast-forwards to it. Local changes in a
    checkout are kept or the rollback is refused; a refusal leaves everything as it was. `plan` is a
    `rollback_plan` the caller has just read (it is read here otherwise).
    """
    name = short_branch(target)
    if plan is None or plan.target != name or plan.merge_sha != merge_sha:
        plan = rollback_plan(repo, name, merge_sha)
    method = plan.method
    if method == "gone":
        raise RefusedError(
            f"merge {short(merge_sha)} is not in {name}'s history any more; nothing to roll back"
        )
    if method == "reset":
        return _reset_back(repo, plan, rollback_sha)
    tip = plan.tip
    assert tip is not None  # method is "revert"
    revert_sha = _build_revert(repo, plan, message)
    holder = _holder_at_tip(repo, plan)
    if holder is None:
        cas_update_ref(repo, name, revert_sha, tip, "rollback", f"cockpit: revert merge {merge_sha}")
    else:
        ff_checkout(holder.path, name, revert_sha, tip, "rollback", holder.head or None)
    return RollbackResult(method="revert", from_sha=tip, to_sha=revert_sha)


# ----------------------------------------------------------------------------------------- rollback, recorded


def _find_revert(repo: Path, target: str, merge_sha: str) -> tuple[str, str] | None:
    """(revert, its parent): a commit on `target` after `merge_sha` that says it reverts it (a rollback whose
    record was lost), or None."""
    out = git.run_git(repo, "log", "--format=%H %P", "-F", f"--grep=This reverts commit {merge_sha}",
                      f"{merge_sha}..{git.branch_ref(target)}", "--", check=False)
    lines = out.stdout.splitlines() if out.ok else []
    fields = lines[0].split() if lines else []
    return (fields[0], fields[1]) if len(fields) >= 2 else None


def _undo(ctx: MergeContext, target: str, merge_sha: str, rollback_sha: str,
          message: str) -> tuple[RollbackResult, str | None]:
    """The blocking part of a rollback (one thread hop): (result, note). A rollback whose ref move happened
    but whose record was lost (a crash) is found and reported, never done twice: its revert would change
    nothing, so the target's history is searched for it then, and only then."""
    plan = rollback_plan(ctx.root, target, merge_sha)
    try:
        return rollback(ctx.root, target, merge_sha, rollback_sha, message, plan=plan), None
    except AlreadyReverted as exc:
        reverted = _find_revert(ctx.root, target, merge_sha)
        if reverted is not None:
            return (RollbackResult(method="revert", from_sha=reverted[1], to_sha=reverted[0]),
                    f"{target} already has the revert commit {short(reverted[0])}")
        assert plan.tip is not None
        return RollbackResult(method="revert", from_sha=plan.tip, to_sha=plan.tip), exc.message
    except RefusedError:
        if git.ref_sha(ctx.root, git.branch_ref(target)) == rollback_sha:
            return (RollbackResult(method="reset", from_sha=merge_sha, to_sha=rollback_sha),
                    f"{target} was already back at the rollback point")
        raise


async def rollback_task(ctx: MergeContext, task_id: int) -> RollbackOutcome:
    """Undo a done task's merge: reset the target while the merge is its tip, else commit a revert."""
    async with merge_lock(ctx.paths):
        return await _rollback_locked(ctx, task_id)


async def _recorded_rollback(ctx: MergeContext, task_id: int) -> JSON:
    for event in reversed(await ctx.store.task_events(task_id)):
        if event.type == EventType.MERGE_ROLLED_BACK:
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
        result, note = await in_thread(_undo, ctx, target, merge_sha, rollback_sha, message)
    except RefusedError as exc:
        raise RefusedError(f"rollback of task {task_id} refused: {exc.message}",
                           details={"task_id": task_id, **exc.details}) from None
    await pause_point(ctx.paths, "rolled_back")
    data: dict[str, Any] = {**result.to_json(), "target": target, "merge_sha": merge_sha,
                            "rollback_sha": rollback_sha}
    if note:
        data["note"] = note
    _, after = await ctx.store.append(task_id, EventType.MERGE_ROLLED_BACK, data)
    assert after is not None
    return RollbackOutcome(after, result.to_json())
