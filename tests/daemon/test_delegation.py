"""Cross-repo delegation between real repos of a real workspace, through real daemons and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.core.models import PlanStep, Task
from cockpit.daemon.delegation import StepExecutor, continuation_prompt, ready_delegates, waits_on_delegates
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.tasks import make_executing_task, store_executing
from cockpit_testkit.workspaces import build_workspace, script_agent

Daemons = Callable[[Path], dict[str, Any]]

LARGE = "rewrite the routing and migrate the state store to the new export API client"
SMALL = "fix the typo in the README title"
PARENT = "add the /export endpoint to the API"


def events_of(root: Path, task_id: int) -> list[dict[str, Any]]:
    result = cli("events", repo=root)
    assert result.code == 0, result.stderr
    return [e for e in map(json.loads, result.stdout.splitlines()) if e["task_id"] == task_id]


def test_remote_create_links_parent_and_child_both_ways(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    backend, frontend = repos["backend"], repos["frontend"]
    daemons(backend)
    daemons(frontend)
    pending = cli_json("task", "create", PARENT, repo=backend)
    refused = cli("remote", "create", "frontend", LARGE, "--task", str(pending["id"]), "--json", repo=backend)
    assert refused.code == 1 and refused.json["error"]["code"] == "not_executing", refused.stdout
    assert "task 1 is pending: only an executing task can delegate" in refused.json["error"]["message"]
    assert cli_json("task", "list", repo=frontend)["tasks"] == []  # nothing was created there
    parent = {"id": make_executing_task(backend, PARENT + " for real").id}
    made = cli_json("remote", "create", "frontend", LARGE, "--task", str(parent["id"]), repo=backend)
    assert (made["repo"], made["id"], made["state"], made["scope"]) == ("frontend", 1, "pending", "large")
    assert made["via"] == "daemon" and not made["fallback"] and made["plan"], made
    assert "awaiting approval" in made["status"] and "frontend tab" in made["hint"]

    child = cli_json("task", "show", "1", repo=frontend)
    assert child["parent"] == {"repo": "backend", "id": parent["id"]}
    assert (child["source_repo"], child["source_task_id"]) == ("backend", parent["id"])
    shown = cli_json("task", "show", str(parent["id"]), repo=backend)
    assert shown["children"] == [{"repo": "frontend", "id": 1, "state": "pending"}]
    sent = [e for e in events_of(backend, parent["id"]) if e["type"] == "delegation.sent"]
    assert [(e["data"]["repo"], e["data"]["id"]) for e in sent] == [("frontend", 1)]

    human = cli("task", "show", str(parent["id"]), repo=backend)
    assert "child:  frontend#1 pending" in human.stdout
    assert "parent: backend#2" in cli("task", "show", "1", repo=frontend).stdout
    remote = cli("remote", "show", "frontend", "1", repo=backend)
    assert remote.code == 0 and "parent: backend#2" in remote.stdout

    # The children's live state follows the peer: a person there cancels it, which fails the parent.
    cli_json("task", "cancel", "1", repo=frontend)
    assert cli_json("task", "show", str(parent["id"]), repo=backend)["children"][0]["state"] == "cancelled"
    failed = cli_json("task", "wait", str(parent["id"]), "--state", "failed", "--timeout", "30", repo=backend)
    assert failed["state"] == "failed" and "delegated task failed: frontend#1 cancelled" in failed["failure"]


def test_the_human_gate_refuses_a_large_task_by_default(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    daemons(repos["backend"])
    daemons(repos["frontend"])
    cli_json("remote", "create", "frontend", LARGE, repo=repos["backend"])
    refused = cli("remote", "approve", "frontend", "1", "--json", repo=repos["backend"])
    assert refused.code == 1
    error = refused.json["error"]
    assert error["code"] == "human_gate"
    assert "frontend tab of the cockpit" in error["message"] and "cockpit task approve 1" in error["message"]
    assert cli_json("task", "show", "1", repo=repos["frontend"])["state"] == "pending"
    human = cli("remote", "approve", "frontend", "1", repo=repos["backend"])
    assert human.code == 1 and "a person must approve it" in human.stderr


def test_a_person_approves_in_the_peer_and_remote_all_allows_large(
        short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend", "docs"], settings=script_agent(tmux_socket),
                            per_repo={"docs": {"task.remote_approval": "all"}})
    for root in repos.values():
        daemons(root)
    cli_json("remote", "create", "frontend", LARGE, repo=repos["backend"])
    approved = cli_json("task", "approve", "1", repo=repos["frontend"])
    assert approved["approved_by"] == "person"

    made = cli_json("remote", "create", "docs", LARGE, repo=repos["backend"])
    assert (made["state"], made["scope"]) == ("pending", "large")
    result = cli_json("remote", "approve", "docs", "1", repo=repos["backend"])
    assert result["approved_by"] == "remote:backend" and result["state"] in (
        "approved", "executing", "gating", "awaiting_review")
    approvals = [e for e in events_of(repos["docs"], 1) if e["type"] == "task.approved"]
    assert [e["data"]["by"] for e in approvals] == ["remote:backend"]
    for root in (repos["frontend"], repos["docs"]):
        cli_json("task", "wait", "1", "--state", "awaiting_review", "failed", "--timeout", "60", repo=root)


def test_small_delegated_auto_approves_and_wait_follows_it(
        short_tmp: Path, daemons: Daemons, tmux_socket: str) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"], settings=script_agent(tmux_socket))
    backend, frontend = repos["backend"], repos["frontend"]
    daemons(backend)
    daemons(frontend)
    parent = {"id": make_executing_task(backend, PARENT).id}
    made = cli_json("remote", "create", "frontend", SMALL, "--task", str(parent["id"]), repo=backend)
    assert made["scope"] == "small" and made["state"] != "pending", made

    reviewed = cli_json("remote", "wait", "frontend", "1", "--until", "awaiting_review", "--timeout", "60",
                        repo=backend, timeout=90)
    assert reviewed["state"] == "awaiting_review" and reviewed["reached"]
    assert reviewed["task"]["approved_by"] == "auto:delegated-small from backend"

    # The default wait blocks until the task finishes: here a person rejects it in frontend.
    waiter = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "remote", "wait", "frontend", "1", "--timeout", "60", "--json",
         "--repo", str(backend)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cli_json("task", "reject", "1", "--reason", "not this way", repo=frontend)
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    waited = json.loads(out)
    assert waited["state"] == "rejected" and waited["reached"] and not waited["timed_out"]
    finished = [e for e in events_of(backend, parent["id"]) if e["type"] == "delegation.finished"]
    assert finished and finished[-1]["data"]["state"] == "rejected" and finished[-1]["data"]["ok"] is False
    assert "not this way" in finished[-1]["data"]["reason"]


def test_a_chain_across_three_repos_stays_linked(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend", "mobile"])
    for root in repos.values():
        daemons(root)
    make_executing_task(repos["backend"], PARENT)
    cli_json("remote", "create", "frontend", LARGE, "--task", "1", repo=repos["backend"])
    # frontend#1 waits for a person (pending): it may not delegate before it runs.
    early = cli("remote", "create", "mobile", "rewrite the offline sync and migrate its cache", "--task", "1",
                "--json", repo=repos["frontend"])
    assert early.code == 1 and early.json["error"]["code"] == "not_executing"
    # Once it runs (here: recorded as running; the MCP tests run real agents), it delegates on.
    store_executing(repos["frontend"], 1)
    made = cli_json("remote", "create", "mobile", "rewrite the offline sync and migrate its cache",
                    "--task", "1", repo=repos["frontend"])
    assert made["repo"] == "mobile" and made["task"]["parent"] == {"repo": "frontend", "id": 1}

    middle = cli_json("task", "show", "1", repo=repos["frontend"])
    assert middle["parent"] == {"repo": "backend", "id": 1}
    assert middle["children"] == [{"repo": "mobile", "id": 1, "state": "pending"}]
    top = cli_json("task", "show", "1", repo=repos["backend"])
    assert top["children"] == [{"repo": "frontend", "id": 1, "state": "executing"}]
    # Following the links from the top reaches the bottom.
    below = cli_json("remote", "show", "frontend", "1", repo=repos["backend"])["task"]["children"][0]
    bottom = cli_json("remote", "show", below["repo"], str(below["id"]), repo=repos["frontend"])
    assert bottom["task"]["parent"] == {"repo": "frontend", "id": 1}


def test_dedup_on_the_peer_and_a_resent_request(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    daemons(repos["backend"])
    daemons(repos["frontend"])
    make_executing_task(repos["backend"], PARENT)
    first = cli_json("remote", "create", "frontend", LARGE, "--task", "1", repo=repos["backend"])
    again = cli_json("remote", "create", "frontend", LARGE, "--task", "1", repo=repos["backend"])
    assert again["id"] == first["id"] and again["existing"] is True
    stranger = cli("remote", "create", "frontend", LARGE, "--json", repo=repos["backend"])
    assert stranger.code == 1 and stranger.json["error"]["code"] == "duplicate"
    forced = cli_json("remote", "create", "frontend", LARGE, "--force", repo=repos["backend"])
    assert forced["id"] == first["id"] + 1


def test_peers_listed_with_daemon_and_counts(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend", "docs"])
    daemons(repos["frontend"])
    cli_json("remote", "create", "frontend", LARGE, repo=repos["backend"])
    listed = {r["name"]: r for r in cli_json("workspace", "list", repo=repos["backend"])["repos"]}
    assert listed["frontend"]["daemon"] == "up" and listed["frontend"]["counts"] == {"pending": 1}
    assert listed["backend"]["daemon"] == "down" and listed["docs"]["counts"] == {}
    unknown = cli("remote", "create", "nowhere", LARGE, "--json", repo=repos["backend"])
    assert unknown.code == 1 and "repos are: backend, docs, frontend" in unknown.json["error"]["message"]
    itself = cli("remote", "create", "backend", LARGE, "--json", repo=repos["backend"])
    assert itself.code == 2 and "is this repo" in itself.json["error"]["message"]



# -- the step executor's plan logic (no daemons) -------------------------------------------------------------

def plan_task(statuses: dict[int, str] | None = None) -> Task:
    """add(1) -> test(2, after 1) -> delegate frontend(3, after 1) -> delegate mobile(4, after 3)
    -> verify(5, after 2, 4) -> docs(6, after 1)."""
    steps = [PlanStep(1, "add", "add the endpoint"), PlanStep(2, "test", "test it", depends_on=[1]),
             PlanStep(3, "delegate", "rewrite the client", peer="frontend", depends_on=[1]),
             PlanStep(4, "delegate", "use the new client", peer="mobile", depends_on=[3]),
             PlanStep(5, "verify", "verify", depends_on=[2, 4]),
             PlanStep(6, "modify", "docs", depends_on=[1])]
    for s in steps:
        s.status = (statuses or {}).get(s.n, "pending")
    return Task(id=7, title="export", description="add the export", plan=steps)


def test_which_steps_wait_and_which_delegates_go() -> None:
    task = plan_task()
    assert [s.n for s in waits_on_delegates(task)] == [5]
    assert [s.n for s in ready_delegates(task)] == [3]  # local dependencies never hold a delegate back
    task = plan_task({3: "done"})
    assert [s.n for s in ready_delegates(task)] == [4] and [s.n for s in waits_on_delegates(task)] == [5]
    task = plan_task({3: "done", 4: "done"})
    assert ready_delegates(task) == [] and waits_on_delegates(task) == []


def test_the_first_prompt_leaves_out_waiting_steps_and_the_continuation_lists_them() -> None:
    executor = StepExecutor.__new__(StepExecutor)
    executor._held = {}
    shaped = executor.shape_first_prompt(plan_task())
    assert [s.n for s in shaped.plan] == [1, 2, 3, 4, 6] and "Steps 5 of the plan wait" in shaped.description
    assert executor._held == {7: [5]}
    done = plan_task({3: "done", 4: "done"})
    done.plan[2].peer_task_id, done.plan[2].peer_state = 4, "done"
    text = continuation_prompt(done, [done.plan[4]], "BASE PROMPT")
    assert text.startswith("# Continue task 7: export")
    assert "- step 3 [delegate to frontend] rewrite the client: frontend#4 done" in text
    assert "5. [verify] verify (after step 2, 4)" in text and text.endswith("BASE PROMPT")
