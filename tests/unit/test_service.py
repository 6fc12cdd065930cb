"""Task operations on a real store: bad input refused with nothing written, dedup inside the insert (also
against a task another writer recorded), idempotency keys, and the states an operation accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cockpit.core.errors import DuplicateError, RefusedError, UsageError
from cockpit.core.paths import RepoPaths
from cockpit.core.service import TaskService
from cockpit.core.states import State
from cockpit.core.store import Store
from cockpit_testkit.tasks import init_cockpit


def duplicate_of(err: DuplicateError) -> object:
    duplicate = err.details["duplicate"]
    assert isinstance(duplicate, dict)
    return duplicate["task_id"]


@pytest.fixture
async def service(repo: Path) -> AsyncIterator[TaskService]:
    paths = init_cockpit(repo)
    store = await Store.open(paths.db)
    yield TaskService(paths, store)
    await store.close()


async def test_an_empty_description_is_refused_and_nothing_is_written(service: TaskService) -> None:
    with pytest.raises(UsageError, match="empty"):
        await service.create_task("   \n ", classify=False)
    assert await service.store.last_seq() == 0


async def test_a_duplicate_is_refused_unless_forced(service: TaskService) -> None:
    first = await service.create_task("Add a health endpoint to the API server", classify=False)
    assert first.state is State.CREATED

    with pytest.raises(DuplicateError) as err:
        await service.create_task("add a health endpoint to the api server", classify=False)
    assert duplicate_of(err.value) == first.id

    forced = await service.create_task("add a health endpoint to the api server", force=True, classify=False)
    assert forced.id == first.id + 1


async def test_dedup_sees_a_task_another_writer_recorded(service: TaskService, repo: Path) -> None:
    other = TaskService(RepoPaths(repo), await Store.open(RepoPaths(repo).db))
    try:
        theirs = await other.create_task("Rotate the signing keys every week", classify=False)
    finally:
        await other.store.close()

    with pytest.raises(DuplicateError) as err:
        await service.create_task("rotate the signing keys every week", classify=False)
    assert duplicate_of(err.value) == theirs.id


async def test_the_same_key_returns_the_same_task_once(service: TaskService) -> None:
    a = await service.create_task("write the changelog", key="k-1", classify=False)
    b = await service.create_task("write the changelog", key="k-1", classify=False)
    assert a.id == b.id and len(await service.store.task_events(a.id)) == 1


async def test_retry_is_refused_for_a_task_that_has_not_run(service: TaskService) -> None:
    task = await service.create_task("write the changelog", classify=False)
    with pytest.raises(RefusedError, match="only failed"):
        await service.retry(task.id)
    assert [e.type for e in await service.store.task_events(task.id)] == ["task.created"]
