"""Build tasks in a given state for tests, without the classifier or the execution engine.

`reviewable_task` makes a task in awaiting_review the way the execution layer would leave it: a worktree on
its own branch (`cockpit.core.git.create_worktree`), a commit in it, and the events task.created ->
task.classified -> task.approved -> task.executing -> agent.exited -> task.gating -> task.awaiting_review
appended straight to the store. `make_reviewable_task` does the same from synchronous code (daemon and CLI
tests), opening the store itself; a running daemon picks the events up like any other writer's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

from cockpit.core import git as cg
from cockpit.core.config import write_default
from cockpit.core.excludes import ensure_excluded
from cockpit.core.models import Task
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.gitrepos import git


def init_cockpit(root: Path, *, config: str | None = None, backend: str = "claude") -> RepoPaths:
    """What `cockpit init` does, callable from async tests: `.cockpit/` (excluded from git) and its config.

    `config`, when given, replaces the default config.toml (written for `backend` otherwise).
    """
    paths = RepoPaths(root)
    for d in (paths.cockpit, paths.plans, paths.worktrees, paths.logs, paths.signals):
        d.mkdir(parents=True, exist_ok=True)
    ensure_excluded(root)
    if config is not None:
        paths.config.write_text(config)
    else:
        write_default(paths.config, backend=backend)
    return paths


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:30] or "task"


def commit_files(checkout: Path, files: dict[str, str | None], message: str = "change") -> str:
    """Write (or, for None, delete) files in `checkout` and commit them; return the new HEAD."""
    for name, content in files.items():
        path = checkout / name
        if content is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    git(checkout, "add", "-A")
    git(checkout, "commit", "-q", "-m", message)
    return git(checkout, "rev-parse", "HEAD")


async def reviewable_task(
    store: Store, paths: RepoPaths, files: dict[str, str | None] | list[dict[str, str | None]], *,
    title: str = "demo change", base: str = "main", prepare: Callable[[Path], None] | None = None,
) -> Task:
    """A task in awaiting_review whose worktree branch has one commit per dict in `files`.

    `prepare(worktree)` runs after those commits and before the gates are recorded as passed (for commits
    `commit_files` cannot make). The branch's tip then is the gated commit (`gated_sha`).
    """
    async with store.tx() as tx:
        task_id = await tx.next_task_id()
        await tx.append(task_id, "task.created", {"description": title, "title": title, "by": "test"})
    name = f"task-{task_id}-{slug(title)}"
    branch = f"cockpit/{name}"
    worktree = paths.worktrees / name
    base_sha = await asyncio.to_thread(cg.create_worktree, paths.root, worktree, branch, base)
    commits = files if isinstance(files, list) else [files]
    subject = title.replace("\0", " ")  # a title recorded by an older version may hold a NUL; argv cannot
    for i, change in enumerate(commits, 1):
        await asyncio.to_thread(commit_files, worktree, change, f"task {task_id}: {subject} ({i})")
    if prepare is not None:
        await asyncio.to_thread(prepare, worktree)
    gated = await asyncio.to_thread(cg.head_sha, worktree)
    events: list[tuple[str, dict[str, object]]] = [
        ("task.classified", {"state": "pending", "scope": "small", "reason": "test task", "title": title,
                             "plan": [{"n": 1, "verb": "modify", "description": title}],
                             "classifier": "test"}),
        ("task.approved", {"by": "test"}),
        ("task.executing", {"branch": branch, "worktree": str(worktree), "base_sha": base_sha, "attempt": 1}),
        ("agent.exited", {}),
        ("task.gating", {}),
        ("task.awaiting_review", {"attempt": 1, "gated_sha": gated}),
    ]
    async with store.tx() as tx:
        for type_, data in events:
            await tx.append(task_id, type_, data)
    return await store.get_task(task_id)


def make_reviewable_task(
    root: Path, files: dict[str, str | None] | list[dict[str, str | None]], *, title: str = "demo change",
    base: str = "main", prepare: Callable[[Path], None] | None = None,
) -> Task:
    """`reviewable_task` from synchronous code: opens (and closes) the repo's store."""

    async def run() -> Task:
        paths = RepoPaths(root)
        store = await Store.open(paths.db)
        try:
            return await reviewable_task(store, paths, files, title=title, base=base, prepare=prepare)
        finally:
            await store.close()

    return asyncio.run(run())


def make_executing_task(root: Path, title: str) -> Task:
    """A task of `root` recorded as executing (approved, its run started), with no agent pane behind it.

    For tests that need a parent that may delegate (only an executing task can) without running an agent.
    Make it after the repo's daemon started: a starting daemon sweeps an executing task with no pane.
    """

    async def run() -> Task:
        store = await Store.open(RepoPaths(root).db)
        try:
            async with store.tx() as tx:
                task_id = await tx.next_task_id()
                await tx.append(task_id, "task.created", {"description": title, "title": title, "by": "test"})
                await tx.append(task_id, "task.classified", {
                    "state": "pending", "scope": "large", "reason": "test task", "title": title,
                    "plan": [{"n": 1, "verb": "modify", "description": title}], "classifier": "test"})
                await tx.append(task_id, "task.approved", {"by": "test"})
                await tx.append(task_id, "task.executing", {"attempt": 1, "agent": "test"})
            return await store.get_task(task_id)
        finally:
            await store.close()

    return asyncio.run(run())


def store_executing(root: Path, task_id: int) -> Task:
    """Record a classified task of `root` as approved and executing, with no agent pane behind it."""

    async def run() -> Task:
        store = await Store.open(RepoPaths(root).db)
        try:
            async with store.tx() as tx:
                await tx.append(task_id, "task.approved", {"by": "test"})
                await tx.append(task_id, "task.executing", {"attempt": 1, "agent": "test"})
            return await store.get_task(task_id)
        finally:
            await store.close()

    return asyncio.run(run())
