"""Shared set-up for the execution benchmarks: a throwaway repo, its daemon, a private tmux server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.cli.repo import init_repo
from cockpit.core import daemonctl
from cockpit.core.client import DaemonClient
from cockpit.core.config import set_value
from cockpit.core.models import Event
from cockpit.core.paths import RepoPaths

IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True, env={**os.environ, **IDENTITY}
    )
    return out.stdout.strip()


def make_repo(path: Path, files: int = 1) -> Path:
    """A repo on `main` with `files` small files spread over folders of 100."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "commit.gpgsign", "false")
    for i in range(files):
        target = path / f"pkg{i // 100:03d}" / f"mod{i:05d}.py"
        target.parent.mkdir(exist_ok=True)
        target.write_text(f"VALUE = {i}\n")
    (path / "README.md").write_text("# bench\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(values_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(values_ms, 0.5), 1),
        "p99_ms": round(percentile(values_ms, 0.99), 1),
        "mean_ms": round(statistics.fmean(values_ms), 1),
        "max_ms": round(max(values_ms), 1),
        "n": len(values_ms),
    }


@dataclass
class Bench:
    root: Path
    paths: RepoPaths
    socket_name: str


@contextlib.contextmanager
def bench_repo(files: int = 1, **settings: str) -> Iterator[Bench]:
    """A repo with cockpit initialised and its daemon running; everything is removed afterwards."""
    for key, value in IDENTITY.items():
        os.environ.setdefault(key, value)
    tmp = Path(tempfile.mkdtemp(prefix="ckb-"))
    socket_name = f"ck-bench-{uuid.uuid4().hex[:8]}"
    paths = RepoPaths(make_repo(tmp / "repo", files))
    try:
        init_repo(paths)
        for key, value in {
            "tmux.socket_name": socket_name,
            "task.auto_approve_small": "false",
            "task.fix_attempts": "0",
            **settings,
        }.items():
            set_value(paths.config, key, value)
        daemonctl.start(paths)
        try:
            yield Bench(paths.root, paths, socket_name)
        finally:
            daemonctl.stop(paths)
    finally:
        subprocess.run(["tmux", "-L", socket_name, "kill-server"], capture_output=True, check=False)
        tmux_dir = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.geteuid()}"
        (tmux_dir / socket_name).unlink(missing_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)


class Session:
    """One client connection plus an event subscription, for timing events against the daemon's clock."""

    def __init__(self, client: DaemonClient, events: asyncio.Queue[Event]) -> None:
        self.client = client
        self.events = events
        self._pump: asyncio.Task[None] | None = None
        self.seen: list[Event] = []

    @classmethod
    async def open(cls, paths: RepoPaths) -> Session:
        client = await DaemonClient.for_repo(paths, person=True)
        assert client is not None, "the daemon is not running"
        events: asyncio.Queue[Event] = asyncio.Queue()
        session = cls(client, events)
        since = (await client.call("status"))["last_seq"]
        sub = await DaemonClient.for_repo(paths)
        assert sub is not None

        async def pump() -> None:
            async for event in sub.subscribe(int(since)):
                events.put_nowait(event)

        session._pump = asyncio.ensure_future(pump())
        session._sub = sub  # type: ignore[attr-defined]
        return session

    async def call(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        return await self.client.call(op, args, timeout=60)

    async def wait_event(self, task_id: int, types: set[str], limit_s: float = 60) -> Event:
        async def find() -> Event:
            while True:
                event = await self.events.get()
                self.seen.append(event)
                if event.task_id == task_id and event.type in types:
                    return event

        return await asyncio.wait_for(find(), limit_s)

    async def create(self, text: str) -> int:
        task = await self.call("create_task", {"text": text, "force": True})
        return int(task["id"])

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        await self._sub.close()  # type: ignore[attr-defined]
        await self.client.close()


SETTLED = {"task.awaiting_review", "task.failed", "task.interrupted"}
