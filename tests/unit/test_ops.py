"""The ops table on a real store: an unknown op names the known ones, person-only ops refuse a peer, and
`list_tasks` pages in id order with `next_cursor` (which `all_tasks` follows to the end)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import principals
from cockpit.core.errors import CockpitError
from cockpit.core.models import JSON
from cockpit.core.ops import Ops, all_tasks
from cockpit.core.optable import build_ops
from cockpit.core.service import TaskService
from cockpit.core.store import Store
from cockpit_testkit.tasks import init_cockpit


@pytest.fixture
async def ops(repo: Path) -> AsyncIterator[Ops]:
    paths = init_cockpit(repo)
    store = await Store.open(paths.db)
    yield build_ops(TaskService(paths, store))
    await store.close()


async def create(ops: Ops, text: str) -> int:
    created = await ops.dispatch("create_task", {"text": text, "no_wait": True, "force": True})
    return int(created["id"])


async def test_an_unknown_op_is_refused_naming_the_known_ones(ops: Ops) -> None:
    with pytest.raises(CockpitError) as err:
        await ops.dispatch("creat_task", {})
    assert err.value.code == "unknown_op" and "create_task" in str(err.value)


async def test_a_person_only_op_refuses_a_peer_and_nothing_is_written(ops: Ops) -> None:
    task_id = await create(ops, "write the changelog")
    seq = await ops.service.store.last_seq()
    with pytest.raises(CockpitError):
        await ops.dispatch("retry_task", {"id": task_id}, principals.PEER_CONTEXT)
    assert await ops.service.store.last_seq() == seq


async def test_list_tasks_pages_in_id_order_and_all_tasks_follows_the_cursor(ops: Ops) -> None:
    ids = [await create(ops, f"task number {n}") for n in range(5)]

    first = await ops.dispatch("list_tasks", {"limit": 2})
    assert [t["id"] for t in first["tasks"]] == ids[:2] and first["next_cursor"] == ids[1]
    last = await ops.dispatch("list_tasks", {"limit": 2, "cursor": ids[3]})
    assert [t["id"] for t in last["tasks"]] == ids[4:] and last["next_cursor"] is None

    async def call(op: str, args: dict[str, Any]) -> JSON:
        return await ops.dispatch(op, {**args, "limit": 2})

    assert [t["id"] for t in await all_tasks(call, {})] == ids
    with pytest.raises(CockpitError) as err:
        await ops.dispatch("list_tasks", {"limit": 0})
    assert err.value.code == "bad_request"
