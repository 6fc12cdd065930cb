"""Small pieces of the execution layer that need no daemon: names, discovery from a worktree, hooks, logs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cockpit.core.execution_ops import clean_output, log_tail
from cockpit.core.models import Task
from cockpit.core.paths import RepoPaths
from cockpit.core.signals import read_signals
from cockpit.core.worktrees import materialize, plan_worktree, slugify
from cockpit.daemon.execution import pane_command
from cockpit.hook import locate, record
from cockpit_testkit.gitrepos import git
from cockpit_testkit.waiting import wait_until


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Add a greeting module in src/hello.py", "add-a-greeting-module-in-src-hello-py"),
        ("  Ünïcode — and PUNCTUATION!!  ", "unicode-and-punctuation"),
        ("???", "task"),
        ("x" * 60, "x" * 40),
        ("a" * 39 + " b", "a" * 39),
    ],
)
def test_slugs_are_lowercase_ascii_dashes_at_most_40(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_repo_is_found_from_inside_a_task_worktree(repo: Path) -> None:
    paths = RepoPaths(repo)
    task = Task(id=3, title="Do it", description="Do it")
    plan = plan_worktree(repo, paths.worktrees, task)
    materialize(repo, plan, "main")
    (plan.path / "deep" / "er").mkdir(parents=True)

    assert RepoPaths.find(plan.path / "deep" / "er").root == repo.resolve()
    assert locate(None, None, env={}, cwd=plan.path / "deep") == (repo.resolve() / ".cockpit/signals", 3)


def test_plans_reuse_the_worktree_and_pick_a_suffix_when_fresh(repo: Path) -> None:
    paths = RepoPaths(repo)
    task = Task(id=5, title="Same name", description="Same name")
    first = plan_worktree(repo, paths.worktrees, task)
    base = materialize(repo, first, "main")
    assert base == git(repo, "rev-parse", "main") and first.branch == "cockpit/task-5-same-name"

    again = plan_worktree(
        repo,
        paths.worktrees,
        Task(
            id=5,
            title="Same name",
            description="x",
            branch=first.branch,
            worktree=str(first.path),
            base_sha=base,
        ),
    )
    assert again.reuse and again.path == first.path and again.base_sha == base

    fresh = plan_worktree(repo, paths.worktrees, task)
    assert fresh.path.name == "task-5-same-name-2" and fresh.branch == "cockpit/task-5-same-name-2"

    # The directory is gone (a merge removed it) but the branch is kept: re-created from the branch.
    git(repo, "worktree", "remove", str(first.path))
    back = plan_worktree(
        repo,
        paths.worktrees,
        Task(id=5, title="Same name", description="x", branch=first.branch, worktree=None, base_sha=base),
    )
    assert not back.reuse and back.existing_branch and back.path == first.path
    assert materialize(repo, back, "main") == base and (first.path / "README.md").exists()


def test_hook_writes_a_signal_from_env_and_says_so_without_a_task(tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    env = {"COCKPIT_SIGNALS": str(signals), "COCKPIT_TASK_ID": "7"}
    assert locate(None, None, env=env) == (signals, 7)

    out = subprocess.run(
        [sys.executable, "-m", "cockpit.hook", "needs-input", "--message", "allow Bash?"],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    [signal] = read_signals(signals)
    assert (signal.task_id, signal.kind) == (7, "needs_input")
    assert signal.data == {"source": "hook", "message": "allow Bash?"}

    nothing = subprocess.run(
        [sys.executable, "-m", "cockpit.hook", "resolved", "--repo", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert nothing.returncode != 0 or "nothing recorded" in nothing.stderr


def test_hook_reads_claude_code_payload_on_stdin(tmp_path: Path, repo: Path) -> None:
    payload = json.dumps(
        {"hook_event_name": "Notification", "message": "Claude needs your permission to use Bash"}
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cockpit",
            "hook",
            "needs-input",
            "--task",
            "2",
            "--stdin",
            "--repo",
            str(repo),
        ],
        input=payload,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    [signal] = read_signals(repo / ".cockpit" / "signals")
    assert signal.data["message"] == "Claude needs your permission to use Bash"
    path, task = record("resolved", repo=str(repo), task=2)
    assert path is not None and task == 2


def test_log_tail_cleans_terminal_output_and_reports_the_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "task-1.log"
    log.write_bytes(b"\x1b[1mbold\x1b[0m line\r\nprogress 10%\rprogress 100%\nprompt [y/n]: ")
    lines, size, complete, partial = log_tail(log, 10)
    assert lines == ["bold line", "progress 100%", "prompt [y/n]:"]
    assert size == log.stat().st_size and complete == size - len(b"prompt [y/n]: ") and partial
    assert clean_output("a\x07b") == ["ab"]
    assert log_tail(tmp_path / "none.log", 5) == ([], 0, 0, False)


def _hang_up(line: str) -> int:
    """Run a pane command line, hang it up as a killed window does, and return its exit status."""
    proc = subprocess.Popen(["/bin/sh", "-c", line])
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        child = int(wait_until(lambda: children.read_text().split(), message="the agent started")[0])
        # Until it has exec'd, the child is still the shell with its trap: wait for the agent proper.
        wait_until(
            lambda: Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep"),
            message="the agent exec'd",
        )
        # A killed window hangs up the shell and the agent alike; the trap runs once the agent is gone.
        os.kill(proc.pid, signal.SIGHUP)
        os.kill(child, signal.SIGHUP)
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pane_command_reports_a_closed_pane(tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()

    assert _hang_up(pane_command("sleep 30", signals, 4, 1)) == 129

    [sig] = read_signals(signals)
    assert sig.kind == "exited" and sig.data["closed"] is True and sig.task_id == 4


def test_a_closed_pane_does_not_recreate_a_deleted_repo(tmp_path: Path) -> None:
    signals = tmp_path / "gone" / ".cockpit" / "signals"

    assert _hang_up(pane_command("sleep 30", signals, 4, 1)) == 129

    assert not (tmp_path / "gone").exists()
