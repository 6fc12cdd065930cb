"""The merge lock: merges in one process and across processes never interleave."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from cockpit.core.merge.lock import LOCK_NAME, LockBusy, merge_lock
from cockpit.core.states import State
from cockpit_testkit.waiting import async_wait_until
from tests.unit.merge.envs import Env, hold_lock


async def test_two_merges_at_once_are_serialised(env: Env) -> None:
    a = await env.task({"a.txt": "a\n"}, title="task a")
    b = await env.task({"b.txt": "b\n"}, title="task b")
    first, second = await asyncio.gather(env.merge(a.id), env.merge(b.id))
    assert first.task.state is State.DONE and second.task.state is State.DONE
    events = [e for e in await env.store.events_since(0) if e.type.startswith("merge.")]
    # One merge runs from preflight to finished before the other starts.
    owners = [e.task_id for e in events]
    assert owners in ([a.id] * 3 + [b.id] * 4, [b.id] * 3 + [a.id] * 4)
    assert (env.root / "a.txt").exists() and (env.root / "b.txt").exists()


async def test_the_lock_is_shared_with_other_processes(env: Env) -> None:
    task = await env.task({"feature.txt": "new\n"})
    holder = hold_lock(env.paths.cockpit / LOCK_NAME)
    try:
        with pytest.raises(LockBusy):
            async with merge_lock(env.paths, wait=False):
                pass
        running = asyncio.ensure_future(env.merge(task.id))
        await async_wait_until(_blocked_on_flock, timeout=10, message="the merge never waited for the lock")
        assert not running.done() and "merge.preflight" not in await env.types(task.id)
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
        assert (await running).task.state is State.DONE
    finally:
        holder.kill()
        holder.wait(10)


def _blocked_on_flock() -> bool:
    """This process waits for a flock (a `->` line of /proc/locks names the waiter's pid)."""
    lines = Path("/proc/locks").read_text().splitlines()
    return any("->" in line and "FLOCK" in line and f" {os.getpid()} " in line for line in lines)
