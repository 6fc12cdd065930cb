"""One repo's link: subscribed to its daemon, or following its store's file while the daemon is down.

`RepoLink.run` is the body of an async worker on the app's loop (all socket and SQLite I/O is asyncio; file
watches are inotify descriptors read by the loop itself). It folds every event into the repo's `RepoModel`
and posts `TasksChanged` once per batch, never once per event, so a burst costs the UI one update.

Connected: take a snapshot (`status`, `list_tasks`, `status`), then `subscribe` from the seq before it; on a
lost connection, resubscribe from the last seq folded, with backoff. Daemon down: open the store, fold its
events, and wake on each write to it (or on `daemon.json` naming a live daemon, which switches back).

A repo on another host is reached only through its daemon, over ssh (`cockpit.core.remote`): its store and
files are not on this machine, so while the host or its daemon is away the tab says so and retries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.message import Message

from cockpit.core import daemonfile, filewatch
from cockpit.core.backend import Backend, open_local
from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError, DaemonUnavailable
from cockpit.core.models import JSON, Event, Task
from cockpit.core.ops import all_tasks
from cockpit.core.paths import RepoPaths
from cockpit.core.remote.daemons import HostedRepo, person_refusal
from cockpit.core.remote.ssh import HostUnreachable
from cockpit.core.store import Store
from cockpit.tui.messages import AgentOutput, AttentionNeeded, LinkChanged, TasksChanged
from cockpit.tui.repo_model import CONNECTING, LIVE, OFFLINE, STORE, UNINITIALISED, RepoModel

STORE_NAMES = frozenset({"index.db", "index.db-wal", "daemon.json"})
# The watcher thread returns this often even with nothing to report, so a stop is never held up for long.
# A daemon that takes longer than this to answer the snapshot or the subscription is treated as unreachable.
REPLY_TIMEOUT_S = 30.0
OUTPUT_LINES = 60  # the agent output's tail fetched for the detail


class RepoLink:
    def __init__(
        self,
        model: RepoModel,
        post: Callable[[Message], object],
        *,
        watch: bool = True,
        backoff: tuple[float, float] = (0.2, 5.0),
        connect_timeout: float = 3.0,
        hosted: HostedRepo | None = None,
    ) -> None:
        self.model = model
        self.hosted = hosted
        self.paths = RepoPaths(model.root)
        self.post = post
        self.watch = watch
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.client: DaemonClient | None = None
        self._local: Backend | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._closing: asyncio.Future[None] | None = None
        self._notified = False
        self._refused = ""
        self._live_detail = ""  # said beside "live": for a hosted repo, whom the cockpit acts as there

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed.is_set()

    # -- control from the UI -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Try the daemon again now (after starting it), instead of at the next backoff step."""
        self._wake.set()

    def stop(self) -> None:
        """End `run` soon: a file watch returns within a step, a subscription once its socket closes."""
        self._stop.set()
        self._wake.set()
        if self.client is not None:
            # Closing the socket ends the subscription: its queue gets the end-of-stream marker.
            self._closing = asyncio.ensure_future(self.client.close())

    def acknowledge(self) -> set[int]:
        """The UI took the change: return the changed ids and let the next change post again."""
        self._notified = False
        return self.model.take_dirty()

    async def call(
        self,
        op: str,
        args: dict[str, Any] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - passed on to DaemonClient.call, same signature
    ) -> JSON:
        """Send one op to the daemon, or run it on the store when the daemon is down (as the CLI does)."""
        client = self.client
        if client is not None and not client.closed.is_set():
            if self.hosted is None:
                return await client.call(op, args or {}, timeout)
            try:
                return await client.call(op, args or {}, timeout)
            except CockpitError as exc:
                raise person_refusal(self.hosted, exc, op, (args or {}).get("id")) from None
        if self.hosted is not None:
            raise DaemonUnavailable(f"{self.name} is on {self.hosted.host.destination}: "
                                    f"{self.model.detail or 'not connected yet'}")
        if not self.paths.db.exists():
            raise DaemonUnavailable(f"{self.name} has no cockpit store yet; press D to start its daemon")
        if self._local is None:
            self._local = await open_local(self.paths, person=True)
        return await self._local.call(op, args or {}, timeout)

    async def fetch_output(self, task_id: int, lines: int = OUTPUT_LINES) -> AgentOutput:
        """The tail of the task's agent pane, through the `tail` op (the daemon's, or the store's here)."""
        try:
            result = await self.call("tail", {"id": task_id, "lines": lines})
        except CockpitError as exc:
            return AgentOutput(self.name, task_id, [], exc.message)
        raw = result.get("lines", result.get("tail", result.get("text", "")))
        found = [str(x) for x in raw] if isinstance(raw, list) else str(raw).splitlines()
        return AgentOutput(self.name, task_id, found)

    # -- the worker ------------------------------------------------------------------------------------------

    async def run(self) -> None:
        if self.hosted is not None:
            try:
                await self._run_hosted(self.hosted)
            finally:
                self._done.set()
            return
        delay = self.backoff[0]
        try:
            while not self._stop.is_set():
                client = await self._connect()
                if client is not None:
                    await self._close_local()
                    self.client = client
                    try:
                        if await self._follow_daemon(client):
                            delay = self.backoff[0]
                    except (DaemonUnavailable, TimeoutError):
                        pass  # gone, or stuck before answering: both get the backoff below
                    finally:
                        self.client = None
                        await client.close()
                    if self._stop.is_set():
                        break
                    self._set_mode(OFFLINE, "lost the daemon; reconnecting")
                    await self._pause(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                if daemonfile.read_live(self.paths.daemon_json) is not None:
                    # A live daemon that does not answer yet (starting, or stuck): retry with backoff.
                    self._set_mode(OFFLINE, self._refused or "the daemon does not answer; retrying")
                    await self._pause(delay)
                    delay = min(delay * 2, self.backoff[1])
                    continue
                delay = self.backoff[0]
                await self._follow_store()
        finally:
            await self._close_local()
            self._done.set()

    async def _run_hosted(self, hosted: HostedRepo) -> None:
        """Follow a daemon on another host through ssh; while it cannot be reached, say why and retry."""
        host = hosted.host.destination
        delay = self.backoff[0]
        while not self._stop.is_set():
            try:
                client = await hosted.connect(self.connect_timeout, person=True)
            except HostUnreachable:
                self._set_mode(OFFLINE, f"{host} unreachable · retrying")
            except CockpitError as exc:
                down = exc.code == "remote_daemon_down"
                self._set_mode(OFFLINE, f"{self.name}'s daemon on {host} is down · D starts it · retrying"
                               if down else f"{host}: {exc.message} · retrying")
            else:
                self.client = client
                try:
                    self._live_detail = await self._acting_as(hosted, client)
                    if await self._follow_daemon(client):
                        delay = self.backoff[0]
                except (DaemonUnavailable, TimeoutError):
                    pass
                finally:
                    self.client = None
                    await client.close()
                if self._stop.is_set():
                    break
                self._set_mode(OFFLINE, f"lost {host} · reconnecting")
            await self._pause(delay)
            delay = min(delay * 2, self.backoff[1])

    @staticmethod
    async def _acting_as(hosted: HostedRepo, client: DaemonClient) -> str:
        """Whom this cockpit is on the host: the person (a trusted host that took the token) or a peer."""
        if client.auth is None:
            return "as a peer: approve there, or add it with --trust"
        # The reply as it came (a lost connection raises DaemonUnavailable: retried like any other loss).
        reply = await asyncio.wait_for(asyncio.shield(client.auth), REPLY_TIMEOUT_S)
        if reply.get("ok") is False:
            return f"as a peer: {hosted.host.destination} refused your token (add it again with --trust)"
        return "as you"

    async def stopped(self) -> None:
        """Wait for `run` to end after `stop`, its store and sockets closed."""
        await self._done.wait()

    async def _connect(self) -> DaemonClient | None:
        info = daemonfile.read_live(self.paths.daemon_json)
        if info is None:
            return None
        try:
            client = await DaemonClient.connect(info.socket, self.connect_timeout, person=True)
        except CockpitError as exc:
            self._refused = exc.message  # e.g. another protocol version: say so in the tab
            return None
        self._refused = ""
        return client

    async def _follow_daemon(self, client: DaemonClient) -> bool:
        """Snapshot if needed, subscribe, fold events until the connection closes. True once subscribed."""
        # Events folded on a reconnect happened while we were away: still news, so they may toast.
        quiet_until = 0
        if not self.model.loaded:
            self._set_mode(CONNECTING, "loading tasks")
            before = int((await client.call("status", timeout=REPLY_TIMEOUT_S))["last_seq"])
            async def page(op: str, args: dict[str, Any]) -> JSON:
                return await client.call(op, args, timeout=REPLY_TIMEOUT_S)

            listed = await all_tasks(page, {"all": True})
            after = int((await client.call("status", timeout=REPLY_TIMEOUT_S))["last_seq"])
            self.model.load([Task.from_json(t) for t in listed], before, after)
            quiet_until = after
        self._changed()
        await client.call("subscribe", {"since": self.model.last_seq}, timeout=REPLY_TIMEOUT_S)
        self._set_mode(LIVE, self._live_detail)
        queue = client.events
        while True:
            event = await queue.get()
            if event is None:
                return True
            batch = [event]
            closed = False
            while not queue.empty():
                more = queue.get_nowait()
                if more is None:
                    closed = True
                    break
                batch.append(more)
            self._fold(batch, quiet_until)
            if closed:
                return True

    async def _follow_store(self) -> None:
        """Fold the store's events and wake on each write, until a daemon appears (or stop / wake)."""
        cockpit_dir = self.paths.cockpit
        if not self.paths.db.exists():
            self._set_mode(UNINITIALISED, "no cockpit store yet: press D to start its daemon")
            watched = cockpit_dir if cockpit_dir.is_dir() else self.paths.root
            await self._wait_for_change(watched, lambda: self.paths.db.exists())
            return
        try:
            store = await Store.open(self.paths.db, create=False)
        except CockpitError as exc:
            self._set_mode(OFFLINE, exc.message)
            await self._pause(self.backoff[1])
            return
        stop = asyncio.Event()
        changes = self._watch(cockpit_dir, stop) if self.watch else None
        pending: asyncio.Future[Any] | None = None
        try:
            if changes is not None:
                pending = asyncio.ensure_future(changes.__anext__())
                await asyncio.sleep(0)  # the watcher is armed before the first read, so no write is missed
            self._set_mode(STORE, "daemon down: following its store (D starts it)")
            quiet_until = 0
            if not self.model.loaded:
                before = await store.last_seq()
                tasks = await store.list_tasks()
                quiet_until = await store.last_seq()
                self.model.load(tasks, before, quiet_until)
                self._changed()
            while not self._stop.is_set():
                self._fold(await store.events_since(self.model.last_seq), quiet_until)
                if daemonfile.read_live(self.paths.daemon_json) is not None:
                    return
                if pending is None:
                    await self._pause(self.backoff[1])
                    if self._wake.is_set():
                        return
                    continue
                woke = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait({pending, woke}, return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if pending in done:
                    if pending.exception() is not None:
                        return
                    assert changes is not None
                    pending = asyncio.ensure_future(changes.__anext__())
                if self._wake.is_set():
                    self._wake.clear()
                    return
        finally:
            stop.set()
            await filewatch.close_watch(pending, changes)
            await store.close()

    async def _wait_for_change(self, path: Path, done: Callable[[], bool]) -> None:
        """Wait for the store to be created (or a daemon to appear) under `path`."""
        if not self.watch:
            await self._pause(self.backoff[1])
            return
        stop = asyncio.Event()
        changes = self._watch(path, stop, names=frozenset({".cockpit", *STORE_NAMES}))
        pending = asyncio.ensure_future(changes.__anext__())
        try:
            await asyncio.sleep(0)
            while not (done() or daemonfile.read_live(self.paths.daemon_json) or self._stop.is_set()):
                woke = asyncio.ensure_future(self._wake.wait())
                finished, _ = await asyncio.wait({pending, woke}, return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if self._wake.is_set():
                    self._wake.clear()
                    return
                if pending in finished:
                    if pending.exception() is not None:
                        return
                    if path != self.paths.cockpit and self.paths.cockpit.is_dir():
                        return  # .cockpit/ appeared: watch inside it from the top of the loop
                    pending = asyncio.ensure_future(changes.__anext__())
        finally:
            stop.set()
            await filewatch.close_watch(pending, changes)

    def _watch(self, path: Path, stop: asyncio.Event, names: frozenset[str] = STORE_NAMES) -> Any:
        """Changes to the store (and daemon.json) in `path`, not recursive: worktrees live below it."""

        def interesting(change: filewatch.Change, changed: str) -> bool:
            return Path(changed).name in names

        return filewatch.awatch(path, watch_filter=interesting, stop_event=stop, debounce=5)

    # -- helpers ---------------------------------------------------------------------------------------------

    def _fold(self, events: list[Event], quiet_until: int) -> None:
        if not events:
            return
        for note in self.model.apply(events, quiet_until=quiet_until):
            self.post(AttentionNeeded(note))
        self._changed()

    def _changed(self) -> None:
        if self.model.dirty and not self._notified:
            self._notified = True
            self.post(TasksChanged(self.name))

    def _set_mode(self, mode: str, detail: str) -> None:
        if (self.model.mode, self.model.detail) == (mode, detail):
            return
        self.model.mode = mode
        self.model.detail = detail
        self.post(LinkChanged(self.name, mode, detail))

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        if not self._stop.is_set():
            self._wake.clear()

    async def _close_local(self) -> None:
        if self._local is not None:
            local, self._local = self._local, None
            with contextlib.suppress(Exception):
                await local.close()

