"""A fake model server on 127.0.0.1 (ephemeral port) speaking the real agents' wire protocols.

`ModelServer().start()` serves every protocol at once (the paths do not overlap), so one server feeds any mix
of agents. Every request is recorded (`requests`) for the tests to assert on, with the usage the server
reported for it. A request that matches no script, or that offers no tools (titles, summaries, side
questions), gets a short plain answer that never advances a script.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cockpit_testkit.model_server import protocols as p
from cockpit_testkit.model_server.script import IDLE, Scripts, Step


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    step: int | None  # the script step answered, None for side requests
    usage: p.Usage | None
    at: float = field(default_factory=time.monotonic)
    at_wall: float = field(default_factory=time.time)  # to compare with cockpit's event timestamps


class ModelServer:
    def __init__(self) -> None:
        self.scripts = Scripts()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> ModelServer:
        server = self

        class Handler(_Handler):
            model = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, args=(0.05,), name="model-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- scripts and records -----------------------------------------------------------------------

    def script(self, match: str, steps: list[Step]) -> None:
        self.scripts.add(match, steps)

    def record(self, item: Recorded) -> None:
        with self._lock:
            self.requests.append(item)

    def answered(self, match: str = "") -> list[Recorded]:
        """The scripted requests (side requests left out) whose body holds `match`."""
        with self._lock:
            items = list(self.requests)
        return [r for r in items if r.step is not None and match in json.dumps(r.body)]

    def usage_total(self, match: str = "") -> tuple[int, int]:
        items = [r.usage for r in self.answered(match) if r.usage is not None]
        return sum(u.input_tokens for u in items), sum(u.output_tokens for u in items)


class _Handler(BaseHTTPRequestHandler):
    model: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    # -- plumbing ----------------------------------------------------------------------------------

    def _body(self) -> tuple[str, dict[str, Any]]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        text = raw.decode("utf-8", "replace")
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            data = {}
        return text, data if isinstance(data, dict) else {"_": data}

    def _json(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _sse(self, events: list[tuple[str | None, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for name, data in events:
            chunk = f"event: {name}\n" if name else ""
            chunk += f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"
            self.wfile.write(chunk.encode())
            self.wfile.flush()

    def _record(self, text: str, body: dict[str, Any], step: int | None, usage: p.Usage | None) -> None:
        self.model.record(Recorded(self.command, self.path, dict(self.headers), body, step, usage))

    def _pick(self, text: str, has_tools: bool, last_result: str = "") -> tuple[Step, int | None]:
        picked = self.model.scripts.pick(text, last_result) if has_tools else None
        if picked is None:
            return IDLE, None
        return picked

    # -- verbs -------------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        self._record("", {}, None, None)
        if path.endswith("/models"):
            model = {"id": "fake", "object": "model", "owned_by": "test"}
            self._json(200, {"object": "list", "data": [model], "models": []})
            return
        self._json(200, {})

    def do_POST(self) -> None:
        text, body = self._body()
        path = self.path.split("?")[0]
        if path.endswith("/messages/count_tokens"):
            self._record(text, body, None, None)
            self._json(200, {"input_tokens": max(1, len(text) // 4)})
        elif path.endswith("/messages"):
            self._anthropic(text, body)
        elif path.endswith("/responses"):
            self._responses(text, body)
        elif path.endswith("/chat/completions"):
            self._chat(text, body)
        elif ":countTokens" in path:
            self._record(text, body, None, None)
            self._json(200, {"totalTokens": max(1, len(text) // 4)})
        elif ":streamGenerateContent" in path or ":generateContent" in path:
            self._gemini(text, body, stream=":streamGenerateContent" in path)
        else:
            self._record(text, body, None, None)
            self._json(404, {"error": {"message": f"fake model server: no route for {path}"}})

    # -- protocols ---------------------------------------------------------------------------------

    def _anthropic(self, text: str, body: dict[str, Any]) -> None:
        if not p.anthropic_tools(body) and p.CLASSIFIER_ALLOW in json.dumps(body.get("system") or ""):
            # Claude Code's auto-mode permission check: allow the action.
            step, index = Step(say=p.CLASSIFIER_ALLOW), None
        else:
            step, index = self._pick(text, bool(p.anthropic_tools(body)), p.anthropic_last_result(body))
        usage = p.usage_for(text, json.dumps(p.anthropic_blocks(step, index, body)))
        self._record(text, body, index, usage)
        if body.get("stream"):
            self._sse(list(p.anthropic_events(step, index, body, usage)))
        else:
            self._json(200, p.anthropic_message(step, index, body, usage))

    def _responses(self, text: str, body: dict[str, Any]) -> None:
        step, index = self._pick(text, p.responses_shell_tool(body) is not None)
        events = p.responses_events(step, index, body, p.Usage(0, 0))
        usage = p.usage_for(text, json.dumps(events))
        events = p.responses_events(step, index, body, usage)
        self._record(text, body, index, usage)
        self._sse([(e["type"], e) for e in events])

    def _chat(self, text: str, body: dict[str, Any]) -> None:
        if p.COMMIT_MESSAGE_ASK in json.dumps(body.get("messages") or [])[:2000]:
            # aider asking for a commit message: a side request that must not look like a step.
            step, index = Step(say="Apply the requested change"), None
        else:
            # aider has no tools: every other request of a scripted conversation is a step.
            step, index = self._pick(text, True)
        usage = p.usage_for(text, p.aider_text(step, index))
        self._record(text, body, index, usage)
        if body.get("stream"):
            chunks = p.chat_chunks(step, index, body, usage)
            self._sse([*((None, c) for c in chunks), (None, "[DONE]")])
        else:
            self._json(200, p.chat_completion(step, index, body, usage))

    def _gemini(self, text: str, body: dict[str, Any], *, stream: bool) -> None:
        config = body.get("generationConfig") or {}
        if config.get("responseMimeType") == "application/json" or config.get("responseJsonSchema") \
                or config.get("responseSchema"):
            self._record(text, body, None, None)
            answer = p.gemini_json_answer(body)
        else:
            step, index = self._pick(text, p.gemini_shell_tool(body) is not None)
            answer = p.gemini_response(step, index, body, p.Usage(0, 0))
            usage = p.usage_for(text, json.dumps(answer))
            answer = p.gemini_response(step, index, body, usage)
            self._record(text, body, index, usage)
        if stream:
            self._sse([(None, answer)])
        else:
            self._json(200, answer)
