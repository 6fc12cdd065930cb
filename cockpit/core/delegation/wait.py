"""Waiting on a peer's task: server-side in its daemon, or on a file watch of its store while the daemon is
down, switching between the two as the daemon comes and goes. Nothing polls."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import daemonfile, filewatch, limits
from cockpit.core.client import DaemonClient
from cockpit.core.delegation.peers import CONNECT_TIMEOUT_S, PeerRef, RemoteRepo
from cockpit.core.errors import (
    DaemonUnavailable,
)
from cockpit.core.models import JSON
from cockpit.core.remote.follow import open_hosted_for_wait
from cockpit.core.states import FINISHED, State, parse_state

WATCHED_FILES = frozenset({"index.db", "index.db-wal", "daemon.json"})


OnChange = Callable[[JSON], Awaitable[None]]


@dataclass
class WaitOutcome:
    task: JSON
    reached: bool  # the task is in one of the states waited for
    changed: bool  # it left `since_state` (when one was given)
    timed_out: bool
    via: str

    def to_json(self) -> JSON:
        return {"task": self.task, "state": self.task.get("state"), "reached": self.reached,
                "changed": self.changed, "timed_out": self.timed_out, "via": self.via}


@dataclass
class _Waiting:
    task_id: int
    until: frozenset[str]
    deadline: float | None
    since_state: str | None
    on_change: OnChange | None
    last: str | None = None
    task: JSON = field(default_factory=dict)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def wake_states(self) -> list[str]:
        """The states the peer's server-side wait returns on: the targets, and any change when watched."""
        if self.on_change is None and self.since_state is None:
            return sorted(self.until)
        return sorted(s.value for s in State if s.value != self.last or s.value in self.until)

    async def observe(self, task: JSON, via: str) -> WaitOutcome | None:
        self.task = task
        state = str(task.get("state"))
        if state != self.last:
            self.last = state
            if self.on_change is not None:
                await self.on_change(task)
        if state in self.until:
            return WaitOutcome(task, True, state != self.since_state, False, via)
        if self.since_state is not None and state != self.since_state:
            return WaitOutcome(task, False, True, False, via)
        return None

    def timeout(self, via: str) -> WaitOutcome:
        return WaitOutcome(self.task, False, False, True, via)


def wait_states(until: Iterable[str | State] | None) -> frozenset[str]:
    """The states a remote wait stops on: the ones asked for, and always the finished ones."""
    wanted = {parse_state(str(s)).value for s in until or ()}
    return frozenset(wanted | {s.value for s in FINISHED})


async def wait_peer_task(ref: PeerRef, task_id: int, *, until: Iterable[str | State] | None = None,
                         timeout_s: float | None = None, since_state: str | None = None,
                         on_change: OnChange | None = None) -> WaitOutcome:
    """Block until the peer task is in `until` (default: finished), leaves `since_state`, or time is up.

    Over the socket while the peer's daemon is up, on a file watch of its store while it is down, switching
    either way as the daemon comes and goes. `on_change` sees every state the task is observed in.
    """
    timeout_s = limits.seconds(timeout_s, "timeout_s")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waiting = _Waiting(task_id, wait_states(until), deadline, since_state, on_change, last=since_state)
    while True:
        if ref.hosted is not None:
            hosted = await open_hosted_for_wait(ref.hosted, waiting.remaining)
            if hosted is None:
                return waiting.timeout("daemon")
            remote = RemoteRepo(ref, client=hosted)
        else:
            remote = await RemoteRepo.open(ref)
        try:
            with remote.naming_the_peer(task_id):
                if remote.client is not None:
                    outcome = await _wait_socket(remote, waiting)
                else:
                    outcome = await _wait_store(remote, waiting)
        finally:
            await remote.close()
        if outcome is not None:
            return outcome
        # The transport went away or a better one came up: go round and open whichever is there now.


async def _wait_socket(remote: RemoteRepo, waiting: _Waiting) -> WaitOutcome | None:
    assert remote.client is not None
    while True:
        remaining = waiting.remaining()
        try:
            result = await remote.client.call(
                "wait_task", {"id": waiting.task_id, "states": waiting.wake_states(), "timeout_s": remaining})
        except DaemonUnavailable:
            return None  # the daemon stopped: carry on from its store
        outcome = await waiting.observe(result["task"], "daemon")
        if outcome is not None:
            return outcome
        if result.get("timed_out") or remaining == 0:
            return waiting.timeout("daemon")


def _store_file(change: filewatch.Change, path: str) -> bool:
    return Path(path).name in WATCHED_FILES


async def _wait_store(remote: RemoteRepo, waiting: _Waiting) -> WaitOutcome | None:
    assert remote.service is not None
    paths = remote.ref.paths
    store = remote.service.store
    stop = asyncio.Event()
    # Not recursive: `.cockpit/worktrees/` holds whole checkouts and none of it matters here.
    changes = filewatch.awatch(paths.cockpit, watch_filter=_store_file, stop_event=stop, debounce=5)
    pending: asyncio.Future[Any] = asyncio.ensure_future(changes.__anext__())
    await asyncio.sleep(0)  # let awatch build its watcher: it watches from then on, so no write is missed
    try:
        while True:
            if daemonfile.read_live(paths.daemon_json) is not None:
                client = await DaemonClient.for_repo(paths, timeout=CONNECT_TIMEOUT_S)
                if client is not None:
                    await client.close()
                    return None  # the daemon is up: wait over its socket instead
            outcome = await waiting.observe((await store.get_task(waiting.task_id)).to_json(), "store")
            if outcome is not None:
                return outcome
            remaining = waiting.remaining()
            if remaining == 0:
                return waiting.timeout("store")
            done, _ = await asyncio.wait({pending}, timeout=remaining)
            if not done:
                return waiting.timeout("store")
            pending = asyncio.ensure_future(changes.__anext__())
    finally:
        stop.set()
        await filewatch.close_watch(pending, changes)
