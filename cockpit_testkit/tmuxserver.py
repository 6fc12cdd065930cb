"""A private tmux server per test, on its own `-L` socket, reaped at teardown so no tmux process is left.

The server comes from libtmux's pytest plugin (its `server` fixture: a fresh socket name, killed at
teardown); `tmux_socket` hands its name to cockpit and also waits for the process to be gone, which
libtmux's teardown does not."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from libtmux.server import Server

from cockpit.core.tmux import TmuxPanes, tmux_available

TEST_SESSION = "cockpit-test"


def new_socket_name() -> str:
    return f"ck-test-{uuid.uuid4().hex[:8]}"


def socket_path(socket_name: str) -> Path:
    return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.geteuid()}" / socket_name


def tmux_server_running(socket_name: str) -> bool:
    """True while a server answers on that socket (`list-sessions` never starts one)."""
    result = subprocess.run(["tmux", "-L", socket_name, "list-sessions"], capture_output=True, check=False)
    return result.returncode == 0


def _server_pid(socket_name: str) -> int | None:
    result = subprocess.run(
        ["tmux", "-L", socket_name, "display-message", "-p", "#{pid}"],
        capture_output=True,
        text=True,
        check=False,
    )
    text = result.stdout.strip()
    return int(text) if result.returncode == 0 and text.isdigit() else None


def _process_gone(pid: int) -> bool:
    # The server daemonized, so it is not our child; a zombie nobody reaps counts as gone.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False
    return stat.rsplit(")", 1)[-1].split()[0] in {"Z", "X"}


def reap_tmux_server(socket_name: str, timeout: float = 5.0) -> None:
    """Kill the server on `socket_name` (fine when none runs), wait for it to exit, remove its socket."""
    pid = _server_pid(socket_name)
    subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, check=False)
    deadline = time.monotonic() + timeout
    while pid is not None and not _process_gone(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    with contextlib.suppress(OSError):
        socket_path(socket_name).unlink(missing_ok=True)


@contextlib.contextmanager
def private_tmux_socket() -> Iterator[str]:
    """A fresh socket name whose server (if any gets started) is reaped on exit."""
    name = new_socket_name()
    try:
        yield name
    finally:
        reap_tmux_server(name)


@pytest.fixture
def tmux_socket(server: Server) -> Iterator[str]:
    """The `-L` socket name of libtmux's private test server; killed and waited for at teardown."""
    if not tmux_available():
        pytest.skip("tmux is not installed")
    name = server.socket_name
    assert name is not None
    try:
        yield name
    finally:
        reap_tmux_server(name)


@pytest.fixture
def tmux_panes(tmux_socket: str) -> TmuxPanes:
    """TmuxPanes for session "cockpit-test" on the test's private server."""
    return TmuxPanes(tmux_socket, TEST_SESSION)
