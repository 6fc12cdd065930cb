"""The git-level merge and rollback engine (DESIGN.md section 8).

The contract: the rollback point is read from the target ref itself; the merge commit is built with plumbing
(`merge-tree --write-tree` + `commit-tree`) without moving any ref; it can be verified in a scratch worktree;
the target then moves by compare-and-set (`update-ref new old`, or `merge --ff-only` inside the checkout that
has the target checked out). Rollback moves the ref back (compare-and-set or `reset --keep`) while the merge
is still the tip, and makes a revert commit once later commits exist. Nothing here ever runs
`reset --hard`, touches uncommitted work, or leaves a ref half-moved: every refusal leaves refs, index and
files exactly as they were.

The task store is not this module's concern: the caller records merge.preflight / merge.started /
merge.finished around these calls (merge.started carries `PlannedMerge.rollback_sha` and `merge_sha`,
before `move_target`), and `reconcile` answers what happened after a crash in between.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.errors import GitError, RefusedError, UsageError
from cockpit.core.git import (
    branch_ref,
    checkouts_of,
    commit_env,
    dirty_files,
    head_sha,
    is_ancestor,
    merge_base,
    ref_sha,
    run_git,
    short_branch,
)

__all__ = [
    "STRATEGIES",
    "MergeTreeResult",
    "PlannedMerge",
    "Preflight",
    "PreflightCheck",
    "RollbackResult",
    "build_merge_commit",
    "merge_tree",
    "move_target",
    "preflight",
    "rebase_branch",
    "reconcile",
    "rollback",
    "rollback_method",
    "verify_in_scratch",
]

STRATEGIES = ("merge", "squash")


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "(none)"


def _list_files(files: list[str], limit: int = 8) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


# ------------------------------------------------------------------------------------------- merge-tree


@dataclass(frozen=True)
class MergeTreeResult:
    """What `git merge-tree --write-tree` says about merging two commits."""

    tree: str
    conflicts: list[str]
    messages: list[str]

    @property
    def clean(self) -> bool:
        return not self.conflicts


def _parse_merge_tree(out: str, conflicted: bool) -> MergeTreeResult:
    """Parse `merge-tree --write-tree -z --name-only --messages` output (git 2.38+ format).

    Layout: `<tree>NUL` then conflicted paths each ending in NUL, then a NUL, then informational records
    `<n>NUL<path1>NUL...<pathN>NUL<conflict-type>NUL<message>NUL`.
    """
    parts = out.split("\0")
    tree = parts[0].strip()
    conflicts: list[str] = []
    messages: list[str] = []
    i = 1
    while i < len(parts) and parts[i] != "":
        if parts[i] not in conflicts:
            conflicts.append(parts[i])
        i += 1
    i += 1  # the NUL that opens the messages section
    while i < len(parts) and parts[i] != "":
        try:
            count = int(parts[i])
        except ValueError:
            break  # an unknown layout: keep what we have
        paths = parts[i + 1 : i + 1 + count]
        kind = parts[i + 1 + count] if i + 1 + count < len(parts) else ""
        message = parts[i + 2 + count] if i + 2 + count < len(parts) else ""
        i += count + 3
        messages.append(message.strip())
        if kind.startswith("CONFLICT"):
            for path in paths:
                if path and path not in conflicts:
                    conflicts.append(path)
    if conflicted and not conflicts:
        conflicts.append("(unnamed conflict: see `git merge-tree --write-tree` output)")
    return MergeTreeResult(tree=tree, conflicts=conflicts, messages=messages)


def merge_tree(repo: Path, ours: str, theirs: str) -> MergeTreeResult:
    """Merge two commits in memory (no index, no files, no refs) and report the tree and conflicts."""
    result = run_git(
        repo,
        "merge-tree",
        "--write-tree",
        "-z",
        "--name-only",
        "--messages",
        ours,
        theirs,
        check=False,
        strip=False,
    )
    if result.status not in (0, 1):
        raise GitError(
            f"git merge-tree could not merge {ours} into {theirs}: {result.first_error_line()} "
            "(git 2.38 or newer is required)"
        )
    parsed = _parse_merge_tree(result.stdout, conflicted=result.status == 1)
    if not parsed.tree:
        raise GitError(f"git merge-tree gave no tree for {ours} and {theirs}; check the git version (2.38+)")
    return parsed


# -------------------------------------------------------------------------------------------- preflight


@dataclass
class PreflightCheck:
    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Preflight:
    target: str
    target_sha: str | None
    branch: str
    branch_sha: str | None
    checks: list[PreflightCheck] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    target_moved: bool = False  # merge-base(branch, target) != target tip: rebase and re-gate first
    checkouts: list[Path] = field(default_factory=list)  # where the target is checked out

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failed(self) -> list[PreflightCheck]:
        return [check for check in self.checks if not check.ok]

    def summary(self) -> str:
        """One line for a person: 'ok' or what failed."""
        bad = self.failed()
        if not bad:
            return "preflight ok" + (" (target moved: rebase first)" if self.target_moved else "")
        return "; ".join(f"{check.name}: {check.detail}" for check in bad)

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "target": self.target,
            "target_sha": self.target_sha,
            "branch": self.branch,
            "branch_sha": self.branch_sha,
            "checks": [check.to_json() for check in self.checks],
            "conflicts": list(self.conflicts),
            "target_moved": self.target_moved,
            "checkouts": [str(path) for path in self.checkouts],
        }


def preflight(repo: Path, branch: str, target: str) -> Preflight:
    """Check, without changing anything, whether `branch` can be merged into `target`.

    Checks: target_exists, branch_exists, target_checkouts_clean, no_conflicts. `target_moved` is
    information for the caller (rebase the branch and run the gates again), not a failed check.
    """
    target_name, branch_name = short_branch(target), short_branch(branch)
    target_sha = ref_sha(repo, branch_ref(target_name))
    branch_sha = ref_sha(repo, branch_ref(branch_name))
    pf = Preflight(target=target_name, target_sha=target_sha, branch=branch_name, branch_sha=branch_sha)

    pf.checks.append(
        PreflightCheck(
            "target_exists",
            target_sha is not None,
            f"{target_name} at {_short(target_sha)}"
            if target_sha
            else f"target branch {target_name} does not exist; create it or set task.target_branch",
        )
    )
    pf.checks.append(
        PreflightCheck(
            "branch_exists",
            branch_sha is not None,
            f"{branch_name} at {_short(branch_sha)}"
            if branch_sha
            else f"task branch {branch_name} does not exist; retry the task to recreate it",
        )
    )

    if target_sha is not None:
        pf.checkouts = checkouts_of(repo, target_name)
    dirty: list[str] = []
    for checkout in pf.checkouts:
        files = dirty_files(checkout)
        if files:
            dirty.append(f"{checkout} ({_list_files(files, 3)})")
    if dirty:
        where = "; ".join(dirty)
        detail = f"{target_name} is checked out with uncommitted changes at {where}; commit or stash them"
    elif pf.checkouts:
        detail = "clean: " + ", ".join(str(path) for path in pf.checkouts)
    else:
        detail = f"{target_name} is not checked out anywhere"
    pf.checks.append(PreflightCheck("target_checkouts_clean", not dirty, detail))

    if target_sha is None or branch_sha is None:
        pf.checks.append(PreflightCheck("no_conflicts", False, "not checked: a branch is missing"))
        return pf
    if target_name == branch_name:
        pf.checks.append(PreflightCheck("no_conflicts", False, "the task branch is the target branch"))
        return pf

    base = merge_base(repo, branch_sha, target_sha)
    pf.target_moved = base != target_sha
    try:
        merged = merge_tree(repo, target_sha, branch_sha)
    except GitError as exc:
        pf.checks.append(PreflightCheck("no_conflicts", False, exc.message))
        return pf
    pf.conflicts = list(merged.conflicts)
    pf.checks.append(
        PreflightCheck(
            "no_conflicts",
            merged.clean,
            "merges cleanly"
            if merged.clean
            else f"conflicts with {target_name} in {_list_files(merged.conflicts)}; rebase and resolve",
        )
    )
    return pf


# ----------------------------------------------------------------------------------------------- rebase


def _git_path_exists(worktree: Path, name: str) -> bool:
    path = run_git(worktree, "rev-parse", "--git-path", name).stdout
    full = Path(path) if Path(path).is_absolute() else worktree / path
    return full.exists()


def _unmerged_files(worktree: Path) -> list[str]:
    out = run_git(worktree, "diff", "--name-only", "-z", "--diff-filter=U", strip=False).stdout
    return sorted({name for name in out.split("\0") if name})


def rebase_branch(worktree: Path, onto: str) -> list[str]:
    """Rebase the branch checked out in `worktree` onto `onto`.

    Returns [] on success. On a conflict the rebase is aborted (branch, index and files exactly as before)
    and the conflicting files are returned. Refuses a worktree with uncommitted work or a detached HEAD.
    """
    symbolic = run_git(worktree, "symbolic-ref", "--quiet", "HEAD", check=False)
    if not symbolic.ok or not symbolic.stdout.startswith("refs/heads/"):
        raise RefusedError(f"{worktree} has no branch checked out (detached HEAD); check out the task branch")
    branch = short_branch(symbolic.stdout)
    if _git_path_exists(worktree, "rebase-merge") or _git_path_exists(worktree, "rebase-apply"):
        raise RefusedError(f"a rebase is already in progress in {worktree}; finish or abort it first")
    dirty = dirty_files(worktree)
    if dirty:
        raise RefusedError(
            f"{worktree} has uncommitted changes ({_list_files(dirty, 3)}); commit them before rebasing"
        )
    onto_sha = ref_sha(worktree, onto)
    if onto_sha is None:
        raise GitError(f"cannot rebase {branch}: {onto!r} does not exist")
    before = head_sha(worktree)

    result = run_git(
        worktree,
        "-c",
        "rebase.autoSquash=false",
        "rebase",
        "--no-autostash",
        "--no-update-refs",
        "--no-verify",
        onto_sha,
        check=False,
        env=commit_env(worktree),
    )
    if result.ok:
        return []

    in_progress = _git_path_exists(worktree, "rebase-merge") or _git_path_exists(worktree, "rebase-apply")
    conflicts = _unmerged_files(worktree) if in_progress else []
    if in_progress:
        abort = run_git(worktree, "rebase", "--abort", check=False)
        if not abort.ok:
            raise GitError(
                f"rebase of {branch} stopped and `git rebase --abort` failed in {worktree}: "
                f"{abort.first_error_line()}; run `git rebase --abort` there by hand"
            )
    after = head_sha(worktree)
    if after != before:
        raise GitError(
            f"rebase of {branch} failed and left HEAD at {_short(after)} instead of {_short(before)}; "
            f"inspect {worktree}"
        )
    if conflicts:
        return conflicts
    raise GitError(f"rebase of {branch} onto {onto} failed: {result.first_error_line()}")


# ---------------------------------------------------------------------------------------- build a merge


@dataclass(frozen=True)
class PlannedMerge:
    """A merge commit that exists as an object but that no ref points to yet."""

    target: str
    rollback_sha: str  # the target's tip when the merge was built, read from the ref itself
    merge_sha: str
    strategy: str
    tree: str

    def to_json(self) -> dict[str, str]:
        return {
            "target": self.target,
            "rollback_sha": self.rollback_sha,
            "merge_sha": self.merge_sha,
            "strategy": self.strategy,
            "tree": self.tree,
        }


def build_merge_commit(repo: Path, branch: str, target: str, strategy: str, message: str) -> PlannedMerge:
    """Build (never publish) the commit that merging `branch` into `target` would create.

    "merge": two parents (target tip, branch tip); "squash": one parent (target tip). Both carry the
    merge-tree result. Refuses when a branch is missing, the merge conflicts, or there is nothing to merge.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown merge strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    target_name, branch_name = short_branch(target), short_branch(branch)
    if target_name == branch_name:
        raise RefusedError(f"cannot merge {branch_name} into itself; pick a different target branch")
    rollback_sha = ref_sha(repo, branch_ref(target_name))
    if rollback_sha is None:
        raise RefusedError(f"target branch {target_name} does not exist; create it or set task.target_branch")
    branch_sha = ref_sha(repo, branch_ref(branch_name))
    if branch_sha is None:
        raise RefusedError(f"task branch {branch_name} does not exist; retry the task to recreate it")
    if is_ancestor(repo, branch_sha, rollback_sha):
        raise RefusedError(f"{branch_name} has no commits that {target_name} lacks; nothing to merge")
    merged = merge_tree(repo, rollback_sha, branch_sha)
    if not merged.clean:
        raise RefusedError(
            f"{branch_name} conflicts with {target_name} in {_list_files(merged.conflicts)}; "
            "rebase the task branch and resolve",
            details={"reason": "conflicts", "conflicts": list(merged.conflicts)},
        )
    parents = ["-p", rollback_sha] + (["-p", branch_sha] if strategy == "merge" else [])
    text = message.strip() or f"Merge branch '{branch_name}' into {target_name}"
    created = run_git(
        repo, "commit-tree", "--no-gpg-sign", merged.tree, *parents, "-m", text, env=commit_env(repo)
    )
    merge_sha = created.stdout.strip()
    if not merge_sha:
        raise GitError("git commit-tree printed no commit id; check the repository's object store")
    return PlannedMerge(
        target=target_name,
        rollback_sha=rollback_sha,
        merge_sha=merge_sha,
        strategy=strategy,
        tree=merged.tree,
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
    if not result.ok and scratch_dir.exists():
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


def _moved(target: str, expected: str, actual: str | None, what: str) -> RefusedError:
    return RefusedError(
        f"{target} moved (now {_short(actual)}, expected {_short(expected)}) before the {what}; "
        f"nothing was changed, retry the {what}",
        details={"reason": "target_moved", "target": target, "expected": expected, "actual": actual},
    )


def _sole_checkout(repo: Path, target: str) -> Path | None:
    holders = checkouts_of(repo, target)
    if len(holders) > 1:
        raise RefusedError(
            f"{target} is checked out in several places ({', '.join(map(str, holders))}); "
            "keep one checkout of it and retry"
        )
    return holders[0] if holders else None


def _cas_update_ref(repo: Path, target: str, new: str, old: str, what: str, reason: str) -> None:
    ref = branch_ref(target)
    result = run_git(repo, "update-ref", "-m", reason, ref, new, old, check=False)
    if result.ok:
        return
    actual = ref_sha(repo, ref)
    if actual != old:
        raise _moved(target, old, actual, what)
    raise GitError(f"git update-ref {ref} failed: {result.first_error_line()}")


def _ff_checkout(checkout: Path, target: str, new: str, old: str, what: str) -> None:
    """Fast-forward the checkout that has `target` checked out from `old` to `new` (local changes kept)."""
    current = head_sha(checkout)
    if current != old:
        raise _moved(target, old, current, what)
    result = run_git(
        checkout, "merge", "--ff-only", "--no-autostash", "--no-edit", "--quiet", new, check=False
    )
    if not result.ok:
        after = head_sha(checkout)
        if after != old:  # never expected: git's fast-forward is all or nothing
            raise GitError(
                f"`git merge --ff-only` in {checkout} failed and left {target} at {_short(after)}; inspect it"
            )
        raise RefusedError(
            f"cannot update the checkout of {target} at {checkout}: {result.first_error_line()}; "
            f"nothing was changed, commit or stash local changes there and retry the {what}",
            details={"reason": "local_changes", "checkout": str(checkout)},
        )
    after = head_sha(checkout)
    if after != new:
        raise GitError(f"{target} is at {_short(after)} after the {what}, expected {_short(new)}; inspect it")


def move_target(repo: Path, planned: PlannedMerge) -> None:
    """Publish a planned merge: move the target from rollback_sha to merge_sha by compare-and-set.

    If the target is checked out, its checkout must be clean and at rollback_sha; it is fast-forwarded
    with `git merge --ff-only` so its files follow. If the ref moved since the merge was built, refuses
    with nothing written.
    """
    target = planned.target
    if not is_ancestor(repo, planned.rollback_sha, planned.merge_sha):
        raise GitError(f"planned merge {_short(planned.merge_sha)} does not descend from {target}'s tip")
    current = ref_sha(repo, branch_ref(target))
    if current != planned.rollback_sha:
        raise _moved(target, planned.rollback_sha, current, "merge")
    checkout = _sole_checkout(repo, target)
    if checkout is None:
        _cas_update_ref(
            repo,
            target,
            planned.merge_sha,
            planned.rollback_sha,
            "merge",
            f"cockpit: merge ({planned.strategy}) into {target}",
        )
        return
    dirty = dirty_files(checkout)
    if dirty:
        raise RefusedError(
            f"{target} is checked out at {checkout} with uncommitted changes ({_list_files(dirty, 3)}); "
            "commit or stash them and retry the merge",
            details={"reason": "dirty_checkout", "checkout": str(checkout), "files": dirty},
        )
    _ff_checkout(checkout, target, planned.merge_sha, planned.rollback_sha, "merge")


# --------------------------------------------------------------------------------------------- rollback


@dataclass(frozen=True)
class RollbackResult:
    method: str  # "reset" | "revert"
    from_sha: str
    to_sha: str

    def to_json(self) -> dict[str, str]:
        return {"method": self.method, "from_sha": self.from_sha, "to_sha": self.to_sha}


def rollback_method(repo: Path, target: str, merge_sha: str) -> str:
    """ "reset" while the target tip is the merge, "revert" once later commits exist, else "gone"."""
    tip = ref_sha(repo, branch_ref(short_branch(target)))
    if tip is None:
        return "gone"
    if tip == merge_sha:
        return "reset"
    if is_ancestor(repo, merge_sha, tip):
        return "revert"
    return "gone"


def _parent_count(repo: Path, sha: str) -> int:
    line = run_git(repo, "rev-list", "--parents", "-n", "1", sha, "--").stdout
    return max(len(line.split()) - 1, 0)


def _reset_back(repo: Path, target: str, merge_sha: str, rollback_sha: str) -> RollbackResult:
    if not is_ancestor(repo, rollback_sha, merge_sha):
        raise RefusedError(
            f"rollback point {_short(rollback_sha)} is not an ancestor of merge {_short(merge_sha)}; "
            f"refusing to move {target} there"
        )
    checkout = _sole_checkout(repo, target)
    if checkout is None:
        _cas_update_ref(
            repo, target, rollback_sha, merge_sha, "rollback", f"cockpit: roll back merge {merge_sha}"
        )
    else:
        current = head_sha(checkout)
        if current != merge_sha:
            raise _moved(target, merge_sha, current, "rollback")
        result = run_git(checkout, "reset", "--keep", "--quiet", rollback_sha, check=False)
        if not result.ok:
            if head_sha(checkout) != merge_sha:  # never expected: reset --keep is all or nothing
                raise GitError(f"`git reset --keep` in {checkout} failed part way; inspect {target} there")
            raise RefusedError(
                f"cannot roll back {target} at {checkout} without touching local changes: "
                f"{result.first_error_line()}; nothing was changed, commit or stash them and retry",
                details={"reason": "local_changes", "checkout": str(checkout)},
            )
    return RollbackResult(method="reset", from_sha=merge_sha, to_sha=rollback_sha)


def _revert_message(repo: Path, merge_sha: str, message: str) -> str:
    if message.strip():
        return message.strip()
    subject = run_git(repo, "log", "-1", "--format=%s", merge_sha, "--").stdout
    return f'Revert "{subject}"\n\nThis reverts commit {merge_sha}.'


def _build_revert(repo: Path, target: str, tip: str, merge_sha: str, scratch_dir: Path, message: str) -> str:
    """Create (never publish) a commit on top of `tip` that undoes `merge_sha`; return its sha."""
    parents = _parent_count(repo, merge_sha)
    if parents > 2:
        raise RefusedError(f"{_short(merge_sha)} is an octopus merge; revert it by hand")
    text = _revert_message(repo, merge_sha, message)
    env = commit_env(repo)
    _add_scratch(repo, tip, scratch_dir)
    try:
        mainline = ["-m", "1"] if parents == 2 else []
        result = run_git(scratch_dir, "revert", "--no-commit", *mainline, merge_sha, check=False, env=env)
        if not result.ok:
            conflicts = _unmerged_files(scratch_dir)
            run_git(scratch_dir, "revert", "--abort", check=False)
            if conflicts:
                raise RefusedError(
                    f"reverting {_short(merge_sha)} conflicts with later commits on {target} in "
                    f"{_list_files(conflicts)}; nothing was changed, revert it by hand",
                    details={"reason": "conflicts", "conflicts": conflicts},
                )
            raise GitError(f"git revert of {_short(merge_sha)} failed: {result.first_error_line()}")
        tree = run_git(scratch_dir, "write-tree").stdout
        created = run_git(
            repo, "commit-tree", "--no-gpg-sign", tree, "-p", tip, "-m", text, env=env
        ).stdout.strip()
        if not created:
            raise GitError("git commit-tree printed no commit id for the revert")
        return created
    finally:
        _drop_scratch(repo, scratch_dir)


def rollback(
    repo: Path, target: str, merge_sha: str, rollback_sha: str, scratch_dir: Path, message: str
) -> RollbackResult:
    """Undo a published merge of `merge_sha` into `target`.

    While the merge is still the tip, the target moves back to `rollback_sha` (compare-and-set, or
    `reset --keep` in its checkout). Once later commits exist, a revert commit is built in a scratch
    worktree at `scratch_dir` and the target fast-forwards to it. Local changes in a checkout are kept or the
    rollback is refused; a refusal leaves everything as it was.
    """
    name = short_branch(target)
    method = rollback_method(repo, name, merge_sha)
    if method == "gone":
        raise RefusedError(
            f"merge {_short(merge_sha)} is not in {name}'s history any more; nothing to roll back"
        )
    if method == "reset":
        return _reset_back(repo, name, merge_sha, rollback_sha)
    tip = ref_sha(repo, branch_ref(name))
    assert tip is not None  # rollback_method saw it
    revert_sha = _build_revert(repo, name, tip, merge_sha, scratch_dir, message)
    checkout = _sole_checkout(repo, name)
    if checkout is None:
        _cas_update_ref(repo, name, revert_sha, tip, "rollback", f"cockpit: revert merge {merge_sha}")
    else:
        _ff_checkout(checkout, name, revert_sha, tip, "rollback")
    return RollbackResult(method="revert", from_sha=tip, to_sha=revert_sha)


# -------------------------------------------------------------------------------------------- reconcile


def reconcile(repo: Path, target: str, planned_merge_sha: str, rollback_sha: str) -> str:
    """After a crash between merge.started and merge.finished, say what the ref shows; change nothing.

    "merged": the target tip is the planned merge or contains it; "not_merged": the tip is still the
    rollback point; "diverged": anything else (a person must look).
    """
    tip = ref_sha(repo, branch_ref(short_branch(target)))
    if tip is None:
        return "diverged"
    if tip == planned_merge_sha:
        return "merged"
    if tip == rollback_sha:
        return "not_merged"
    if ref_sha(repo, planned_merge_sha) is not None and is_ancestor(repo, planned_merge_sha, tip):
        return "merged"
    return "diverged"
