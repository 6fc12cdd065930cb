"""Push committed events to subscribers and wake server-side waiters, the moment they commit.

In-daemon commits reach the bus through the store's post-commit listener; commits by other writers (a CLI
writing straight into the store, a peer's fallback write) are caught up by the daemon's file watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from cockpit.core.models import Event
from cockpit.core.store import Store

log = logging.getLogger("cockpit.daemon")

Sink = Callable[[Event], None]


@dataclass(eq=False)
class Subscriber:
    sink: Sink
    # While the backlog after `since` is being replayed, live events queue here so none is lost or reordered.
    pending: list[Event] | None = field(default_factory=list)
    last: int = 0


class EventBus:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.published = 0
        self.subscribers: set[Subscriber] = set()
        self.waiters: set[Callable[[Event], None]] = set()
        self._catchup_lock = asyncio.Lock()
        # The loop keeps only weak references to tasks: hold the catch-ups until they finish.
        self._catchups: set[asyncio.Task[None]] = set()
        store.add_listener(self._on_commit)

    async def start(self) -> None:
        self.published = await self.store.last_seq()

    def _on_commit(self, events: Sequence[Event]) -> None:
        if events[0].seq != self.published + 1:
            # Another writer committed in between; read the gap from the store, in order.
            task = asyncio.get_running_loop().create_task(self.catch_up())
            self._catchups.add(task)
            task.add_done_callback(self._catchups.discard)
            return
        self._publish(events)

    def _publish(self, events: Sequence[Event]) -> None:
        for event in events:
            if event.seq <= self.published:
                continue
            self.published = event.seq
            for sub in list(self.subscribers):
                if sub.pending is not None:
                    sub.pending.append(event)
                elif event.seq > sub.last:
                    sub.last = event.seq
                    sub.sink(event)
            for waiter in list(self.waiters):
                waiter(event)

    async def catch_up(self) -> None:
        async with self._catchup_lock:
            self._publish(await self.store.events_since(self.published))

    async def subscribe(self, sink: Sink, since: int) -> Subscriber:
        """Replay every event after `since`, then push each new one."""
        sub = Subscriber(sink=sink, last=since)
        self.subscribers.add(sub)
        backlog = await self.store.events_since(since)
        for event in backlog:
            if event.seq > sub.last:
                sub.last = event.seq
                sink(event)
        queued, sub.pending = sub.pending or [], None
        for event in queued:
            if event.seq > sub.last:
                sub.last = event.seq
                sink(event)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
