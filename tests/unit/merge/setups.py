"""What the engine tests share: a repo with a task worktree (`Setup`), merging it, and a snapshot of all
a refused step must leave as it was."""

from __future__ import annotations

import json
from pathlib import Path

from cockpit.core import git as cg
from cockpit.core.merge.engine import PlannedMerge, build_merge_commit, move_target
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files

BRANCH = "cockpit/task-1-demo"
BASE_FILES = {"README.md": "# demo\n", "app.txt": "line 1\nline 2\nline 3\n"}




def parents(repo: Path, sha: str) -> list[str]:
    return git(repo, "rev-list", "--parents", "-n", "1", sha).split()[1:]


def tree_of(repo: Path, rev: str) -> str:
    return git(repo, "rev-parse", f"{rev}^{{tree}}")


def worktree_count(repo: Path) -> int:
    return len(cg.list_worktrees(repo))


class Setup:
    """A repo (main checked out in the main checkout) plus a task worktree on BRANCH."""

    def __init__(self, repo: Path, tmp: Path) -> None:
        self.repo = repo
        self.tmp = tmp
        self.wt = tmp / "wt" / "task-1"
        self.base = cg.create_worktree(repo, self.wt, BRANCH, "main")

    def work(self, files: dict[str, str | None], message: str = "task work") -> str:
        return commit_files(self.wt, files, message)

    def on_main(self, files: dict[str, str | None], message: str = "main moved") -> str:
        return commit_files(self.repo, files, message)

    def tip(self) -> str | None:
        return cg.ref_sha(self.repo, "main")


def merged(s: Setup, strategy: str = "merge") -> PlannedMerge:
    planned = build_merge_commit(s.repo, BRANCH, "main", strategy, f"Merge task 1 ({strategy})")
    move_target(s.repo, planned)
    return planned


def snapshot(repo: Path) -> dict[str, str]:
    """Everything a refused step must leave as it was: refs, HEAD, index, status, worktrees, files."""
    files = {
        str(path.relative_to(repo)): path.read_text()
        for path in sorted(repo.rglob("*"))
        if path.is_file() and ".git" not in path.relative_to(repo).parts
    }
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git(repo, "symbolic-ref", "HEAD") + " " + git(repo, "rev-parse", "HEAD"),
        "index": git(repo, "ls-files", "-s"),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "files": json.dumps(files, sort_keys=True),
    }
