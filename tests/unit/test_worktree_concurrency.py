"""Worktree administration in one repo is serialised, so parallel task starts never trip over each other."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cockpit.core import git


def test_parallel_worktree_adds_in_one_repo_all_succeed(repo: Path) -> None:
    paths = [repo / ".cockpit" / "worktrees" / f"task-{i}" for i in range(8)]

    def add(i: int) -> str:
        return git.create_worktree(repo, paths[i], f"cockpit/task-{i}", "main")

    with ThreadPoolExecutor(max_workers=8) as pool:
        bases = list(pool.map(add, range(8)))

    assert len(set(bases)) == 1
    listed = {w.path.resolve() for w in git.list_worktrees(repo)}
    assert all(p.resolve() in listed for p in paths)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda p: git.remove_worktree(repo, p), paths))
    assert not any(p.exists() for p in paths)
