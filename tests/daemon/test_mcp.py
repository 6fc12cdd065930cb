"""`cockpit mcp` driven by the official SDK's own stdio client, against real repos and daemons."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult

from cockpit.mcp.server import HEARTBEAT_ENV, TASK_ENV
from tests.support.daemons import cli_json
from tests.support.workspaces import build_workspace

Daemons = Callable[[Path], dict[str, Any]]

LARGE = "rewrite the routing and migrate the state store to the new export API client"
TOOLS = {"create_remote_task", "get_remote_task", "approve_remote_task", "wait_remote_task", "list_peers",
         "list_tasks", "show_task", "create_task"}


def body(result: CallToolResult) -> dict[str, Any]:
    data = result.structured_content
    assert isinstance(data, dict), result
    assert isinstance(data.get("hint"), str) and data["hint"], data
    return data


def server(repo: Path, **env: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "cockpit", "mcp", "--repo", str(repo)],
                                 env={HEARTBEAT_ENV: "0.2", **env})


@pytest.mark.parametrize("sender_daemon", [False, True], ids=["sender-store", "sender-daemon"])
async def test_every_tool_over_stdio(short_tmp: Path, daemons: Daemons, sender_daemon: bool) -> None:
    repos = build_workspace(short_tmp, ["backend", "frontend"])
    backend, frontend = repos["backend"], repos["frontend"]
    await asyncio.to_thread(daemons, frontend)
    if sender_daemon:
        await asyncio.to_thread(daemons, backend)
    async with Client(server(backend, **{TASK_ENV: "1"})) as client:
        tools = (await client.list_tools()).tools
        assert {t.name for t in tools} == TOOLS
        assert all(t.description for t in tools)

        made = body(await client.call_tool("create_task", {"text": "add the /export endpoint to the API"}))
        assert made["ok"] and made["task"]["id"] == 1

        peers = body(await client.call_tool("list_peers", {}))
        assert [(p["name"], p["daemon"]) for p in peers["peers"]] == [("frontend", "up")]

        remote = body(await client.call_tool("create_remote_task", {"repo": "frontend", "text": LARGE}))
        assert (remote["id"], remote["state"], remote["scope"]) == (1, "pending", "large") and remote["plan"]
        assert "a person must approve it in the frontend tab" in remote["hint"]

        got = body(await client.call_tool("get_remote_task", {"repo": "frontend", "id": 1}))
        assert got["task"]["parent"] == {"repo": "backend", "id": 1}  # linked to this worktree's task

        refused = await client.call_tool("approve_remote_task", {"repo": "frontend", "id": 1})
        assert refused.is_error
        assert body(refused)["error"]["code"] == "human_gate"

        listed = body(await client.call_tool("list_tasks", {}))
        assert [(t["id"], t["children"]) for t in listed["tasks"]] == [
            (1, [{"repo": "frontend", "id": 1, "state": "pending"}])]
        shown = body(await client.call_tool("show_task", {"id": 1}))
        assert shown["task"]["children"][0]["state"] == "pending"
        missing = await client.call_tool("show_task", {"id": 99})
        assert missing.is_error and body(missing)["error"]["code"] == "not_found"

        # wait_remote_task blocks, with progress notifications, until a person in frontend cancels the task.
        notes: list[tuple[float, str | None]] = []
        first = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            notes.append((progress, message))
            first.set()

        async def cancel_once_waiting() -> None:
            await first.wait()
            await asyncio.to_thread(cli_json, "task", "cancel", "1", repo=frontend)

        canceller = asyncio.ensure_future(cancel_once_waiting())
        waited = body(await client.call_tool(
            "wait_remote_task", {"repo": "frontend", "id": 1, "timeout_s": 60},
            progress_callback=on_progress))
        await canceller
        assert waited["state"] == "cancelled" and waited["reached"] and not waited["timed_out"]
        assert "will not be done" in waited["hint"]
        assert notes[0][1] == "peer task frontend#1 pending, awaiting approval"
        assert any("cancelled" in (m or "") for _, m in notes)
        values = [v for v, _ in notes]
        assert values == sorted(values) and len(set(values)) == len(values)

        # The timeout argument: nothing happens, so it times out, with heartbeats while it blocks.
        body(await client.call_tool("create_remote_task", {"repo": "frontend", "text": LARGE, "force": True}))
        beats: list[str | None] = []

        async def on_beat(progress: float, total: float | None, message: str | None) -> None:
            beats.append(message)

        timed = body(await client.call_tool(
            "wait_remote_task", {"repo": "frontend", "id": 2, "timeout_s": 0.7}, progress_callback=on_beat))
        assert timed["timed_out"] and not timed["reached"] and timed["state"] == "pending"
        assert timed["hint"].startswith("timed out after 0.7s")
        assert len(beats) >= 3 and all("awaiting approval" in (b or "") for b in beats)

    linked = cli_json("task", "show", "1", repo=backend)
    assert [(c["id"], c["state"]) for c in linked["children"]] == [(1, "cancelled"), (2, "pending")]


async def test_mcp_errors_are_structured_without_a_workspace(repo: Path) -> None:
    await asyncio.to_thread(cli_json, "init", repo=repo)
    async with Client(server(repo)) as client:
        result = await client.call_tool("list_peers", {})
        assert result.is_error
        data = body(result)
        assert data["ok"] is False and data["error"]["code"] == "no_workspace"
        assert "workspace" in data["hint"]
