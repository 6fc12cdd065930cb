"""The MCP tools between repos on different hosts, driven by the official SDK's stdio client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_types import CallToolResult

from cockpit.core.mcp_config import HEARTBEAT_ENV, task_server_entry
from cockpit.core.remote.ssh import CONFIG_ENV
from cockpit_testkit.hostedrepos import spanning_workspace
from cockpit_testkit.sshhosts import SshLab
from cockpit_testkit.tasks import make_executing_task

Daemons = Callable[[Path], dict[str, Any]]
LARGE = "rewrite the routing and migrate the state store to the new export API client"


def body(result: CallToolResult) -> dict[str, Any]:
    data = result.structured_content
    assert isinstance(data, dict), result
    assert json.loads(result.content[0].text) == data  # type: ignore[union-attr]
    return data


@contextlib.asynccontextmanager
async def session(params: StdioServerParameters) -> AsyncIterator[ClientSession]:
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def test_mcp_tools_delegate_to_a_repo_on_another_host(
        short_tmp: Path, ssh_lab: SshLab, daemons: Daemons) -> None:
    span = await asyncio.to_thread(spanning_workspace, short_tmp, ssh_lab, local=["web"],
                                   hosted={"api": "build-box"})
    web, box = span.local["web"], span.hosts["build-box"]
    await asyncio.to_thread(daemons, web)
    parent = await asyncio.to_thread(make_executing_task, web, "add the /export endpoint to the API")
    entry = task_server_entry(web, parent.id)
    env = {**entry.env, HEARTBEAT_ENV: "0.2", CONFIG_ENV: os.environ[CONFIG_ENV],
           "XDG_RUNTIME_DIR": os.environ["XDG_RUNTIME_DIR"]}
    params = StdioServerParameters(command=entry.command, args=entry.args, env=env, cwd=Path("/"))
    async with session(params) as client:
        peers = body(await client.call_tool("list_peers", {}))
        listed = {p["name"]: p for p in peers["peers"]}
        assert listed["api"]["daemon"] == "up" and listed["api"]["host"] == "build-box", listed

        made = body(await client.call_tool("create_remote_task", {"repo": "api", "text": LARGE}))
        assert (made["id"], made["state"], made["scope"], made["via"]) == (1, "pending", "large", "daemon")
        got = body(await client.call_tool("get_remote_task", {"repo": "api", "id": 1}))
        assert got["task"]["parent"] == {"repo": "web", "id": parent.id}
        gate = await client.call_tool("approve_remote_task", {"repo": "api", "id": 1})
        assert gate.is_error and body(gate)["error"]["code"] == "human_gate"
        waited = body(await client.call_tool("wait_remote_task", {"repo": "api", "id": 1, "timeout_s": 0.5}))
        assert waited["state"] == "pending" and waited["timed_out"]

        await asyncio.to_thread(box.down)
        gone = await client.call_tool("create_remote_task", {"repo": "api", "text": "fix the README typo"})
        assert gone.is_error and body(gone)["error"]["code"] == "peer_unreachable", body(gone)
        assert "nothing was sent" in body(gone)["error"]["message"]
