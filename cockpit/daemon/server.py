"""The per-repo daemon: a Unix socket speaking JSON lines (docs/design.md), the bus, and its components.

Each request runs in its own task, so a blocking `wait_task` never holds up the connection's other requests;
any exception a request raises becomes an error reply, never a dead connection or daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from cockpit.core import daemonfile, filewatch, limits, principals
from cockpit.core.errors import CockpitError, ConfigError, UsageError
from cockpit.core.events import EventType
from cockpit.core.models import JSON, Event
from cockpit.core.ops import arg_int, arg_states
from cockpit.core.optable import build_ops
from cockpit.core.paths import RepoPaths
from cockpit.core.protocol import BadRequest, LineFramer, Oversized, encode, error, hello, ok, parse_request
from cockpit.core.service import TaskService
from cockpit.core.states import SETTLED, State, check_reachable
from cockpit.core.store import Store
from cockpit.daemon.bus import EventBus

log = logging.getLogger("cockpit.daemon")

# A subscriber this far behind is cut off rather than allowed to grow the daemon's memory without bound.
MAX_BUFFERED = 64 * 1024 * 1024
# Connections served at once; one more is told so and closed (each may hold a 1 MiB half-line).
MAX_CONNECTIONS = 64
# A line begun and left unfinished this long closes its connection: a half-line is not held for ever.
LINE_IDLE_S = float(os.environ.get("COCKPIT_LINE_IDLE_S", "30"))


class Component(Protocol):
    """A part of the daemon with a lifecycle (scheduler, watchdog, merge queue, delegation...)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class Daemon:
    def __init__(self, paths: RepoPaths, store: Store, service: TaskService) -> None:
        self.paths = paths
        self.store = store
        self.service = service
        self.ops = build_ops(service)
        self.bus = EventBus(store)
        self.components: list[Component] = []
        # Called on start with each executing task; True means the component accounts for it (re-adopted).
        self.adopters: list[Callable[[int], Awaitable[bool]]] = []
        self.stopping = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.person_token: str | None = None  # read (or made) at start; `auth` compares against it
        self.connections = 0
        self.ops.handlers["wait_task"] = self._no_stream
        self.ops.handlers["subscribe"] = self._no_stream
        self._create = self.ops.handlers["create_task"]
        self.ops.handlers["create_task"] = self._create_task

    async def _no_stream(self, args: dict[str, Any]) -> JSON:
        raise UsageError("internal: streaming op dispatched without a connection")

    async def _create_task(self, args: dict[str, Any]) -> JSON:
        """`create_task`; with `no_wait` the reply comes at `created` and the task is classified right after,
        in the background (without a daemon it waits in `created` until one starts)."""
        task = await self._create(args)
        if task.get("state") == State.CREATED.value:
            self.spawn(self._classify_later(int(task["id"])), f"classify-{task['id']}")
        return task

    async def _classify_later(self, task_id: int) -> None:
        try:
            await self.service.classify_task(task_id)
        except CockpitError as exc:
            log.warning("could not classify task %d: %s", task_id, exc.message)

    def spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        """Run a background coroutine whose failure is logged, never silently lost."""
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)

        def done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task %s failed", name, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def start(self) -> Path:
        await self.bus.start()
        self.person_token = await asyncio.to_thread(principals.ensure_token)
        sock_path = self.paths.socket
        with contextlib.suppress(FileNotFoundError):
            sock_path.unlink()
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._on_connect, path=str(sock_path), limit=2**16)
        finally:
            os.umask(old_umask)
        os.chmod(sock_path, 0o600)
        daemonfile.write(self.paths.daemon_json, socket=sock_path, repo=self.service.repo_name,
                         root=self.paths.root)
        self.spawn(self._watch_files(), "watch-files")
        await self.recover()
        for component in self.components:
            await component.start()
        log.info("daemon for %s serving on %s (pid %d)", self.service.repo_name, sock_path, os.getpid())
        return sock_path

    async def recover(self) -> None:
        """Classify what was left in `created`; sweep executing tasks nobody accounts for to interrupted."""
        await self.service.classify_created()
        for task in await self.store.list_tasks([State.EXECUTING]):
            adopted = False
            for adopt in self.adopters:
                if await adopt(task.id):
                    adopted = True
                    break
            if not adopted:
                try:
                    reason = "the daemon stopped while the agent ran and no pane is left"
                    await self.store.append(task.id, EventType.TASK_INTERRUPTED, {"reason": reason})
                except CockpitError as exc:
                    log.warning("could not sweep task %d: %s", task.id, exc)

    async def stop(self) -> None:
        for component in reversed(self.components):
            with contextlib.suppress(Exception):
                await component.stop()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        await asyncio.to_thread(self._remove_files)

    def _remove_files(self) -> None:
        info = daemonfile.read(self.paths.daemon_json)
        if info is not None and info.pid == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                Path(info.socket).unlink()
        daemonfile.remove_if_mine(self.paths.daemon_json)

    async def _watch_files(self) -> None:
        """Other writers' commits reach subscribers; config edits take effect without a restart."""
        def interesting(change: filewatch.Change, path: str) -> bool:
            return Path(path).name in ("index.db-wal", "index.db", "config.toml")

        # Not recursive: only files directly in .cockpit/ matter; task worktrees (whole checkouts) live below.
        async for changes in filewatch.awatch(self.paths.cockpit, watch_filter=interesting,
                                              stop_event=self.stopping, debounce=5):
            names = {Path(p).name for _, p in changes}
            if "config.toml" in names:
                try:
                    self.service.reload_settings()
                    log.info("reloaded config.toml")
                except ConfigError as exc:
                    log.error("config.toml not reloaded: %s", exc.message)
            if names & {"index.db", "index.db-wal"} and await self.store.last_seq() > self.bus.published:
                await self.bus.catch_up()

    # -- connections ---------------------------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            if sock is not None and not _same_user(sock):
                writer.write(encode(error(None, "forbidden", "only the daemon's own user may connect")))
                await writer.drain()
                return
            if self.connections >= MAX_CONNECTIONS:
                writer.write(encode(error(None, "too_many_connections",
                                          f"the daemon already serves {MAX_CONNECTIONS} connections; close "
                                          "some and connect again")))
                await writer.drain()
                return
            self.connections += 1
            try:
                writer.write(encode(hello(self.service.repo_name, str(self.paths.root), os.getpid())))
                await Connection(self, reader, writer).serve()
            finally:
                self.connections -= 1
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("connection handler failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _same_user(sock: socket.socket) -> bool:
    if not hasattr(socket, "SO_PEERCRED"):
        return True  # the socket's 0600 mode is the check on systems without peer credentials
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


class Connection:
    def __init__(self, daemon: Daemon, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.daemon = daemon
        self.reader = reader
        self.writer = writer
        # A peer's until it presents the person's token (`auth`).
        self.context = principals.OpContext(principals.PEER, via="socket")
        self.subscription: Any = None
        self.requests: set[asyncio.Task[None]] = set()
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        if self.closed:
            return
        transport = self.writer.transport
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            log.warning("dropping a subscriber that stopped reading")
            self.closed = True
            transport.abort()
            return
        self.writer.write(encode(message))

    def push(self, event: Event) -> None:
        self.send({"event": event.to_json()})

    async def serve(self) -> None:
        framer = LineFramer()
        try:
            while True:
                try:
                    async with asyncio.timeout(LINE_IDLE_S if framer.partial else None):
                        data = await self.reader.read(65536)
                except TimeoutError:
                    self.send(error(None, "idle", f"a request line was left unfinished for {LINE_IDLE_S:g}s; "
                                                  "closing the connection"))
                    await self.writer.drain()
                    break
                if not data:
                    break
                for line in framer.feed(data):
                    if isinstance(line, Oversized):
                        self.send(error(None, "line_too_long", f"request line of {line.size} bytes is over "
                                                               "the 1 MiB limit; it was dropped"))
                        continue
                    if not line.strip():
                        continue
                    if b'"auth"' in line and await self.authenticate(line):
                        continue  # served here, in order: the requests after it run as its principal
                    task = asyncio.ensure_future(self.handle(line))
                    self.requests.add(task)
                    task.add_done_callback(self.requests.discard)
                await self.writer.drain()
        finally:
            self.closed = True
            if self.subscription is not None:
                self.daemon.bus.unsubscribe(self.subscription)
            for task in self.requests:
                task.cancel()

    async def authenticate(self, line: bytes) -> bool:
        """Serve an `auth {"token"}` line (False when the line is another op). The right token makes the
        connection the person's; anything else leaves (or makes) it a peer's, with an error reply."""
        try:
            request = parse_request(line)
        except BadRequest:
            return False
        if request.op != "auth":
            return False
        presented = request.args.get("token")
        known = self.daemon.person_token
        accepted = principals.matches(presented, known)
        if not accepted and isinstance(presented, str):
            # The token file may have been replaced since the daemon started, or a person on another machine
            # trusted this host since (`workspace add --trust` put their token in trusted/).
            with contextlib.suppress(OSError, CockpitError):
                known = self.daemon.person_token = await asyncio.to_thread(principals.read_token) or known
            accepted = await asyncio.to_thread(principals.accepts, presented, known)
        if accepted:
            self.context = principals.OpContext(principals.PERSON, via="socket")
            self.send(ok(request.id, {"principal": principals.PERSON}))
        else:
            self.context = principals.OpContext(principals.PEER, via="socket")
            self.send(error(request.id, "bad_token", "that is not the person token of this daemon's user; "
                                                     "this connection acts as a peer"))
        return True

    async def handle(self, line: bytes) -> None:
        request_id: Any = None
        try:
            request = parse_request(line)
            request_id = request.id
            if request.op == "subscribe":
                await self.subscribe(request_id, request.args)
                return
            if request.op == "wait_task":
                result = await self.wait_task(request.args)
            else:
                result = await self.daemon.ops.dispatch(request.op, request.args, self.context)
            self.send(ok(request_id, result))
        except BadRequest as exc:
            self.send(error(exc.request_id, exc.code, exc.message))
        except CockpitError as exc:
            reply = error(request_id, exc.code, exc.message)
            reply["error"].update(exc.details)
            self.send(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("request failed: %r", line[:200])
            self.send(error(request_id, "internal", f"internal error: {exc.__class__.__name__}: {exc}"))

    async def subscribe(self, request_id: Any, args: dict[str, Any]) -> None:
        since = args.get("since", 0)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise UsageError("since must be a sequence number (0 or more)", code="bad_request")
        if self.subscription is not None:
            self.daemon.bus.unsubscribe(self.subscription)
        # The reply goes out before the replayed events, so a client knows what follows.
        last_seq = await self.daemon.store.last_seq()
        self.send(ok(request_id, {"subscribed": True, "since": since, "last_seq": last_seq}))
        self.subscription = await self.daemon.bus.subscribe(self.push, since)

    async def wait_task(self, args: dict[str, Any]) -> JSON:
        task_id = arg_int(args, "id")
        states = set(arg_states(args, "states")) or set(SETTLED)
        timeout = limits.seconds(args.get("timeout_s"), "timeout_s")
        store = self.daemon.store
        woke = asyncio.Event()

        def waiter(event: Event) -> None:
            if event.task_id == task_id:
                woke.set()

        self.daemon.bus.waiters.add(waiter)
        try:
            deadline = None if timeout is None else time.monotonic() + float(timeout)
            while True:
                task = await store.get_task(task_id)
                if task.state in states:
                    return {"task": await self.daemon.ops.task_json(task), "timed_out": False}
                check_reachable(task_id, task.state, states)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return {"task": await self.daemon.ops.task_json(task), "timed_out": True}
                woke.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woke.wait(), remaining)
        finally:
            self.daemon.bus.waiters.discard(waiter)
