"""The hook: the repo found from a task worktree, signals from the environment and Claude Code's payload."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cockpit.core.models import Task
from cockpit.core.paths import RepoPaths
from cockpit.core.signals import read_signals
from cockpit.core.worktrees import materialize, plan_worktree
from cockpit.hook import locate, record


def test_repo_is_found_from_inside_a_task_worktree(repo: Path) -> None:
    paths = RepoPaths(repo)
    task = Task(id=3, title="Do it", description="Do it")
    plan = plan_worktree(repo, paths.worktrees, task)
    materialize(repo, plan, "main")
    (plan.path / "deep" / "er").mkdir(parents=True)


    assert RepoPaths.find(plan.path / "deep" / "er").root == repo.resolve()
    assert locate(None, None, env={}, cwd=plan.path / "deep") == (repo.resolve() / ".cockpit/signals", 3)


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
