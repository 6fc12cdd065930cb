"""The daemon's merge queue: a repo's merges and rollbacks run one at a time, in the order they were asked.

`merge_task` and `rollback_task` requests are queued and run by one worker, so two people (or a person and a
peer) merging at once never interleave; each job also takes the repo's cross-process merge lock, so a CLI
running without the daemon cannot interleave either. A job runs to its end even when the client that asked for
it disconnects: a merge is never abandoned half way because a terminal was closed.

On start, tasks a killed daemon (or CLI) left in `merging` are reconciled from the target ref before any
queued job runs (`cockpit.core.merge.reconcile.reconcile_merging`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cockpit.core.errors import DaemonUnavailable
from cockpit.core.merge.context import MergeContext
from cockpit.core.merge.lock import LockBusy
from cockpit.core.merge.ops import context_for
from cockpit.core.merge.reconcile import reconcile_merging
from cockpit.core.models import JSON, Task
from cockpit.daemon.server import Daemon

log = logging.getLogger("cockpit.daemon.merge")

QUEUED_OPS = ("merge_task", "rollback_task")
STOP_GRACE_S = 10.0

Handler = Callable[[dict[str, Any]], Awaitable[JSON]]


@dataclass
class Job:
    op: str
    run: Callable[[], Awaitable[JSON]]
    future: asyncio.Future[JSON]


def _consume(future: asyncio.Future[JSON]) -> None:
    """Retrieve a job's exception so one whose client went away is not reported as never retrieved."""
    if not future.cancelled():
        future.exception()


class MergeQueue:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.jobs: asyncio.Queue[Job] = asyncio.Queue()
        self.current: Job | None = None
        self.worker: asyncio.Task[None] | None = None
        self.closed = False

    def context(self) -> MergeContext:
        return context_for(self.daemon.ops)

    def install(self) -> None:
        """Route the merge ops of the daemon's ops table through the queue."""
        for op in QUEUED_OPS:
            handler = self.daemon.ops.handlers[op]
            self.daemon.ops.handlers[op] = self._queued(op, handler)

    def _queued(self, op: str, handler: Handler) -> Handler:
        async def queued(args: dict[str, Any]) -> JSON:
            return await self.submit(op, lambda: handler(args))

        return queued

    async def submit(self, op: str, run: Callable[[], Awaitable[JSON]]) -> JSON:
        if self.closed:
            raise DaemonUnavailable("the daemon is stopping; run the command again once it is back")
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        await self.jobs.put(Job(op, run, future))
        return await asyncio.shield(future)

    @property
    def depth(self) -> int:
        return self.jobs.qsize() + (1 if self.current is not None else 0)

    async def start(self) -> None:
        ctx = self.context()
        try:
            settled = await reconcile_merging(ctx, wait=False)
            self._report(settled)
        except LockBusy:
            # A CLI is merging right now: reconcile once it is done, ahead of any queued job.
            log.info("merge lock busy at start; reconciling interrupted merges when it is free")
            self.jobs.put_nowait(Job("reconcile", self._reconcile_job, self._detached_future()))
        self.worker = self.daemon.spawn(self._work(), "merge-queue")

    def _detached_future(self) -> asyncio.Future[JSON]:
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        return future

    async def _reconcile_job(self) -> JSON:
        settled = await reconcile_merging(self.context())
        self._report(settled)
        return {"settled": [t.id for t in settled]}

    def _report(self, settled: list[Task]) -> None:
        for task in settled:
            log.info("reconciled interrupted merge of task %d: now %s", task.id, task.state.value)

    async def _work(self) -> None:
        while True:
            job = await self.jobs.get()
            if job.future.done():
                continue
            self.current = job
            try:
                result = await job.run()
            except asyncio.CancelledError:
                if not job.future.done():
                    job.future.set_exception(DaemonUnavailable("the daemon stopped while the job ran"))
                raise
            except Exception as exc:
                if not job.future.done():
                    job.future.set_exception(exc)
            else:
                if not job.future.done():
                    job.future.set_result(result)
            finally:
                self.current = None

    async def stop(self) -> None:
        self.closed = True
        worker = self.worker
        if worker is not None and not worker.done():
            worker.cancel()
            # The running job settles what it was doing from the ref before it ends.
            await asyncio.wait([worker], timeout=STOP_GRACE_S)
        while not self.jobs.empty():
            job = self.jobs.get_nowait()
            if not job.future.done():
                job.future.set_exception(DaemonUnavailable("the daemon stopped before the job ran"))


def install(daemon: Daemon) -> MergeQueue:
    queue = MergeQueue(daemon)
    queue.install()
    daemon.components.append(queue)

    async def status(args: dict[str, Any]) -> JSON:
        current = queue.current
        return {"running": current.op if current is not None else None, "depth": queue.depth}

    daemon.ops.handlers["merge_queue"] = status
    return queue
