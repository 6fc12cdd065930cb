"""The processes of an agent's pane, found and ended without leaving any behind (Linux /proc, pidfds).

A pane's program is a session leader (tmux starts it with setsid), so everything it starts shares its session
id unless it detaches itself; an agent's background server that did (Codex's) is found by a marker in its
environment instead (the task's own CODEX_HOME). Waiting for them to end uses pidfds: the kernel says when a
process has exited, nothing polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after its closing one.
    return raw[raw.rfind(")") + 2 :].split()


def _own_pids() -> list[int]:
    uid = os.getuid()
    pids = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def session_members(sid: int) -> list[int]:
    """Every live (not zombie) process of session `sid`, the leader included."""
    found = []
    for pid in _own_pids():
        fields = _stat_fields(pid)
        # fields[0] is the state, fields[3] the session id (stat fields 3 and 6).
        if fields and len(fields) > 3 and fields[3] == str(sid) and fields[0] != "Z":
            found.append(pid)
    return found


def with_env(name: str, value: str) -> list[int]:
    """Live processes of this user whose environment has `name=value` exactly."""
    wanted = f"{name}={value}".encode()
    found = []
    for pid in _own_pids():
        if pid == os.getpid():
            continue
        try:
            env = (PROC / str(pid) / "environ").read_bytes()
        except OSError:
            continue
        fields = _stat_fields(pid)
        if wanted in env.split(b"\0") and fields and fields[0] != "Z":
            found.append(pid)
    return found


def send(pids: Iterable[int], sig: signal.Signals) -> int:
    """Send `sig` to each process; return how many got it (the others were gone already)."""
    sent = 0
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
            sent += 1
    return sent


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to the process group `pgid`; a group already gone (or no longer ours) is left alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


async def wait_gone(pids: Iterable[int], timeout: float) -> list[int]:  # noqa: ASYNC109
    """Wait until every process has exited (a zombie counts as exited) or `timeout`; return those left."""
    loop = asyncio.get_running_loop()
    waiters: list[tuple[int, int, asyncio.Future[None]]] = []
    left: list[int] = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            continue
        future: asyncio.Future[None] = loop.create_future()

        def ready(f: asyncio.Future[None] = future) -> None:
            if not f.done():
                f.set_result(None)

        loop.add_reader(fd, ready)
        waiters.append((pid, fd, future))
    try:
        if waiters:
            await asyncio.wait([f for _, _, f in waiters], timeout=max(timeout, 0.0))
        left = [pid for pid, _, f in waiters if not f.done() and alive(pid)]
    finally:
        for _, fd, _ in waiters:
            loop.remove_reader(fd)
            os.close(fd)
    return left
