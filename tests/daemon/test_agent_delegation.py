"""Agents that delegate through the MCP tools, end to end: real daemons, real tmux panes, real merges.

The agent is `cockpit_testkit/mcp_agent.py` run as the `custom` backend: it starts `cockpit mcp` from its
worktree the way an adapter's per-task MCP config does and calls the tools over the SDK's stdio client.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.tmux import tmux_available
from cockpit_testkit import mcp_agent
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.waiting import wait_until
from cockpit_testkit.workspaces import build_workspace

pytestmark = [pytest.mark.skipif(not tmux_available(), reason="tmux is not installed"),
              pytest.mark.timeout(400)]

Daemons = Callable[[Path], dict[str, Any]]

AGENT = Path(mcp_agent.__file__).resolve()
CLIENT_WORK = "rewrite the routing and migrate the state store to the new export API client"
OTHER_WORK = "rewrite the dashboard and migrate its charts to the new rendering engine"
SYNC_WORK = "rewrite the offline sync engine and migrate its local cache schema"
HOLDING = "the agent is done; waiting for the delegated work before the gates"


def agent_settings(plan: Path, tmux_socket: str) -> dict[str, str]:
    return {"agent.backend": "custom", "agent.command": f"{sys.executable} {AGENT} {plan} {{task_id}}",
            "tmux.socket_name": tmux_socket, "merge.verify": "false",
            # The test agent logs its tool calls beside its plan, outside the worktree a sandbox allows.
            "agent.sandbox": "none"}


def show(root: Path, task_id: int) -> dict[str, Any]:
    task: dict[str, Any] = cli_json("task", "show", str(task_id), repo=root)
    return task


def wait_state(root: Path, task_id: int, *states: str, timeout: float = 120) -> dict[str, Any]:
    result: dict[str, Any] = cli_json("task", "wait", str(task_id), "--state", *states, "--timeout",
                                      str(timeout), repo=root, timeout=timeout + 30)
    return result


def held(root: Path, task_id: int) -> dict[str, Any]:
    """Wait until the task's agent has exited and the task holds for its children (still executing)."""
    task = wait_until(lambda: (t := show(root, task_id))["agent_status"] == "exited" and t, timeout=120,
                      message=f"task {task_id}'s agent to exit")
    assert task["state"] == "executing", task["failure"]
    log = (root / ".cockpit" / "logs").glob(f"task-{task_id}*")
    assert any(HOLDING in p.read_text() for p in log), "the hold is written to the task's log"
    return task


def calls(plan: Path) -> list[dict[str, Any]]:
    log = plan.with_name(plan.name + ".calls.jsonl")
    return [json.loads(line) for line in log.read_text().splitlines()]


def event_types(root: Path, task_id: int) -> list[str]:
    return [e["type"] for e in map(json.loads, cli("events", repo=root).stdout.splitlines())
            if e["task_id"] == task_id]


def test_an_agent_s_large_child_holds_its_task_and_a_rejected_one_fails_it(
        short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    plan = short_tmp / "plan.json"
    plan.write_text(json.dumps({
        "backend#1": [{"tool": "create_remote_task", "args": {"repo": "frontend", "text": CLIENT_WORK}},
                      {"commit": "docs/export.md"}, {"exit": 0}],
        "backend#2": [{"tool": "create_remote_task", "args": {"repo": "frontend", "text": OTHER_WORK}},
                      {"commit": "docs/dashboard.md"}, {"exit": 0}],
    }))
    repos = build_workspace(short_tmp, ["backend", "frontend"], settings=agent_settings(plan, tmux_socket))
    backend, frontend = repos["backend"], repos["frontend"]
    daemons(backend)
    daemons(frontend)

    cli_json("task", "create", "add the export endpoint to the public API", repo=backend)
    cli_json("task", "approve", "1", repo=backend)
    parent = held(backend, 1)
    assert parent["children"] == [{"repo": "frontend", "id": 1, "state": "pending"}]
    made = calls(plan)[0]
    assert made["who"] == "backend#1" and not made["is_error"], made
    assert (made["result"]["id"], made["result"]["scope"], made["result"]["state"]) == (1, "large", "pending")
    assert "task 1 holds before its gates until frontend#1 is done" in made["result"]["hint"]
    child = show(frontend, 1)
    assert child["parent"] == {"repo": "backend", "id": 1} and child["state"] == "pending"
    assert "task.gating" not in event_types(backend, 1)

    # A person approves the child where it runs; it runs, passes its gates and is merged there.
    cli_json("task", "approve", "1", repo=frontend)
    assert wait_state(frontend, 1, "awaiting_review", "failed")["state"] == "awaiting_review"
    assert show(backend, 1)["state"] == "executing"  # still held: the child is not done until merged
    cli_json("task", "merge", "1", repo=frontend)
    reviewed = wait_state(backend, 1, "awaiting_review", "failed")
    assert reviewed["state"] == "awaiting_review", reviewed["failure"]
    seen = event_types(backend, 1)
    assert seen.index("delegation.finished") < seen.index("task.gating") < seen.index("task.awaiting_review")
    assert reviewed["children"] == [{"repo": "frontend", "id": 1, "state": "done"}]

    # A second task's child is rejected in frontend: the parent fails, the child named.
    cli_json("task", "create", "add the dashboard summary endpoint to the API", repo=backend)
    cli_json("task", "approve", "2", repo=backend)
    held(backend, 2)
    cli_json("task", "reject", "2", "--reason", "not this quarter", repo=frontend)
    failed = wait_state(backend, 2, "failed", "awaiting_review")
    assert failed["state"] == "failed"
    assert failed["failure"] == "delegated task failed: frontend#2 rejected: not this quarter"
    assert "task.gating" not in event_types(backend, 2)


def test_a_chain_across_three_repos_with_links_both_ways(
        short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    plan = short_tmp / "plan.json"
    plan.write_text(json.dumps({
        "backend#1": [{"tool": "create_remote_task", "args": {"repo": "frontend", "text": CLIENT_WORK}},
                      {"commit": "docs/export.md"}, {"exit": 0}],
        "frontend#1": [{"tool": "create_remote_task", "args": {"repo": "mobile", "text": SYNC_WORK}},
                       {"tool": "show_task", "args": {}},
                       {"commit": "docs/client.md"}, {"exit": 0}],
    }))
    repos = build_workspace(short_tmp, ["backend", "frontend", "mobile"],
                            settings=agent_settings(plan, tmux_socket))
    backend, frontend, mobile = repos["backend"], repos["frontend"], repos["mobile"]
    for root in repos.values():
        daemons(root)
    cli_json("task", "create", "add the export endpoint to the public API", repo=backend)
    cli_json("task", "approve", "1", repo=backend)
    held(backend, 1)
    cli_json("task", "approve", "1", repo=frontend)
    middle = held(frontend, 1)
    assert middle["parent"] == {"repo": "backend", "id": 1}
    assert middle["children"] == [{"repo": "mobile", "id": 1, "state": "pending"}]
    bottom = show(mobile, 1)
    assert bottom["parent"] == {"repo": "frontend", "id": 1} and bottom["state"] == "pending"
    assert show(backend, 1)["children"] == [{"repo": "frontend", "id": 1, "state": "executing"}]
    # Followed from the top through the peers' tools, both ways.
    top_view = cli_json("remote", "show", "frontend", "1", repo=backend)["task"]
    assert top_view["parent"] == {"repo": "backend", "id": 1} and top_view["children"][0]["id"] == 1
    own = next(c for c in calls(plan) if c["who"] == "frontend#1" and c["tool"] == "show_task")["result"]
    assert own["task"]["parent"] == {"repo": "backend", "id": 1}
    assert "wait_remote_task(repo='mobile', id=1)" in own["hint"]

    cli_json("task", "approve", "1", repo=mobile)
    assert wait_state(mobile, 1, "awaiting_review", "failed")["state"] == "awaiting_review"
    cli_json("task", "merge", "1", repo=mobile)
    assert wait_state(frontend, 1, "awaiting_review", "failed")["state"] == "awaiting_review"
    assert show(backend, 1)["state"] == "executing"
    cli_json("task", "merge", "1", repo=frontend)
    top = wait_state(backend, 1, "awaiting_review", "failed")
    assert top["state"] == "awaiting_review", top["failure"]

    # Rolled back after its parent was merged: the parent is marked, with the child named.
    cli_json("task", "rollback", "1", repo=mobile)
    marked = wait_until(lambda: (t := show(frontend, 1))["child_failure"] and t, timeout=60,
                        message="frontend#1 to be marked")
    assert marked["state"] == "done" and marked["child_failure"] == "mobile#1 rolled_back"
    human = cli("task", "show", "1", repo=frontend).stdout
    assert "a delegated child went wrong: mobile#1 rolled_back" in human
