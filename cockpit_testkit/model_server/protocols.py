"""The four wire protocols the real agents speak, each rendering a scripted step as that protocol's response.

- Anthropic Messages (`POST /v1/messages`, SSE when `stream`): Claude Code. Tool calls are `tool_use` blocks
  for its `Bash` tool, and for its MCP tools (`mcp__SERVER__NAME`) where a step calls one. Claude Code 2.1
  defers MCP tools behind its `ToolSearch` tool (and its MCP servers may connect after the first request):
  until a tool's schema came back from a search, the step is answered with a `ToolSearch` call instead,
  marked `ck-load N` (not a step marker, so the step is answered again once the tool is loaded).
- OpenAI Responses (`POST /v1/responses`, SSE): Codex. Tool calls are `function_call` items for whichever
  shell tool the request offers (`shell` takes an argv, `exec_command` a `cmd`, `shell_command` a `command`).
- OpenAI chat completions (`POST /v1/chat/completions`, streaming or not): aider. It has no tools: a `Write`
  becomes a whole-file edit block in the text, which aider applies and commits itself.
- Gemini (`POST /v1beta/models/M:generateContent` and `:streamGenerateContent`): Gemini CLI. Tool calls are
  `functionCall` parts for its `run_shell_command` tool.

Each renderer returns a list of SSE `data` payloads (or one JSON body) plus the usage it reported, so the
tests can compare what cockpit recorded with what the model said.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from cockpit_testkit.model_server.script import Shell, Step, Write, step_command, text_of, tool_calls

CLASSIFIER_ALLOW = "<block>no</block>"
COMMIT_MESSAGE_ASK = "Git commit messages"
SHELL_TOOLS = ("Bash", "shell", "exec_command", "shell_command", "run_shell_command", "local_shell")


@dataclass
class Usage:
    input_tokens: int
    output_tokens: int


def usage_for(body_text: str, out_text: str) -> Usage:
    # Roughly four characters a token, never zero: the figures only need to be plausible and known.
    return Usage(max(1, len(body_text) // 4), max(1, len(out_text) // 4))


# ---- Anthropic Messages --------------------------------------------------------------------------


def anthropic_tools(body: dict[str, Any]) -> list[str]:
    return [str(t.get("name")) for t in body.get("tools") or [] if isinstance(t, dict)]


def _result_text(block: dict[str, Any]) -> str:
    """The text of one `tool_result` block (its content is a string or a list of text blocks)."""
    inner = block.get("content")
    if isinstance(inner, list):
        return "\n".join(str(b.get("text", "")) for b in inner if isinstance(b, dict))
    return inner if isinstance(inner, str) else ""


def _results(message: Any) -> list[str]:
    content = message.get("content") if isinstance(message, dict) else None
    blocks = content if isinstance(content, list) else []
    return [_result_text(b) for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]


def anthropic_last_result(body: dict[str, Any]) -> str:
    """The text of the tool results in the request's last message (what the agent's last tool calls gave)."""
    messages = body.get("messages") or []
    return "\n".join(_results(messages[-1])) if messages else ""


MAX_LOADS = 40  # ToolSearch calls for one step before giving up (the MCP server never connected)


def anthropic_loaded(body: dict[str, Any], name: str) -> bool:
    """Whether tool `name` can be called: offered in the request, or its schema came back from a search."""
    if name in anthropic_tools(body):
        return True
    found = re.compile(r'"name":\s*"' + re.escape(name) + '"')
    return any(found.search(text) for message in body.get("messages") or [] for text in _results(message))


def anthropic_events(
    step: Step, index: int | None, body: dict[str, Any], usage: Usage
) -> list[tuple[str, Any]]:
    """(event name, data) pairs of a streamed Messages response."""
    model = body.get("model", "fake")
    msg_id = f"msg_{uuid.uuid4().hex[:24]}"
    events: list[tuple[str, Any]] = [
        ("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": 1,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
    ]
    blocks = anthropic_blocks(step, index, body)
    for n, block in enumerate(blocks):
        if block["type"] == "text":
            events.append(("content_block_start", {"type": "content_block_start", "index": n,
                                                   "content_block": {"type": "text", "text": ""}}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": n,
                                                   "delta": {"type": "text_delta", "text": block["text"]}}))
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            events.append(("content_block_start", {"type": "content_block_start", "index": n,
                                                   "content_block": start}))
            events.append(("content_block_delta", {"type": "content_block_delta", "index": n, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(block["input"])}}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": n}))
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    events.append(("message_delta", {"type": "message_delta",
                                     "delta": {"stop_reason": stop, "stop_sequence": None},
                                     "usage": {"output_tokens": usage.output_tokens}}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def anthropic_blocks(step: Step, index: int | None, body: dict[str, Any]) -> list[dict[str, Any]]:
    offered = anthropic_tools(body)
    wanted = [f"mcp__{tool.server}__{tool.name}" for tool in tool_calls(step)]
    missing = [name for name in wanted if not anthropic_loaded(body, name)]
    if missing and index is not None and "ToolSearch" in offered:
        load = f"ck-load {index}."
        if json.dumps(body.get("messages") or []).count(load) < MAX_LOADS:
            return [{"type": "text", "text": load},
                    {"type": "tool_use", "id": f"toolu_ckload{index}_{uuid.uuid4().hex[:8]}",
                     "name": "ToolSearch",
                     "input": {"query": "select:" + ",".join(missing), "max_results": len(missing)}}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text_of(step, index)}]
    call = step_command(step)
    if call is not None and "Bash" in anthropic_tools(body):
        blocks.append({"type": "tool_use", "id": f"toolu_ck{index}_{uuid.uuid4().hex[:8]}",
                       "name": "Bash",
                       "input": {"command": call.command, "description": "Run a shell command"}})
    for tool in tool_calls(step):
        name = f"mcp__{tool.server}__{tool.name}"
        if anthropic_loaded(body, name):
            blocks.append({"type": "tool_use", "id": f"toolu_ck{index}_{uuid.uuid4().hex[:8]}",
                           "name": name, "input": tool.args})
    return blocks


def anthropic_message(step: Step, index: int | None, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
    blocks = anthropic_blocks(step, index, body)
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {"id": f"msg_{uuid.uuid4().hex[:24]}", "type": "message", "role": "assistant",
            "model": body.get("model", "fake"), "content": blocks, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens}}


# ---- OpenAI Responses ----------------------------------------------------------------------------


def responses_shell_tool(body: dict[str, Any]) -> dict[str, Any] | None:
    by_name = {str(t.get("name")): t for t in body.get("tools") or [] if isinstance(t, dict)}
    for name in SHELL_TOOLS:
        if name in by_name:
            return by_name[name]
    return None


def responses_arguments(tool: dict[str, Any], call: Shell) -> dict[str, Any]:
    props = (tool.get("parameters") or {}).get("properties") or {}
    command = call.command
    if "cmd" in props:
        args: dict[str, Any] = {"cmd": command}
        if call.ask and "sandbox_permissions" in props:
            args |= {"sandbox_permissions": "require_escalated", "justification": "May I run this?"}
        return args
    if (props.get("command") or {}).get("type") == "array":
        return {"command": ["bash", "-lc", command]}
    return {"command": command}


def responses_events(
    step: Step, index: int | None, body: dict[str, Any], usage: Usage
) -> list[dict[str, Any]]:
    resp_id = f"resp_{uuid.uuid4().hex[:24]}"
    base = {"id": resp_id, "object": "response", "model": body.get("model", "fake"), "status": "in_progress",
            "output": []}
    events: list[dict[str, Any]] = [{"type": "response.created", "response": base}]
    items: list[dict[str, Any]] = []
    text = text_of(step, index)
    msg_id = f"msg_{uuid.uuid4().hex[:16]}"
    message = {"type": "message", "id": msg_id, "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": text, "annotations": []}]}
    events.append({"type": "response.output_item.added", "output_index": 0,
                   "item": {**message, "status": "in_progress", "content": []}})
    events.append({"type": "response.output_text.delta", "item_id": msg_id, "output_index": 0,
                   "content_index": 0, "delta": text})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": message})
    items.append(message)
    tool = responses_shell_tool(body)
    command = step_command(step)
    if tool is not None and command is not None:
        call = {"type": "function_call", "id": f"fc_{uuid.uuid4().hex[:16]}", "status": "completed",
                "call_id": f"call_ck{index}_{uuid.uuid4().hex[:8]}", "name": tool["name"],
                "arguments": json.dumps(responses_arguments(tool, command))}
        events.append({"type": "response.output_item.added", "output_index": len(items), "item": call})
        events.append({"type": "response.output_item.done", "output_index": len(items), "item": call})
        items.append(call)
    done = {**base, "status": "completed", "output": items, "usage": {
        "input_tokens": usage.input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": usage.output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.input_tokens + usage.output_tokens}}
    events.append({"type": "response.completed", "response": done})
    return events


# ---- OpenAI chat completions (aider) -------------------------------------------------------------


def aider_text(step: Step, index: int | None) -> str:
    """Text with whole-file edit blocks (aider's "whole" format: the path, then the file in a fence)."""
    parts = [text_of(step, index)]
    for action in step.actions:
        if isinstance(action, Write):
            parts.append(f"{action.path}\n```\n{action.content}```")
    return "\n\n".join(parts) + "\n"


def chat_completion(step: Step, index: int | None, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:20]}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "fake"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": aider_text(step, index)}}],
            "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                      "total_tokens": usage.input_tokens + usage.output_tokens}}


def chat_chunks(step: Step, index: int | None, body: dict[str, Any], usage: Usage) -> list[dict[str, Any]]:
    cid = f"chatcmpl-{uuid.uuid4().hex[:20]}"
    model = body.get("model", "fake")
    text = aider_text(step, index)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": text[i:i + 40]}) for i in range(0, len(text), 40)]
    chunks.append(chunk({}, "stop"))
    chunks.append({"id": cid, "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
                   "usage": {"prompt_tokens": usage.input_tokens, "completion_tokens": usage.output_tokens,
                             "total_tokens": usage.input_tokens + usage.output_tokens}})
    return chunks


# ---- Gemini --------------------------------------------------------------------------------------


def gemini_shell_tool(body: dict[str, Any]) -> str | None:
    names: list[str] = []
    for tool in body.get("tools") or []:
        for decl in (tool or {}).get("functionDeclarations") or []:
            names.append(str(decl.get("name")))
    for name in SHELL_TOOLS:
        if name in names:
            return name
    return None


def gemini_response(step: Step, index: int | None, body: dict[str, Any], usage: Usage) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text_of(step, index)}]
    tool = gemini_shell_tool(body)
    call = step_command(step)
    if tool is not None and call is not None:
        parts.append({"functionCall": {"name": tool, "args": {
            "command": call.command, "description": "Run a shell command"}}})
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    return {"candidates": [candidate],
            "usageMetadata": {"promptTokenCount": usage.input_tokens,
                              "candidatesTokenCount": usage.output_tokens,
                              "totalTokenCount": usage.input_tokens + usage.output_tokens},
            "modelVersion": "fake"}


def gemini_json_answer(body: dict[str, Any]) -> dict[str, Any]:
    """Side questions Gemini CLI asks with a JSON schema (who speaks next, loop checks): the user speaks."""
    text = json.dumps({"reasoning": "The model finished its turn.", "next_speaker": "user"})
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                            "index": 0}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2}}
