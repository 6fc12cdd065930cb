"""Merging what was reviewed, end to end: a real daemon, the script agent in a private tmux server, the CLI.

A process the agent left behind commits after the gates passed: the merge refuses it, `cockpit task gates`
checks the new tip, and the merge (after a rebase, with the gates' `__pycache__/` still in the worktree) goes
through with exactly that commit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.tmux import tmux_available
from cockpit_testkit.daemons import cli
from cockpit_testkit.exec_support import add_gates, approve, commit_script, create, setup_repo, show, wait
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

Daemons = Callable[[Path], dict[str, Any]]


def test_a_commit_after_the_gates_is_refused_until_gated_and_artefacts_never_block(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket)
    add_gates(paths, [("compile", "python3 -m py_compile src/hello.py", 30)])
    daemons(repo)
    task_id = create(repo, "Add a greeting module in src/hello.py", commit_script("src/hello.py"))
    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    worktree = Path(task["worktree"])
    assert task["gated_sha"] == git(worktree, "rev-parse", "HEAD")
    assert "?? src/__pycache__/" in git(worktree, "status", "--porcelain")  # the gate's bytecode, untracked

    # A process the agent left behind commits once the gates have passed.
    (worktree / "late.txt").write_text("never reviewed\n")
    git(worktree, "add", "late.txt")
    git(worktree, "commit", "-q", "-m", "a leftover process")
    main_before = git(repo, "rev-parse", "main")
    refused = cli("task", "merge", str(task_id), repo=repo)
    assert refused.code == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "moved since its gates passed" in said and f"cockpit task gates {task_id}" in said
    assert git(repo, "rev-parse", "main") == main_before and not (repo / "late.txt").exists()

    # The gates again, on the new tip: the first run's bytecode is the gates' own, not the agent's.
    assert cli("task", "gates", str(task_id), repo=repo).code == 0
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    assert task["gated_sha"] == git(worktree, "rev-parse", "HEAD")
    assert {g["name"]: g["status"] for g in task["gates"]}["clean-tree"] == "passed"

    # main moves meanwhile: the rebase before the merge is not blocked by the untracked bytecode.
    moved = commit_files(repo, {"other.txt": "from main\n"}, "main moved")
    merged = cli("task", "merge", str(task_id), repo=repo)
    assert merged.code == 0, merged.stdout + merged.stderr
    done = show(repo, task_id)
    assert done["state"] == "done" and done["merge"]["rollback_sha"] == moved
    assert (repo / "late.txt").read_text() == "never reviewed\n" and (repo / "src" / "hello.py").exists()
