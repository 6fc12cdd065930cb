"""How a command reaches a repo: through its daemon's socket when one is up, else straight at its store.

Both backends answer the same ops with the same results and errors, because the local one runs the very
`Ops` table the daemon serves.

`person=True` (the CLI and the cockpit, run by the person in their terminal) presents the person's token to
the daemon; on the store path it runs the ops as the person when the token can be read, as a peer otherwise
(inside an agent's sandbox). The store path is no security boundary: whoever can write the store can append
any event. The token check there keeps what the person and agents may do the same on both paths.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cockpit.core import limits, principals
from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError, NotFoundError
from cockpit.core.models import JSON
from cockpit.core.ops import Ops, arg_int, arg_states
from cockpit.core.optable import build_ops
from cockpit.core.paths import RepoPaths
from cockpit.core.service import TaskService
from cockpit.core.states import SETTLED
from cockpit.core.store import Store
from cockpit.core.storewatch import wait_for_state


@dataclass
class Backend:
    paths: RepoPaths
    client: DaemonClient | None = None
    store: Store | None = None
    ops: Ops | None = None
    context: principals.OpContext = principals.PEER_CONTEXT  # who the store path runs ops as

    @property
    def via(self) -> str:
        return "daemon" if self.client is not None else "store"

    async def call(self, op: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> JSON:  # noqa: ASYNC109 - a reply deadline, as in client

        args = args or {}
        if self.client is not None:
            return await self.client.call(op, args, timeout)
        assert self.ops is not None and self.store is not None
        if op == "wait_task":
            states = set(arg_states(args, "states")) or set(SETTLED)
            task, timed_out = await wait_for_state(self.store, self.paths.cockpit, arg_int(args, "id"),
                                                   states, limits.seconds(args.get("timeout_s"), "timeout_s"))
            return {"task": await self.ops.task_json(task), "timed_out": timed_out}
        return await self.ops.dispatch(op, args, self.context)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.store is not None:
            await self.store.close()


async def _local_context(person: bool) -> principals.OpContext:
    if person:
        try:
            if await asyncio.to_thread(principals.ensure_token):
                return principals.PERSON_CONTEXT
        except (OSError, CockpitError):
            pass
    return principals.OpContext(principals.PEER, via="store")


async def open_local(paths: RepoPaths, *, person: bool = False) -> Backend:
    if not paths.db.exists():
        raise NotFoundError(f"{paths.root} has no cockpit store yet; run `cockpit init` there first",
                            code="not_initialised")
    store = await Store.open(paths.db)
    try:
        service = TaskService(paths, store)
    except CockpitError:
        await store.close()
        raise
    ops = build_ops(service)
    return Backend(paths, store=store, ops=ops, context=await _local_context(person))


async def open_backend(paths: RepoPaths, *, prefer_daemon: bool = True, person: bool = False) -> Backend:
    if prefer_daemon:
        client = await DaemonClient.for_repo(paths, person=person)
        if client is not None:
            return Backend(paths, client=client)
    return await open_local(paths, person=person)


@contextlib.asynccontextmanager
async def backend_for(paths: RepoPaths, *, prefer_daemon: bool = True,
                      person: bool = False) -> AsyncIterator[Backend]:
    backend = await open_backend(paths, prefer_daemon=prefer_daemon, person=person)
    try:
        yield backend
    finally:
        await backend.close()
