"""`cockpit gc`: worktrees of rejected/cancelled tasks and orphans go; uncommitted work never does."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.tmux import tmux_available
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.exec_support import approve, commit_script, create, setup_repo, show, wait
from cockpit_testkit.gitrepos import git

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

Daemons = Callable[[Path], dict[str, Any]]


def test_gc_removes_finished_and_orphaned_worktrees_but_never_uncommitted_work(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket, **{"task.fix_attempts": "0"})
    daemons(repo)
    clean_id = create(repo, "Commit a file and be cancelled later", commit_script("clean.txt"))
    dirty_id = create(
        repo,
        "Leave a file uncommitted and be cancelled",
        '[[step]]\nwrite = { path = "dirty.txt", content = "precious\\n" }\n',
    )
    kept_id = create(repo, "Commit a file and stay for review", commit_script("kept.txt"))
    for task_id in (clean_id, dirty_id, kept_id):
        approve(repo, task_id)
    assert wait(repo, clean_id, "awaiting_review")["state"] == "awaiting_review"
    assert wait(repo, dirty_id, "failed")["state"] == "failed"
    kept = wait(repo, kept_id, "awaiting_review")
    cli_json("task", "reject", str(clean_id), repo=repo)
    cli_json("task", "cancel", str(dirty_id), repo=repo)
    clean_wt, dirty_wt = Path(show(repo, clean_id)["worktree"]), Path(show(repo, dirty_id)["worktree"])
    orphan = paths.worktrees / "orphan-clean"
    git(repo, "worktree", "add", "-q", "-b", "orphan-clean", str(orphan), "main")
    dirty_orphan = paths.worktrees / "orphan-dirty"
    git(repo, "worktree", "add", "-q", "-b", "orphan-dirty", str(dirty_orphan), "main")
    (dirty_orphan / "work.txt").write_text("unsaved\n")
    stray = paths.worktrees / "not-a-worktree"
    stray.mkdir()
    (stray / "file").write_text("mine\n")

    dry = cli_json("gc", "--dry-run", repo=repo)
    assert {Path(i["path"]).name for i in dry["removed"]} == {clean_wt.name, orphan.name}
    assert clean_wt.is_dir() and orphan.is_dir(), "a dry run removes nothing"

    report = cli_json("gc", repo=repo)

    assert {Path(i["path"]).name for i in report["removed"]} == {clean_wt.name, orphan.name}
    assert not clean_wt.exists() and not orphan.exists()
    assert {Path(i["path"]).name for i in report["dirty"]} == {dirty_wt.name, dirty_orphan.name}
    assert (dirty_wt / "dirty.txt").read_text() == "precious\n"
    assert (dirty_orphan / "work.txt").read_text() == "unsaved\n"
    assert [Path(i["path"]).name for i in report["skipped"]] == ["not-a-worktree"]
    assert (stray / "file").exists()
    assert Path(kept["worktree"]).is_dir(), "a task awaiting review keeps its worktree"
    assert show(repo, clean_id)["worktree"] is None
    assert git(repo, "rev-parse", "--verify", "--quiet", "cockpit/" + clean_wt.name), "branches are kept"
    assert f"task-{clean_id}" in report["windows_closed"]
    human = cli("gc", repo=repo)
    assert human.code == 0 and "uncommitted" in human.stdout
