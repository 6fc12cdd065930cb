"""Building the merge commit with plumbing, verifying it in a scratch worktree, and moving the target by
compare-and-set."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.errors import GitError, RefusedError, UsageError
from cockpit.core.git import (
    WorktreeInfo,
    branch_ref,
    checkout_infos,
    dirty_files,
    head_sha,
    is_ancestor,
    ref_sha,
    run_git,
    short_branch,
)
from cockpit.core.merge.guards import (
    TreeChange,
    cockpit_paths,
    cockpit_refusal,
    guard_paths,
    overwrite_refusal,
)
from cockpit.core.merge.plumbing import (
    FF_LINE_RE,
    STRATEGIES,
    commit_tree,
    list_files,
    read_tips,
    rev_parse,
    short,
)
from cockpit.core.merge.preflight import Preflight, merged_tree

# ---------------------------------------------------------------------------------------- build a merge


@dataclass(frozen=True)
class PlannedMerge:
    """A merge commit that exists as an object but that no ref points to yet."""

    target: str
    rollback_sha: str  # the target's tip when the merge was built, read from the ref itself
    merge_sha: str
    strategy: str
    tree: str
    branch_sha: str = ""  # the commit merged: exactly this one, whatever the branch does meanwhile
    changes: tuple[TreeChange, ...] = field(default=(), compare=False)  # what it writes over rollback_sha

    def to_json(self) -> dict[str, str]:
        return {
            "target": self.target,
            "rollback_sha": self.rollback_sha,
            "merge_sha": self.merge_sha,
            "strategy": self.strategy,
            "tree": self.tree,
            "branch_sha": self.branch_sha,
        }


def build_merge_commit(
    repo: Path,
    branch: str,
    target: str,
    strategy: str,
    message: str,
    *,
    preflight: Preflight | None = None,
    commit: str | None = None,
) -> PlannedMerge:
    """Build (never publish) the commit that merging `branch` into `target` would create.

    "merge": two parents (target tip, branch tip); "squash": one parent (target tip). Both carry the
    merge-tree result. Refuses when a branch is missing, the merge conflicts, it would add, change or remove
    a path under `.cockpit/`, or there is nothing to merge. With `commit`, exactly that commit is merged (the
    one the gates passed on), not whatever the branch points to now.

    With a passed `preflight` of the same branches (just run, so its tips are fresh), its tips, merge bases
    and merged tree are used as they are and the only git call is `commit-tree`; otherwise the tips are
    read again (one call) and what the merge changes (one more; two when the target moved).
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    target_name, branch_name = short_branch(target), short_branch(branch)
    if target_name == branch_name:
        raise RefusedError(f"cannot merge {branch_name} into itself; pick a different target branch")
    pf = preflight
    tree: str | None = None
    bases: list[str] | None
    changes: tuple[TreeChange, ...] = ()
    if (
        pf is not None
        and pf.ok
        and pf.tree
        and pf.target_sha
        and pf.branch_sha
        and pf.merge_bases is not None
        and (pf.target, pf.branch) == (target_name, branch_name)
        and commit in (None, pf.branch_sha)
    ):
        rollback_sha, branch_sha, bases, tree = pf.target_sha, pf.branch_sha, pf.merge_bases, pf.tree
        changes = pf.changes
        if branch_sha in bases:  # the branch is an ancestor of the target exactly when it is their merge base
            raise RefusedError(f"{branch_name} has no commits that {target_name} lacks; nothing to merge")
    else:
        target_sha, tip, branch_tree, read_bases = read_tips(
            repo, branch_ref(target_name), commit or branch_ref(branch_name)
        )
        if target_sha is None:
            raise RefusedError(
                f"target branch {target_name} does not exist; create it or set task.target_branch"
            )
        if tip is None:
            if commit:
                raise RefusedError(f"commit {short(commit)} of {branch_name} does not exist any more")
            raise RefusedError(f"task branch {branch_name} does not exist; retry the task to recreate it")
        rollback_sha, branch_sha, bases = target_sha, tip, read_bases
        nothing_new = (
            branch_sha in bases if bases is not None else is_ancestor(repo, branch_sha, rollback_sha)
        )
        if nothing_new:
            raise RefusedError(f"{branch_name} has no commits that {target_name} lacks; nothing to merge")
        merged, changes = merged_tree(repo, rollback_sha, branch_sha, branch_tree, bases or [])
        if not merged.clean:
            raise RefusedError(
                f"{branch_name} conflicts with {target_name} in {list_files(merged.conflicts)}; "
                "rebase the task branch and resolve",
                details={"reason": "conflicts", "conflicts": list(merged.conflicts)},
            )
        tree = merged.tree
    cockpit = cockpit_paths(changes)
    if cockpit:
        raise cockpit_refusal(cockpit)
    parents = [rollback_sha] + ([branch_sha] if strategy == "merge" else [])
    text = message.strip() or f"Merge branch '{branch_name}' into {target_name}"
    merge_sha = commit_tree(repo, tree, parents, text, "the merge")
    return PlannedMerge(
        target=target_name,
        rollback_sha=rollback_sha,
        merge_sha=merge_sha,
        strategy=strategy,
        tree=tree,
        branch_sha=branch_sha,
        changes=changes,
    )


# ------------------------------------------------------------------------------------- scratch worktrees


def _add_scratch(repo: Path, sha: str, scratch_dir: Path) -> None:
    if scratch_dir.exists() and any(scratch_dir.iterdir()):
        raise GitError(f"scratch directory {scratch_dir} already exists and is not empty; remove it first")
    run_git(repo, "worktree", "prune")
    scratch_dir.parent.mkdir(parents=True, exist_ok=True)
    run_git(repo, "worktree", "add", "--detach", str(scratch_dir), sha)


def _drop_scratch(repo: Path, scratch_dir: Path) -> None:
    """Remove a scratch worktree this module created, whatever state its files are in."""
    result = run_git(repo, "worktree", "remove", "--force", "--force", str(scratch_dir), check=False)
    if not result.ok:
        if scratch_dir.exists():
            shutil.rmtree(scratch_dir, ignore_errors=True)
        run_git(repo, "worktree", "prune", check=False)


def verify_in_scratch(repo: Path, sha: str, scratch_dir: Path, check: Callable[[Path], bool]) -> bool:
    """Check out `sha` detached at `scratch_dir`, return `check(scratch_dir)`, always remove the worktree."""
    _add_scratch(repo, sha, scratch_dir)
    try:
        return bool(check(scratch_dir))
    finally:
        _drop_scratch(repo, scratch_dir)


# ---------------------------------------------------------------------------------------- moving a ref


def moved_refusal(target: str, expected: str, actual: str | None, what: str) -> RefusedError:
    return RefusedError(
        f"{target} moved (now {short(actual)}, expected {short(expected)}) before the {what}; "
        f"nothing was changed, retry the {what}",
        details={"reason": "target_moved", "target": target, "expected": expected, "actual": actual},
    )


def sole(target: str, holders: Sequence[WorktreeInfo]) -> WorktreeInfo | None:
    if len(holders) > 1:
        raise RefusedError(
            f"{target} is checked out in several places ({', '.join(str(h.path) for h in holders)}); "
            "keep one checkout of it and retry"
        )
    return holders[0] if holders else None


def cas_update_ref(repo: Path, target: str, new: str, old: str, what: str, reason: str) -> None:
    ref = branch_ref(target)
    result = run_git(repo, "update-ref", "-m", reason, ref, new, old, check=False)
    if result.ok:
        return
    actual = ref_sha(repo, ref)
    if actual != old:
        raise moved_refusal(target, old, actual, what)
    raise GitError(f"git update-ref {ref} failed: {result.first_error_line()}")


def ff_checkout(checkout: Path, target: str, new: str, old: str, what: str, head: str | None) -> None:
    """Fast-forward the checkout that has `target` checked out from `old` to `new` (local changes kept).

    `head` is the checkout's HEAD as just read by the caller; it must be `old`. `merge --ff-only` itself
    refuses to overwrite local changes; its "Updating <old>..<new>" line (full ids with core.abbrev=no)
    confirms where the target went, so HEAD is read again only when that line is missing.
    """
    if head != old:
        raise moved_refusal(target, old, head, what)
    result = run_git(
        checkout,
        "-c",
        "core.abbrev=no",
        "merge",
        "--ff-only",
        "--no-autostash",
        "--no-edit",
        "--no-stat",
        "--no-verify-signatures",
        "--no-overwrite-ignore",  # an ignored file in the way is a refusal, like an untracked one
        new,
        check=False,
    )
    if not result.ok:
        after = head_sha(checkout)
        if after != old:  # never expected: git's fast-forward is all or nothing
            raise GitError(
                f"`git merge --ff-only` in {checkout} failed and left {target} at {short(after)}; inspect it"
            )
        # git lists the files it would have written over, one per line indented with a tab.
        in_the_way = [line.strip() for line in result.stderr.splitlines() if line.startswith("\t")]
        if in_the_way and "untracked working tree files" in result.stderr:
            raise overwrite_refusal(checkout, in_the_way)
        raise RefusedError(
            f"cannot update the checkout of {target} at {checkout}: {result.first_error_line()}; "
            f"nothing was changed, commit or stash local changes there and retry the {what}",
            details={"reason": "local_changes", "checkout": str(checkout)},
        )
    line = FF_LINE_RE.search(result.stdout)
    if line is not None and line.group(2) == new:
        return
    after = head_sha(checkout)
    if after != new:
        raise GitError(f"{target} is at {short(after)} after the {what}, expected {short(new)}; inspect it")


def _descends(repo: Path, planned: PlannedMerge, parents: Sequence[str] | None) -> None:
    """The planned merge must contain the rollback point (its first parent, when this module built it)."""
    if parents and parents[0] == planned.rollback_sha:
        return
    if not is_ancestor(repo, planned.rollback_sha, planned.merge_sha):
        raise GitError(
            f"planned merge {short(planned.merge_sha)} does not descend from {planned.target}'s tip"
        )


def move_target(repo: Path, planned: PlannedMerge, *, checkouts: Sequence[Path] | None = None) -> None:
    """Publish a planned merge: move the target from rollback_sha to merge_sha by compare-and-set.

    If the target is checked out, its checkout must be clean and at rollback_sha; it is fast-forwarded
    with `git merge --ff-only` so its files follow. If the ref moved since the merge was built, refuses
    with nothing written.

    `checkouts` is where a preflight that just ran found the target checked out, and found clean; with it
    the worktree list and the checkout's status are not read again (two git calls: HEAD and the merge's
    parents read in the checkout, then the fast-forward). Without it, four: the tip and the merge's
    parents, the worktree list with each checkout's HEAD, the checkout's status, the fast-forward.

    Right before the target moves, what the merge writes is checked again on disk (no git process): nothing
    under `.cockpit/`, no ignored or untracked file in the checkout written over (files may have appeared
    while the verify gates ran). `merge --ff-only --no-overwrite-ignore` holds that line in git as well.
    """
    target = planned.target
    ref = branch_ref(target)
    if checkouts is not None and len(checkouts) == 1:
        # One read in the checkout: its HEAD, the merge's parents, and which branch it has checked out.
        checkout = checkouts[0]
        got = rev_parse(checkout, "HEAD", f"{planned.merge_sha}^@", "--symbolic-full-name", "HEAD")
        if got is not None and len(got[0]) >= 2 and got[0][-1] == ref:
            positive = got[0]
            _descends(repo, planned, positive[1:-1])
            guard_paths([checkout], planned.changes)
            ff_checkout(checkout, target, planned.merge_sha, planned.rollback_sha, "merge", positive[0])
            return
        # The checkout changed branch since the preflight (or HEAD is unreadable): look at everything again.

    got = rev_parse(repo, ref, f"{planned.merge_sha}^@")
    _descends(repo, planned, got[0][1:] if got else None)
    current = got[0][0] if got else ref_sha(repo, ref)
    if current != planned.rollback_sha:
        raise moved_refusal(target, planned.rollback_sha, current, "merge")
    # Not checked out anywhere, as the preflight just found: the ref moves alone (update-ref is the
    # compare-and-set). Otherwise the checkouts are listed now, with their HEADs.
    holder = None if checkouts is not None and not checkouts else sole(target, checkout_infos(repo, target))
    guard_paths([holder.path] if holder is not None else [], planned.changes)
    if holder is None:
        reason = f"cockpit: merge ({planned.strategy}) into {target}"
        cas_update_ref(repo, target, planned.merge_sha, planned.rollback_sha, "merge", reason)
        return
    dirty = dirty_files(holder.path)
    if dirty:
        raise RefusedError(
            f"{target} is checked out at {holder.path} with uncommitted changes ({list_files(dirty, 3)}); "
            "commit or stash them and retry the merge",
            details={"reason": "dirty_checkout", "checkout": str(holder.path), "files": dirty},
        )
    ff_checkout(holder.path, target, planned.merge_sha, planned.rollback_sha, "merge", holder.head or None)
