"""A client of a repo daemon's socket: request/reply by id, pushed events on a queue."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cockpit.core import daemonfile, principals
from cockpit.core.errors import CockpitError, DaemonUnavailable, ProtocolError, UsageError
from cockpit.core.models import JSON, Event
from cockpit.core.paths import RepoPaths
from cockpit.core.protocol import MAX_LINE, PROTOCOL_VERSION, encode

READ_LIMIT = 64 * 1024 * 1024


def _person_token() -> str | None:
    try:
        return principals.read_token() or principals.ensure_token()
    except (OSError, CockpitError):
        return None  # unreadable or unwritable (an agent's sandbox): the connection stays a peer's


def _event(data: JSON) -> Event:
    return Event(seq=int(data["seq"]), ts=float(data["ts"]), task_id=data.get("task_id"),
                 type=str(data["type"]), data=dict(data.get("data") or {}), key=data.get("key"))


def peer_uid(sock: socket.socket | None) -> int | None:
    """The uid of the process at the other end of a Unix socket (SO_PEERCRED), or None where unknown."""
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


class DaemonClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hello: JSON) -> None:
        self.reader = reader
        self.writer = writer
        self.hello = hello
        self.events: asyncio.Queue[Event | None] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[JSON]] = {}
        self._reader_task = asyncio.ensure_future(self._read_loop())
        self.closed = asyncio.Event()
        self.auth: asyncio.Future[JSON] | None = None  # the reply to `auth`, when the token was presented

    @classmethod
    async def connect(cls, socket_path: Path | str, timeout: float = 5.0,  # noqa: ASYNC109 - hello deadline
                      *, person: bool = False) -> DaemonClient:
        """Connect and read the greeting. With `person`, present the person's token (made on first use), so
        the connection speaks for the person; without it, or when the token cannot be read (an agent's
        sandbox), it is the peer principal."""
        token = await asyncio.to_thread(_person_token) if person else None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(socket_path), limit=READ_LIMIT), timeout)
            line = await asyncio.wait_for(reader.readline(), timeout)
        except (OSError, TimeoutError) as exc:
            raise DaemonUnavailable(f"cannot reach the daemon at {socket_path}: {exc}; "
                                    "start it with `cockpit daemon start`") from None
        owner = peer_uid(writer.get_extra_info("socket"))
        if owner is not None and owner != os.getuid():
            writer.close()
            raise DaemonUnavailable(
                f"the socket {socket_path} is served by another user (uid {owner}), not a daemon of yours; "
                "refusing to talk to it: remove it and start the daemon with `cockpit daemon start`")
        try:
            greeting = json.loads(line)
        except ValueError:
            greeting = None
        if not isinstance(greeting, dict) or "hello" not in greeting:
            writer.close()
            message = "the daemon refused the connection"
            if isinstance(greeting, dict) and isinstance(greeting.get("error"), dict):
                message = str(greeting["error"].get("message", message))
            raise DaemonUnavailable(message)
        hello = greeting["hello"]
        if hello.get("protocol") != PROTOCOL_VERSION:
            writer.close()
            raise ProtocolError(f"daemon speaks protocol {hello.get('protocol')}, this client "
                                f"{PROTOCOL_VERSION}; restart the daemon with "
                                "`cockpit daemon stop && cockpit daemon start`")
        client = cls(reader, writer, hello)
        if token is not None:
            client._authenticate(token)
        return client

    def _authenticate(self, token: str) -> None:
        """Send `auth` ahead of any request. The daemon reads it before the requests that follow, so nobody
        waits for its reply; a daemon that does not know the token leaves the connection a peer's."""
        request_id = next(self._ids)
        auth: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        auth.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody has to await it
        self.auth = self._pending[request_id] = auth
        self.writer.write(encode({"id": request_id, "op": "auth", "args": {"token": token}}))

    @classmethod
    async def for_repo(cls, paths: RepoPaths, timeout: float = 5.0,  # noqa: ASYNC109 - as connect
                       *, person: bool = False) -> DaemonClient | None:
        """A connection to the repo's live daemon, or None when none is running."""
        info = daemonfile.read_live(paths.daemon_json)
        if info is None:
            return None
        try:
            return await cls.connect(info.socket, timeout, person=person)
        except DaemonUnavailable:
            return None

    async def _read_loop(self) -> None:
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if "event" in msg:
                    self.events.put_nowait(_event(msg["event"]))
                    continue
                future = self._pending.pop(msg.get("id"), None) if isinstance(msg.get("id"), int) else None
                if future is not None and not future.done():
                    future.set_result(msg)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            self.closed.set()
            self.events.put_nowait(None)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(DaemonUnavailable("the daemon closed the connection"))
            self._pending.clear()

    async def call(self, op: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> JSON:  # noqa: ASYNC109 - the reply's deadline
        """Send one request; return its result or raise the daemon's error as a CockpitError."""
        if self.closed.is_set():
            raise DaemonUnavailable("the connection to the daemon is closed")
        request_id = next(self._ids)
        line = encode({"id": request_id, "op": op, "args": args or {}})
        if len(line) > MAX_LINE:
            # The daemon drops such a line unread, so its error could not name this request: refuse here.
            raise UsageError(f"the {op} request is {len(line)} bytes, over the socket's 1 MiB line limit; "
                             "send less text", code="too_large")
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self.writer.write(line)
        await self.writer.drain()
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            self._pending.pop(request_id, None)
        if reply.get("ok"):
            result = reply.get("result")
            return result if isinstance(result, dict) else {"result": result}
        err = reply.get("error") or {}
        details = {k: v for k, v in err.items() if k not in ("code", "message")}
        raise CockpitError(str(err.get("message", "request failed")), code=str(err.get("code", "error")),
                           details=details)

    async def subscribe(self, since: int = 0) -> AsyncIterator[Event]:
        """Every event after `since`, then each new one as it commits; ends when the connection closes."""
        await self.call("subscribe", {"since": since})
        while True:
            event = await self.events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task

    async def __aenter__(self) -> DaemonClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
