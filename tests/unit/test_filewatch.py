"""The project's file watch: changes arrive, nothing is missed at arming, stop ends it, idle means asleep."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import filewatch
from cockpit.core.filewatch import Batch, Change

DEADLINE_S = 5.0


def _switches() -> int:
    """Context switches of every thread of this process: each wake-up of a sleeping thread is one."""
    total = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


async def _first(changes: AsyncGenerator[Batch, None]) -> tuple[asyncio.Future[Batch], None]:
    nxt: asyncio.Future[Batch] = asyncio.ensure_future(changes.__anext__())
    await asyncio.sleep(0)  # the watch is armed once the first step reaches its first suspension
    return nxt, None


@pytest.fixture(params=["inotify", "polling"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "polling":
        monkeypatch.setattr(filewatch, "_backend", lambda: None)
    return str(request.param)


async def test_a_write_after_arming_is_seen(tmp_path: Path, backend: str) -> None:
    changes = filewatch.awatch(tmp_path, watch_filter=lambda change, path: Path(path).name == "a.txt")
    nxt, _ = await _first(changes)
    try:
        (tmp_path / "ignored.txt").write_text("x")
        (tmp_path / "a.txt").write_text("x")
        if backend == "polling":
            # watchfiles arms in its own thread a little later: write until it reports (up to the deadline).
            for _ in range(int(DEADLINE_S / 0.05)):
                done, _ = await asyncio.wait({nxt}, timeout=0.05)
                if done:
                    break
                (tmp_path / "a.txt").write_text("x")
        batch = await asyncio.wait_for(nxt, DEADLINE_S)
        assert {Path(path).name for _, path in batch} == {"a.txt"}
        assert {change for change, _ in batch} <= {Change.added, Change.modified}
    finally:
        nxt.cancel()
        await changes.aclose()


async def test_recursive_watch_sees_new_subfolders(tmp_path: Path) -> None:
    changes = filewatch.awatch(tmp_path, recursive=True)
    nxt, _ = await _first(changes)
    try:
        (tmp_path / "died").mkdir()
        await asyncio.wait_for(nxt, DEADLINE_S)
        target = tmp_path / "died" / "task-1.status"
        seen: set[str] = set()
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        target.write_text("0")
        while str(target) not in seen:
            batch = await asyncio.wait_for(changes.__anext__(), deadline - asyncio.get_running_loop().time())
            seen |= {path for _, path in batch}
    finally:
        await changes.aclose()


async def test_deletions_are_reported_as_deleted(tmp_path: Path) -> None:
    victim = tmp_path / "gone"
    victim.write_text("x")
    changes = filewatch.awatch(tmp_path)
    nxt, _ = await _first(changes)
    try:
        victim.unlink()
        batch = await asyncio.wait_for(nxt, DEADLINE_S)
        assert (Change.deleted, str(victim)) in batch
    finally:
        await changes.aclose()


async def test_the_stop_event_ends_the_watch(tmp_path: Path, backend: str) -> None:
    stop = asyncio.Event()
    batches: list[Batch] = []

    async def consume() -> None:
        async for batch in filewatch.awatch(tmp_path, stop_event=stop):
            batches.append(batch)

    consumer = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(consumer, DEADLINE_S)
    assert batches == []


async def test_a_burst_of_writes_is_one_batch(tmp_path: Path) -> None:
    changes = filewatch.awatch(tmp_path, debounce=200)
    nxt, _ = await _first(changes)
    try:
        for i in range(20):
            (tmp_path / f"f{i}").write_text("x")
        batch = await asyncio.wait_for(nxt, DEADLINE_S)
        assert {Path(path).name for _, path in batch} == {f"f{i}" for i in range(20)}
    finally:
        await changes.aclose()


async def test_an_idle_watch_does_not_wake_the_process(tmp_path: Path) -> None:
    """watchfiles' waiting thread wakes every `step` ms (100 times in this window at step=5); ours sleeps."""
    watches = [filewatch.awatch(tmp_path) for _ in range(3)]
    pending: list[Any] = [(await _first(w))[0] for w in watches]
    try:
        await asyncio.sleep(0.1)  # settle: let the first steps reach their waits
        before = _switches()
        await asyncio.sleep(0.5)  # the measured window, not a synchronisation
        woken = _switches() - before
        assert woken <= 10, f"{woken} wake-ups in 0.5 s idle (threads: {threading.active_count()})"
    finally:
        for future, watch in zip(pending, watches, strict=True):
            await filewatch.close_watch(future, watch)


def test_watching_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    async def start() -> None:
        changes = filewatch.awatch(tmp_path / "missing")
        try:
            await changes.__anext__()
        finally:
            await changes.aclose()

    with pytest.raises(OSError):
        asyncio.run(start())
    assert not os.path.exists(tmp_path / "missing")
