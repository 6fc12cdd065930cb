"""The person's credential and other hosts: never copied without `--trust`; with it, the cockpit is the person
there; a daemon never approves work on another host for a person, trusted or not."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import principals
from cockpit.core.errors import CockpitError
from cockpit.core.remote.daemons import HostedRepo, person_refusal
from cockpit.core.remote.ssh import SshHost
from cockpit.core.workspace import Workspace
from cockpit_testkit.daemons import cli
from cockpit_testkit.hostedrepos import spanning_workspace
from cockpit_testkit.sshhosts import LabHost, SshLab

Daemons = Callable[[Path], dict[str, Any]]
LARGE = "rewrite the routing and migrate the state store to the new export API client"


def remote_json(box: LabHost, root: Path, *args: str) -> Any:
    """`cockpit ARGS --json` run on the host, over ssh: what a person there would see."""
    result = box.ssh.run(["cockpit", *args, "--repo", str(root), "--json"])
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def files_holding(folder: Path, secret: str) -> list[Path]:
    """Every file under `folder` whose bytes contain `secret`."""
    found = []
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            try:
                if secret.encode() in path.read_bytes():
                    found.append(path)
            except OSError:
                continue
    return found


async def approve_through_forward(repo: HostedRepo, task_id: int) -> dict[str, Any]:
    """What the cockpit's `a` sends: approve_task over the forward, from the person's own client."""
    client = await repo.connect(10, person=True)
    try:
        return await client.call("approve_task", {"id": task_id, "by": "person"}, timeout=30)
    finally:
        await client.close()


def test_without_trust_the_token_stays_here_and_the_cockpit_is_a_peer_there(
        short_tmp: Path, ssh_lab: SshLab) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"})
    api, box = span.remote_root("api"), span.hosts["build-box"]
    mine = principals.ensure_token()
    made = remote_json(box, api, "task", "create", LARGE, "--force")
    assert made["state"] == "pending" and made["scope"] != "small"

    repo = HostedRepo("api", SshHost("build-box"), str(api))  # not trusted
    with pytest.raises(CockpitError) as refused:
        asyncio.run(approve_through_forward(repo, made["id"]))
    assert refused.value.code == "person_required"
    line = person_refusal(repo, refused.value, "approve_task", made["id"]).message
    assert "\n" not in line and "this cockpit is a peer" in line
    assert f"ssh build-box cockpit task approve {made['id']} --repo {api}" in line
    assert f"cockpit workspace add api --host build-box --path {api} --trust" in line
    assert remote_json(box, api, "task", "show", str(made["id"]))["state"] == "pending"
    assert files_holding(box.dir, mine) == []  # the person's token is nowhere on the host


def test_with_trust_the_cockpit_is_the_person_there_and_a_daemon_still_is_not(
        short_tmp: Path, ssh_lab: SshLab, daemons: Daemons) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"})
    web, api, box = span.local["web"], span.remote_root("api"), span.hosts["build-box"]
    mine = principals.ensure_token()
    theirs_file = box.config_home / "cockpit" / "token"
    theirs = theirs_file.read_text()  # made by the host's daemon when it started
    assert mine not in theirs

    # Trusting the host added before: the same entry again, with --trust.
    added = cli("workspace", "add", "api", "--host", "build-box", "--path", str(api), "--trust", "--json",
                cwd=short_tmp)
    assert added.code == 0, added.stdout + added.stderr
    assert added.json["trust"] is True
    installed = Path(added.json["trusted_token_file"])
    assert installed.parent == box.config_home / "cockpit" / principals.TRUSTED_DIR
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600
    assert stat.S_IMODE(installed.parent.stat().st_mode) == 0o700
    assert installed.read_text().split()[0] == mine
    assert theirs_file.read_text() == theirs  # the host user's own token is untouched
    assert "api" in Workspace.locate(short_tmp).trusted
    again = cli("workspace", "add", "api", "--host", "build-box", "--path", str(api), "--trust", "--json",
                cwd=short_tmp)
    assert again.code == 0, again.stderr
    assert [p.name for p in installed.parent.iterdir()] == [installed.name]  # once, however often trusted

    # The person's own client (the cockpit) through the forward: the person there.
    first = remote_json(box, api, "task", "create", LARGE, "--force")
    assert first["state"] == "pending"
    trusted = HostedRepo("api", SshHost("build-box"), str(api), trust=True)
    approved = asyncio.run(approve_through_forward(trusted, first["id"]))
    assert approved["approved_by"] == "person", approved

    # A daemon here delegating there stays a peer, trusted host or not: it cannot approve for the person.
    daemons(web)
    second = cli("remote", "create", "api", LARGE + " again", "--force", "--json", repo=web)
    assert second.code == 0 and second.json["state"] == "pending", second.stdout + second.stderr
    gate = cli("remote", "approve", "api", str(second.json["id"]), "--json", repo=web)
    assert gate.code == 1 and gate.json["error"]["code"] == "human_gate", gate.stdout
    assert remote_json(box, api, "task", "show", str(second.json["id"]))["state"] == "pending"
