"""The git-level merge and rollback engine (DESIGN.md section 8).

The contract: the rollback point is read from the target ref itself; the merge commit is built with plumbing
(`merge-tree --write-tree` + `commit-tree`) without moving any ref; it can be verified in a scratch worktree;
the target then moves by compare-and-set (`update-ref new old`, or `merge --ff-only` inside the checkout that
has the target checked out, after checking its HEAD). Rollback moves the ref back (compare-and-set or
`reset --keep`) while the merge is still the tip, and makes a revert commit once later commits exist; the
revert is built with plumbing too (a three-way `merge-tree` whose base is the merge), never in a checkout.
Nothing here ever runs `reset --hard`, touches uncommitted work, or leaves a ref half-moved: every refusal
leaves refs, index and files exactly as they were.

Git processes are the whole cost of a merge, so each step starts as few as it can: one `rev-parse` reads
both branch tips and their merge base; `build_merge_commit` takes the preflight's tips and merge tree instead
of computing them again; `move_target` takes the preflight's checkout list; the fallback identity is looked
up only when a commit fails for the lack of one; the worktree list gives each checkout's HEAD; the output of
`merge --ff-only` says where it moved the target. Slower reads happen only on the paths that refuse.

The task store is not this module's concern: the caller records merge.preflight / merge.started /
merge.finished around these calls (merge.started carries `PlannedMerge.rollback_sha` and `merge_sha`,
before `move_target`), and `reconcile` answers what happened after a crash in between.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cockpit.core.errors import GitError, RefusedError, UsageError
from cockpit.core.git import (
    GitResult,
    WorktreeInfo,
    branch_ref,
    checkout_infos,
    checkout_paths,
    checkouts_of,
    commit_env,
    dirty_files,
    head_sha,
    is_ancestor,
    merge_base,
    ref_sha,
    run_git,
    run_git_with_identity,
    short_branch,
)

__all__ = [
    "STRATEGIES",
    "MergeTreeResult",
    "PlannedMerge",
    "Preflight",
    "PreflightCheck",
    "RollbackPlan",
    "RollbackResult",
    "TreeChange",
    "build_merge_commit",
    "cockpit_paths",
    "merge_tree",
    "move_target",
    "overwritten_paths",
    "preflight",
    "rebase_branch",
    "reconcile",
    "restore_branch",
    "revert_tree",
    "rollback",
    "rollback_method",
    "rollback_plan",
    "tree_changes",
    "verify_in_scratch",
]

STRATEGIES = ("merge", "squash")

_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# `merge --ff-only` (without --quiet, with core.abbrev=no) prints "Updating <old>..<new>" in full.
_FF_LINE = re.compile(r"\b([0-9a-f]{40}(?:[0-9a-f]{24})?)\.\.([0-9a-f]{40}(?:[0-9a-f]{24})?)\b")
_USAGE_ERROR = 129  # git's exit status for an option it does not know


def _short(sha: str | None) -> str:
    return sha[:10] if sha else "(none)"


def _list_files(files: list[str], limit: int = 8) -> str:
    shown = ", ".join(files[:limit])
    return shown + (f" and {len(files) - limit} more" if len(files) > limit else "")


def _rev_parse(cwd: Path, *revs: str) -> tuple[list[str], list[str]] | None:
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


def _read_tips(
    repo: Path, target_ref: str, branch_rev: str
) -> tuple[str | None, str | None, str | None, list[str] | None]:
    """(target tip, branch tip, the branch tip's tree, their merge bases) in one git call; the tree and the
    bases are None when a branch is missing (each tip is then read on its own, to say which)."""
    got = _rev_parse(repo, target_ref, branch_rev, f"{branch_rev}^{{tree}}", f"{target_ref}...{branch_rev}")
    if got is not None and len(got[0]) >= 3:
        positive, bases = got
        return positive[0], positive[1], positive[2], bases
    return ref_sha(repo, target_ref), ref_sha(repo, branch_rev), None, None


# ---------------------------------------------------------------------------------------- what a merge writes

# cockpit's own state: never tracked, so never written, changed or removed by a merge (DESIGN section 3).
COCKPIT_DIR = ".cockpit"


@dataclass(frozen=True)
class TreeChange:
    """One path that differs between two trees: `A`dded, `M`odified, `D`eleted or `T`ype-changed."""

    status: str
    path: str


def tree_changes(repo: Path, old: str, new: str) -> tuple[TreeChange, ...]:
    """Every path (files, symlinks, submodules; no directories) that moving from `old` to `new` writes."""
    out = run_git(
        repo, "diff-tree", "-r", "-z", "--no-renames", "--name-status", old, new, "--", strip=False
    ).stdout
    parts = out.split("\0")
    changes: list[TreeChange] = []
    for status, path in zip(parts[0::2], parts[1::2], strict=False):
        if status and path:
            changes.append(TreeChange(status[:1], path))
    return tuple(changes)


def cockpit_paths(changes: Iterable[TreeChange]) -> list[str]:
    """The changed paths that are `.cockpit` or under it."""
    prefix = COCKPIT_DIR + "/"
    return [c.path for c in changes if c.path == COCKPIT_DIR or c.path.startswith(prefix)]


def _untracked_under(checkout: Path, path: str, removed: set[str], limit: int) -> list[str]:
    """What is on disk under the directory `path` that the merge does not remove itself (so: not tracked)."""
    found: list[str] = []
    for top, dirs, files in os.walk(checkout / path):
        rel_top = os.path.relpath(top, checkout)
        # A symlink to a directory is listed among `dirs` and not followed: it is an entry like a file.
        links = [d for d in dirs if os.path.islink(os.path.join(top, d))]
        for name in sorted([*files, *links]):
            rel = f"{rel_top}/{name}"
            if rel not in removed:
                found.append(rel)
                if len(found) >= limit:
                    return found
    return found


def _in_the_way(checkout: Path, path: str, removed: set[str], limit: int) -> list[str]:
    """What already exists in `checkout` at (or above) `path`, a path the merge adds, that is not tracked."""
    parts = path.split("/")
    for i in range(1, len(parts)):
        prefix = "/".join(parts[:i])
        try:
            mode = os.lstat(checkout / prefix).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return []
        if not stat.S_ISDIR(mode):
            # A file or symlink where the merge needs a directory: git would replace it, unless it is a
            # tracked path the merge removes anyway.
            return [] if prefix in removed else [prefix]
    try:
        mode = os.lstat(checkout / path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return []
    if stat.S_ISDIR(mode):
        return _untracked_under(checkout, path, removed, limit)
    return [path]


def overwritten_paths(checkout: Path, changes: Sequence[TreeChange], limit: int = 20) -> list[str]:
    """Ignored or untracked paths in `checkout` (which has the merge's old side checked out) that the merge
    would write over: a file where it adds one, or anything inside a directory it replaces with a file. git
    replaces ignored files without a word, so this is looked at on disk, with no git process."""
    removed = {c.path for c in changes if c.status == "D"}
    found: list[str] = []
    for change in changes:
        if change.status != "A":
            continue  # tracked on the old side: the clean checkout holds git's own copy
        for hit in _in_the_way(checkout, change.path, removed, limit - len(found)):
            if hit not in found:
                found.append(hit)
        if len(found) >= limit:
            break
    return found


def _cockpit_refusal(paths: list[str]) -> RefusedError:
    return RefusedError(
        f"the merge would add, change or remove {_list_files(paths)}: {COCKPIT_DIR}/ holds cockpit's own "
        "state and is never merged; remove those paths from the task branch",
        details={"reason": "cockpit_paths", "files": paths},
    )


def _overwrite_refusal(checkout: Path, paths: list[str]) -> RefusedError:
    return RefusedError(
        f"the merge would write over {_list_files(paths)} in {checkout}, not tracked there (ignored or "
        "untracked); nothing was changed: move them away or drop them from the task branch, then merge again",
        details={"reason": "would_overwrite", "checkout": str(checkout), "files": paths},
    )


def _guard_paths(checkouts: Sequence[Path], changes: Sequence[TreeChange]) -> None:
    """Refuse a merge that touches `.cockpit/` or writes over a file that a checkout of the target lacks."""
    cockpit = cockpit_paths(changes)
    if cockpit:
        raise _cockpit_refusal(cockpit)
    for checkout in checkouts:
        hits = overwritten_paths(checkout, changes)
        if hits:
            raise _overwrite_refusal(checkout, hits)


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
    what = f"the revert of {_short(commit)} onto {_short(tip)}"
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
    """Write the unreferenced stand-in commit (`tree`, sole parent `parent`) as a loose object from this
    process, with no git process; None where the repository is not the plain layout of a SHA-1 repo (a `.git`
    file, another object format): the caller runs `commit-tree` then."""
    git_dir = repo / ".git"
    if not (_SHA.fullmatch(tree) and len(tree) == 40 and git_dir.is_dir()):
        return None
    try:
        if "objectformat" in (git_dir / "config").read_text(errors="replace").lower():
            return None
    except OSError:
        return None
    import io
    import time

    from gitdb import IStream, LooseObjectDB  # GitPython's object store; loaded on the first revert only

    stamp = f"cockpit <cockpit@localhost> {int(time.time())} +0000"
    body = (f"tree {tree}\nparent {parent}\nauthor {stamp}\ncommitter {stamp}\n\n"
            f"cockpit: revert base for {parent}\n").encode()
    stored = LooseObjectDB(str(git_dir / "objects")).store(IStream(b"commit", len(body), io.BytesIO(body)))
    sha = stored.hexsha
    return sha.decode() if isinstance(sha, bytes) else str(sha)


def _commit_tree(repo: Path, tree: str, parents: Sequence[str], message: str, what: str) -> str:
    args = [arg for parent in parents for arg in ("-p", parent)]
    created = run_git_with_identity(repo, "commit-tree", "--no-gpg-sign", tree, *args, "-m", message)
    sha = created.stdout.strip()
    if not _SHA.fullmatch(sha):
        raise GitError(f"git commit-tree printed no commit id for {what}; check the repository's objects")
    return sha


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
    merge_bases: list[str] | None = None  # of the two tips, when both exist
    tree: str | None = None  # the merged tree, when it merges cleanly (for build_merge_commit)
    changes: tuple[TreeChange, ...] = ()  # what the merge writes, relative to the target's tip
    overwritten: list[str] = field(default_factory=list)  # untracked paths in a checkout it would write over

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def refused_files(self) -> list[str]:
        """The paths a failed path check names: under `.cockpit/`, or written over in a checkout."""
        return cockpit_paths(self.changes) or list(self.overwritten)

    def reason(self) -> str:
        """What failed, as a word for `merge.refused` (the first failed check decides)."""
        names = [check.name for check in self.failed()]
        for name, cause in (("no_conflicts", "conflicts"), ("branch_gated", "branch_moved"),
                            ("no_cockpit_paths", "cockpit_paths"), ("no_overwrite", "would_overwrite")):
            if name in names:
                return cause
        return "preflight"

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


def _merged(
    repo: Path, target_sha: str, branch_sha: str, branch_tree: str | None, bases: list[str]
) -> tuple[MergeTreeResult, tuple[TreeChange, ...]]:
    """The merged tree and what it changes relative to the target. When the target is the merge base (it has
    not moved since the branch forked) the merge is the branch's own tree: no merge-tree is needed."""
    if bases == [target_sha] and branch_tree:
        merged = MergeTreeResult(tree=branch_tree, conflicts=[], messages=[])
    else:
        merged = merge_tree(repo, target_sha, branch_sha)
        if not merged.clean:
            return merged, ()
    return merged, tree_changes(repo, target_sha, merged.tree)


def preflight(repo: Path, branch: str, target: str, *, gated: str | None = None) -> Preflight:
    """Check, without changing anything, whether `branch` can be merged into `target`.

    Checks: target_exists, branch_exists, branch_gated (only when `gated` is given: the commit the gates
    passed on, "" for none on record; the branch's tip must be it), target_checkouts_clean, no_conflicts,
    no_cockpit_paths (the merge adds, changes or removes nothing under `.cockpit/`) and no_overwrite (it
    writes over no ignored or untracked path in a checkout of the target). `target_moved` is information for
    the caller (rebase the branch and run the gates again), not a failed check. Four git calls when it passes
    with the target checked out once and not moved: both tips, the branch's tree and their merge base, the
    worktree list, the checkout's status, and what the merge changes (a target that moved adds merge-tree).
    """
    target_name, branch_name = short_branch(target), short_branch(branch)
    target_sha, branch_sha, branch_tree, bases = _read_tips(
        repo, branch_ref(target_name), branch_ref(branch_name)
    )
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
    if gated is not None:
        if not gated:
            detail = f"no commit of {branch_name} has passed the gates on record; run the gates again"
        elif branch_sha != gated:
            detail = (
                f"{branch_name} moved since its gates passed (they passed on {_short(gated)}, the branch is "
                f"at {_short(branch_sha)}): the new commits were never checked; run the gates on the new tip"
            )
        else:
            detail = f"the gates passed on {_short(gated)}, the branch's tip"
        pf.checks.append(PreflightCheck("branch_gated", bool(gated) and branch_sha == gated, detail))

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

    if bases is None:  # both exist, yet the one-call read failed: ask git the slow way
        base = merge_base(repo, branch_sha, target_sha)
        bases = [base] if base else []
    pf.merge_bases = bases
    pf.target_moved = bases != [target_sha]
    try:
        merged, changes = _merged(repo, target_sha, branch_sha, branch_tree, bases)
    except GitError as exc:
        pf.checks.append(PreflightCheck("no_conflicts", False, exc.message))
        return pf
    pf.conflicts = list(merged.conflicts)
    pf.tree = merged.tree if merged.clean else None
    pf.changes = changes
    pf.checks.append(
        PreflightCheck(
            "no_conflicts",
            merged.clean,
            "merges cleanly"
            if merged.clean
            else f"conflicts with {target_name} in {_list_files(merged.conflicts)}; rebase and resolve",
        )
    )
    if not merged.clean:
        return pf
    cockpit = cockpit_paths(changes)
    pf.checks.append(
        PreflightCheck(
            "no_cockpit_paths",
            not cockpit,
            _cockpit_refusal(cockpit).message if cockpit else f"nothing under {COCKPIT_DIR}/",
        )
    )
    in_the_way: list[str] = []
    for checkout in pf.checkouts:
        hits = overwritten_paths(checkout, changes)
        if hits:
            in_the_way.append(_overwrite_refusal(checkout, hits).message)
            pf.overwritten.extend(hits)
    pf.checks.append(
        PreflightCheck(
            "no_overwrite",
            not in_the_way,
            "; ".join(in_the_way)
            if in_the_way
            else "writes over no ignored or untracked file"
            if pf.checkouts
            else f"{target_name} is not checked out: no files are written",
        )
    )
    return pf


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
            f"{worktree} has uncommitted changes ({_list_files(dirty, 3)}); commit them before rebasing"
        )
    onto_sha = ref_sha(worktree, onto)
    if onto_sha is None:
        raise GitError(f"cannot rebase {branch}: {onto!r} does not exist")
    before = head_sha(worktree)
    if expected_head is not None and before != expected_head:
        raise RefusedError(
            f"{branch} is at {_short(before)}, not at {_short(expected_head)} as expected; "
            "nothing was changed",
            details={"reason": "branch_moved", "expected": expected_head, "actual": before},
        )
    if before is not None:
        # The rebase starts by checking out `onto`: nothing untracked may be in the way of what that writes.
        hits = overwritten_paths(worktree, tree_changes(worktree, before, onto_sha))
        if hits:
            raise RefusedError(
                f"rebasing {branch} onto {onto} would write over {_list_files(hits)} in {worktree}, not "
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
            f"rebase of {branch} failed and left HEAD at {_short(after)} instead of {_short(before)}; "
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
        return f"it moved since the rebase (now {_short(head)}), so it was left there"
    result = run_git(worktree, "reset", "--keep", "--quiet", original, check=False)
    if not result.ok:
        return f"`git reset --keep {_short(original)}` refused: {result.first_error_line()}"
    return None


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
        target_sha, tip, branch_tree, read_bases = _read_tips(
            repo, branch_ref(target_name), commit or branch_ref(branch_name)
        )
        if target_sha is None:
            raise RefusedError(
                f"target branch {target_name} does not exist; create it or set task.target_branch"
            )
        if tip is None:
            if commit:
                raise RefusedError(f"commit {_short(commit)} of {branch_name} does not exist any more")
            raise RefusedError(f"task branch {branch_name} does not exist; retry the task to recreate it")
        rollback_sha, branch_sha, bases = target_sha, tip, read_bases
        nothing_new = (
            branch_sha in bases if bases is not None else is_ancestor(repo, branch_sha, rollback_sha)
        )
        if nothing_new:
            raise RefusedError(f"{branch_name} has no commits that {target_name} lacks; nothing to merge")
        merged, changes = _merged(repo, rollback_sha, branch_sha, branch_tree, bases or [])
        if not merged.clean:
            raise RefusedError(
                f"{branch_name} conflicts with {target_name} in {_list_files(merged.conflicts)}; "
                "rebase the task branch and resolve",
                details={"reason": "conflicts", "conflicts": list(merged.conflicts)},
            )
        tree = merged.tree
    cockpit = cockpit_paths(changes)
    if cockpit:
        raise _cockpit_refusal(cockpit)
    parents = [rollback_sha] + ([branch_sha] if strategy == "merge" else [])
    text = message.strip() or f"Merge branch '{branch_name}' into {target_name}"
    merge_sha = _commit_tree(repo, tree, parents, text, "the merge")
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


def _moved(target: str, expected: str, actual: str | None, what: str) -> RefusedError:
    return RefusedError(
        f"{target} moved (now {_short(actual)}, expected {_short(expected)}) before the {what}; "
        f"nothing was changed, retry the {what}",
        details={"reason": "target_moved", "target": target, "expected": expected, "actual": actual},
    )


def _sole(target: str, holders: Sequence[WorktreeInfo]) -> WorktreeInfo | None:
    if len(holders) > 1:
        raise RefusedError(
            f"{target} is checked out in several places ({', '.join(str(h.path) for h in holders)}); "
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


def _ff_checkout(checkout: Path, target: str, new: str, old: str, what: str, head: str | None) -> None:
    """Fast-forward the checkout that has `target` checked out from `old` to `new` (local changes kept).

    `head` is the checkout's HEAD as just read by the caller; it must be `old`. `merge --ff-only` itself
    refuses to overwrite local changes; its "Updating <old>..<new>" line (full ids with core.abbrev=no)
    confirms where the target went, so HEAD is read again only when that line is missing.
    """
    if head != old:
        raise _moved(target, old, head, what)
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
                f"`git merge --ff-only` in {checkout} failed and left {target} at {_short(after)}; inspect it"
            )
        # git lists the files it would have written over, one per line indented with a tab.
        in_the_way = [line.strip() for line in result.stderr.splitlines() if line.startswith("\t")]
        if in_the_way and "untracked working tree files" in result.stderr:
            raise _overwrite_refusal(checkout, in_the_way)
        raise RefusedError(
            f"cannot update the checkout of {target} at {checkout}: {result.first_error_line()}; "
            f"nothing was changed, commit or stash local changes there and retry the {what}",
            details={"reason": "local_changes", "checkout": str(checkout)},
        )
    line = _FF_LINE.search(result.stdout)
    if line is not None and line.group(2) == new:
        return
    after = head_sha(checkout)
    if after != new:
        raise GitError(f"{target} is at {_short(after)} after the {what}, expected {_short(new)}; inspect it")


def _descends(repo: Path, planned: PlannedMerge, parents: Sequence[str] | None) -> None:
    """The planned merge must contain the rollback point (its first parent, when this module built it)."""
    if parents and parents[0] == planned.rollback_sha:
        return
    if not is_ancestor(repo, planned.rollback_sha, planned.merge_sha):
        raise GitError(
            f"planned merge {_short(planned.merge_sha)} does not descend from {planned.target}'s tip"
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
        got = _rev_parse(checkout, "HEAD", f"{planned.merge_sha}^@", "--symbolic-full-name", "HEAD")
        if got is not None and len(got[0]) >= 2 and got[0][-1] == ref:
            positive = got[0]
            _descends(repo, planned, positive[1:-1])
            _guard_paths([checkout], planned.changes)
            _ff_checkout(checkout, target, planned.merge_sha, planned.rollback_sha, "merge", positive[0])
            return
        # The checkout changed branch since the preflight (or HEAD is unreadable): look at everything again.

    got = _rev_parse(repo, ref, f"{planned.merge_sha}^@")
    _descends(repo, planned, got[0][1:] if got else None)
    current = got[0][0] if got else ref_sha(repo, ref)
    if current != planned.rollback_sha:
        raise _moved(target, planned.rollback_sha, current, "merge")
    # Not checked out anywhere, as the preflight just found: the ref moves alone (update-ref is the
    # compare-and-set). Otherwise the checkouts are listed now, with their HEADs.
    holder = None if checkouts is not None and not checkouts else _sole(target, checkout_infos(repo, target))
    _guard_paths([holder.path] if holder is not None else [], planned.changes)
    if holder is None:
        reason = f"cockpit: merge ({planned.strategy}) into {target}"
        _cas_update_ref(repo, target, planned.merge_sha, planned.rollback_sha, "merge", reason)
        return
    dirty = dirty_files(holder.path)
    if dirty:
        raise RefusedError(
            f"{target} is checked out at {holder.path} with uncommitted changes ({_list_files(dirty, 3)}); "
            "commit or stash them and retry the merge",
            details={"reason": "dirty_checkout", "checkout": str(holder.path), "files": dirty},
        )
    _ff_checkout(holder.path, target, planned.merge_sha, planned.rollback_sha, "merge", holder.head or None)


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
    contains the merge (one `rev-parse`: `<ref> <merge>...<ref> <ref>^{tree} <merge>^1^{tree} <merge>^@`,
    the symmetric difference giving the merge base)."""
    name = short_branch(target)
    ref = branch_ref(name)
    got = None
    if _SHA.fullmatch(merge_sha):
        got = _rev_parse(repo, ref, f"{merge_sha}...{ref}", f"{ref}^{{tree}}", f"{merge_sha}^1^{{tree}}",
                         f"{merge_sha}^@")
        if got is not None and len(got[0]) >= 5:
            positive, bases = got
            return RollbackPlan(name, merge_sha, positive[0], tuple(positive[5:]), bases == [merge_sha],
                                tip_tree=positive[3], first_parent_tree=positive[4])
        # Missing target or merge commit, or a merge without parents: read again, without the parent's tree.
        got = _rev_parse(repo, ref, f"{merge_sha}...{ref}", f"{ref}^{{tree}}", f"{merge_sha}^@")
    if got is None or len(got[0]) < 4:  # the target or the merge commit does not exist
        return RollbackPlan(name, merge_sha, ref_sha(repo, ref), (), False)
    positive, bases = got
    return RollbackPlan(name, merge_sha, positive[0], tuple(positive[4:]), bases == [merge_sha],
                        tip_tree=positive[3])


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
        return _sole(plan.target, checkout_infos(repo, plan.target))
    return _sole(plan.target, [WorktreeInfo(path, plan.target, plan.tip or "") for path in paths])


def _reset_back(repo: Path, plan: RollbackPlan, rollback_sha: str) -> RollbackResult:
    target, merge_sha = plan.target, plan.merge_sha
    if plan.parents[:1] != (rollback_sha,) and not is_ancestor(repo, rollback_sha, merge_sha):
        raise RefusedError(
            f"rollback point {_short(rollback_sha)} is not an ancestor of merge {_short(merge_sha)}; "
            f"refusing to move {target} there"
        )
    holder = _holder_at_tip(repo, plan)
    if holder is None:
        _cas_update_ref(
            repo, target, rollback_sha, merge_sha, "rollback", f"cockpit: roll back merge {merge_sha}"
        )
    else:
        # The plan read the checkout's HEAD (its branch's tip) just now: the compare of the compare-and-set.
        if holder.head != merge_sha:
            raise _moved(target, merge_sha, holder.head or None, "rollback")
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
        raise RefusedError(f"{_short(merge_sha)} is an octopus merge; revert it by hand")
    if not plan.parents:
        raise RefusedError(f"{_short(merge_sha)} has no parent to revert to; revert it by hand")
    # mainline: the target's side
    reverted = revert_tree(repo, tip, merge_sha, plan.parents[0], plan.first_parent_tree)
    if not reverted.clean:
        raise RefusedError(
            f"reverting {_short(merge_sha)} conflicts with later commits on {target} in "
            f"{_list_files(reverted.conflicts)}; nothing was changed, revert it by hand",
            details={"reason": "conflicts", "conflicts": list(reverted.conflicts)},
        )
    if reverted.tree == plan.tip_tree:
        raise AlreadyReverted(f"{target} no longer has the changes of merge {_short(merge_sha)}")
    text = _revert_message(repo, merge_sha, message)
    return _commit_tree(repo, reverted.tree, [tip], text, "the revert")


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
            f"merge {_short(merge_sha)} is not in {name}'s history any more; nothing to roll back"
        )
    if method == "reset":
        return _reset_back(repo, plan, rollback_sha)
    tip = plan.tip
    assert tip is not None  # method is "revert"
    revert_sha = _build_revert(repo, plan, message)
    holder = _holder_at_tip(repo, plan)
    if holder is None:
        _cas_update_ref(repo, name, revert_sha, tip, "rollback", f"cockpit: revert merge {merge_sha}")
    else:
        _ff_checkout(holder.path, name, revert_sha, tip, "rollback", holder.head or None)
    return RollbackResult(method="revert", from_sha=tip, to_sha=revert_sha)


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
