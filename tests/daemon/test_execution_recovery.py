"""Restart without loss: re-adoption after kill -9, panes lost while the daemon is down or up, retry."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.tmux import tmux_available
from cockpit_testkit.daemons import cli, cli_json, kill_daemon
from cockpit_testkit.exec_support import (
    ASK_SCRIPT,
    approve,
    create,
    panes,
    setup_repo,
    show,
    types,
    wait,
    wait_flag,
)
from cockpit_testkit.gitrepos import git
from cockpit_testkit.waiting import wait_until

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")

Daemons = Callable[[Path], dict[str, Any]]


def _waiting_task(repo: Path, daemons: Daemons, text: str = "Ask before writing the answer file") -> int:
    daemons(repo)
    task_id = create(repo, text, ASK_SCRIPT)
    approve(repo, task_id)
    wait_flag(repo, task_id, True)
    return task_id


def test_kill_9_then_restart_re_adopts_the_live_pane(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    setup_repo(repo, tmux_socket)
    task_id = _waiting_task(repo, daemons)
    pane_before = show(repo, task_id)["pane"]

    assert kill_daemon(repo) is not None
    daemons(repo)

    task = show(repo, task_id)
    assert task["state"] == "executing" and task["pane"] == pane_before, "re-adopted, state unchanged"
    cli_json("task", "send", str(task_id), "y", repo=repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]
    assert "task.interrupted" not in types(repo, task_id)


def test_an_agent_that_finished_while_the_daemon_was_down_is_gated_on_restart(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket)
    task_id = _waiting_task(repo, daemons)
    assert kill_daemon(repo) is not None

    # No daemon: the CLI types into the pane itself, and the agent finishes unobserved.
    sent = cli_json("task", "send", str(task_id), "y", repo=repo)
    assert sent["task"]["needs_input"] is False
    tmux = panes(paths, tmux_socket)
    pane = tmux.find_pane(f"task-{task_id}")
    assert pane is not None
    wait_until(lambda: not tmux.pane_alive(pane), timeout=30, message="the agent finishes")

    daemons(repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]
    exited = [t for t in types(repo, task_id) if t == "agent.exited"]
    assert len(exited) == 1


def test_a_pane_killed_while_the_daemon_is_down_interrupts_and_retry_finishes_it(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket)
    task_id = _waiting_task(repo, daemons)
    before = show(repo, task_id)
    assert cli("daemon", "stop", repo=repo).code == 0
    panes(paths, tmux_socket).kill_window(f"task-{task_id}")

    daemons(repo)
    task = wait(repo, task_id, "interrupted", timeout=20)
    assert task["worktree"] == before["worktree"] and Path(task["worktree"]).is_dir(), "worktree kept"
    assert git(repo, "rev-parse", "--verify", "--quiet", task["branch"]), "branch kept"

    retried = cli_json("task", "retry", str(task_id), repo=repo)
    assert retried["state"] in ("approved", "executing")
    wait_flag(repo, task_id, True)
    cli_json("task", "send", str(task_id), "y", repo=repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]
    assert done["worktree"] == before["worktree"] and done["branch"] == before["branch"], "same worktree"
    assert done["attempt"] == 2


def test_a_pane_closed_under_a_running_agent_interrupts_the_task(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket)
    task_id = _waiting_task(repo, daemons)

    panes(paths, tmux_socket).kill_window(f"task-{task_id}")

    task = wait(repo, task_id, "interrupted", "failed", timeout=20)
    assert task["state"] == "interrupted" and "closed" in task["failure"]
    assert Path(task["worktree"]).is_dir()


def test_retry_fresh_starts_a_new_worktree_from_the_target_tip(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(repo, tmux_socket, **{"task.fix_attempts": "0"})
    daemons(repo)
    task_id = create(
        repo,
        "Write a file but forget to commit it",
        '[[step]]\nwrite = { path = "loose.txt", content = "x\\n" }\n',
    )
    approve(repo, task_id)
    first = wait(repo, task_id, "failed", "awaiting_review")
    assert first["state"] == "failed" and "has-commits" in first["failure"]

    (repo / "later.txt").write_text("moved on\n")
    git(repo, "add", "later.txt")
    git(repo, "commit", "-qm", "target moves on")
    cli_json("task", "retry", str(task_id), "--fresh", repo=repo)
    second = wait(repo, task_id, "failed", "awaiting_review")

    assert second["worktree"] != first["worktree"] and second["worktree"].endswith("-2")
    assert second["branch"] == first["branch"] + "-2"
    assert second["base_sha"] == git(repo, "rev-parse", "main")
    assert second["attempt"] == 1
    assert (Path(first["worktree"]) / "loose.txt").exists(), "the old worktree is kept as it was"
    assert (Path(second["worktree"]) / "later.txt").exists()


def test_approved_tasks_left_by_a_stopped_daemon_start_when_it_comes_back(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(repo, tmux_socket)
    task_id = create(
        repo,
        "Approve this one while the daemon is down",
        '[[step]]\nwrite = { path = "a.txt", content = "a\\n" }\n[[step]]\ncommit = "a"\n',
    )
    approve(repo, task_id)  # no daemon: recorded in the store only
    assert show(repo, task_id)["state"] == "approved"

    daemons(repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]


def test_tmux_server_gone_interrupts_on_restart(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    setup_repo(repo, tmux_socket)
    task_id = _waiting_task(repo, daemons)
    assert kill_daemon(repo) is not None
    subprocess.run(["tmux", "-L", tmux_socket, "kill-server"], check=False, capture_output=True)

    daemons(repo)
    task = wait(repo, task_id, "interrupted", timeout=20)
    assert Path(task["worktree"]).is_dir()
