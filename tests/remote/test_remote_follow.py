"""A subscription to a hosted daemon across a dropped ssh connection: reconnect, resume, nothing lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
from pathlib import Path

from cockpit.core.remote.follow import follow
from cockpit_testkit.hostedrepos import spanning_workspace
from cockpit_testkit.sshhosts import LabHost, SshLab
from cockpit_testkit.waiting import async_wait_until


def tcp_listeners_of(pid: int) -> list[int]:
    """Inodes of TCP sockets in LISTEN state that process `pid` holds (from /proc)."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                held.add(int(target[8:-1]))
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                listening.add(int(fields[9]))
    return sorted(held & listening)


def create_on_host(box: LabHost, root: Path, text: str) -> None:
    """A task made on the host itself (not through ssh), so it commits while our connection is down."""
    done = box.on_host("cockpit", "task", "create", text, "--no-wait", "--repo", str(root), "--json")
    assert done.returncode == 0, done.stdout + done.stderr


def last_seq(box: LabHost, root: Path) -> int:
    done = box.on_host("cockpit", "events", "--repo", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    return max(int(json.loads(line)["seq"]) for line in done.stdout.splitlines())


async def test_the_master_killed_mid_subscribe_misses_and_doubles_nothing(
        short_tmp: Path, ssh_lab: SshLab) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"})
    repo, box, root = span.hosted["api"], span.hosts["build-box"], span.remote_root("api")
    seen: list[int] = []
    states: list[str] = []

    async def consume() -> None:
        async for event in follow(repo, 0, backoff=(0.05, 0.5), on_state=lambda s, d: states.append(s)):
            seen.append(event.seq)

    consumer = asyncio.create_task(consume())
    try:
        await asyncio.to_thread(create_on_host, box, root, "first task before the drop")
        first = await asyncio.to_thread(last_seq, box, root)
        await async_wait_until(lambda: seen and seen[-1] >= first, 30, message="the first events arrive")
        assert states[-1] == "live"
        # The forward's local end is a Unix socket only this user reaches; the master listens on no TCP port.
        assert repo.remote_socket is not None
        local = repo.host.local_socket(repo.remote_socket)
        assert stat.S_ISSOCK(local.stat().st_mode) and local.stat().st_mode & 0o077 == 0
        assert local.parent.stat().st_mode & 0o777 == 0o700
        master = box.ssh.master_pid()
        assert master is not None and tcp_listeners_of(master) == []

        await asyncio.to_thread(box.kill_master)
        # Written while the connection is gone: the resubscribe must replay these.
        for n in range(3):
            await asyncio.to_thread(create_on_host, box, root, f"task {n} while the link is down")
        total = await asyncio.to_thread(last_seq, box, root)
        await async_wait_until(lambda: seen and seen[-1] >= total, 30, message="events after the drop")
        assert "down" in states and states[-1] == "live", states
        assert seen == list(range(1, total + 1)), seen
        assert box.ssh.master_pid() is not None  # a new shared master took over
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
