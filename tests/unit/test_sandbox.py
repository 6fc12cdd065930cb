"""The agent's sandbox, end to end: a script agent in a real pane tries what a hostile agent would.

With `[agent] sandbox = "bwrap"` it cannot read the person's token, write another task's worktree or the
repo's `.cockpit/`, or move `main` or another task's branch, and its own work still reaches review. With
`"none"` the same attempts succeed: that is what the docs say the gate does not cover.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import principals, sandbox
from cockpit.core.tmux import tmux_available
from cockpit_testkit.daemons import cli_json
from cockpit_testkit.exec_support import approve, commit_script, create, events, setup_repo, wait
from cockpit_testkit.gitrepos import git

pytestmark = [
    pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed"),
]

Daemons = Callable[[Path], dict[str, Any]]


def attack_script(attempts: dict[str, str]) -> str:
    """Each attempt runs in bash; its name lands in `worked.txt` or `refused.txt` in the worktree."""
    steps = [
        f"[[step]]\nrun = '''({command}) >/dev/null 2>&1 && echo {name} >> worked.txt || echo {name} >> "
        f"refused.txt'''\n"
        for name, command in attempts.items()
    ]
    return "".join(steps) + '[[step]]\nrun = "touch worked.txt refused.txt"\n[[step]]\ncommit = "report"\n'


@pytest.mark.parametrize("mode", ["bwrap", "none"])
def test_a_hostile_agent_is_held_by_the_sandbox(repo: Path, tmux_socket: str, daemons: Daemons,
                                                mode: str) -> None:
    paths = setup_repo(repo, tmux_socket, **{"agent.sandbox": mode})
    daemons(repo)
    first = create(repo, "Add a greeting module in src/hello.py", commit_script("src/hello.py"))
    approve(repo, first)
    other = wait(repo, first, "awaiting_review", "failed")
    assert other["state"] == "awaiting_review", other["failure"]
    main_before = git(repo, "rev-parse", "main")
    other_before = git(repo, "rev-parse", other["branch"])
    token = principals.token_path()
    assert principals.read_token(token)
    # A person on another machine trusted this one: their token is hidden as this machine's own is.
    trusted, _ = principals.accept_token("f" * 64, "me@laptop")
    attempts = {
        "read-token": f"test -s {token} && grep -q . {token}",
        "read-trusted-token": f"grep -q ffff {trusted}",
        "move-main": "git update-ref refs/heads/main HEAD",
        "move-other-branch": f"git update-ref refs/heads/{other['branch']} HEAD",
        "write-other-worktree": f"echo evil > {other['worktree']}/evil.txt",
        "write-cockpit-config": f"echo '# evil' >> {paths.config}",
        "write-cockpit-dir": f"touch {paths.cockpit}/evil",
        "write-git-config": f"git config --file {repo}/.git/config core.hooksPath /tmp",
        "reach-tmux": f"tmux -L {tmux_socket} list-sessions",
    }
    task_id = create(repo, "Report what the agent could reach", attack_script(attempts))
    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    worktree = Path(task["worktree"])
    worked = set((worktree / "worked.txt").read_text().split())
    refused = set((worktree / "refused.txt").read_text().split())
    pane = [e for e in events(repo, task_id) if e["type"] == "task.pane"][-1]
    if mode == "bwrap":
        assert pane["data"]["sandbox"] == "bwrap"
        assert worked == set() and refused == set(attempts)
        assert git(repo, "rev-parse", "main") == main_before
        assert git(repo, "rev-parse", other["branch"]) == other_before
        assert not (Path(other["worktree"]) / "evil.txt").exists()
        assert "# evil" not in paths.config.read_text() and not (paths.cockpit / "evil").exists()
        # Its own branch moved: the agent's commit is on it and reaches review.
        assert git(repo, "log", "--format=%s", "-1", task["branch"]) == "report"
    else:
        assert pane["data"]["sandbox"] == "none"
        assert {"read-token", "move-main", "write-other-worktree", "write-cockpit-config"} <= worked
        git(repo, "update-ref", "refs/heads/main", main_before)  # leave the repo as it was for teardown


def test_the_scripted_flow_under_bwrap_reaches_review_and_merges(repo: Path, tmux_socket: str,
                                                                  daemons: Daemons) -> None:
    setup_repo(repo, tmux_socket, **{"agent.sandbox": "bwrap"})
    daemons(repo)
    task_id = create(repo, "Add a greeting module in src/hello.py", commit_script("src/hello.py"))
    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    merged = cli_json("task", "merge", str(task_id), repo=repo)
    assert merged["task"]["state"] == "done", merged
    assert (repo / "src/hello.py").read_text() == "src/hello.py\n"


def test_an_agent_in_the_sandbox_reaches_its_daemon_though_its_pid_is_hidden(
        repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    """The daemon's pid is in no namespace the agent sees; the agent's tools still find the live daemon (a
    write straight into the store, their fallback, would fail: it is read-only there)."""
    setup_repo(repo, tmux_socket, **{"agent.sandbox": "bwrap"})
    info = daemons(repo)
    cockpit = f"{shlex.quote(sys.executable)} -m cockpit"
    attempts = {
        "see-daemon-pid": f"test -d /proc/{info['pid']}",
        "create-task": f"{cockpit} task create 'Write the follow-up release notes' --force --repo {repo}",
    }
    task_id = create(repo, "Report what the agent could reach", attack_script(attempts))
    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    worktree = Path(task["worktree"])
    assert (worktree / "worked.txt").read_text().split() == ["create-task"]
    assert (worktree / "refused.txt").read_text().split() == ["see-daemon-pid"]
    titles = [t["title"] for t in cli_json("task", "list", "--all", repo=repo)["tasks"]]
    assert "Write the follow-up release notes" in titles, titles


def test_bwrap_refused_clearly_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exception, match="bubblewrap is not installed"):
        sandbox.resolve("bwrap")
    assert sandbox.resolve("auto") == "none"
    assert sandbox.resolve("none") == "none"


def test_the_nesting_probe_tells_what_an_agents_own_bubblewrap_meets_inside(repo: Path) -> None:
    # Codex runs its own bubblewrap for each command: the probe must answer what cockpit's real sandbox does.
    worktree = repo.parent / "wt-nest"
    git(repo, "worktree", "add", "-q", "-b", "cockpit/nest", str(worktree))
    spec = sandbox.SandboxSpec(worktree=worktree, repo_root=repo, signals_dir=repo / ".cockpit" / "signals")
    spec.signals_dir.mkdir(parents=True)
    inner = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--unshare-user", "--unshare-net", "true"]
    ran = subprocess.run([*sandbox.bwrap_argv(spec), *inner], capture_output=True, text=True, check=False)
    assert sandbox.nests() is (ran.returncode == 0), ran.stderr
