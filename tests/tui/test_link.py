"""A repo's link without the app: it follows the store's file while no daemon runs and the daemon's
subscription when one does, folds each task another writer records into the repo's model, and says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message

from cockpit.core.backend import backend_for
from cockpit.core.paths import RepoPaths
from cockpit.tui.link import RepoLink
from cockpit.tui.messages import LinkChanged, TasksChanged
from cockpit.tui.repo_model import LIVE, STORE, RepoModel
from cockpit_testkit.daemons import cli
from cockpit_testkit.waiting import async_wait_until


@pytest.fixture
async def linked(repo: Path) -> AsyncIterator[tuple[RepoLink, list[Message]]]:
    assert cli("init", repo=repo).code == 0
    posted: list[Message] = []
    link = RepoLink(RepoModel(name=repo.name, root=repo), posted.append, backoff=(0.05, 0.2))
    worker = asyncio.ensure_future(link.run())
    try:
        yield link, posted
    finally:
        link.stop()
        await asyncio.wait_for(worker, 30)


async def create(repo: Path, text: str, *, prefer_daemon: bool) -> int:
    async with backend_for(RepoPaths(repo), prefer_daemon=prefer_daemon) as backend:
        created = await backend.call("create_task", {"text": text, "no_wait": True})
    return int(created["id"])


async def test_with_no_daemon_the_link_follows_the_store(
    repo: Path, linked: tuple[RepoLink, list[Message]]
) -> None:
    link, posted = linked
    await async_wait_until(lambda: link.model.mode == STORE, message="the link follows the store")
    assert not link.connected

    task_id = await create(repo, "add a health endpoint", prefer_daemon=False)

    await async_wait_until(lambda: task_id in link.model.tasks, message="the store's new task was folded")
    assert link.model.tasks[task_id].description == "add a health endpoint"
    assert any(isinstance(m, TasksChanged) and m.repo == link.name for m in posted)
    assert task_id in link.acknowledge()


async def test_with_a_daemon_the_link_is_live_on_its_subscription(
    repo: Path, linked: tuple[RepoLink, list[Message]], daemons: Callable[[Path], dict[str, Any]]
) -> None:
    link, posted = linked
    daemons(repo)
    link.wake()
    await async_wait_until(lambda: link.model.mode == LIVE, message="the link went live on the daemon")
    assert link.connected
    assert any(isinstance(m, LinkChanged) and m.mode == LIVE for m in posted)

    task_id = await create(repo, "write the changelog", prefer_daemon=True)

    await async_wait_until(lambda: task_id in link.model.tasks, message="the pushed task was folded")
    got = await link.call("get_task", {"id": task_id})
    assert got["description"] == "write the changelog"
