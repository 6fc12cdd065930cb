"""Fixtures for the real-agent tests: the fake model server, the person's home, a repo with its daemon."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cockpit_testkit.agentkit import AGENTS, Driver, require_cli, seed_home
from cockpit_testkit.exec_support import setup_repo
from cockpit_testkit.model_server import ModelServer


@pytest.fixture
def model_server() -> Iterator[ModelServer]:
    with ModelServer() as server:
        yield server


@pytest.fixture
def drivers(
    repo_factory: Callable[..., Path], tmux_socket: str, model_server: ModelServer
) -> Iterator[Callable[[str], Driver]]:
    """`drivers("claude")`: a repo set up for that agent, its daemon started; all stopped at teardown."""
    started: list[Driver] = []

    def make(name: str, **settings: str) -> Driver:
        spec = AGENTS[name]
        require_cli(spec)
        repo = repo_factory(f"repo-{name}")
        env = seed_home(spec, Path(os.environ["HOME"]), repo, model_server)
        setup_repo(repo, tmux_socket, **{"agent.backend": name, "task.max_parallel": "2", **settings})
        driver = Driver(spec, repo, tmux_socket, env)
        driver.start_daemon()
        started.append(driver)
        return driver

    yield make
    for driver in started:
        driver.stop_daemon()
