"""Task worktrees: naming, choosing where a run happens, and garbage collection.

A task runs in `.cockpit/worktrees/task-<id>-<slug>` on branch `cockpit/task-<id>-<slug>`, created from the
target branch's tip. A retry reuses the task's worktree (or re-creates it from the kept branch when the
directory is gone, e.g. after a merge and a rollback); a fresh retry gets a new name with a suffix
(`task-<id>-<slug>-2`) when the old branch or directory still exists.

Everything here blocks (git subprocesses through `cockpit.core.git`); the daemon calls it through
`asyncio.to_thread`.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import git
from cockpit.core.errors import CockpitError, GitError, RefusedError
from cockpit.core.models import Task
from cockpit.core.states import TERMINAL

BRANCH_PREFIX = "cockpit/"
MAX_SLUG = 40
# A merged task's worktree is no longer named by its task, so `cockpit gc` collects it as an orphan; the
# worktrees of tasks in `states.TERMINAL` are collected by their task's state.


def slugify(title: str, limit: int = MAX_SLUG) -> str:
    """A branch- and path-safe slug: lowercase ASCII letters, digits and dashes, at most `limit` chars."""
    ascii_text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    slug = slug[:limit].rstrip("-")
    return slug or "task"


def base_name(task_id: int, title: str) -> str:
    return f"task-{task_id}-{slugify(title)}"


def branch_for(name: str) -> str:
    return BRANCH_PREFIX + name


@dataclass(frozen=True)
class WorktreePlan:
    """Where a run happens, decided before anything is created."""

    path: Path
    branch: str
    reuse: bool  # the worktree exists, on the branch: use it as it is
    existing_branch: bool  # the branch exists (kept from an earlier run): check it out, do not create it
    base_sha: str | None  # the base recorded for the task's branch (None: the target's tip, read on creation)


def _registered(root: Path) -> list[git.WorktreeInfo]:
    return git.list_worktrees(root)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def plan_worktree(root: Path, worktrees_dir: Path, task: Task) -> WorktreePlan:
    """Decide the worktree for the task's next run (nothing is created)."""
    if task.branch and git.ref_sha(root, git.branch_ref(task.branch)) is not None:
        branch = git.short_branch(task.branch)
        infos = [i for i in _registered(root) if not i.prunable and i.path.exists()]
        holder = next((i for i in infos if i.branch == branch), None)
        if holder is not None:
            if holder.is_main:
                raise RefusedError(
                    f"branch {branch} is checked out in the main checkout {holder.path}; "
                    "switch that checkout to another branch, then retry"
                )
            return WorktreePlan(holder.path, branch, True, True, task.base_sha)
        name = (
            branch[len(BRANCH_PREFIX) :]
            if branch.startswith(BRANCH_PREFIX)
            else base_name(task.id, task.title)
        )
        path = Path(task.worktree) if task.worktree else worktrees_dir / name
        if path.exists() and any(path.iterdir()):
            path = _free_path(worktrees_dir, name, root, check_branch=False)
        return WorktreePlan(path, branch, False, True, task.base_sha)
    base = base_name(task.id, task.title)
    path = _free_path(worktrees_dir, base, root, check_branch=True)
    return WorktreePlan(path, branch_for(path.name), False, False, None)


def _free_path(worktrees_dir: Path, base: str, root: Path, *, check_branch: bool) -> Path:
    """`base`, or `base-2`, `base-3`...: the first name whose directory (and branch) is not taken."""
    n = 1
    while True:
        name = base if n == 1 else f"{base}-{n}"
        path = worktrees_dir / name
        taken = path.exists() or (
            check_branch and git.ref_sha(root, git.branch_ref(branch_for(name))) is not None
        )
        if not taken:
            return path
        n += 1


def materialize(root: Path, plan: WorktreePlan, target_branch: str) -> str:
    """Create the planned worktree (unless it is reused) and return the base commit of the task's branch."""
    if plan.reuse:
        return plan.base_sha or _base_of(root, plan.branch, target_branch)
    if plan.existing_branch:
        git.create_worktree(root, plan.path, plan.branch, target_branch)
        return plan.base_sha or _base_of(root, plan.branch, target_branch)
    return git.create_worktree(root, plan.path, plan.branch, target_branch)


def _base_of(root: Path, branch: str, target_branch: str) -> str:
    base = git.merge_base(root, git.branch_ref(target_branch), git.branch_ref(branch))
    if base is not None:
        return base
    tip = git.ref_sha(root, target_branch)
    if tip is None:
        raise GitError(f"target branch {target_branch!r} does not exist in {root}")
    return tip


# ------------------------------------------------------------------------------------------------------ gc


@dataclass
class GcReport:
    dry_run: bool
    removed: list[dict[str, Any]] = field(default_factory=list)
    dirty: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)  # kept: they hold ignored files (no --force)
    kept: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": self.removed,
            "dirty": self.dirty,
            "skipped": self.skipped,
            "ignored": self.ignored,
            "kept": self.kept,
        }


def _under(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def gc_worktrees(root: Path, worktrees_dir: Path, tasks: Iterable[Task], *, dry_run: bool,
                 force: bool = False) -> GcReport:
    """Remove the worktrees of rejected and cancelled tasks and every worktree no task names.

    A worktree with uncommitted work is never removed: it is reported under `dirty`. One holding ignored
    files (a `.env`, build output) is kept and listed under `ignored` unless `force`; with `force` the files
    it took are named in its `removed` entry (`ignored_files`).
    """
    report = GcReport(dry_run=dry_run)
    owners: dict[Path, Task] = {}
    for task in tasks:
        if task.worktree:
            owners[Path(task.worktree).resolve()] = task
    if not dry_run:
        git.run_git(root, "worktree", "prune")
    registered = [i for i in _registered(root) if not i.is_main]
    candidates: dict[Path, Path] = {}
    for info in registered:
        if _under(info.path, worktrees_dir):
            candidates[info.path.resolve()] = info.path
    if worktrees_dir.is_dir():
        for entry in sorted(worktrees_dir.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                candidates.setdefault(entry.resolve(), entry)
    for key in sorted(candidates):
        path = candidates[key]
        owner = owners.get(key)
        if owner is not None and owner.state not in TERMINAL:
            report.kept += 1
            continue
        item: dict[str, Any] = {
            "path": str(path),
            "task": owner.id if owner else None,
            "why": f"task {owner.id} is {owner.state.value}" if owner else "orphaned",
        }
        if not path.exists():
            report.removed.append(item)
            continue
        try:
            if not any(_same(i.path, path) for i in registered):
                if any(path.iterdir()):
                    report.skipped.append({**item, "reason": "not a git worktree and not empty; left alone"})
                    continue
                if not dry_run:
                    path.rmdir()
                report.removed.append(item)
                continue
            files = git.dirty_files(path)
            if files:
                report.dirty.append({**item, "files": files[:20], "count": len(files)})
                continue
            ignored = git.ignored_files(path)
            if ignored and not force:
                report.ignored.append({**item, "files": ignored[:20], "count": len(ignored)})
                continue
            if ignored:
                item["ignored_files"] = ignored[:20]
            if not dry_run:
                git.remove_worktree(root, path)
            report.removed.append(item)
        except RefusedError as exc:
            raw = exc.details.get("files")
            files = [str(f) for f in raw] if isinstance(raw, list) else []
            if files:
                report.dirty.append({**item, "files": files[:20], "count": len(files)})
            else:
                report.skipped.append({**item, "reason": exc.message})
        except (CockpitError, OSError) as exc:
            report.skipped.append({**item, "reason": getattr(exc, "message", str(exc))})
    return report
