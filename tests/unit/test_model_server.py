"""The fake model server the real-agent tests drive: each protocol renders the scripted steps, in order."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from cockpit_testkit.model_server import Commit, Done, ModelServer, Shell, Step, Tool, Write


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with ModelServer() as srv:
        srv.script("TASK-A", [
            Step("writing", (Write("a.txt", "a\n"), Commit("add a"))),
            Step("reporting", (Done("all set"),)),
            Step("finished"),
        ])
        srv.script("TASK-B", [Step("only", (Shell("echo b", ask=True),))])
        yield srv


def post(srv: ModelServer, path: str, body: dict[str, Any]) -> str:
    req = urllib.request.Request(srv.url + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def sse_data(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line[6:] != "[DONE]":
            out.append(json.loads(line[6:]))
    return out


def commands(events: list[Any]) -> list[str]:
    deltas = [e["delta"] for e in events if "delta" in e]
    return [json.loads(d["partial_json"])["command"] for d in deltas if d.get("type") == "input_json_delta"]


def test_anthropic_stream_tool_use_then_end_turn(server: ModelServer) -> None:
    tools = [{"name": "Bash", "input_schema": {}}]
    first = sse_data(post(server, "/v1/messages?beta=true", {
        "stream": True, "tools": tools, "messages": [{"role": "user", "content": "do TASK-A"}]}))
    # A step's actions arrive as one command: agents may run a response's calls in parallel.
    assert commands(first) == ["printf %s 'a\n' > a.txt && git add -A && git commit -q -m 'add a'"]
    assert first[-2]["delta"]["stop_reason"] == "tool_use"
    # The conversation comes back with the marker of step 0: the server answers step 1, then step 2.
    history = [{"role": "user", "content": "do TASK-A"},
               {"role": "assistant", "content": "ck-step 0. writing"}]
    second = sse_data(post(server, "/v1/messages", {"stream": True, "tools": tools, "messages": history}))
    assert commands(second) == ["$COCKPIT_HOOK done --message 'all set'"]
    history.append({"role": "assistant", "content": "ck-step 1. reporting"})
    third = sse_data(post(server, "/v1/messages", {"stream": True, "tools": tools, "messages": history}))
    assert third[-2]["delta"]["stop_reason"] == "end_turn"
    assert [r.step for r in server.answered("TASK-A")] == [0, 1, 2]
    assert server.usage_total("TASK-A")[0] > 0


def tool_uses(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(b["name"], b["input"]) for b in message["content"] if b["type"] == "tool_use"]


def test_anthropic_mcp_tools_are_searched_for_called_and_waited_on_again() -> None:
    """Claude Code defers MCP tools behind ToolSearch: the step searches first, then calls; a step with
    `again_if` is answered again while its tool says so."""
    wait = Tool("cockpit", "wait_remote_task", {"repo": "lib", "id": 1})
    with ModelServer() as srv:
        srv.script("TASK-M", [Step("waiting", (wait,), again_if=r'"timed_out":\s*true'), Step("over")])
        tools = [{"name": "Bash"}, {"name": "ToolSearch"}]
        history: list[dict[str, Any]] = [{"role": "user", "content": "do TASK-M"}]

        def ask() -> dict[str, Any]:
            body = {"tools": tools, "messages": history}
            answer: dict[str, Any] = json.loads(post(srv, "/v1/messages", body))
            history.append({"role": "assistant", "content": answer["content"]})
            return answer

        def result(text: str) -> None:
            history.append({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": text}]}]})

        first = ask()
        assert first["content"][0]["text"] == "ck-load 0."
        assert tool_uses(first) == [("ToolSearch", {"query": "select:mcp__cockpit__wait_remote_task",
                                                    "max_results": 1})]
        result('<functions><function>{"name": "mcp__cockpit__wait_remote_task"}</function></functions>')
        call = ask()
        assert call["content"][0]["text"] == "ck-step 0. waiting"
        assert tool_uses(call) == [("mcp__cockpit__wait_remote_task", {"repo": "lib", "id": 1})]
        result('{"ok":true,"state":"executing","timed_out":true}')
        assert tool_uses(ask()) == [("mcp__cockpit__wait_remote_task", {"repo": "lib", "id": 1})]
        result('{"ok":true,"state":"done","timed_out":false}')
        last = ask()
        assert last["content"][0]["text"] == "ck-step 1. over" and tool_uses(last) == []


def test_side_requests_never_advance_a_script(server: ModelServer) -> None:
    # No tools (a title request) and Claude's permission classifier: plain answers, no step, no marker.
    title = json.loads(post(server, "/v1/messages", {"messages": [{"role": "user", "content": "TASK-A"}]}))
    assert "ck-step" not in json.dumps(title)
    check = json.loads(post(server, "/v1/messages", {
        "system": "answer <block>no</block> to allow", "messages": [{"role": "user", "content": "TASK-A"}]}))
    assert check["content"][0]["text"] == "<block>no</block>"
    assert server.answered("TASK-A") == []


def test_responses_picks_the_offered_shell_tool_and_escalates(server: ModelServer) -> None:
    tool = {"type": "function", "name": "exec_command", "parameters": {"properties": {
        "cmd": {"type": "string"}, "sandbox_permissions": {"type": "string"}}}}
    events = sse_data(post(server, "/v1/responses", {
        "stream": True, "tools": [tool], "input": [{"role": "user", "content": "TASK-B"}]}))
    calls = [e["item"] for e in events if e["type"] == "response.output_item.done"
             and e["item"]["type"] == "function_call"]
    args = json.loads(calls[0]["arguments"])
    assert args["cmd"] == "echo b" and args["sandbox_permissions"] == "require_escalated"
    assert events[-1]["type"] == "response.completed" and events[-1]["response"]["usage"]["input_tokens"] > 0


def test_chat_completions_whole_file_edits_streamed_and_not(server: ModelServer) -> None:
    body = {"messages": [{"role": "user", "content": "TASK-A"}]}
    plain = json.loads(post(server, "/v1/chat/completions", body))
    assert "a.txt\n```\na\n```" in plain["choices"][0]["message"]["content"]
    chunks = sse_data(post(server, "/v1/chat/completions", {**body, "stream": True}))
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_gemini_function_calls_and_json_side_questions(server: ModelServer) -> None:
    tools = [{"functionDeclarations": [{"name": "run_shell_command"}]}]
    body = {"contents": [{"role": "user", "parts": [{"text": "TASK-A"}]}], "tools": tools}
    streamed = sse_data(post(server, "/v1beta/models/m:streamGenerateContent?alt=sse", body))
    parts = streamed[0]["candidates"][0]["content"]["parts"]
    assert [p["functionCall"]["args"]["command"] for p in parts[1:]] == [
        "printf %s 'a\n' > a.txt && git add -A && git commit -q -m 'add a'"]
    side = json.loads(post(server, "/v1beta/models/m:generateContent", {
        **body, "generationConfig": {"responseMimeType": "application/json"}}))
    assert json.loads(side["candidates"][0]["content"]["parts"][0]["text"])["next_speaker"] == "user"
