"""The daemon socket's wire format (docs/design.md): JSON lines, with framing kept apart from meaning.

The framer caps a line at 1 MiB and, past that, discards up to the next newline and resynchronises, so one bad
client line costs one error reply, never the connection or the daemon.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

PROTOCOL_VERSION = 1
MAX_LINE = 1024 * 1024


@dataclass(frozen=True)
class Oversized:
    """Stands in for a line that was longer than the cap; its bytes were dropped."""

    size: int


class LineFramer:
    """Split a byte stream into lines, never holding more than `limit` bytes of one line."""

    def __init__(self, limit: int = MAX_LINE) -> None:
        self.limit = limit
        self._buf = bytearray()
        self._discarding = 0  # bytes of an oversized line dropped so far; 0 when not discarding

    @property
    def partial(self) -> bool:
        """A line has begun and not yet ended."""
        return bool(self._buf) or bool(self._discarding)

    def feed(self, data: bytes) -> list[bytes | Oversized]:
        out: list[bytes | Oversized] = []
        start = 0
        while start < len(data):
            nl = data.find(b"\n", start)
            chunk = data[start:] if nl < 0 else data[start:nl]
            if self._discarding:
                self._discarding += len(chunk)
            elif len(self._buf) + len(chunk) > self.limit:
                self._discarding = len(self._buf) + len(chunk)
                self._buf.clear()
            else:
                self._buf += chunk
            if nl < 0:
                break
            if self._discarding:
                out.append(Oversized(self._discarding))
                self._discarding = 0
            else:
                out.append(bytes(self._buf))
                self._buf.clear()
            start = nl + 1
        return out


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), default=str).encode() + b"\n"


def hello(repo: str, root: str, pid: int) -> dict[str, Any]:
    return {"hello": {"protocol": PROTOCOL_VERSION, "repo": repo, "root": root, "pid": pid}}


def ok(request_id: Any, result: Any) -> dict[str, Any]:
    return {"id": request_id, "ok": True, "result": result}


def error(request_id: Any, code: str, message: str) -> dict[str, Any]:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


@dataclass(frozen=True)
class Request:
    id: Any
    op: str
    args: dict[str, Any]


class BadRequest(Exception):
    def __init__(self, request_id: Any, code: str, message: str) -> None:
        super().__init__(message)
        self.request_id = request_id
        self.code = code
        self.message = message


def parse_request(line: bytes) -> Request:
    """Decode one request line or raise BadRequest carrying the id when one could be read."""
    try:
        msg = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest(None, "invalid_json",
                         "request is not valid JSON; send one JSON object per line") from None
    if not isinstance(msg, dict):
        raise BadRequest(None, "bad_request", "request must be a JSON object with id, op and args")
    request_id = msg.get("id")
    op = msg.get("op")
    args = msg.get("args", {})
    if not isinstance(op, str) or not op:
        raise BadRequest(request_id, "bad_request",
                         'request has no op; send {"id": 1, "op": "...", "args": {}}')
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise BadRequest(request_id, "bad_request", "args must be a JSON object")
    return Request(request_id, op, args)
