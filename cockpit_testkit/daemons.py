"""Run the real `cockpit` CLI and real daemon processes in tests, and reap them after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import daemonfile
from cockpit.core.paths import RepoPaths
from cockpit_testkit.tmuxserver import reap_tmux_server


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def cli(*args: str, repo: Path | None = None, input: str | None = None, timeout: float = 60,
        env: dict[str, str] | None = None, cwd: Path | None = None) -> CliResult:
    """Run `python -m cockpit ARGS` as a real subprocess."""
    argv = [sys.executable, "-m", "cockpit", *args]
    if repo is not None:
        argv += ["--repo", str(repo)]
    proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def cli_json(*args: str, repo: Path | None = None, input: str | None = None, expect: int = 0,
             timeout: float = 60) -> Any:
    result = cli(*args, "--json", repo=repo, input=input, timeout=timeout)
    assert result.code == expect, f"exit {result.code}: {result.stdout} {result.stderr}"
    return result.json


def kill_daemon(root: Path, sig: int = signal.SIGKILL) -> int | None:
    info = daemonfile.read(RepoPaths(root).daemon_json)
    if info is None or not daemonfile.pid_alive(info.pid):
        return None
    os.kill(info.pid, sig)
    try:
        fd = os.pidfd_open(info.pid)
    except ProcessLookupError:
        return info.pid
    import select

    select.select([fd], [], [], 15)
    os.close(fd)
    return info.pid


@pytest.fixture
def daemons() -> Iterator[Callable[[Path], dict[str, Any]]]:
    """Start daemons with `daemons(repo)`; every one started is stopped (or killed) at teardown."""
    started: list[Path] = []

    def start(root: Path) -> dict[str, Any]:
        started.append(root)
        data: dict[str, Any] = cli_json("daemon", "start", repo=root)
        return data

    yield start
    for root in started:
        if cli("daemon", "stop", repo=root, timeout=30).code != 0:
            kill_daemon(root)
        kill_daemon(root)
        reap_configured_tmux(root)


def reap_configured_tmux(root: Path) -> None:
    """Reap the tmux server a test's config named (`ck-…`): a daemon that ran a task started it, and stopping
    the daemon leaves it (tmux outlives its clients by design)."""
    try:
        config = tomllib.loads(RepoPaths(root).config.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return
    name = str(config.get("tmux", {}).get("socket_name", ""))
    if name.startswith("ck-"):
        reap_tmux_server(name)
