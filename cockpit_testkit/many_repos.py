"""A workspace of many real repos, their stores seeded with tasks and their daemons running: the benchmarks'
ground (and a scale test's).

Tasks are seeded by appending events straight to each store in one transaction (the projection folds them
as it would any writer's), in a mix of states a daemon leaves alone on start: pending, pending
clarification, rejected, cancelled, awaiting review, done and failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core import daemonctl
from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.workspaces import build_workspace

WORDS = ("export", "pagination", "rate limit", "CSV output", "currency", "login page", "search index",
         "cache", "retry policy", "audit log", "dark mode", "webhooks", "report totals", "API docs")
VERBS = ("Add", "Fix", "Speed up", "Document", "Refactor", "Test")


@dataclass
class ManyRepos:
    root: Path
    repos: dict[str, Path]
    tmux_socket: str = ""

    def start(self) -> None:
        with ThreadPoolExecutor(min(16, len(self.repos))) as pool:
            list(pool.map(lambda root: daemonctl.start(RepoPaths(root)), self.repos.values()))

    def stop(self) -> None:
        def stop_one(root: Path) -> None:
            with contextlib.suppress(CockpitError):
                daemonctl.stop(RepoPaths(root))

        with ThreadPoolExecutor(min(16, len(self.repos))) as pool:
            list(pool.map(stop_one, self.repos.values()))

    def remove(self) -> None:
        self.stop()
        if self.tmux_socket:  # the agents' panes (a daemon's stop leaves them running)
            subprocess.run(["tmux", "-L", self.tmux_socket, "kill-server"], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _events(task_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The events of one seeded task; its final state cycles with its id."""
    what = WORDS[task_id % len(WORDS)]
    title = f"{VERBS[task_id % len(VERBS)]} the {what} ({task_id})"
    plan = [{"n": 1, "verb": "modify", "description": title}]
    kind = task_id % 10
    scope = "ambiguous" if kind == 4 else ("large" if kind % 3 == 0 else "small")
    state = "pending_clarification" if kind == 4 else "pending"
    events: list[tuple[str, dict[str, Any]]] = [
        ("task.created", {"description": title, "title": title, "by": "bench"}),
        ("task.classified", {"state": state, "scope": scope, "reason": "seeded", "title": title, "plan": plan,
                             "questions": ["Which part?"] if kind == 4 else [], "classifier": "bench"}),
    ]
    branch = f"cockpit/task-{task_id}-seeded"
    ran: list[tuple[str, dict[str, Any]]] = [("task.approved", {"by": "bench"}),
           ("task.executing", {"branch": branch, "worktree": None, "base_sha": "0" * 40, "attempt": 1}),
           ("agent.exited", {})]
    if kind == 5:
        events.append(("task.rejected", {"by": "bench", "reason": "seeded"}))
    elif kind == 6:
        events.append(("task.cancelled", {"by": "bench"}))
    elif kind == 7:
        events += [*ran, ("task.gating", {}), ("task.awaiting_review", {})]
    elif kind == 8:
        events += [*ran, ("task.gating", {}), ("task.awaiting_review", {}),
                   ("merge.started", {"target": "main", "merge_sha": "1" * 40, "rollback_sha": "0" * 40}),
                   ("merge.finished", {"target": "main", "merge_sha": "1" * 40, "rollback_sha": "0" * 40})]
    elif kind == 9:
        events += [*ran, ("task.failed", {"reason": "seeded failure"})]
    return events


async def seed_store(root: Path, count: int) -> None:
    store = await Store.open(RepoPaths(root).db)
    try:
        async with store.tx() as tx:
            first = await tx.next_task_id()
            for task_id in range(first, first + count):
                for type_, data in _events(task_id):
                    await tx.append(task_id, type_, data)
    finally:
        await store.close()


def build(count: int, *, tasks_per_repo: int = 0, base: Path | None = None) -> ManyRepos:
    """`count` repos (repo01...) in one workspace, each with `tasks_per_repo` seeded tasks; not started."""
    root = Path(tempfile.mkdtemp(prefix="ck-bench-", dir=base))
    names = [f"repo{i:02d}" for i in range(1, count + 1)]
    socket = f"ck-bench-{root.name[-8:]}"
    repos = build_workspace(root, names, settings={"agent.backend": "script", "tmux.socket_name": socket})
    if tasks_per_repo:
        async def seed_all() -> None:
            await asyncio.gather(*(seed_store(path, tasks_per_repo) for path in repos.values()))

        asyncio.run(seed_all())
    return ManyRepos(root, repos, socket)
