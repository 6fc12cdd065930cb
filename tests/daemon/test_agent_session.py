"""The agent's session through review: done reports, gates with the session open, fix and rework typed into
the same session, end of turn without done, stop and cancel. Real daemons, real panes on a private tmux
server, the script agent in session mode (it stays open like an interactive agent) and small fake agents.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.tmux import tmux_available
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.exec_support import (
    add_gates,
    approve,
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

SESSION_SCRIPT = """
session = true
[[step]]
write = { path = "a.txt", content = "a\\n" }
[[step]]
commit = "add a"
[[step]]
done = "a is committed"
[[rework]]
write = { path = "b.txt", content = "b\\n" }
[[rework]]
commit = "add b"
[[rework]]
done = "b is committed"
[[fix]]
write = { path = "fixed.txt", content = "fixed\\n" }
[[fix]]
commit = "fix the gate"
[[fix]]
done = "fixed"
"""


def pane_ids(repo: Path, task_id: int) -> list[str]:
    return [e["data"]["pane_id"] for e in events(repo, task_id) if e["type"] == "task.pane"]


def pane_alive(repo: Path, socket: str, task_id: int) -> bool:
    from cockpit.core.paths import RepoPaths

    tmux = panes(RepoPaths(repo), socket)
    pane = tmux.find_pane(f"task-{task_id}")
    return pane is not None and tmux.pane_alive(pane)


def test_done_keeps_the_session_through_review_and_rework_types_into_it(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(repo, tmux_socket)
    daemons(repo)
    task_id = create(repo, "Add the a file and keep the session", SESSION_SCRIPT)
    approve(repo, task_id)

    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    assert task["agent_status"] == "done" and task["last_message"] == "a is committed"
    assert pane_alive(repo, tmux_socket, task_id), "the session stays open through review"
    seen = types(repo, task_id)
    assert seen.index("agent.done") < seen.index("task.gating") < seen.index("task.awaiting_review")
    assert "agent.exited" not in seen

    reworked = cli_json("task", "rework", str(task_id), "--message", "please add b as well", repo=repo)
    assert reworked["state"] == "executing"
    def reviewed_again() -> dict[str, Any] | None:
        t = show(repo, task_id)
        return t if t["state"] == "awaiting_review" and t["attempt"] == 2 else None

    again = wait_until(reviewed_again, timeout=60, message="the rework reaches review again")
    assert again is not None
    assert again["last_message"] == "b is committed"
    assert git(repo, "log", "--format=%s", f"main..{again['branch']}").splitlines() == ["add b", "add a"]
    assert len(pane_ids(repo, task_id)) == 1, "the rework ran in the same session, no new pane"
    rework = [e for e in events(repo, task_id) if e["type"] == "task.rework_requested"]
    assert rework[0]["data"]["message"] == "please add b as well"
    executing = [e for e in events(repo, task_id) if e["type"] == "task.executing"][-1]
    assert executing["data"]["rework"] is True and executing["data"]["in_session"] is True

    # Reject ends the session: the agent's own exit (Ctrl-D for the script agent), then its window.
    assert cli("task", "reject", str(task_id), repo=repo).code == 0
    wait_until(lambda: not pane_alive(repo, tmux_socket, task_id), timeout=30, message="the session ended")


def test_a_failing_gate_types_the_fix_prompt_into_the_live_session(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    paths = setup_repo(repo, tmux_socket)
    add_gates(paths, [("fixed", "test -f fixed.txt", 30)])
    daemons(repo)
    task_id = create(repo, "Add the a file, then fix the gate", SESSION_SCRIPT)
    approve(repo, task_id)

    task = wait(repo, task_id, "awaiting_review", "failed", timeout=90)
    assert task["state"] == "awaiting_review", task["failure"]
    assert task["attempt"] == 2 and task["last_message"] == "fixed"
    assert len(pane_ids(repo, task_id)) == 1, "the fix went into the same session"
    fix = [e for e in events(repo, task_id) if e["type"] == "task.executing"][-1]["data"]
    assert fix["fix"] is True and fix["in_session"] is True and fix["failed_gates"] == ["fixed"]
    assert Path(fix["prompt_file"]).read_text().startswith(f"# Fix attempt for task {task_id}")


def test_an_end_of_turn_without_done_waits_for_a_person_and_task_done_finishes_it(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    script = """
session = true
[[step]]
write = { path = "a.txt", content = "a\\n" }
[[step]]
commit = "add a"
[[step]]
turn = "Shall I also write the docs?"
"""
    setup_repo(repo, tmux_socket)
    daemons(repo)
    task_id = create(repo, "Add the a file and ask about the docs", script)
    approve(repo, task_id)

    flagged = wait_flag(repo, task_id, True)
    assert flagged["state"] == "executing" and flagged["last_message"] == "Shall I also write the docs?"
    raised = [e for e in events(repo, task_id) if e["type"] == "agent.needs_input"][-1]["data"]
    assert raised["source"] == "turn_ended" and raised["message"] == "Shall I also write the docs?"
    assert "agent.turn_ended" in types(repo, task_id)

    done = cli_json("task", "done", str(task_id), "--message", "no docs needed", repo=repo)
    assert done["agent_status"] == "done"
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    assert task["needs_input"] is False and task["last_message"] == "no docs needed"
    by = [e for e in events(repo, task_id) if e["type"] == "agent.done"][-1]["data"]["by"]
    assert by == "person"


def test_stop_ends_the_agent_and_keeps_worktree_and_branch(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(repo, tmux_socket)
    daemons(repo)
    task_id = create(repo, "Work for a long time on the slow file", '[[step]]\nsleep = 600\n')
    approve(repo, task_id)
    wait_until(lambda: pane_alive(repo, tmux_socket, task_id), timeout=30, message="agent running")

    stopped = cli_json("task", "stop", str(task_id), repo=repo)
    assert stopped["state"] == "interrupted"
    assert not pane_alive(repo, tmux_socket, task_id)
    event = [e for e in events(repo, task_id) if e["type"] == "task.stopped"][-1]["data"]
    assert event["how"] in ("exit", "term") and event["by"] == "person"
    assert Path(stopped["worktree"]).is_dir()
    assert git(repo, "branch", "--list", stopped["branch"]).strip()
    # Interrupted, so it can run again.
    assert cli("task", "retry", str(task_id), repo=repo).code == 0


def test_stop_escalates_to_kill_for_an_agent_that_ignores_term(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(
        repo,
        tmux_socket,
        **{
            "agent.backend": "custom",
            "agent.command": "bash -c 'trap \"\" TERM HUP INT; exec sleep 600'",
            "agent.stop_grace_s": "0.5",
            # Unsandboxed: inside bubblewrap, the sandbox itself ends on TERM and takes the agent with it.
            "agent.sandbox": "none",
        },
    )
    daemons(repo)
    task_id = create(repo, "Run an agent that ignores TERM")
    approve(repo, task_id)
    wait_until(lambda: pane_alive(repo, tmux_socket, task_id), timeout=30, message="agent running")

    stopped = cli_json("task", "stop", str(task_id), repo=repo)
    assert stopped["state"] == "interrupted"
    event = [e for e in events(repo, task_id) if e["type"] == "task.stopped"][-1]["data"]
    assert event["how"] == "kill"
    assert not pane_alive(repo, tmux_socket, task_id)


def test_cancel_of_an_executing_task_stops_its_agent_first(
    repo: Path, tmux_socket: str, daemons: Daemons
) -> None:
    setup_repo(repo, tmux_socket)
    daemons(repo)
    task_id = create(repo, "Work slowly until cancelled", '[[step]]\nsleep = 600\n')
    approve(repo, task_id)
    wait_until(lambda: pane_alive(repo, tmux_socket, task_id), timeout=30, message="agent running")

    cancelled = cli_json("task", "cancel", str(task_id), repo=repo)
    assert cancelled["state"] == "cancelled"
    assert not pane_alive(repo, tmux_socket, task_id)
    seen = types(repo, task_id)
    assert seen[-2:] == ["task.stopped", "task.cancelled"]
    assert "task.interrupted" not in seen, "no transient interrupted state on the way"


HUP_PROOF_AGENT = """trap '' HUP
echo a > a.txt && git add -A && git commit -qm "add a" && $COCKPIT_HOOK done
exec sleep 600
"""


def agent_processes(worktree: str) -> list[int]:
    from cockpit.core import processes

    return processes.with_env("COCKPIT_WORKTREE", worktree)


def test_reject_without_a_daemon_ends_an_agent_that_outlives_its_window(
    repo: Path, tmux_socket: str, daemons: Daemons, tmp_path: Path
) -> None:
    script = tmp_path / "hup-proof-agent.sh"
    script.write_text(HUP_PROOF_AGENT)
    setup_repo(repo, tmux_socket, **{"agent.backend": "custom", "agent.command": f"sh {script}",
                                     "agent.stop_grace_s": "0.5", "agent.sandbox": "none"})
    daemons(repo)
    task_id = create(repo, "Commit a and keep running through review")
    approve(repo, task_id)
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    assert agent_processes(task["worktree"]), "the agent runs on through review"
    assert cli("daemon", "stop", repo=repo, timeout=30).code == 0

    try:
        assert cli("task", "reject", str(task_id), repo=repo).code == 0
        wait_until(lambda: not agent_processes(task["worktree"]), timeout=15,
                   message="no process of the rejected task's agent is left (it ignores SIGHUP)")
        assert cli("gc", repo=repo).code == 0
        assert not pane_alive(repo, tmux_socket, task_id)
    finally:
        for pid in agent_processes(task["worktree"]):
            os.kill(pid, signal.SIGKILL)


def test_an_agent_that_fails_ends_what_it_left_running(
    repo: Path, tmux_socket: str, daemons: Daemons, tmp_path: Path
) -> None:
    script = tmp_path / "leaving-agent.sh"
    script.write_text("trap '' HUP\nsleep 600 &\nexit 3\n")
    setup_repo(repo, tmux_socket, **{"agent.backend": "custom", "agent.command": f"sh {script}",
                                     "agent.stop_grace_s": "0.5", "agent.sandbox": "none"})
    daemons(repo)
    task_id = create(repo, "Leave a process behind and fail")
    approve(repo, task_id)
    task = wait(repo, task_id, "failed", "awaiting_review")
    assert task["state"] == "failed"
    try:
        wait_until(lambda: not agent_processes(task["worktree"]), timeout=15,
                   message="nothing the failed agent started in its pane lives on")
        assert "exited with code 3" in task["failure"]
    finally:
        for pid in agent_processes(task["worktree"]):
            os.kill(pid, signal.SIGKILL)


FAKE_CLAUDE = r'''#!/usr/bin/env python3
"""A stand-in for Claude Code: reads --settings, writes a transcript, runs the hooks it was given."""
import json, os, subprocess, sys

args = sys.argv[1:]
settings_path = args[args.index("--settings") + 1]
settings = json.load(open(settings_path))
assert "--mcp-config" in args and args[args.index("--permission-mode") + 1] == "default"
mcp = json.load(open(args[args.index("--mcp-config") + 1]))
server = mcp["mcpServers"]["cockpit"]
assert server["env"]["COCKPIT_TASK_ID"] == os.environ["COCKPIT_TASK_ID"]
# In the task's own agent folder (beside the settings): writable inside the agent sandbox too.
transcript = os.path.join(os.path.dirname(settings_path), "transcript.jsonl")

def hook(name, payload):
    for group in settings["hooks"].get(name, []):
        for h in group["hooks"]:
            subprocess.run(h["command"], shell=True, input=json.dumps(payload), text=True, check=True)

def reply(n, text):
    with open(transcript, "a") as fh:
        for _ in range(2):  # one API message is written as several lines with the same id
            fh.write(json.dumps({"type": "assistant", "message": {"id": "msg_%d" % n, "usage": {
                "input_tokens": 100, "cache_read_input_tokens": 50, "output_tokens": 20}}}) + "\n")
    print("● " + text, flush=True)
    hook("Stop", {"hook_event_name": "Stop", "transcript_path": transcript, "last_assistant_message": text})

reply(1, "Should I commit the greeting as well?")
print("? for shortcuts", flush=True)
n = 1
for line in sys.stdin:
    line = line.strip()
    if line == "/exit":
        hook("SessionEnd", {"hook_event_name": "SessionEnd", "transcript_path": transcript})
        sys.exit(0)
    n += 1
    hook("UserPromptSubmit", {"prompt": line})
    open("greeting.txt", "w").write("hello\n")
    subprocess.run("git add -A && git commit -qm greeting", shell=True, check=True)
    subprocess.run(os.environ["COCKPIT_HOOK"] + " done", shell=True, check=True)
    reply(n, "Committed the greeting.")
'''


def test_claude_hooks_from_settings_drive_turn_end_usage_done_and_exit(
    repo: Path, tmux_socket: str, daemons: Daemons, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    fake.write_text(FAKE_CLAUDE)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # the daemon and its panes
    setup_repo(repo, tmux_socket, **{"agent.backend": "claude"})
    daemons(repo)
    task_id = create(repo, "Write a greeting file for the claude agent")
    approve(repo, task_id)

    flagged = wait_flag(repo, task_id, True)
    assert flagged["last_message"] == "Should I commit the greeting as well?"
    usage = wait_until(lambda: show(repo, task_id)["usage"]["runs"], message="usage from the transcript")
    assert usage == [
        {"run": 1, "input_tokens": 150, "output_tokens": 20, "cost_usd": None, "source": "transcript"}
    ]
    assert wait_until(lambda: show(repo, task_id)["progress"], message="progress") == (
        "Should I commit the greeting as well?"
    ), "progress is the agent's words, not its footer"

    cli_json("task", "send", str(task_id), "yes, commit it", repo=repo)
    task = wait(repo, task_id, "awaiting_review", "failed")
    assert task["state"] == "awaiting_review", task["failure"]
    assert pane_alive(repo, tmux_socket, task_id)
    totals = wait_until(
        lambda: (u := show(repo, task_id)["usage"])["input_tokens"] == 300 and u, message="usage updated"
    )
    assert totals["output_tokens"] == 40
    listed = cli_json("task", "list", "--all", repo=repo)
    assert listed["usage"]["input_tokens"] == 300 and listed["usage"]["output_tokens"] == 40

    # Reject ends the session the agent's own way: `/exit` typed, so its SessionEnd hook ran.
    assert cli("task", "reject", str(task_id), repo=repo).code == 0
    wait_until(lambda: not pane_alive(repo, tmux_socket, task_id), timeout=30, message="claude exited")
