"""`cockpit gc` never deletes ignored files in a collected worktree without saying so: it lists them and keeps
the worktree unless told `--force`. Real git repository and worktree."""

from __future__ import annotations

from pathlib import Path

from cockpit.core import git
from cockpit.core.worktrees import gc_worktrees
from cockpit_testkit.gitrepos import make_repo


def _orphan_with_ignored_file(tmp_path: Path) -> tuple[Path, Path, Path]:
    root = make_repo(tmp_path / "repo", {"README.md": "# r\n", ".gitignore": "*.env\n"})
    worktrees = root / ".cockpit" / "worktrees"
    worktrees.mkdir(parents=True)
    path = worktrees / "task-1-orphan"
    git.create_worktree(root, path, "cockpit/task-1-orphan", "main")
    secret = path / "secret.env"
    secret.write_text("TOKEN=keep-me\n")
    return root, worktrees, secret


def test_gc_lists_ignored_files_and_keeps_the_worktree(tmp_path: Path) -> None:
    root, worktrees, secret = _orphan_with_ignored_file(tmp_path)
    report = gc_worktrees(root, worktrees, [], dry_run=False).to_json()
    assert report["removed"] == []
    [kept] = report["ignored"]
    assert kept["files"] == ["secret.env"] and kept["count"] == 1
    assert secret.read_text() == "TOKEN=keep-me\n"


def test_gc_force_removes_it_and_says_what_went(tmp_path: Path) -> None:
    root, worktrees, secret = _orphan_with_ignored_file(tmp_path)
    report = gc_worktrees(root, worktrees, [], dry_run=False, force=True).to_json()
    [removed] = report["removed"]
    assert removed["ignored_files"] == ["secret.env"]
    assert not secret.exists()
