"""The merge tests' fixtures: `setup` (a real repo, main checked out, a task worktree) and `env` (the same
with a real Store)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from cockpit.core.config import Settings
from cockpit.core.store import Store
from cockpit_testkit.tasks import init_cockpit
from tests.unit.merge.envs import Env
from tests.unit.merge.setups import BASE_FILES, Setup


@pytest.fixture
def setup(repo_factory: Callable[..., Path], short_tmp: Path) -> Setup:
    return Setup(repo_factory("repo", files=BASE_FILES), short_tmp)


@pytest.fixture
async def env(repo_factory: Callable[..., Path]) -> AsyncIterator[Env]:
    root = repo_factory("repo", files=BASE_FILES)
    paths = init_cockpit(root)
    store = await Store.open(paths.db)
    try:
        yield Env(root, paths, store, Settings())
    finally:
        await store.close()
