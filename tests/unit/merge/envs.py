"""What the recording layer's tests share: a repo with a real Store (`Env`), checks of what a merge left."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core import git as cg
from cockpit.core.config import Settings
from cockpit.core.merge.context import MergeContext, MergeOutcome, RollbackOutcome
from cockpit.core.merge.orchestrator import merge_task
from cockpit.core.merge.rollback import rollback_task
from cockpit.core.models import Task
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import reviewable_task


@dataclass
class Env:
    root: Path
    paths: RepoPaths
    store: Store
    settings: Settings

    def ctx(self) -> MergeContext:
        return MergeContext(self.store, self.paths, self.settings)

    async def task(self, files: dict[str, str | None] | list[dict[str, str | None]],
                   title: str = "demo change") -> Task:
        return await reviewable_task(self.store, self.paths, files, title=title)

    def tip(self, branch: str = "main") -> str | None:
        return cg.ref_sha(self.root, branch)

    async def types(self, task_id: int) -> list[str]:
        return [e.type for e in await self.store.task_events(task_id)]

    async def merge(self, task_id: int, **kw: Any) -> MergeOutcome:
        return await merge_task(self.ctx(), task_id, **kw)

    async def rollback(self, task_id: int) -> RollbackOutcome:
        return await rollback_task(self.ctx(), task_id)

    def worktrees(self) -> list[Path]:
        return [w.path for w in cg.list_worktrees(self.root)]


def present(path: str | Path | None) -> bool:
    return path is not None and Path(path).exists()


def scratch_left(env: Env) -> list[Path]:
    scratch = env.ctx().scratch
    return list(scratch.iterdir()) if scratch.is_dir() else []


def expected_tree(repo: Path, base: str, add_from: str, name: str) -> str:
    """The tree of `base` plus the file `name` as it is in commit `add_from` (built in a private index)."""
    index = repo / ".cockpit" / "expected.index"
    run_env = {**os.environ, "GIT_INDEX_FILE": str(index)}

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, env=run_env, check=True, capture_output=True,
                              text=True).stdout.strip()

    run("read-tree", base)
    run("update-index", "--add", "--cacheinfo", f"100644,{run('rev-parse', f'{add_from}:{name}')},{name}")
    written = run("write-tree")
    index.unlink()
    return written


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another process holding the merge lock until its stdin closes."""
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder




def tree(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}")
