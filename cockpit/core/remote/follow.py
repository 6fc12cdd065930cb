"""Staying connected to a hosted repo's daemon: reconnect with backoff, resume from the last seq seen.

A dropped ssh connection (master killed, host rebooted, laptop asleep) ends the forwarded socket. `follow`
opens a new one (a new master if need be), subscribes `since` the last seq it handed out, and drops any
event at or below it, so a subscriber sees every event exactly once, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError, DaemonUnavailable
from cockpit.core.models import Event
from cockpit.core.remote.daemons import HostedRepo

BACKOFF_S = (0.05, 2.0)
CONNECT_TIMEOUT_S = 5.0

OnState = Callable[[str, str], Awaitable[None] | None]


async def open_hosted_for_wait(repo: HostedRepo, remaining: Callable[[], float | None], *,
                               backoff: tuple[float, float] = BACKOFF_S) -> DaemonClient | None:
    """A client for a wait, retrying with backoff while the host or daemon is away; None once time is up."""
    delay = backoff[0]
    while True:
        try:
            return await repo.connect(CONNECT_TIMEOUT_S)
        except DaemonUnavailable:
            left = remaining()
            if left is not None and left <= 0:
                return None
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 2, backoff[1])


async def follow(repo: HostedRepo, since: int = 0, *, backoff: tuple[float, float] = BACKOFF_S,
                 on_state: OnState | None = None,
                 connect: Callable[[], Awaitable[DaemonClient]] | None = None) -> AsyncIterator[Event]:
    """Every event after `since`, then each new one, across reconnects; never ends on its own.

    `on_state(state, detail)` hears "live" once subscribed and "unreachable" / "down" while retrying.
    """
    last = since
    delay = backoff[0]

    async def tell(state: str, detail: str) -> None:
        if on_state is not None:
            result = on_state(state, detail)
            if result is not None:
                await result

    while True:
        try:
            client = await (connect() if connect is not None else repo.connect(CONNECT_TIMEOUT_S))
        except CockpitError as exc:
            await tell("unreachable" if exc.code == "host_unreachable" else "down", exc.message)
            await asyncio.sleep(delay)
            delay = min(delay * 2, backoff[1])
            continue
        try:
            await client.call("subscribe", {"since": last}, timeout=30)
            await tell("live", "")
            delay = backoff[0]
            while True:
                event = await client.events.get()
                if event is None:
                    break
                if event.seq <= last:
                    continue  # replayed on a resubscribe: already handed out
                last = event.seq
                yield event
        except (CockpitError, TimeoutError, OSError):
            pass
        finally:
            await client.close()
        await tell("down", f"lost {repo.host.destination}; reconnecting")



__all__ = ["BACKOFF_S", "follow", "open_hosted_for_wait"]
