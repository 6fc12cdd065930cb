"""Delegation between repos on different hosts: through the hosted daemon over ssh, links kept both ways."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.hostedrepos import spanning_workspace
from cockpit_testkit.sshhosts import SshLab
from cockpit_testkit.tasks import make_executing_task
from cockpit_testkit.workspaces import script_agent

Daemons = Callable[[Path], dict[str, Any]]

LARGE = "rewrite the routing and migrate the state store to the new export API client"
SMALL = "fix the typo in the README title"
PARENT = "add the /export endpoint to the API"


def events_of(root: Path, task_id: int) -> list[dict[str, Any]]:
    result = cli("events", repo=root)
    assert result.code == 0, result.stderr
    return [e for e in map(json.loads, result.stdout.splitlines()) if e["task_id"] == task_id]


def remote_json(box: Any, root: Path, *args: str) -> Any:
    """`cockpit ARGS --json` run on the host, over ssh: what a person there would see."""
    result = box.ssh.run(["cockpit", *args, "--repo", str(root), "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_local_to_remote_and_back_keeps_both_links(
        short_tmp: Path, ssh_lab: SshLab, daemons: Daemons, tmux_socket: str) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"},
                              settings=script_agent(tmux_socket))
    web, api, box = span.local["web"], span.remote_root("api"), span.hosts["build-box"]
    daemons(web)
    parent = {"id": make_executing_task(web, PARENT).id}  # only an executing task delegates
    made = cli_json("remote", "create", "api", SMALL, "--task", str(parent["id"]), repo=web)
    assert (made["repo"], made["id"], made["via"], made["fallback"]) == ("api", 1, "daemon", False), made
    assert made["scope"] == "small" and made["state"] != "pending"

    # On the host: the child names its parent on this machine.
    child = remote_json(box, api, "task", "show", "1")
    assert (child["source_repo"], child["source_task_id"]) == ("web", parent["id"])
    assert child["approved_by"] == "auto:delegated-small from web"
    # Here: the parent names its child, with the child's live state read over ssh.
    reviewed = cli_json("remote", "wait", "api", "1", "--until", "awaiting_review", "--timeout", "90",
                        repo=web, timeout=120)
    assert reviewed["state"] == "awaiting_review" and reviewed["reached"], reviewed
    shown = cli_json("task", "show", str(parent["id"]), repo=web)
    assert shown["children"] == [{"repo": "api", "id": 1, "state": "awaiting_review"}]

    # A person on the host rejects it; the wait here returns, and the parent records how its child ended.
    waiter = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "remote", "wait", "api", "1", "--timeout", "90", "--json",
         "--repo", str(web)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        remote_json(box, api, "task", "reject", "1", "--reason", "not this way")
        out, err = waiter.communicate(timeout=120)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert json.loads(out)["state"] == "rejected"
    sent = [e for e in events_of(web, parent["id"]) if e["type"] == "delegation.sent"]
    finished = [e for e in events_of(web, parent["id"]) if e["type"] == "delegation.finished"]
    assert [(e["data"]["repo"], e["data"]["id"]) for e in sent] == [("api", 1)]
    assert finished and finished[-1]["data"]["state"] == "rejected" and not finished[-1]["data"]["ok"]


def test_the_human_gate_holds_across_hosts(short_tmp: Path, ssh_lab: SshLab, daemons: Daemons) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"})
    web, api, box = span.local["web"], span.remote_root("api"), span.hosts["build-box"]
    daemons(web)
    made = cli_json("remote", "create", "api", LARGE, repo=web)
    assert (made["state"], made["scope"]) == ("pending", "large"), made
    refused = cli("remote", "approve", "api", "1", "--json", repo=web)
    assert refused.code == 1 and refused.json["error"]["code"] == "human_gate", refused.stdout
    assert remote_json(box, api, "task", "show", "1")["state"] == "pending"
    # One line, saying where the person approves it: on the host, or from the cockpit once it is trusted.
    said = cli("remote", "approve", "api", "1", repo=web)
    assert said.code == 1 and len(said.stderr.strip().splitlines()) == 1, said.stderr
    assert f"ssh build-box cockpit task approve 1 --repo {api}" in said.stderr and "--trust" in said.stderr


def test_a_host_that_is_down_refuses_delegation_and_nothing_is_lost(
        short_tmp: Path, ssh_lab: SshLab, daemons: Daemons) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"})
    web, box = span.local["web"], span.hosts["build-box"]
    daemons(web)
    parent = {"id": make_executing_task(web, PARENT).id}  # only an executing task delegates
    box.down()
    refused = cli("remote", "create", "api", SMALL, "--task", str(parent["id"]), "--json", repo=web)
    assert refused.code != 0, refused.stdout
    error = refused.json["error"]
    assert error["code"] == "peer_unreachable" and "nothing was sent" in error["message"], error
    assert "build-box" in error["message"]
    assert not [e for e in events_of(web, parent["id"]) if e["type"].startswith("delegation.")]
    peers = cli_json("remote", "show", "api", "1", repo=web, expect=1)
    assert peers["error"]["code"] == "peer_unreachable"
    listing = cli("workspace", "list", "--json", cwd=short_tmp)
    listed = {r["name"]: r for r in listing.json["repos"]}
    assert listed["api"]["daemon"] == "unreachable" and listed["web"]["daemon"] == "up"
    human = cli("workspace", "list", cwd=short_tmp)
    assert "⊘ build-box unreachable" in human.stdout and "build-box:" in human.stdout, human.stdout
    # A person at a terminal gets one line: what is wrong, that nothing was sent, what to do.
    said = cli("remote", "create", "api", SMALL, "--task", str(parent["id"]), repo=web)
    assert said.code != 0 and said.stdout == ""
    assert len(said.stderr.strip().splitlines()) == 1, said.stderr
    assert "build-box" in said.stderr and "nothing was sent" in said.stderr and "try again" in said.stderr

    # The host is back, its daemon is not: refused the same way, saying how to start it.
    box.up()
    down = cli("remote", "create", "api", SMALL, "--task", str(parent["id"]), repo=web)
    assert down.code != 0 and len(down.stderr.strip().splitlines()) == 1, down.stderr
    assert "not running" in down.stderr and "cockpit daemon start" in down.stderr, down.stderr
    assert "nothing was sent" in down.stderr
    # Nothing was half-made on either side: no task there, no delegation event here.
    assert remote_json(box, span.remote_root("api"), "task", "list", "--all")["tasks"] == []
    assert not [e for e in events_of(web, parent["id"]) if e["type"].startswith("delegation.")]
