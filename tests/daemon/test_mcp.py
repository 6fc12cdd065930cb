"""`cockpit mcp` driven by the official SDK's stdio client (`ClientSession`), against real daemons."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from cockpit.core.mcp_config import HEARTBEAT_ENV, REPO_ENV, TASK_ENV, TOOL_NAMES, task_server_entry
from cockpit.core.states import State
from cockpit.mcp.server import DEFAULT_WAIT_S, STATE_NAMES
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.tasks import make_executing_task
from cockpit_testkit.workspaces import build_workspace

Daemons = Callable[[Path], dict[str, Any]]

LARGE = "rewrite the routing and migrate the state store to the new export API client"
READ_ONLY = {"get_remote_task", "wait_remote_task", "list_peers", "list_tasks", "show_task"}


def body(result: CallToolResult) -> dict[str, Any]:
    data = result.structured_content
    assert isinstance(data, dict), result
    assert isinstance(data.get("hint"), str) and data["hint"], data
    assert json.loads(result.content[0].text) == data  # type: ignore[union-attr]
    return data


def refused(result: CallToolResult, code: str) -> dict[str, Any]:
    assert result.is_error, result
    data = body(result)
    assert data["ok"] is False and data["error"]["code"] == code, data
    assert "pydantic" not in data["error"]["message"] and "http" not in data["error"]["message"], data
    return data


def server(repo: Path | None = None, *, cwd: Path | None = None,
           env: dict[str, str] | None = None) -> StdioServerParameters:
    args = ["-m", "cockpit", "mcp"] + (["--repo", str(repo)] if repo is not None else [])
    return StdioServerParameters(command=sys.executable, args=args,
                                 env={HEARTBEAT_ENV: "0.2", **(env or {})}, cwd=cwd)


@contextlib.asynccontextmanager
async def session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def test_tools_are_listed_with_titles_schemas_and_annotations(short_tmp: Path) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    async with session(server(repos["backend"])) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == set(TOOL_NAMES)
    for name, tool in tools.items():
        assert tool.title and tool.description, name
        assert tool.annotations is not None and tool.annotations.read_only_hint is (name in READ_ONLY), name
        assert tool.annotations.open_world_hint is False
    wait = tools["wait_remote_task"].input_schema["properties"]
    assert wait["until"]["anyOf"][0]["items"]["enum"] == [s.value for s in State] == list(STATE_NAMES)
    assert wait["timeout_s"]["default"] == DEFAULT_WAIT_S < 60
    assert tools["wait_remote_task"].input_schema["required"] == ["repo", "id"]
    create = tools["create_remote_task"].input_schema["properties"]
    assert create["text"]["minLength"] == 1 and create["repo"]["minLength"] == 1
    assert tools["get_remote_task"].input_schema["properties"]["id"]["minimum"] == 1
    assert tools["list_tasks"].input_schema["properties"]["all"]["type"] == "boolean"
    assert tools["approve_remote_task"].annotations.idempotent_hint is True  # type: ignore[union-attr]


async def test_bad_arguments_come_back_in_the_documented_shape(short_tmp: Path) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    async with session(server(repos["backend"])) as client:
        loose = refused(await client.call_tool("list_tasks", {"all": "yes"}), "bad_request")
        assert loose["error"]["message"] == (
            "bad arguments for list_tasks: all: input should be a valid boolean (got str)")
        assert "input schema" in loose["hint"]
        refused(await client.call_tool("list_tasks", {"all": "true"}), "bad_request")
        refused(await client.call_tool("list_tasks", {"all": 1}), "bad_request")
        state = refused(await client.call_tool("list_tasks", {"states": ["finished"]}), "bad_request")
        assert "'rolled_back'" in state["error"]["message"]
        number = refused(await client.call_tool("get_remote_task", {"repo": "frontend", "id": "5"}),
                         "bad_request")
        assert "id: input should be a valid integer (got str)" in number["error"]["message"]
        refused(await client.call_tool("get_remote_task", {"repo": "frontend", "id": 0}), "bad_request")
        missing = refused(await client.call_tool("get_remote_task", {"repo": ""}), "bad_request")
        assert "at least 1 character" in missing["error"]["message"]
        assert "id is required" in missing["error"]["message"]
        unknown = refused(await client.call_tool("wait_remote_task", {"repo": "frontend", "id": 1,
                                                                      "timeout": 5}), "bad_request")
        assert unknown["error"]["message"] == (
            "unknown argument timeout for wait_remote_task; it takes: id, repo, timeout_s, until")
        empty = refused(await client.call_tool("create_remote_task", {"repo": "frontend", "text": ""}),
                        "bad_request")
        assert "text" in empty["error"]["message"]
        refused(await client.call_tool("no_such_tool", {}), "bad_request")
        # Scoped to no task: report_done has nobody to speak for.
        refused(await client.call_tool("report_done", {}), "no_task")
    assert cli_json("task", "list", repo=repos["frontend"])["tasks"] == []  # nothing was created


async def test_every_tool_over_stdio_from_a_task_s_pane(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    backend, frontend = repos["backend"], repos["frontend"]
    await asyncio.to_thread(daemons, frontend)
    await asyncio.to_thread(daemons, backend)
    parent = await asyncio.to_thread(make_executing_task, backend, "add the /export endpoint to the API")
    # As the agent's adapter starts it: env only, from the worktree-less repo root here.
    entry = task_server_entry(backend, parent.id)
    params = StdioServerParameters(command=entry.command, args=entry.args,
                                   env={**entry.env, HEARTBEAT_ENV: "0.2"}, cwd=Path("/"))
    async with session(params) as client:
        made = body(await client.call_tool("create_task", {"text": "document the /export endpoint"}))
        assert made["ok"] and made["task"]["id"] == 2
        # Recorded as the agent's, on behalf of its task, never as the person's.
        assert (made["task"]["created_by"], made["task"]["on_behalf_of"]) == ("agent", parent.id)

        peers = body(await client.call_tool("list_peers", {}))
        assert [(p["name"], p["daemon"]) for p in peers["peers"]] == [("frontend", "up")]

        remote = body(await client.call_tool("create_remote_task", {"repo": "frontend", "text": LARGE}))
        assert (remote["id"], remote["state"], remote["scope"]) == (1, "pending", "large") and remote["plan"]
        assert "a person must approve it in the frontend tab" in remote["hint"]
        assert f"task {parent.id} holds before its gates until frontend#1 is done" in remote["hint"]
        other = refused(await client.call_tool(
            "create_remote_task", {"repo": "frontend", "text": LARGE, "source_task_id": 2}), "other_task")
        assert "speaks for task 1" in other["error"]["message"]

        got = body(await client.call_tool("get_remote_task", {"repo": "frontend", "id": 1}))
        assert got["task"]["parent"] == {"repo": "backend", "id": parent.id}

        gate = refused(await client.call_tool("approve_remote_task", {"repo": "frontend", "id": 1}),
                       "human_gate")
        assert "cockpit task approve 1" in gate["error"]["message"]

        listed = body(await client.call_tool("list_tasks", {}))
        assert [(t["id"], t["children"]) for t in listed["tasks"]] == [
            (1, [{"repo": "frontend", "id": 1, "state": "pending"}]), (2, [])]
        shown = body(await client.call_tool("show_task", {}))  # its own task by default
        assert shown["task"]["id"] == parent.id and shown["task"]["children"][0]["state"] == "pending"
        assert "wait_remote_task(repo='frontend', id=1)" in shown["hint"]
        refused(await client.call_tool("show_task", {"id": 99}), "not_found")

        # A short wait returns the current state with timed_out and the advice to wait again.
        beats: list[str | None] = []

        async def on_beat(progress: float, total: float | None, message: str | None) -> None:
            beats.append(message)

        timed = body(await client.call_tool(
            "wait_remote_task", {"repo": "frontend", "id": 1, "timeout_s": 0.7}, progress_callback=on_beat))
        assert timed["ok"] and timed["timed_out"] and not timed["reached"] and timed["state"] == "pending"
        assert timed["hint"].startswith("timed out after 0.7s")
        assert "call wait_remote_task(repo='frontend', id=1) again" in timed["hint"]
        assert len(beats) >= 3 and all("awaiting approval" in (b or "") for b in beats)

        # A wait blocks, with progress notifications, until a person in frontend rejects the task.
        notes: list[tuple[float, str | None]] = []
        first = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            notes.append((progress, message))
            first.set()

        async def reject_once_waiting() -> None:
            await first.wait()
            await asyncio.to_thread(cli_json, "task", "reject", "1", "--reason", "not now", repo=frontend)

        rejecter = asyncio.ensure_future(reject_once_waiting())
        waited = body(await client.call_tool(
            "wait_remote_task", {"repo": "frontend", "id": 1, "timeout_s": 30},
            progress_callback=on_progress))
        await rejecter
        assert waited["state"] == "rejected" and waited["reached"] and not waited["timed_out"]
        assert "will not be done" in waited["hint"]
        assert notes[0][1] == "peer task frontend#1 pending, awaiting approval"
        assert any("rejected" in (m or "") for _, m in notes)
        values = [v for v, _ in notes]
        assert values == sorted(values) and len(set(values)) == len(values)

    # The rejected child failed its parent, named.
    failed = await asyncio.to_thread(cli_json, "task", "wait", str(parent.id), "--state", "failed",
                                     "--timeout", "30", repo=backend)
    assert failed["state"] == "failed"
    assert failed["failure"] == "delegated task failed: frontend#1 rejected: not now"
    sent = [e for e in map(json.loads, cli("events", repo=backend).stdout.splitlines())
            if e["type"] == "delegation.sent"]
    assert [(e["data"]["by"], e["data"]["on_behalf_of"]) for e in sent] == [("agent", parent.id)]
    created = [e for e in map(json.loads, cli("events", repo=backend).stdout.splitlines())
               if e["type"] == "task.created" and e["task_id"] == 2]
    assert created[0]["data"]["by"] == "agent" and created[0]["data"]["on_behalf_of"] == parent.id
    assert "created by agent on behalf of task 1" in cli("task", "show", "2", repo=backend).stdout


async def test_a_task_that_is_not_executing_cannot_delegate(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"],
                            per_repo={"frontend": {"task.auto_approve_delegated_small": "true"}})
    await asyncio.to_thread(daemons, repos["frontend"])
    pending = await asyncio.to_thread(cli_json, "task", "create", "add the /export endpoint to the API",
                                      repo=repos["backend"])
    assert pending["state"] == "pending"
    async with session(server(repos["backend"], env={TASK_ENV: str(pending["id"])})) as client:
        result = refused(await client.call_tool(
            "create_remote_task", {"repo": "frontend", "text": "fix the typo in the README title"}),
            "not_executing")
    assert "task 1 is pending: only an executing task can delegate" in result["error"]["message"]
    assert cli_json("task", "list", "--all", repo=repos["frontend"])["tasks"] == []


async def test_messages_name_the_peer_and_what_is_wrong_with_it(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "web", "docs", "gone"])
    await asyncio.to_thread(daemons, repos["web"])
    (repos["docs"] / ".cockpit" / "index.db").unlink()  # in the workspace, never set up
    await asyncio.to_thread(shutil.rmtree, repos["gone"])
    async with session(server(repos["backend"])) as client:
        for tool, args in (("get_remote_task", {"repo": "web", "id": 999}),
                           ("approve_remote_task", {"repo": "web", "id": 999}),
                           ("wait_remote_task", {"repo": "web", "id": 999, "timeout_s": 1})):
            missing = refused(await client.call_tool(tool, args), "not_found")
            assert missing["error"]["message"].startswith("web has no task 999"), (tool, missing)
            assert "this repo" not in missing["error"]["message"]
        peers = body(await client.call_tool("list_peers", {}))
        assert "not set up yet: docs (requests there are refused" in peers["hint"]
        assert "path missing: gone" in peers["hint"]
        assert "wait in `created`" not in peers["hint"]  # no peer here is merely down
        bare = refused(await client.call_tool("create_remote_task", {"repo": "docs", "text": LARGE}),
                       "not_initialised")
        assert "cockpit init" in bare["error"]["message"]
        gone = refused(await client.call_tool("create_remote_task", {"repo": "gone", "text": LARGE}),
                       "peer_missing")
        assert f"{repos['gone']} does not exist" in gone["error"]["message"]
        assert "daemon start" not in gone["error"]["message"]


async def test_the_server_starts_from_anywhere_given_the_repo(short_tmp: Path) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    await asyncio.to_thread(cli_json, "task", "create", "add the /export endpoint to the API",
                            repo=repos["backend"])
    for params in (server(repos["backend"], cwd=Path("/")),
                   server(cwd=Path("/"), env={REPO_ENV: str(repos["backend"]), TASK_ENV: "1"})):
        async with session(params) as client:
            listed = body(await client.call_tool("list_tasks", {}))
            assert listed["repo"] == "backend" and [t["id"] for t in listed["tasks"]] == [1]
            shown = await client.call_tool("show_task", {})
            if params.env and TASK_ENV in params.env:
                assert body(shown)["task"]["id"] == 1
            else:
                refused(shown, "bad_request")
    # Bad scope: one clear line, a non-zero exit.
    for env, expect in (({TASK_ENV: "abc", REPO_ENV: str(repos["backend"])}, "COCKPIT_TASK_ID='abc'"),
                        ({}, "/ is not inside a git repository")):
        proc = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "cockpit", "mcp"], cwd="/", capture_output=True, text=True,
            timeout=30, stdin=subprocess.DEVNULL,
            env={k: v for k, v in {**os.environ, **env}.items() if k != REPO_ENV or env})
        assert proc.returncode == 2 and expect in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


async def test_a_wait_outlives_the_sender_s_daemon(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    backend, frontend = repos["backend"], repos["frontend"]
    await asyncio.to_thread(daemons, frontend)
    await asyncio.to_thread(daemons, backend)
    await asyncio.to_thread(cli_json, "remote", "create", "frontend", LARGE, repo=backend)
    first = asyncio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        first.set()

    async def stop_sender_then_reject() -> None:
        await first.wait()
        await asyncio.to_thread(cli_json, "daemon", "stop", repo=backend)
        await asyncio.to_thread(cli_json, "task", "reject", "1", "--reason", "no", repo=frontend)

    async with session(server(backend, env={HEARTBEAT_ENV: "0.3"})) as client:
        chaos = asyncio.ensure_future(stop_sender_then_reject())
        waited = body(await client.call_tool(
            "wait_remote_task", {"repo": "frontend", "id": 1, "timeout_s": 40},
            progress_callback=on_progress))
        await chaos
    assert waited["ok"] and waited["state"] == "rejected" and waited["reached"], waited


async def test_report_done_speaks_for_its_task(short_tmp: Path, daemons: Daemons) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    await asyncio.to_thread(daemons, repos["backend"])
    parent = await asyncio.to_thread(make_executing_task, repos["backend"], "add the /export endpoint")
    async with session(server(repos["backend"], env={TASK_ENV: str(parent.id)})) as client:
        result = await client.call_tool("report_done", {"message": "added the endpoint"})
    data = body(result)
    if data["ok"]:
        assert data["task_id"] == parent.id
        events = [e for e in map(json.loads, cli("events", repo=repos["backend"]).stdout.splitlines())
                  if e["type"] == "agent.done"]
        assert events and events[-1]["data"]["message"] == "added the endpoint"
    else:  # the repo's ops do not have done_task yet
        assert data["error"]["code"] == "unknown_op", data
