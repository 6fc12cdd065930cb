"""Git plumbing of a merge: revisions read in one call, `merge-tree --write-tree`, `commit-tree`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cockpit.core import gitobjects
from cockpit.core.errors import GitError
from cockpit.core.git import (
    GitResult,
    ref_sha,
    run_git,
    run_git_with_identity,
)

STRATEGIES = ("merge", "squash")

SHA_RE = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# `merge --ff-only` (without --quiet, with core.abbrev=no) prints "Updating <old>..<new>" in full.
FF_LINE_RE = re.compile(r"\b([0-9a-f]{40}(?:[0-9a-f]{24})?)\.\.([0-9a-f]{40}(?:[0-9a-f]{24})?)\b")
_USAGE_ERROR = 129  # git's exit status for an option it does not know


def short(sha: str | None) -> str:
    return sha[:10] if sha else "(none)"


def list_files(files: list[str], limit: int = 8) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def rev_parse(cwd: Path, *revs: str) -> tuple[list[str], list[str]] | None:
    """Resolve several revisions in one `git rev-parse`: (the positive lines in order, the `^`-lines without
    their caret), or None when any of them does not resolve. `A...B` adds `B`, `A` and `^<merge base>` for
    every merge base of A and B (none for unrelated histories)."""
    result = run_git(cwd, "rev-parse", *revs, "--", check=False)
    if not result.ok:
        return None
    positive: list[str] = []
    negative: list[str] = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if not line or line == "--":
            continue
        if line.startswith("^"):
            negative.append(line[1:])
        else:
            positive.append(line)
    return positive, negative


def read_tips(
    repo: Path, target_ref: str, branch_rev: str
) -> tuple[str | None, str | None, str | None, list[str] | None]:
    """(target tip, branch tip, the branch tip's tree, their merge bases) in one git call; the tree and the
    bases are None when a branch is missing (each tip is then read on its own, to say which)."""
    got = rev_parse(repo, target_ref, branch_rev, f"{branch_rev}^{{tree}}", f"{target_ref}...{branch_rev}")
    if got is not None and len(got[0]) >= 3:
        positive, bases = got
        return positive[0], positive[1], positive[2], bases
    return ref_sha(repo, target_ref), ref_sha(repo, branch_rev), None, None


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


_MERGE_TREE_ARGS = ("merge-tree", "--write-tree", "-z", "--name-only", "--messages")


def _merge_tree_result(result: GitResult, what: str) -> MergeTreeResult:
    if result.status not in (0, 1):
        raise GitError(
            f"git merge-tree could not merge {what}: {result.first_error_line()} "
            "(git 2.38 or newer is required)"
        )
    parsed = _parse_merge_tree(result.stdout, conflicted=result.status == 1)
    if not parsed.tree:
        raise GitError(f"git merge-tree gave no tree for {what}; check the git version (2.38+)")
    return parsed


def merge_tree(repo: Path, ours: str, theirs: str) -> MergeTreeResult:
    """Merge two commits in memory (no index, no files, no refs) and report the tree and conflicts."""
    result = run_git(repo, *_MERGE_TREE_ARGS, ours, theirs, check=False, strip=False)
    return _merge_tree_result(result, f"{ours} into {theirs}")


# Whether this git's `merge-tree --write-tree` takes `--merge-base` (2.40+): None until the first revert
# tries it; a usage error (exit 129) answers no for the rest of the process.
_merge_base_option: bool | None = None


def revert_tree(repo: Path, tip: str, commit: str, parent: str, parent_tree: str = "") -> MergeTreeResult:
    """The tree of `tip` with what `commit` changed relative to its `parent` undone, and any conflicts.

    This is the three-way merge `git revert` does (base `commit`, ours `tip`, theirs `parent`), in memory:
    no index, no files, no refs. With git 2.40+ it is `merge-tree --merge-base=<commit> <tip> <parent>`.
    Older git (2.38, 2.39) has no `--merge-base`, so an unreferenced commit with `parent`'s tree whose only
    parent is `commit` stands in for `parent`: as `commit` is an ancestor of `tip`, the merge base of `tip`
    and that commit is exactly `commit`. `commit` must be an ancestor of `tip`. Given `parent_tree` (the
    rollback plan reads it), the stand-in is written by this process, so that way is one git process too.
    Which way a git takes is probed once a process (`--merge-base` refused with a usage error: older git).
    """
    global _merge_base_option
    what = f"the revert of {short(commit)} onto {short(tip)}"
    if _merge_base_option is not False:
        result = run_git(
            repo, *_MERGE_TREE_ARGS, f"--merge-base={commit}", tip, parent, check=False, strip=False
        )
        if result.status != _USAGE_ERROR:
            _merge_base_option = True
            return _merge_tree_result(result, what)
        _merge_base_option = False
    stand_in = _stand_in(repo, parent_tree, commit) if parent_tree else None
    if stand_in is None:
        stand_in = run_git_with_identity(
            repo,
            "commit-tree",
            "--no-gpg-sign",
            f"{parent}^{{tree}}",
            "-p",
            commit,
            "-m",
            f"cockpit: revert base for {commit}",
        ).stdout.strip()
    result = run_git(repo, *_MERGE_TREE_ARGS, tip, stand_in, check=False, strip=False)
    return _merge_tree_result(result, what)


def _stand_in(repo: Path, tree: str, parent: str) -> str | None:
    """Write the unreferenced stand-in commit (`tree`, sole parent `parent`) from this process, with no git
    process; None where the repository is not plain enough for that (the caller runs `commit-tree` then)."""
    git_dir = gitobjects.plain_git_dir(repo)
    if git_dir is None or not SHA_RE.fullmatch(tree) or len(tree) != 40:
        return None
    return gitobjects.write_commit(git_dir, tree, (parent,), f"cockpit: revert base for {parent}")


def commit_tree(repo: Path, tree: str, parents: Sequence[str], message: str, what: str) -> str:
    args = [arg for parent in parents for arg in ("-p", parent)]
    created = run_git_with_identity(repo, "commit-tree", "--no-gpg-sign", tree, *args, "-m", message)
    sha = created.stdout.strip()
    if not SHA_RE.fullmatch(sha):
        raise GitError(f"git commit-tree printed no commit id for {what}; check the repository's objects")
    return sha
