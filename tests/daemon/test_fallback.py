"""The peer's daemon is down: requests land in its store, its daemon classifies them when it starts, and a
waiting sender wakes on a file watch of the store, then on the socket once the daemon is up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.core.delegation.peers import PeerRef
from cockpit.core.delegation.wait import wait_peer_task
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.tasks import make_executing_task
from cockpit_testkit.workspaces import build_workspace

Daemons = Callable[[Path], dict[str, Any]]

LARGE = "rewrite the routing and migrate the state store to the new export API client"
SMALL = "fix the typo in the README title"


def test_fallback_create_lands_in_created_with_the_same_dedup(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    daemons(repos["backend"])  # the sender's daemon is up, the peer's is not
    make_executing_task(repos["backend"], "add the /export endpoint to the API")
    made = cli_json("remote", "create", "frontend", LARGE, "--task", "1", repo=repos["backend"])
    assert (made["id"], made["state"], made["via"], made["fallback"]) == (1, "created", "store", True)
    assert "daemon is down" in made["message"] and "classifies it when its daemon starts" in made["message"]
    human = cli("remote", "create", "frontend", SMALL, repo=repos["backend"])
    assert human.code == 0 and "written straight into its store in state created" in human.stdout

    stored = cli_json("task", "show", "1", repo=repos["frontend"])
    assert stored["state"] == "created" and stored["parent"] == {"repo": "backend", "id": 1}
    dup = cli("remote", "create", "frontend", LARGE, "--json", repo=repos["backend"])
    assert dup.code == 1 and dup.json["error"]["code"] == "duplicate"
    shown = cli_json("remote", "show", "frontend", "1", repo=repos["backend"])
    assert shown["via"] == "store" and shown["state"] == "created"
    assert cli_json("task", "show", "1", repo=repos["backend"])["children"] == [
        {"repo": "frontend", "id": 1, "state": "created"}]


def test_approve_and_show_work_against_the_store(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"],
                            per_repo={"frontend": {"task.auto_approve_delegated_small": "false"}})
    backend, frontend = repos["backend"], repos["frontend"]
    cli_json("remote", "create", "frontend", SMALL, repo=backend)
    cli_json("remote", "create", "frontend", LARGE, repo=backend)
    early = cli("remote", "approve", "frontend", "1", "--json", repo=backend)
    assert early.code == 1 and early.json["error"]["code"] == "not_classified"

    daemons(frontend)  # classifies both on start; then it goes away again
    assert cli_json("task", "show", "1", repo=frontend)["state"] == "pending"
    assert cli_json("task", "show", "2", repo=frontend)["state"] == "pending"
    assert cli_json("daemon", "stop", repo=frontend)["stopped"] is True

    approved = cli_json("remote", "approve", "frontend", "1", repo=backend)
    assert (approved["via"], approved["state"]) == ("store", "approved")
    assert approved["approved_by"] == "remote:backend"
    assert "written into its store" in approved["message"]
    refused = cli("remote", "approve", "frontend", "2", "--json", repo=backend)
    assert refused.code == 1 and refused.json["error"]["code"] == "human_gate"
    assert cli_json("remote", "show", "frontend", "2", repo=backend)["state"] == "pending"


async def test_waiting_sender_wakes_on_the_store_with_the_daemon_down(short_tmp: Path) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    made = (await asyncio.to_thread(cli_json, "remote", "create", "frontend", LARGE, repo=repos["backend"]))
    seen: list[str] = []
    armed = asyncio.Event()

    async def on_change(task: JSON) -> None:
        seen.append(str(task["state"]))
        armed.set()

    ref = PeerRef("frontend", RepoPaths(repos["frontend"]))
    waiting = asyncio.ensure_future(wait_peer_task(ref, made["id"], timeout_s=30, on_change=on_change))
    await asyncio.wait_for(armed.wait(), 10)
    assert not waiting.done()
    # A person in frontend rejects it, straight through the store (no daemon anywhere).
    await asyncio.to_thread(cli_json, "task", "reject", "1", repo=repos["frontend"])
    outcome = await asyncio.wait_for(waiting, 10)
    assert outcome.reached and not outcome.timed_out and outcome.via == "store"
    assert seen == ["created", "rejected"]


async def test_wait_switches_to_the_socket_when_the_daemon_starts(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    await asyncio.to_thread(make_executing_task, repos["backend"], "add the /export endpoint to the API")
    made = await asyncio.to_thread(cli_json, "remote", "create", "frontend", LARGE, "--task", "1",
                                   repo=repos["backend"])
    assert made["state"] == "created"
    seen: list[str] = []
    changed: dict[str, asyncio.Event] = {s: asyncio.Event() for s in ("created", "pending")}

    async def on_change(task: JSON) -> None:
        seen.append(str(task["state"]))
        if task["state"] in changed:
            changed[task["state"]].set()

    ref = PeerRef("frontend", RepoPaths(repos["frontend"]))
    waiting = asyncio.ensure_future(wait_peer_task(ref, 1, timeout_s=60, on_change=on_change))
    await asyncio.wait_for(changed["created"].wait(), 10)
    # The peer's daemon comes up and classifies the request; the waiter follows it on the socket.
    await asyncio.to_thread(daemons, repos["frontend"])
    await asyncio.wait_for(changed["pending"].wait(), 20)
    assert not waiting.done()
    await asyncio.to_thread(cli_json, "task", "reject", "1", "--reason", "later", repo=repos["frontend"])
    outcome = await asyncio.wait_for(waiting, 20)
    assert outcome.via == "daemon" and outcome.task["state"] == "rejected"
    assert seen == ["created", "pending", "rejected"]


def test_cli_wait_follows_the_fallback_to_the_daemon(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    make_executing_task(repos["backend"], "add the /export endpoint to the API")
    cli_json("remote", "create", "frontend", LARGE, "--task", "1", repo=repos["backend"])
    waiter = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "remote", "wait", "frontend", "1", "--timeout", "60", "--json",
         "--repo", str(repos["backend"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        daemons(repos["frontend"])
        assert cli_json("task", "wait", "1", "--state", "pending", "--timeout", "20",
                        repo=repos["frontend"])["state"] == "pending"
        cli_json("task", "cancel", "1", repo=repos["frontend"])
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    result = json.loads(out)
    assert result["state"] == "cancelled" and result["reached"]
    finished = [e for e in map(json.loads, cli("events", repo=repos["backend"]).stdout.splitlines())
                if e["type"] == "delegation.finished"]
    assert [(e["data"]["repo"], e["data"]["id"], e["data"]["ok"]) for e in finished] == [
        ("frontend", 1, False)]


def test_cli_wait_outlives_the_sender_s_daemon(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    daemons(repos["frontend"])
    daemons(repos["backend"])
    cli_json("remote", "create", "frontend", LARGE, repo=repos["backend"])
    waiter = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "remote", "wait", "frontend", "1", "--timeout", "60", "--json",
         "--repo", str(repos["backend"])], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Whether the wait is under way in backend's daemon when that daemon stops or starts after, it ends
        # with the peer task, never with daemon_unavailable.
        assert cli_json("daemon", "stop", repo=repos["backend"])["stopped"] is True
        cli_json("task", "reject", "1", "--reason", "no", repo=repos["frontend"])
        out, err = waiter.communicate(timeout=60)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert json.loads(out)["state"] == "rejected"
