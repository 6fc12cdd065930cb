"""Start, stop and inspect a repo's daemon process.

`start` detaches a daemon (`python -m cockpit.daemon`) and returns once its socket answers: the child
reports readiness on a pipe, so nothing polls. `stop` sends SIGTERM and waits on a pidfd for the process to
end.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cockpit.core import daemonfile
from cockpit.core.daemonfile import DaemonInfo
from cockpit.core.errors import CockpitError, NotARepoError
from cockpit.core.paths import RepoPaths

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class StartResult:
    info: DaemonInfo
    already_running: bool


def _wait_pid_exit(pid: int, timeout: float) -> bool:
    """Block until `pid` has exited (True) or the timeout passes (False)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    except OSError:
        fd = -1
    if fd < 0:  # no pidfd: fall back to checking until the deadline
        deadline = time.monotonic() + timeout
        while daemonfile.pid_alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready) or not daemonfile.pid_alive(pid)
    finally:
        os.close(fd)


def start(paths: RepoPaths, *, timeout: float = START_TIMEOUT_S) -> StartResult:
    if not (paths.root / ".git").exists():
        raise NotARepoError(f"{paths.root} is not a git repository")
    live = daemonfile.read_live(paths.daemon_json)
    if live is not None:
        return StartResult(live, already_running=True)
    deadline = time.monotonic() + timeout
    paths.logs.mkdir(parents=True, exist_ok=True)
    read_fd, write_fd = os.pipe()
    log = open(paths.logs / "daemon.out", "ab")  # noqa: SIM115  (handed to the child)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cockpit.daemon", "--repo", str(paths.root), "--ready-fd", str(write_fd)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=(write_fd,), start_new_session=True,
            cwd=paths.root,
        )
    finally:
        os.close(write_fd)
        log.close()
    try:
        ready, _, _ = select.select([read_fd], [], [], timeout)
        message = os.read(read_fd, 4096).decode(errors="replace") if ready else ""
    finally:
        os.close(read_fd)
    if message.startswith("ready"):
        info = daemonfile.read_live(paths.daemon_json)
        if info is not None:
            return StartResult(info, already_running=False)
    code = proc.poll()
    if code is None and not message:
        proc.terminate()
    detail = message.strip() or _last_line(paths.logs / "daemon.out") or "no output"
    if "already running" in detail:
        # Another start won the race; it may still be coming up: give it the rest of our time to answer.
        live = _wait_live(paths, deadline)
        if live is not None:
            return StartResult(live, already_running=True)
    raise CockpitError(f"the daemon did not start: {detail}", code="daemon_start")


def _wait_live(paths: RepoPaths, deadline: float) -> DaemonInfo | None:
    """The daemon that another start is bringing up, once its daemon.json names a live process."""
    while True:
        live = daemonfile.read_live(paths.daemon_json)
        if live is not None or time.monotonic() > deadline:
            return live
        time.sleep(0.02)


def _last_line(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1] if lines else ""
    return ""


def stop(paths: RepoPaths, *, timeout: float = STOP_TIMEOUT_S) -> DaemonInfo | None:
    """Stop the repo's daemon; returns what was running, or None when nothing was."""
    info = daemonfile.read_live(paths.daemon_json)
    if info is None:
        _remove_stale(paths)
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(info.pid, signal.SIGTERM)
    if not _wait_pid_exit(info.pid, timeout):
        raise CockpitError(f"the daemon (pid {info.pid}) did not stop within {timeout:.0f}s; "
                           f"kill it with `kill -9 {info.pid}`", code="daemon_stop")
    _remove_stale(paths)
    return info


def _remove_stale(paths: RepoPaths) -> None:
    info = daemonfile.read(paths.daemon_json)
    if info is not None and not daemonfile.pid_alive(info.pid):
        with contextlib.suppress(FileNotFoundError):
            Path(info.socket).unlink()
        paths.daemon_json.unlink(missing_ok=True)


def status(paths: RepoPaths) -> DaemonInfo | None:
    return daemonfile.read_live(paths.daemon_json)
