"""Execution end to end: real daemons, real worktrees, the script agent in panes of a private tmux server.

No sleeps: every wait is `cockpit task wait` (server-side) or a condition checked until it holds.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.tmux import tmux_available
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.exec_support import (
    ASK_SCRIPT,
    add_gates,
    approve,
    commit_script,
    create,
    events,
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


def test_script_agent_runs_end_to_end(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    paths = setup_repo(repo, tmux_socket)
    daemons(repo)
    task_id = create(repo, "Add a greeting module in src/hello.py", commit_script("src/hello.py"))

    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")

    assert task["state"] == "awaiting_review", task["failure"]
    assert task["branch"] == f"cockpit/task-{task_id}-add-a-greeting-module-in-src-hello-py"
    worktree = Path(task["worktree"])
    assert worktree == paths.worktrees / f"task-{task_id}-add-a-greeting-module-in-src-hello-py"
    assert (worktree / "src/hello.py").read_text() == "src/hello.py\n"
    assert git(repo, "log", "--format=%s", f"main..{task['branch']}") == "add src/hello.py"
    assert task["base_sha"] == git(repo, "rev-parse", "main")
    assert task["pane"] == f"cockpit-{repo.name}:task-{task_id}"
    assert task["agent"] == "script" and task["attempt"] == 1 and task["agent_status"] == "exited"
    assert [(g["name"], g["status"]) for g in task["gates"]] == [
        ("has-commits", "passed"),
        ("clean-tree", "passed"),
        ("tdd", "passed"),
    ]
    assert all(isinstance(g["duration_s"], float) and g["log_tail"] for g in task["gates"])
    seen = types(repo, task_id)
    for before, after in [
        ("task.approved", "task.executing"),
        ("task.executing", "task.pane"),
        ("task.pane", "agent.exited"),
        ("agent.exited", "task.gating"),
        ("task.gating", "task.awaiting_review"),
    ]:
        assert seen.index(before) < seen.index(after), seen
    progress = [e["data"]["text"] for e in events(repo, task_id) if e["type"] == "agent.progress"]
    assert progress == ["[1/2] write src/hello.py", "[2/2] commit add src/hello.py"]
    log = paths.task_log(task_id).read_text()
    assert "[step 2/2] commit add src/hello.py" in log and "script agent done" in log
    assert "gate has-commits" in paths.gate_log(task_id).read_text()
    tail = cli("task", "tail", str(task_id), "-n", "3", repo=repo)
    assert tail.code == 0 and "script agent done: 2 steps" in tail.stdout
    # The agent's pane stays (remain-on-exit) for reading, dead with its status.
    pane = panes(paths, tmux_socket).find_pane(f"task-{task_id}")
    assert pane is not None and panes(paths, tmux_socket).exit_status(pane) == 0
    assert git(repo, "status", "--porcelain") == "", "the main checkout is untouched"


def test_ask_sets_needs_input_and_send_answers_it(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    setup_repo(repo, tmux_socket)
    daemons(repo)
    task_id = create(repo, "Ask before writing the answer file", ASK_SCRIPT)
    approve(repo, task_id)

    task = wait_flag(repo, task_id, True)
    assert task["state"] == "executing" and task["agent_status"] == "needs_input"
    follower = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "task", "tail", str(task_id), "--follow", "--repo", str(repo)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        sent = cli_json("task", "send", str(task_id), "y", repo=repo)
        assert sent["sent"] is True and sent["task"]["needs_input"] is False

        done = wait(repo, task_id, "awaiting_review", "failed")
        out, _ = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert done["state"] == "awaiting_review", done["failure"]
    assert done["needs_input"] is False
    assert "script agent done" in out, "tail --follow prints the rest and ends when the task settles"
    flags = [e for e in events(repo, task_id) if e["type"] in ("agent.needs_input", "agent.input_resolved")]
    assert flags[0]["type"] == "agent.needs_input" and flags[1]["type"] == "agent.input_resolved"
    assert sum(e["type"] == "agent.needs_input" for e in flags) == 1, "signal and screen raise the flag once"


def test_hook_entry_point_sets_and_clears_the_flag_even_with_the_daemon_down(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    # A custom agent that just waits for a line: only the hook can say it needs input.
    setup_repo(
        repo,
        tmux_socket,
        **{
            "agent.backend": "custom",
            "agent.command": 'bash -c \'read -r answer; echo "$answer" > answer.txt; git add -A; '
            "git commit -qm answer'",
        },
    )
    daemons(repo)
    task_id = create(repo, "Wait for an answer from a person")
    approve(repo, task_id)
    task = wait(repo, task_id, "executing")
    worktree = Path(task["worktree"])
    wait_until(lambda: show(repo, task_id)["pane"], message="pane recorded")

    # From inside the worktree, as an agent's hook runs: the repo is found from the cwd.
    hook = cli("hook", "needs-input", "--task", str(task_id), "--message", "permission?", cwd=worktree)
    assert hook.code == 0, hook.stderr
    flagged = wait_flag(repo, task_id, True)
    assert flagged["agent_status"] == "needs_input"
    raised = [e for e in events(repo, task_id) if e["type"] == "agent.needs_input"][-1]
    assert raised["data"]["source"] == "hook" and raised["data"]["message"] == "permission?"

    assert cli("daemon", "stop", repo=repo).code == 0
    # With the daemon down the hook still works: it only writes a signal file (env as set in the pane).
    hook = cli("hook", "resolved", cwd=worktree, env={"COCKPIT_TASK_ID": str(task_id)})
    assert hook.code == 0, hook.stderr
    assert show(repo, task_id)["needs_input"] is True
    daemons(repo)
    cleared = wait_flag(repo, task_id, False)
    assert cleared["state"] == "executing", "the live pane was re-adopted"

    cli_json("task", "send", str(task_id), "fine", repo=repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]
    assert (Path(done["worktree"]) / "answer.txt").read_text() == "fine\n"


def test_no_more_than_max_parallel_tasks_run_at_once(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    setup_repo(repo, tmux_socket, **{"task.max_parallel": "2"})
    daemons(repo)
    # Each agent holds its slot until the test releases it: the overlap is certain, not a matter of timing.
    # (In the repo's git directory: the agents' sandbox lets them see it.)
    release = repo / ".git" / "cockpit-test-release"
    hold = f'[[step]]\nrun = "until [ -e {release} ]; do sleep 0.05; done"\n'
    ids = [create(repo, f"Add note file number {n} to the notes folder",
                  hold + commit_script(f"notes/{n}.txt")) for n in range(4)]

    for task_id in ids:
        approve(repo, task_id)

    def states() -> dict[int, str]:
        return {t["id"]: t["state"] for t in cli_json("task", "list", "--all", repo=repo)["tasks"]}

    def holding() -> bool:
        progressed = {e["task_id"] for e in events(repo) if e["type"] == "agent.progress"}
        held = progressed == set(ids[:2])  # both agents are at their first step, none of the others
        return held and states() == {ids[0]: "executing", ids[1]: "executing",
                                     ids[2]: "approved", ids[3]: "approved"}

    wait_until(holding, timeout=60, message="the two oldest tasks should run and the others wait their turn")
    release.touch()
    for task_id in ids:
        assert wait(repo, task_id, "awaiting_review", "failed")["state"] == "awaiting_review"

    running: set[int] = set()
    most = 0
    started: list[int] = []
    for event in events(repo):
        if event["type"] == "task.executing":
            running.add(event["task_id"])
            started.append(event["task_id"])
        elif event["type"] in ("task.awaiting_review", "task.failed", "task.interrupted"):
            running.discard(event["task_id"])
        most = max(most, len(running))
    assert most == 2
    assert started[:2] == ids[:2], "oldest first"


def test_fix_cycle_repairs_a_failing_gate(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    paths = setup_repo(repo, tmux_socket)
    add_gates(paths, [("fixed", "test -f fixed.txt", 30)])
    daemons(repo)
    script = commit_script("work.txt") + (
        '[[fix]]\nwrite = { path = "fixed.txt", content = "ok\\n" }\n[[fix]]\ncommit = "fix the gate"\n'
    )
    task_id = create(repo, "Do the work that the gate checks", script)

    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")

    assert task["state"] == "awaiting_review", task["failure"]
    assert task["attempt"] == 2
    assert git(repo, "log", "--format=%s", f"main..{task['branch']}").splitlines() == [
        "fix the gate",
        "add work.txt",
    ]
    evs = events(repo, task_id)
    failed_gate = next(e for e in evs if e["type"] == "gate.finished" and e["data"]["name"] == "fixed")
    assert failed_gate["data"]["status"] == "failed" and failed_gate["data"]["exit_code"] == 1
    fix = [e for e in evs if e["type"] == "task.executing" and e["data"].get("fix")]
    assert len(fix) == 1 and fix[0]["data"]["failed_gates"] == ["fixed"]
    prompt = Path(fix[0]["data"]["prompt_file"]).read_text()
    assert "Failed: fixed" in prompt and "root cause" in prompt and "test -f fixed.txt" in prompt
    assert [g["status"] for g in task["gates"]] == ["passed"] * 4


def test_fix_attempts_zero_fails_at_once(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    paths = setup_repo(repo, tmux_socket, **{"task.fix_attempts": "0"})
    add_gates(paths, [("fixed", "test -f fixed.txt", 30)])
    daemons(repo)
    task_id = create(repo, "Do the work without the fix", commit_script("work.txt"))

    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")

    assert task["state"] == "failed" and task["attempt"] == 1
    assert task["failure"].startswith("gates failed: fixed (exited with code 1)")


def test_gates_pass_fail_time_out_and_name_a_missing_command(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket, **{"task.fix_attempts": "0"})
    add_gates(
        paths,
        [
            ("ok", "echo fine", 30),
            ("broken", "echo nope; exit 3", 30),
            ("slow", "sleep 30", 0.5),
            ("missing", "no-such-tool-xyz --check", 30),
        ],
    )
    daemons(repo)
    task_id = create(repo, "Work that meets every kind of gate", commit_script("work.txt"))

    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")

    assert task["state"] == "failed"
    gates = {g["name"]: g for g in task["gates"]}
    assert gates["ok"]["status"] == "passed" and gates["ok"]["log_tail"] == ["fine"]
    assert gates["broken"]["status"] == "failed" and gates["broken"]["exit_code"] == 3
    assert gates["broken"]["log_tail"] == ["nope"]
    assert gates["slow"]["status"] == "failed" and "timed out" in gates["slow"]["reason"]
    assert gates["slow"]["duration_s"] < 10
    assert gates["missing"]["status"] == "failed" and gates["missing"]["exit_code"] == 127
    assert "no-such-tool-xyz" in gates["missing"]["reason"]
    for name in ("broken", "slow", "missing"):
        assert name in task["failure"]

    # Fix the configuration, then re-run the gates alone: the task goes to review without a new agent run.
    text = paths.config.read_text()
    paths.config.write_text(
        text[: text.index("\n[[gates]]")] + "\n" + '[[gates]]\nname = "ok"\ncommand = "true"\n'
    )
    rerun = cli("task", "gates", str(task_id), "--json", repo=repo)
    assert rerun.code == 0, rerun.stdout + rerun.stderr
    assert rerun.json["state"] == "awaiting_review" and rerun.json["attempt"] == 1
    assert [g["name"] for g in rerun.json["gates"]] == ["has-commits", "clean-tree", "tdd", "ok"]


def test_an_agent_that_is_not_installed_fails_the_task(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(
        repo,
        tmux_socket,
        **{"agent.backend": "custom", "agent.command": "no-such-agent-xyz --prompt {prompt_file}"},
    )
    daemons(repo)
    task_id = create(repo, "Run with an agent that is missing")

    approve(repo, task_id)
    task = wait(repo, task_id, "failed", "awaiting_review", timeout=20)

    assert task["state"] == "failed"
    assert "not installed" in task["failure"] and "no-such-agent-xyz" in task["failure"]
    assert task["worktree"] is None, "nothing is created for an agent that cannot run"


def test_an_agent_exiting_non_zero_fails_with_its_log_tail(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(repo, tmux_socket)
    daemons(repo)
    script = '[[step]]\nsay = "about to break"\n[[step]]\nrun = "echo boom-output; exit 4"\n'
    task_id = create(repo, "Run a command that breaks", script)

    approve(repo, task_id)
    task = wait(repo, task_id, "failed", "awaiting_review")

    assert task["state"] == "failed"
    assert task["failure"].startswith(
        "the agent exited with code 1: step 2/2: `echo boom-output; exit 4` exited"
    )
    assert "boom-output" in task["failure"], "the log tail is part of the failure"
    assert Path(task["worktree"]).is_dir(), "the worktree is kept"


def test_a_prompt_on_screen_sets_needs_input_by_pattern_and_output_becomes_progress(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    # An agent with no hooks and no signals: only its screen says it waits.
    agent = (
        "bash -c 'for i in 1 2 3 4 5; do echo working on part $i; done; "
        'printf "Overwrite answer.txt? [y/N] "; read -r a; echo "$a" > answer.txt; '
        "git add -A; git commit -qm answer; echo all done'"
    )
    setup_repo(repo, tmux_socket, **{"agent.backend": "custom", "agent.command": agent})
    daemons(repo)
    task_id = create(repo, "Overwrite the answer file when told to")
    approve(repo, task_id)

    flagged = wait_flag(repo, task_id, True)
    raised = [e for e in events(repo, task_id) if e["type"] == "agent.needs_input"]
    assert len(raised) == 1 and raised[0]["data"]["source"] == "pattern"
    assert "Overwrite answer.txt? [y/N]" in raised[0]["data"]["line"]
    assert flagged["agent_status"] == "needs_input"

    cli_json("task", "send", str(task_id), "y", repo=repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]
    assert (Path(done["worktree"]) / "answer.txt").read_text() == "y\n"
    progress = [e for e in events(repo, task_id) if e["type"] == "agent.progress"]
    assert progress and all(e["data"]["source"] == "screen" for e in progress)
    gaps = [b["ts"] - a["ts"] for a, b in itertools.pairwise(progress)]
    assert all(gap >= 0.9 for gap in gaps), f"rate-limited to one a second: {gaps}"


def test_an_agent_hook_in_the_pane_uses_the_fast_path(repo: Path, tmux_socket: str, daemons: Daemons) -> None:
    agent = (
        "bash -c 'echo asking; $COCKPIT_HOOK needs-input; read -r a; $COCKPIT_HOOK resolved; "
        'echo "$a" > answer.txt; git add -A; git commit -qm answer\''
    )
    setup_repo(repo, tmux_socket, **{"agent.backend": "custom", "agent.command": agent})
    daemons(repo)
    task_id = create(repo, "Ask through the agent hook")
    approve(repo, task_id)

    wait_flag(repo, task_id, True)
    raised = [e for e in events(repo, task_id) if e["type"] == "agent.needs_input"]
    assert raised[0]["data"]["source"] == "hook"
    attach = cli_json("task", "attach", str(task_id), "--print", repo=repo)
    assert attach["argv"][:3] == ["tmux", "-L", tmux_socket] and "attach-session" in attach["argv"]
    assert attach["alive"] is True

    cli_json("task", "send", str(task_id), "ok", "--no-enter", repo=repo)
    assert show(repo, task_id)["state"] == "executing"
    cli_json("task", "send", str(task_id), "", repo=repo)
    done = wait(repo, task_id, "awaiting_review", "failed")
    assert done["state"] == "awaiting_review", done["failure"]
    assert (Path(done["worktree"]) / "answer.txt").read_text() == "ok\n"
