"""The real Claude Code delegates through cockpit's MCP tools: its per-task MCP config, no approval dialog.

Two repos of one workspace, each with its daemon: `app` runs Claude Code (under the default sandbox), `lib`
runs the script agent. The fake model makes Claude call `mcp__cockpit__create_remote_task` (a small task in
`lib`, approved there by itself), `mcp__cockpit__wait_remote_task` until that task waits for its review
(again while the tool says `timed_out`), commit, and `mcp__cockpit__report_done`. Cockpit then holds `app`'s
task before its gates until a person merges the child in `lib`.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cockpit_testkit.agentkit import AGENTS, Driver, require_cli, seed_home
from cockpit_testkit.model_server import ModelServer, Shell, Step, Tool
from cockpit_testkit.waiting import wait_until
from cockpit_testkit.workspaces import build_workspace

pytestmark = [pytest.mark.agents, pytest.mark.timeout(420)]

HOLDING = "the agent is done; waiting for the delegated work before the gates"
TIMED_OUT = r'"timed_out":\s*true'


@pytest.fixture
def workspace(
    short_tmp: Path, tmux_socket: str, model_server: ModelServer
) -> Iterator[tuple[Driver, Driver]]:
    """(app's driver, lib's driver): Claude Code in app, the script agent in lib; both daemons started."""
    spec = AGENTS["claude"]
    require_cli(spec)
    common = {"tmux.socket_name": tmux_socket, "task.max_parallel": "2"}
    repos = build_workspace(short_tmp, ["app", "lib"], per_repo={
        "app": {**common, "agent.backend": "claude"},
        "lib": {**common, "agent.backend": "script"},
    })
    env = seed_home(spec, Path(os.environ["HOME"]), repos["app"], model_server)
    app, lib = Driver(spec, repos["app"], tmux_socket, env), Driver(spec, repos["lib"], tmux_socket, env)
    started: list[Driver] = []
    try:
        for driver in (lib, app):
            driver.start_daemon()
            started.append(driver)
        yield app, lib
    finally:
        for driver in started:
            driver.stop_daemon()


def tool_results(server: ModelServer, tag: str) -> list[dict[str, Any]]:
    """Every tool_result block Claude sent back in the conversation of `tag`, in order, once each."""
    seen: dict[str, dict[str, Any]] = {}
    for request in server.answered(tag):
        for message in request.body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    seen.setdefault(str(block.get("tool_use_id")), block)
    return list(seen.values())


def result_json(block: dict[str, Any]) -> dict[str, Any]:
    """The JSON object a cockpit tool answered, from its tool_result block (text, or a list of texts)."""
    content = block.get("content")
    text = content if isinstance(content, str) else "".join(
        str(b.get("text", "")) for b in content or [] if isinstance(b, dict))
    data: dict[str, Any] = json.loads(text)
    return data


def tool_uses(server: ModelServer, tag: str) -> dict[str, str]:
    """tool_use id -> tool name, of the calls the model made in the conversation of `tag`."""
    out: dict[str, str] = {}
    for request in server.answered(tag):
        for message in request.body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_use":
                    out[str(block.get("id"))] = str(block.get("name"))
    return out


def test_claude_delegates_through_the_per_task_mcp_server_with_no_approval_dialog(
    workspace: tuple[Driver, Driver], model_server: ModelServer
) -> None:
    app, lib = workspace
    tag, child_tag = uuid.uuid4().hex[:10], uuid.uuid4().hex[:10]
    child_text = f"Add a usage note to the README {child_tag}"
    model_server.script(tag, [
        Step("Delegating the note to lib.",
             (Tool("cockpit", "create_remote_task", {"repo": "lib", "text": child_text}),)),
        Step("Waiting for lib#1.",
             (Tool("cockpit", "wait_remote_task",
                   {"repo": "lib", "id": 1, "until": ["awaiting_review"], "timeout_s": 1}),),
             again_if=TIMED_OUT),
        Step("Recording the change.", (Shell("git commit --allow-empty -q -m 'use the lib note'"),)),
        Step("Reporting done.", (Tool("cockpit", "report_done", {"message": "lib adds the note"}),)),
        Step("Done; lib#1 waits for its reviewer."),
    ])
    parent_id = app.create(f"Document the export flag {tag}")
    app.cockpit("task", "approve", str(parent_id), "--anyway")

    # Claude reports done through the MCP tool; cockpit holds the task before its gates for the child.
    def held() -> dict[str, Any] | None:
        failed = [r for r in tool_results(model_server, tag) if r.get("is_error")]
        if failed:
            raise AssertionError(f"a tool call failed: {failed[0]}")
        task = app.show(parent_id)
        if task["state"] != "executing":
            raise AssertionError(f"task {parent_id} is {task['state']}: {task.get('failure')}\n"
                                 f"{app.screen(parent_id)}")
        log = app.paths.task_log(parent_id)
        holding = log.exists() and HOLDING in log.read_text()
        return task if task["agent_status"] == "done" and holding else None

    try:
        parent = wait_until(held, timeout=180, interval=0.3, message="the task to hold for its child")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{app.screen(parent_id)}") from None
    assert parent is not None

    # The child exists in lib, linked both ways; app records it as sent by the agent on behalf of its task.
    child = lib.show(1)
    assert child["parent"] == {"repo": "app", "id": parent_id}, child
    assert child["title"].startswith("Add a usage note") and child["state"] == "awaiting_review", child
    created = next(e for e in lib.events(1) if e["type"] == "task.created")["data"]
    assert (created["by"], created["source_task_id"]) == ("remote:app", parent_id), created
    sent = next(e for e in app.events(parent_id) if e["type"] == "delegation.sent")["data"]
    assert (sent["by"], sent["on_behalf_of"]) == ("agent", parent_id), sent
    assert parent["children"] == [{"repo": "lib", "id": 1, "state": "awaiting_review"}], parent["children"]

    # Every tool call went through (no error, no permission refusal), wait_remote_task at least once.
    uses = tool_uses(model_server, tag)
    results = [r for r in tool_results(model_server, tag)
               if uses.get(str(r.get("tool_use_id"))) != "ToolSearch"]
    names = [uses.get(str(r.get("tool_use_id")), "?") for r in results]
    assert names[0] == "mcp__cockpit__create_remote_task", names
    assert "mcp__cockpit__wait_remote_task" in names and "mcp__cockpit__report_done" in names, names
    assert not [r for r in results if r.get("is_error")], results
    waited = [r for r, n in zip(results, names, strict=True) if n == "mcp__cockpit__wait_remote_task"]
    last_wait = result_json(waited[-1])
    assert last_wait["reached"] is True and last_wait["state"] == "awaiting_review", last_wait

    # No dialog at all: not for the MCP server, not for its tools (nothing was ever flagged).
    events = [e["type"] for e in app.events(parent_id)]
    flagged = [e["data"] for e in app.events(parent_id) if e["type"] == "agent.needs_input"]
    assert not flagged, flagged
    assert "agent.done" in events and "task.gating" not in events, events

    # A person merges the child in lib; only then does the parent run its gates and reach review.
    lib.cockpit("task", "merge", "1")
    reviewed = app.drive(parent_id, "awaiting_review", timeout=120)
    assert reviewed["children"] == [{"repo": "lib", "id": 1, "state": "done"}]
    seen = [e["type"] for e in app.events(parent_id)]
    assert seen.index("agent.done") < seen.index("delegation.finished") < seen.index("task.gating")
