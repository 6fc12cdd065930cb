"""The human gate on the socket: a connection that presents the person's token against one that presents
nothing, on the same real daemon. Only the person may approve, answer an agent, run a script or merge; a
peer's `source_repo`/`from_repo` must name a peer of the workspace."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import principals
from cockpit.core.client import DaemonClient
from cockpit.core.errors import ConfigError
from tests.daemon import test_socket
from tests.daemon.test_socket import Raw, Served, raw

served = test_socket.served  # one real daemon for this module too

LARGE = "rewrite the whole storage layer of the app to use a new database engine and migrate every module"
SCRIPT = '[[step]]\nsay = "hello"\n'


def refused(reply: dict[str, Any], code: str) -> None:
    assert reply["ok"] is False, reply
    assert reply["error"]["code"] == code, reply


async def create(conn: Raw, text: str, **args: Any) -> dict[str, Any]:
    reply = await conn.call("create_task", text=text, force=True, **args)
    assert reply["ok"] is True, reply
    result: dict[str, Any] = reply["result"]
    return result


async def test_large_peer_task_needs_the_person_to_approve(served: Served) -> None:
    async with raw(served) as person, raw(served, person=False) as peer:
        task = await create(person, LARGE, source_repo="backend", source_task_id=3)
        assert task["state"] == "pending" and task["scope"] != "small"
        # A token-less client's plain approve_task (what recorded `approved_by: person` before).
        refused(await peer.call("approve_task", id=task["id"]), "person_required")
        refused(await peer.call("approve_task", id=task["id"], by="person"), "person_required")
        # The remote path names its sender, which must be a peer of the workspace.
        refused(await peer.call("approve_task", id=task["id"], from_repo="backend"), "not_a_peer")
        assert (await peer.call("get_task", id=task["id"]))["result"]["state"] == "pending"
        approved = await person.call("approve_task", id=task["id"])
        assert approved["ok"] is True and approved["result"]["approved_by"] == "person"


async def test_send_input_retry_and_merge_need_the_person(served: Served) -> None:
    async with raw(served) as person, raw(served, person=False) as peer:
        task = await create(person, "add a health endpoint that returns ok")
        for op, args in (("send_input", {"text": "y"}), ("retry_task", {}), ("merge_task", {}),
                         ("rollback_task", {})):
            refused(await peer.call(op, id=task["id"], **args), "person_required")
        # The person gets past the gate, to the task's own state check.
        refused(await person.call("send_input", id=task["id"], text="y"), "not_executing")


async def test_script_and_made_up_source_repo(served: Served) -> None:
    async with raw(served) as person, raw(served, person=False) as peer:
        refused(await peer.call("create_task", text="write x with a script", script=SCRIPT, force=True),
                "person_required")
        refused(await peer.call("create_task", text="add a small readme badge", source_repo="nobody",
                                source_task_id=1, force=True), "not_a_peer")
        listed = await person.call("list_tasks", all=True)
        titles = [t["description"] for t in listed["result"]["tasks"]]
        assert "write x with a script" not in titles and "add a small readme badge" not in titles
        scripted = await create(person, "write y with a script", script=SCRIPT)
        assert scripted["script"] == SCRIPT
        made_up = await create(person, "add a small footer badge", source_repo="nobody", source_task_id=1)
        assert made_up["source_repo"] == "nobody"


async def test_a_peer_cannot_label_itself_the_person(served: Served) -> None:
    async with raw(served, person=False) as peer:
        task = await create(peer, "add a short changelog entry for the last release", by="person")
        rejected = await peer.call("reject_task", id=task["id"], by="person", reason="no")
        assert rejected["ok"] is True
        events = (await peer.call("events", since=0))["result"]["events"]
        kinds = ("task.created", "task.rejected")
        mine = [e for e in events if e["task_id"] == task["id"] and e["type"] in kinds]
        assert [e["data"]["by"] for e in mine] == ["peer", "peer"]


async def test_a_wrong_token_leaves_a_peer(served: Served) -> None:
    async with raw(served, person=False) as conn:
        refused(await conn.call("auth", token="0" * 64), "bad_token")
        task = await create(conn, "add a contributor guide section on commit messages")
        refused(await conn.call("approve_task", id=task["id"]), "person_required")
        # Protocol compatible: a client that never says `auth` is served as before.
        assert (await conn.call("ping"))["result"] == {"pong": True}


async def test_client_presents_the_token_only_when_asked(served: Served) -> None:
    async with await DaemonClient.connect(served.socket, person=True) as person:
        task = await person.call("create_task", {"text": LARGE + " again", "force": True})
        assert (await person.call("approve_task", {"id": task["id"]}))["approved_by"] == "person"
    async with await DaemonClient.connect(served.socket) as peer:
        task = await peer.call("create_task", {"text": LARGE + " once more", "force": True})
        with pytest.raises(Exception, match="needs a person"):
            await peer.call("approve_task", {"id": task["id"]})


def test_token_file_is_private_and_refused_when_not(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "cockpit" / "token"
    token = principals.ensure_token(path)
    assert principals.ensure_token(path) == token == principals.read_token(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="readable by others"):
        principals.read_token(path)
    assert principals.token_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/cockpit/token")
    assert principals.token_path({"COCKPIT_TOKEN_FILE": "/y/t"}) == Path("/y/t")


async def test_a_token_trusted_here_is_the_person_and_one_others_can_read_is_not(served: Served) -> None:
    """Another machine's person token, installed by `workspace add --trust` there, speaks for the person."""
    theirs = "c" * 64
    file, added = principals.accept_token(theirs, "me@laptop")
    try:
        assert added and file.parent == principals.trusted_dir()
        async with raw(served, person=False) as conn:
            assert (await conn.call("auth", token=theirs))["result"] == {"principal": "person"}
            task = await create(conn, LARGE + " from the laptop")
            approved = await conn.call("approve_task", id=task["id"])
            assert approved["ok"] is True and approved["result"]["approved_by"] == "person"
        os.chmod(file, 0o644)  # a file others can read is no credential
        async with raw(served, person=False) as conn:
            refused(await conn.call("auth", token=theirs), "bad_token")
    finally:
        file.unlink(missing_ok=True)


def test_accepting_a_token_never_replaces_this_machines_own(tmp_path: Path) -> None:
    own_file = tmp_path / "cockpit" / "token"
    own = principals.ensure_token(own_file)
    folder = own_file.with_name(principals.TRUSTED_DIR)
    theirs = "d" * 64
    file, added = principals.accept_token(theirs, "me@laptop\x1b[31m", folder)
    assert added and own_file.read_text().strip() == own
    assert stat.S_IMODE(file.stat().st_mode) == 0o600 and stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert "\x1b" not in file.read_text()
    assert principals.accept_token(theirs, "me@laptop", folder) == (file, False)  # the same token: one file
    assert principals.trusted_tokens(folder) == [theirs]
    assert principals.accepts(theirs, own, folder) and principals.accepts(own, own, folder)
    assert not principals.accepts("e" * 64, own, folder)
    with pytest.raises(ConfigError, match="not a person token"):
        principals.accept_token("short; rm -rf /", "me@laptop", folder)
    assert sorted(p.name for p in folder.iterdir()) == [file.name]
