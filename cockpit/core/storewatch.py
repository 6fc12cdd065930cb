"""Wake on a repo's store changing without a daemon: a file watch on `.cockpit/` (index.db and its WAL).

Used where no daemon can push: `task wait` with the daemon down, a sender waiting on a peer's fallback store,
and the cockpit's view of a repo whose daemon is down.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterable
from pathlib import Path

from cockpit.core import filewatch, limits
from cockpit.core.models import Task
from cockpit.core.states import State, check_reachable
from cockpit.core.store import Store

STORE_FILES = ("index.db", "index.db-wal")


def _is_store_file(change: filewatch.Change, path: str) -> bool:
    return Path(path).name in STORE_FILES


async def store_changes(cockpit_dir: Path, stop: asyncio.Event | None = None) -> AsyncGenerator[None, None]:
    """Yield once per batch of writes to the store. Starts watching before the first yield returns."""
    async for _ in filewatch.awatch(cockpit_dir, watch_filter=_is_store_file, stop_event=stop, debounce=5):
        yield


async def wait_for_state(store: Store, cockpit_dir: Path, task_id: int, states: Iterable[State],
                         timeout_s: float | None) -> tuple[Task, bool]:
    """Wait until task `task_id` is in one of `states`; returns (task, timed_out)."""
    wanted = set(states)
    timeout_s = limits.seconds(timeout_s, "timeout_s")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    task = await store.get_task(task_id)
    if task.state in wanted:
        return task, False
    check_reachable(task_id, task.state, wanted)
    stop = asyncio.Event()
    changes = store_changes(cockpit_dir, stop)
    # Re-read once the watch is armed so a write between the first read and the watch is not missed.
    first: asyncio.Future[None] = asyncio.ensure_future(changes.__anext__())
    try:
        await asyncio.sleep(0)  # let awatch construct its watcher, which starts watching at once
        while True:
            task = await store.get_task(task_id)
            if task.state in wanted:
                return task, False
            check_reachable(task_id, task.state, wanted)
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return task, True
            done, _ = await asyncio.wait({first}, timeout=remaining)
            if not done:
                return await store.get_task(task_id), True
            first = asyncio.ensure_future(changes.__anext__())
    finally:
        stop.set()
        await filewatch.close_watch(first, changes)
