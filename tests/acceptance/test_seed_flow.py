"""The cross-repo flow of the seed document, end to end, with real repos, daemons, tmux and the script agent.

backend task with a delegate step -> approved by a person -> executing: the daemon creates the frontend task
(with the parent link) -> classified large -> pending, and the backend says "peer task frontend#1 pending,
awaiting approval" -> the backend's agent finishes its own steps, and the task holds (it cannot reach
review) -> a person approves in frontend -> the script agent does it -> a person merges it -> the sender's
wait returns done -> the backend runs the step that waited for it, passes its gates and is merged too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.core.paths import RepoPaths
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.waiting import wait_until
from cockpit_testkit.workspaces import build_workspace, configure, script_agent

Daemons = Callable[[Path], dict[str, Any]]

REQUEST = "add the /export endpoint to the API and rewrite the JS client in frontend for it"
WAIT_S = 90


def show(repo: Path, task_id: int) -> dict[str, Any]:
    data: dict[str, Any] = cli_json("task", "show", str(task_id), repo=repo)
    return data


def wait_state(repo: Path, task_id: int, *states: str) -> dict[str, Any]:
    result = cli("task", "wait", str(task_id), "--state", *states, "--timeout", str(WAIT_S), "--json",
                 repo=repo, timeout=WAIT_S + 30)
    assert result.code == 0, f"task {task_id} of {repo.name} did not reach {states}: {result.stdout}"
    data: dict[str, Any] = result.json
    return data


def events(repo: Path, task_id: int) -> list[dict[str, Any]]:
    result = cli("events", repo=repo)
    return [e for e in map(json.loads, result.stdout.splitlines()) if e["task_id"] == task_id]


def step(task: dict[str, Any], n: int) -> dict[str, Any]:
    found: dict[str, Any] = next(s for s in task["plan"] if s["n"] == n)
    return found


def test_the_seed_flow_end_to_end(short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"], settings=script_agent(tmux_socket))
    backend, frontend = repos["backend"], repos["frontend"]
    daemons(backend)
    daemons(frontend)

    parent = cli_json("task", "create", REQUEST, repo=backend)
    assert (parent["state"], parent["scope"]) == ("pending", "large")
    delegate = next(s for s in parent["plan"] if s["verb"] == "delegate")
    assert delegate["peer"] == "frontend"
    later = [s["n"] for s in parent["plan"] if delegate["n"] in s["depends_on"]]
    assert later, parent["plan"]  # the verify step depends on the delegated work

    cli_json("task", "approve", "1", repo=backend)

    # The daemon performs the delegate step: frontend#1 exists, linked to backend#1, large and pending.
    child = wait_state(frontend, 1, "pending")
    assert (child["scope"], child["parent"]) == ("large", {"repo": "backend", "id": 1})
    assert child["description"] == delegate["description"]
    log = RepoPaths(backend).task_log(1)
    wait_until(lambda: log.exists() and "peer task frontend#1 pending, awaiting approval" in log.read_text(),
               timeout=30, message="the backend's log should say what it waits for")
    # The first run's prompt leaves out the steps that wait for frontend.
    prompt = (RepoPaths(backend).prompts / "task-1-1.md").read_text()
    assert all(f"{n}. [" not in prompt for n in later) and "left out here" in prompt

    # The sender's own wait, from the command line, blocks until frontend#1 finishes.
    waiter = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "remote", "wait", "frontend", "1", "--timeout", str(WAIT_S),
         "--json", "--repo", str(backend)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The backend's agent finishes its own steps; the task holds: no gates, no review before frontend.
        wait_until(lambda: any(e["type"] == "agent.exited" for e in events(backend, 1)), timeout=WAIT_S,
                   message="the backend's first agent run should end")
        held = show(backend, 1)
        assert held["state"] == "executing", held
        assert step(held, delegate["n"])["status"] == "waiting"
        assert step(held, delegate["n"])["peer_state"] == "pending"
        assert held["children"] == [{"repo": "frontend", "id": 1, "step": 3, "state": "pending"}]
        assert all(step(held, n)["status"] == "deferred" for n in later)
        assert waiter.poll() is None

        # A person approves it in frontend; the script agent does it; a person merges it.
        approved = cli_json("task", "approve", "1", repo=frontend)
        assert approved["approved_by"] == "person"
        wait_state(frontend, 1, "awaiting_review")
        merged = cli_json("task", "merge", "1", repo=frontend, timeout=WAIT_S)
        assert merged["task"]["state"] == "done", merged
        out, err = waiter.communicate(timeout=WAIT_S)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert json.loads(out)["state"] == "done"

    # The backend proceeds: the held-back step runs in a continuation, the gates pass, it awaits review.
    reviewed = wait_state(backend, 1, "awaiting_review", "failed")
    assert reviewed["state"] == "awaiting_review", reviewed.get("failure")
    assert step(reviewed, delegate["n"])["status"] == "done"
    assert step(reviewed, delegate["n"])["peer_state"] == "done"
    assert all(step(reviewed, n)["status"] == "pending" for n in later)
    continued = [e for e in events(backend, 1)
                 if e["type"] == "task.executing" and e["data"].get("continuation")]
    assert len(continued) == 1
    text = Path(continued[0]["data"]["prompt_file"]).read_text()
    assert text.startswith("# Continue task 1") and "frontend#1 done" in text
    finished = [e for e in events(backend, 1) if e["type"] == "delegation.finished"]
    assert {(e["data"]["step"], e["data"]["state"], e["data"]["ok"]) for e in finished} == {
        (delegate["n"], "done", True)}
    assert "peer task frontend#1 done, merged" in log.read_text()

    done = cli_json("task", "merge", "1", repo=backend, timeout=WAIT_S)
    assert done["task"]["state"] == "done"
    assert show(backend, 1)["children"] == [{"repo": "frontend", "id": 1, "step": 3, "state": "done"}]


def test_a_failed_child_fails_the_parents_step(short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"], settings=script_agent(tmux_socket),
                            per_repo={"frontend": {"task.fix_attempts": "0"}})
    backend, frontend = repos["backend"], repos["frontend"]
    # frontend's tests gate always fails.
    with open(RepoPaths(frontend).config, "a") as fh:
        fh.write('\n[[gates]]\nname = "tests"\ncommand = "echo broken; exit 1"\ntimeout_s = 30\n')
    configure(frontend, {"task.remote_approval": "all"})
    daemons(backend)
    daemons(frontend)

    cli_json("task", "create", REQUEST, repo=backend)
    cli_json("task", "approve", "1", repo=backend)
    child = wait_state(frontend, 1, "pending")
    # remote_approval = "all" in frontend: the sender may approve even this large task.
    approved = cli_json("remote", "approve", "frontend", "1", repo=backend)
    assert approved["approved_by"] == "remote:backend"
    failed_child = wait_state(frontend, 1, "failed")
    assert "gates failed: tests" in failed_child["failure"]

    failed = wait_state(backend, 1, "failed", "awaiting_review")
    assert failed["state"] == "failed"
    assert child["parent"] == {"repo": "backend", "id": 1}
    delegate_n = next(s["n"] for s in failed["plan"] if s["verb"] == "delegate")
    assert failed["failure"].startswith(f"step {delegate_n} (delegate to frontend) failed: frontend#1 failed")
    assert "gates failed: tests" in failed["failure"]
    assert step(failed, delegate_n)["status"] == "failed"
    assert failed["children"] == [{"repo": "frontend", "id": 1, "step": 3, "state": "failed"}]
    assert any(e["type"] == "delegation.finished" and e["data"]["ok"] is False for e in events(backend, 1))


def test_a_held_task_survives_a_daemon_restart(short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"], settings=script_agent(tmux_socket))
    backend, frontend = repos["backend"], repos["frontend"]
    daemons(backend)
    daemons(frontend)
    cli_json("task", "create", REQUEST, repo=backend)
    cli_json("task", "approve", "1", repo=backend)
    wait_state(frontend, 1, "pending")
    wait_until(lambda: any(e["type"] == "agent.exited" for e in events(backend, 1)), timeout=WAIT_S,
               message="the backend's first agent run should end")

    # backend's daemon goes away while the task holds for frontend, and comes back.
    assert cli_json("daemon", "stop", repo=backend)["stopped"] is True
    daemons(backend)
    assert show(backend, 1)["state"] == "executing"

    cli_json("task", "approve", "1", repo=frontend)
    wait_state(frontend, 1, "awaiting_review")
    cli_json("task", "merge", "1", repo=frontend, timeout=WAIT_S)
    reviewed = wait_state(backend, 1, "awaiting_review", "failed", "interrupted")
    assert reviewed["state"] == "awaiting_review", reviewed.get("failure")
    assert [e["data"].get("continuation") for e in events(backend, 1) if e["type"] == "task.executing"] == [
        None, True]
