"""What a merge writes, and the refusals that keep it off `.cockpit/` and off untracked or ignored files."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import RefusedError
from cockpit.core.git import (
    run_git,
)
from cockpit.core.merge.plumbing import list_files

# ---------------------------------------------------------------------------------------- what a merge writes

# cockpit's own state: never tracked, so never written, changed or removed by a merge (docs/design.md, Files).
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


def cockpit_refusal(paths: list[str]) -> RefusedError:
    return RefusedError(
        f"the merge would add, change or remove {list_files(paths)}: {COCKPIT_DIR}/ holds cockpit's own "
        "state and is never merged; remove those paths from the task branch",
        details={"reason": "cockpit_paths", "files": paths},
    )


def overwrite_refusal(checkout: Path, paths: list[str]) -> RefusedError:
    return RefusedError(
        f"the merge would write over {list_files(paths)} in {checkout}, not tracked there (ignored or "
        "untracked); nothing was changed: move them away or drop them from the task branch, then merge again",
        details={"reason": "would_overwrite", "checkout": str(checkout), "files": paths},
    )


def guard_paths(checkouts: Sequence[Path], changes: Sequence[TreeChange]) -> None:
    """Refuse a merge that touches `.cockpit/` or writes over a file that a checkout of the target lacks."""
    cockpit = cockpit_paths(changes)
    if cockpit:
        raise cockpit_refusal(cockpit)
    for checkout in checkouts:
        hits = overwritten_paths(checkout, changes)
        if hits:
            raise overwrite_refusal(checkout, hits)
