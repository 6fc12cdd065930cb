"""The daemon's composition root: which parts a repo's daemon has, how they are joined, and its run.

`assemble` is the one place to read what a daemon is made of: the socket server with the op table
(`server.Daemon`), the executor that runs approved tasks, the merge queue, and the delegation parts that hook
into the executor. Each part's `install` adds its components, ops and listeners and returns the part.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from cockpit.core import daemonfile
from cockpit.core.config import Settings, load_settings
from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths
from cockpit.core.service import TaskService
from cockpit.core.store import Store
from cockpit.daemon import delegation, execution, merge
from cockpit.daemon.server import Daemon

log = logging.getLogger("cockpit.daemon")


@dataclass(frozen=True)
class DaemonParts:
    daemon: Daemon
    executor: execution.Executor
    merges: merge.MergeQueue
    delegation: delegation.StepExecutor


def assemble(paths: RepoPaths, store: Store, service: TaskService) -> DaemonParts:
    """A daemon with every part installed, in the order their ops and hooks stack: the executor first (it
    wraps `cancel_task`), then the merge queue, then delegation (which hooks into the executor)."""
    daemon = Daemon(paths, store, service)
    executor = execution.install(daemon)
    merges = merge.install(daemon)
    steps = delegation.install(daemon, executor)
    return DaemonParts(daemon=daemon, executor=executor, merges=merges, delegation=steps)


def setup_logging(paths: RepoPaths, *, foreground: bool) -> None:
    paths.logs.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger("cockpit")
    root.setLevel(logging.INFO)
    handler = logging.FileHandler(paths.daemon_log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if foreground:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        root.addHandler(stream)


def run_until_stopped(paths: RepoPaths, ready_fd: int | None) -> int:
    """Serve in the foreground (no `ready_fd`) or for `daemon start`, which waits for "ready" on `ready_fd`.

    A daemon already running is not an error (exit 0, said on stderr); any other refusal is written to
    `ready_fd` for the starter to show, then raised.
    """

    def ready() -> None:
        if ready_fd is not None:
            os.write(ready_fd, b"ready\n")
            os.close(ready_fd)

    try:
        asyncio.run(run(paths, ready=ready, foreground=ready_fd is None))
    except CockpitError as exc:
        if ready_fd is not None:
            os.write(ready_fd, f"error: {exc.message}\n".encode())
        if exc.code == "already_running":
            print(f"cockpit: {exc.message}", file=sys.stderr)
            return 0
        raise
    return 0


async def run(paths: RepoPaths, *, ready: Callable[[], None] | None = None, foreground: bool = False) -> None:
    """Serve `paths`' repo until SIGTERM/SIGINT."""
    settings = load_settings(paths.config)  # a broken config stops the start with a clear error
    lock = daemonfile.acquire_lock(paths.daemon_json)
    if lock is None:
        holder = daemonfile.lock_holder(paths.daemon_json)
        raise CockpitError(f"a daemon for this repo is already running (pid {holder})",
                           code="already_running")
    try:
        await _serve(paths, settings, ready=ready, foreground=foreground)
    finally:
        daemonfile.release_lock(lock)


async def _serve(paths: RepoPaths, settings: Settings, *, ready: Callable[[], None] | None,
                 foreground: bool) -> None:
    setup_logging(paths, foreground=foreground)
    store = await Store.open(paths.db)
    try:
        service = TaskService(paths, store, settings)
    except BaseException:
        await store.close()
        raise
    daemon = assemble(paths, store, service).daemon
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stopping.set)
    try:
        await daemon.start()
        if ready is not None:
            ready()
        await daemon.stopping.wait()
        log.info("stopping")
    finally:
        await daemon.stop()
        await store.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
