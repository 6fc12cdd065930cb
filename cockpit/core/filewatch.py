"""The one file watch of the project: inotify read by the event loop itself.

watchfiles' `awatch` waits in a worker thread that wakes every `step` milliseconds to look at its stop
event, so every watch costs a few hundred wake-ups a second while nothing happens. Here an inotify descriptor
is registered with the running loop (`loop.add_reader`, through asyncinotify): the process sleeps until the
kernel reports a change, and an idle daemon or cockpit does not wake at all. Where inotify is missing (not
Linux), the same generator falls back to watchfiles with a coarse step.

`awatch` keeps watchfiles' shape (batches of `(Change, path)`, a `watch_filter`, a `stop_event`, a
`debounce`), so call sites read the same whichever backend runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import sys
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Change(enum.IntEnum):
    """What happened to a path (the same values as `watchfiles.Change`)."""

    added = 1
    modified = 2
    deleted = 3


Filter = Callable[[Change, str], bool]
Batch = set[tuple[Change, str]]

# After the first change of a batch, further changes are gathered while they keep arriving within this many
# milliseconds of each other (at most `debounce` in all): one burst of writes is one wake-up of the consumer.
QUIET_MS = 2
# The fallback's poll interval where no inotify exists: coarse, since nothing there is latency-critical.
FALLBACK_STEP_MS = 50


def _backend() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        import asyncinotify
    except (ImportError, OSError):  # no libc inotify symbols (some sandboxes)
        return None
    return asyncinotify


async def awatch(*paths: Path, watch_filter: Filter | None = None, stop_event: asyncio.Event | None = None,
                 debounce: int = 50, recursive: bool = False) -> AsyncGenerator[Batch, None]:
    """Yield each batch of changes under `paths` that passes `watch_filter`, until `stop_event` is set.

    Watching starts when the first `__anext__` begins (before its first suspension), so a caller that starts
    that step and then reads the current state misses nothing written after the read. Every path must exist.
    Closing the generator (`aclose`) ends the watch as well as the stop event does.
    """
    backend = _backend()
    batches = (_awatch_polling(paths, watch_filter, stop_event, debounce, recursive) if backend is None
               else _awatch_inotify(backend, paths, watch_filter, stop_event, debounce, recursive))
    try:
        async for batch in batches:
            yield batch
    finally:
        await batches.aclose()


async def close_watch(pending: asyncio.Future[Any] | None, changes: AsyncGenerator[Any, None] | None) -> None:
    """End a file watch. A generator cannot be closed while a step of it runs, so that step ends first."""
    if pending is not None:
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
    if changes is not None:
        with contextlib.suppress(BaseException):
            await changes.aclose()


async def _awatch_inotify(backend: Any, paths: tuple[Path, ...], watch_filter: Filter | None,
                          stop_event: asyncio.Event | None, debounce: int,
                          recursive: bool) -> AsyncGenerator[Batch, None]:
    mask = backend.Mask
    watched = (mask.CREATE | mask.MODIFY | mask.CLOSE_WRITE | mask.MOVED_TO | mask.MOVED_FROM | mask.DELETE
               | mask.ATTRIB)
    inotify = backend.RecursiveInotify() if recursive else backend.Inotify()
    stopped: asyncio.Future[Any] | None = None
    pending: asyncio.Future[Any] | None = None
    try:
        for path in paths:
            if recursive:
                inotify.add_recursive_watch(path, watched)
            else:
                inotify.add_watch(path, watched)
        loop = asyncio.get_running_loop()
        stopped = asyncio.ensure_future(stop_event.wait()) if stop_event is not None else loop.create_future()
        while True:
            # A read in flight is never cancelled between batches: it may hold events taken from the fd.
            if pending is None:
                pending = asyncio.ensure_future(inotify.get())
            done, _ = await asyncio.wait({pending, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if pending not in done:
                break
            batch: Batch = set()
            _add(batch, pending.result(), mask, watch_filter, paths)
            pending = None
            deadline = loop.time() + debounce / 1000
            while (timeout := min(QUIET_MS / 1000, deadline - loop.time())) > 0:
                pending = asyncio.ensure_future(inotify.get())
                done, _ = await asyncio.wait({pending}, timeout=timeout)
                if not done:
                    break
                _add(batch, pending.result(), mask, watch_filter, paths)
                pending = None
            if batch:
                yield batch
    finally:
        for future in (pending, stopped):
            if future is not None:
                future.cancel()
                with contextlib.suppress(BaseException):
                    await future
        inotify.close()


def _add(batch: Batch, event: Any, mask: Any, watch_filter: Filter | None, roots: tuple[Path, ...]) -> None:
    if mask.Q_OVERFLOW in event.mask:
        # The kernel dropped changes: report each watched folder itself, unfiltered; every consumer re-reads
        # what it watches on any batch, so it catches up.
        log.warning("inotify queue overflowed under %s", ", ".join(map(str, roots)))
        batch.update((Change.modified, str(root)) for root in roots)
        return
    if event.path is None:
        return
    if event.mask & (mask.DELETE | mask.MOVED_FROM):
        change = Change.deleted
    elif event.mask & (mask.CREATE | mask.MOVED_TO):
        change = Change.added
    elif event.mask & (mask.MODIFY | mask.CLOSE_WRITE | mask.ATTRIB):
        change = Change.modified
    else:  # IGNORED, DELETE_SELF and the like: nothing a consumer reads
        return
    name = str(event.path)
    if watch_filter is None or watch_filter(change, name):
        batch.add((change, name))


async def _awatch_polling(paths: tuple[Path, ...], watch_filter: Filter | None,
                          stop_event: asyncio.Event | None, debounce: int,
                          recursive: bool) -> AsyncGenerator[Batch, None]:
    import watchfiles

    def passes(change: watchfiles.Change, name: str) -> bool:
        return watch_filter is None or watch_filter(Change(int(change)), name)

    async for changes in watchfiles.awatch(*paths, watch_filter=passes, stop_event=stop_event,
                                           debounce=debounce, step=FALLBACK_STEP_MS, recursive=recursive,
                                           rust_timeout=0, yield_on_timeout=False):
        yield {(Change(int(change)), name) for change, name in changes}
