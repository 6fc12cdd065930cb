"""Backends: a command reaches the repo through its daemon when one is up, else straight at its store, and
both answer the same ops with the same results and errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.backend import backend_for, open_local
from cockpit.core.errors import CockpitError, NotFoundError
from cockpit.core.paths import RepoPaths
from cockpit_testkit.daemons import cli


async def test_a_repo_without_a_store_is_refused_with_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as err:
        await open_local(RepoPaths(tmp_path))
    assert err.value.code == "not_initialised" and "cockpit init" in str(err.value)


async def test_without_a_daemon_ops_run_against_the_store(repo: Path) -> None:
    assert cli("init", repo=repo).code == 0
    paths = RepoPaths(repo)
    async with backend_for(paths) as backend:
        assert backend.via == "store"
        created = await backend.call("create_task", {"text": "add a health endpoint", "no_wait": True})
        got = await backend.call("get_task", {"id": created["id"]})
        assert got["id"] == created["id"] and got["description"] == "add a health endpoint"
        waited = await backend.call("wait_task", {"id": created["id"], "timeout_s": 0.2})
        assert waited["timed_out"] is True and waited["task"]["id"] == created["id"]
        with pytest.raises(CockpitError) as err:
            await backend.call("create_task", {})
        assert err.value.code == "bad_request"


async def test_with_a_daemon_the_same_ops_go_through_its_socket(
    repo: Path, daemons: Callable[[Path], dict[str, Any]]
) -> None:
    assert cli("init", repo=repo).code == 0
    paths = RepoPaths(repo)
    async with backend_for(paths, prefer_daemon=False) as local:
        created = await local.call("create_task", {"text": "add a health endpoint", "no_wait": True})
    daemons(repo)

    async with backend_for(paths) as backend:
        assert backend.via == "daemon"
        got = await backend.call("get_task", {"id": created["id"]})
        assert got["id"] == created["id"] and got["description"] == "add a health endpoint"
        with pytest.raises(CockpitError) as err:
            await backend.call("create_task", {})
        assert err.value.code == "bad_request"
