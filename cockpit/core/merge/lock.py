"""The repo's cross-process merge lock (`.cockpit/merge.lock`, flock) and the merge's test hook.

Test hook: with `COCKPIT_MERGE_PAUSE_AT=<step>[,<step>...]` in the environment (steps: preflight, rebased,
started, verified, moved, rolled_back) the orchestrator writes `.cockpit/merge-paused.<step>` when it reaches
that step and then blocks forever, so a test can kill -9 the process at exactly that point. It has no other
use.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths

log = logging.getLogger("cockpit.merge")


LOCK_NAME = "merge.lock"
PAUSE_ENV = "COCKPIT_MERGE_PAUSE_AT"
PAUSE_STEPS = ("preflight", "rebased", "started", "verified", "moved", "rolled_back")


# --------------------------------------------------------------------------------------------------- lock


class LockBusy(CockpitError):
    code = "merge_busy"


def _close_when_done(fd: int) -> Callable[[asyncio.Future[Any]], None]:
    def close(_future: asyncio.Future[Any]) -> None:
        os.close(fd)

    return close


@contextlib.asynccontextmanager
async def merge_lock(paths: RepoPaths, *, wait: bool = True) -> AsyncIterator[None]:
    """Hold the repo's merge lock (flock on `.cockpit/merge.lock`), across processes and within one.

    The uncontended case takes it without a thread; a contended one waits in a thread so the event loop never
    blocks. With `wait=False` a held lock raises LockBusy at once. The kernel drops the lock when its holder
    dies, so a killed process never leaves it held.
    """
    paths.cockpit.mkdir(parents=True, exist_ok=True)
    fd = os.open(paths.cockpit / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise LockBusy("another merge or rollback is running in this repo") from None
            waiter = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
            try:
                await asyncio.shield(waiter)
            except asyncio.CancelledError:
                # The thread still waits on fd: close it (and so drop the lock) once that returns.
                waiter.add_done_callback(_close_when_done(fd))
                fd = -1
                raise
        yield
    finally:
        if fd >= 0:
            os.close(fd)


# ---------------------------------------------------------------------------------------------- the test hook


async def pause_point(paths: RepoPaths, step: str) -> None:
    """Test hook (see the module docstring): block forever at `step` when COCKPIT_MERGE_PAUSE_AT names it."""
    wanted = os.environ.get(PAUSE_ENV)
    if not wanted or step not in {s.strip() for s in wanted.split(",")}:
        return
    marker = paths.cockpit / f"merge-paused.{step}"
    marker.write_text(f"{os.getpid()}\n")
    log.warning("test hook %s: paused at merge step %r", PAUSE_ENV, step)
    await asyncio.Event().wait()
