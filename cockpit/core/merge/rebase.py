"""Rebasing a task branch onto the target's new tip in its worktree, and putting it back."""

from __future__ import annotations

from pathlib import Path

from cockpit.core.errors import GitError, RefusedError
from cockpit.core.git import (
    commit_env,
    dirty_files,
    head_sha,
    ref_sha,
    run_git,
    short_branch,
)
from cockpit.core.merge.guards import overwritten_paths, tree_changes
from cockpit.core.merge.plumbing import list_files, short

# ----------------------------------------------------------------------------------------------- rebase


def _git_paths_exist(worktree: Path, *names: str) -> bool:
    args = [arg for name in names for arg in ("--git-path", name)]
    for path in run_git(worktree, "rev-parse", *args).stdout.splitlines():
        full = Path(path) if Path(path).is_absolute() else worktree / path
        if full.exists():
            return True
    return False


def _unmerged_files(worktree: Path) -> list[str]:
    out = run_git(worktree, "diff", "--name-only", "-z", "--diff-filter=U", strip=False).stdout
    return sorted({name for name in out.split("\0") if name})


def rebase_branch(worktree: Path, onto: str, *, expected_head: str | None = None) -> list[str]:
    """Rebase the branch checked out in `worktree` onto `onto`.

    Returns [] on success. On a conflict the rebase is aborted (branch, index and files exactly as before)
    and the conflicting files are returned. Refuses a worktree with uncommitted changes to tracked files, a
    detached HEAD, a HEAD other than `expected_head` (when given: the commit that was gated), and untracked or
    ignored files that the rebase would write over (named). Other untracked files (gate artefacts such as
    `__pycache__/`) stay where they are and never block it.
    """
    symbolic = run_git(worktree, "symbolic-ref", "--quiet", "HEAD", check=False)
    if not symbolic.ok or not symbolic.stdout.startswith("refs/heads/"):
        raise RefusedError(f"{worktree} has no branch checked out (detached HEAD); check out the task branch")
    branch = short_branch(symbolic.stdout)
    if _git_paths_exist(worktree, "rebase-merge", "rebase-apply"):
        raise RefusedError(f"a rebase is already in progress in {worktree}; finish or abort it first")
    dirty = dirty_files(worktree, untracked=False)
    if dirty:
        raise RefusedError(
            f"{worktree} has uncommitted changes ({list_files(dirty, 3)}); commit them before rebasing"
        )
    onto_sha = ref_sha(worktree, onto)
    if onto_sha is None:
        raise GitError(f"cannot rebase {branch}: {onto!r} does not exist")
    before = head_sha(worktree)
    if expected_head is not None and before != expected_head:
        raise RefusedError(
            f"{branch} is at {short(before)}, not at {short(expected_head)} as expected; "
            "nothing was changed",
            details={"reason": "branch_moved", "expected": expected_head, "actual": before},
        )
    if before is not None:
        # The rebase starts by checking out `onto`: nothing untracked may be in the way of what that writes.
        hits = overwritten_paths(worktree, tree_changes(worktree, before, onto_sha))
        if hits:
            raise RefusedError(
                f"rebasing {branch} onto {onto} would write over {list_files(hits)} in {worktree}, not "
                "tracked there (ignored or untracked); nothing was changed: move them away and merge again",
                details={"reason": "would_overwrite", "checkout": str(worktree), "files": hits},
            )

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
        env=commit_env(worktree),  # up front: a rebase stopped for want of an identity is not worth undoing
    )
    if result.ok:
        return []

    in_progress = _git_paths_exist(worktree, "rebase-merge", "rebase-apply")
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
            f"rebase of {branch} failed and left HEAD at {short(after)} instead of {short(before)}; "
            f"inspect {worktree}"
        )
    if conflicts:
        return conflicts
    raise GitError(f"rebase of {branch} onto {onto} failed: {result.first_error_line()}")


def restore_branch(worktree: Path, rebased: str, original: str) -> str | None:
    """Put the branch checked out in `worktree` back from `rebased` to `original` (undoing our rebase).

    Compare-and-set: only while HEAD is still `rebased`, with `reset --keep` (local changes are kept, or it
    refuses). Returns None when the branch is back at `original`, else one line saying why it was left.
    """
    head = head_sha(worktree)
    if head == original:
        return None
    if head != rebased:
        return f"it moved since the rebase (now {short(head)}), so it was left there"
    result = run_git(worktree, "reset", "--keep", "--quiet", original, check=False)
    if not result.ok:
        return f"`git reset --keep {short(original)}` refused: {result.first_error_line()}"
    return None
