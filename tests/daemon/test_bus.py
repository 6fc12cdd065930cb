"""The event bus on a real store: a subscriber gets the backlog after `since` and then every commit once, in
order; a commit by another writer is caught up from the store; waiters see each event; unsubscribed sinks
hear nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cockpit.core.models import Event
from cockpit.core.store import Store
from cockpit.daemon.bus import EventBus
from cockpit_testkit.waiting import async_wait_until


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "index.db")
    yield s
    await s.close()


async def create(store: Store, text: str) -> int:
    async with store.tx() as tx:
        task_id = await tx.next_task_id()
        await tx.append(task_id, "task.created", {"description": text})
    return task_id


async def test_a_subscriber_gets_the_backlog_after_since_then_each_commit_once_in_order(store: Store) -> None:
    bus = EventBus(store)
    await bus.start()
    first = await create(store, "one")
    await create(store, "two")
    got: list[Event] = []

    await bus.subscribe(got.append, since=1)
    assert [e.seq for e in got] == [2]  # the backlog after `since`, not before

    third = await create(store, "three")
    await store.append(first, "agent.progress", {"text": "working"})
    assert [e.seq for e in got] == [2, 3, 4]
    assert [e.type for e in got] == ["task.created", "task.created", "agent.progress"]
    assert got[1].task_id == third and bus.published == 4


async def test_a_commit_by_another_writer_is_caught_up_in_order(store: Store, tmp_path: Path) -> None:
    bus = EventBus(store)
    await bus.start()
    got: list[int] = []
    await bus.subscribe(lambda e: got.append(e.seq), since=0)
    await create(store, "mine")

    other = await Store.open(tmp_path / "index.db")
    try:
        await create(other, "written by the CLI")  # the daemon's store never saw this commit
    finally:
        await other.close()
    await create(store, "mine again")  # seq 3 arrives with a gap before it: the bus reads seq 2 first

    await async_wait_until(lambda: len(got) == 3, message="the bus caught up the other writer's event")
    assert got == [1, 2, 3] and bus.published == 3


async def test_waiters_see_each_event_and_an_unsubscribed_sink_hears_nothing_more(store: Store) -> None:
    bus = EventBus(store)
    await bus.start()
    heard: list[int] = []
    woken: list[str] = []
    sub = await bus.subscribe(lambda e: heard.append(e.seq), since=0)
    bus.waiters.add(lambda e: woken.append(e.type))

    await create(store, "one")
    bus.unsubscribe(sub)
    await create(store, "two")

    assert heard == [1]
    assert woken == ["task.created", "task.created"]
