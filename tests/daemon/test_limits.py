"""Limits a daemon keeps against a flood: paged task lists, a per-peer create rate, a cap on connections, and
no idle half-line held for ever. Real daemon, real Unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.config import DEFAULT_CONFIG
from cockpit_testkit.daemons import cli, cli_json, kill_daemon, reap_configured_tmux
from cockpit_testkit.gitrepos import GIT_ENV, make_repo
from cockpit_testkit.tasks import init_cockpit

TIMEOUT = 20


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Path, str]]:
    base = Path(tempfile.mkdtemp(prefix="ck-lim-"))
    home = base / "home"
    home.mkdir()
    env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "COCKPIT_LINE_IDLE_S": "1", **GIT_ENV}
    repo = make_repo(base / "repo")
    config = DEFAULT_CONFIG.replace('socket_name = ""', f'socket_name = "ck-none-{base.name}"')
    init_cockpit(repo, config=config)
    started = cli("daemon", "start", "--json", repo=repo, env=env)
    try:
        assert started.code == 0, started.stderr
        yield repo, started.json["socket"]
    finally:
        if cli("daemon", "stop", repo=repo, env=env, timeout=30).code != 0:
            kill_daemon(repo)
        reap_configured_tmux(repo)
        shutil.rmtree(base, ignore_errors=True)


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.ids = reader, writer, 0

    async def line(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            data = await self.reader.readline()
        assert data, "the daemon closed the connection"
        message: dict[str, Any] = json.loads(data)
        return message

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        self.ids += 1
        self.writer.write(json.dumps({"id": self.ids, "op": op, "args": args}).encode() + b"\n")
        await self.writer.drain()
        return await self.line()


@contextlib.asynccontextmanager
async def connect(sock: str) -> AsyncIterator[Conn]:
    reader, writer = await asyncio.open_unix_connection(sock, limit=64 * 1024 * 1024)
    conn = Conn(reader, writer)
    try:
        assert "hello" in await conn.line()
        yield conn
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def seed_tasks(repo: Path, count: int) -> None:
    """Many created tasks, written straight into the store (the daemon reads them from there)."""
    with sqlite3.connect(repo / ".cockpit" / "index.db") as db:
        start = int(db.execute("SELECT COALESCE(MAX(id), 0) FROM tasks").fetchone()[0])
        now = time.time()
        rows = []
        for i in range(start + 1, start + count + 1):
            doc = {"id": i, "title": f"seeded task {i}", "description": f"seeded task {i}", "state": "done",
                   "created_at": now, "updated_at": now}
            rows.append((i, "done", doc["title"], json.dumps(doc), now, now))
        db.executemany("INSERT INTO tasks (id, state, title, doc, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", rows)


async def test_list_tasks_is_paged_and_the_cli_reads_every_page(served: tuple[Path, str]) -> None:
    repo, sock = served
    await asyncio.to_thread(seed_tasks, repo, 1_200)
    async with connect(sock) as conn:
        first = (await conn.call("list_tasks", all=True))["result"]
        assert len(first["tasks"]) == 500 and first["next_cursor"] == first["tasks"][-1]["id"]
        ids = [t["id"] for t in first["tasks"]]
        cursor = first["next_cursor"]
        while cursor is not None:
            page = (await conn.call("list_tasks", all=True, cursor=cursor, limit=400))["result"]
            assert len(page["tasks"]) <= 400
            ids += [t["id"] for t in page["tasks"]]
            cursor = page["next_cursor"]
        assert ids == sorted(set(ids)) and len(ids) >= 1_200
        bad = await conn.call("list_tasks", limit=0)
        assert bad["ok"] is False and bad["error"]["code"] == "bad_request"
    listed = await asyncio.to_thread(cli_json, "task", "list", "--all", repo=repo)
    assert len(listed["tasks"]) == len(ids)


async def test_a_peer_is_capped_per_minute(served: tuple[Path, str]) -> None:
    repo, sock = served
    # `source_repo` must name a peer of the workspace: put the repo and a "flooder" peer in one.
    make_repo(repo.parent / "flooder")
    make_repo(repo.parent / "calm")
    (repo.parent / "cockpit-workspace.toml").write_text(
        '[repos.repo]\npath = "repo"\n[repos.flooder]\npath = "flooder"\n[repos.calm]\npath = "calm"\n')
    async with connect(sock) as conn:
        replies = [await conn.call("create_task", text=f"add the feature number {i} to module_{i}.py",
                                   source_repo="flooder", no_wait=True, force=True) for i in range(65)]
        refused = [r for r in replies if not r["ok"]]
        assert refused and all(r["error"]["code"] == "rate_limited" for r in refused)
        assert "per minute" in refused[0]["error"]["message"]
        assert sum(1 for r in replies if r["ok"]) == 60
        # Another peer and the person are not held back by it.
        other = await conn.call("create_task", text="add a health endpoint", source_repo="calm", no_wait=True)
        assert other["ok"] is True
        mine = await conn.call("create_task", text="add a version endpoint", no_wait=True)
        assert mine["ok"] is True


async def test_connections_are_capped_and_the_daemon_keeps_answering(served: tuple[Path, str]) -> None:
    _repo, sock = served
    async with contextlib.AsyncExitStack() as stack:
        held = []
        refused: dict[str, Any] | None = None
        for _ in range(80):
            reader, writer = await asyncio.open_unix_connection(sock)
            stack.push_async_callback(_close, writer)
            async with asyncio.timeout(TIMEOUT):
                first = json.loads(await reader.readline())
            if "hello" in first:
                held.append(writer)
                continue
            refused = first
            break
        assert refused is not None, "80 connections were all accepted"
        assert refused["error"]["code"] == "too_many_connections"
        assert len(held) == 64
    async with connect(sock) as conn:
        assert (await conn.call("ping"))["ok"] is True


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def test_an_idle_half_line_is_dropped(served: tuple[Path, str]) -> None:
    _repo, sock = served
    reader, writer = await asyncio.open_unix_connection(sock)
    try:
        assert "hello" in json.loads(await reader.readline())
        writer.write(b'{"id": 1, "op": "ping"' + b" " * 500_000)  # no newline, then silence
        await writer.drain()
        async with asyncio.timeout(TIMEOUT):
            rest = await reader.read()  # the daemon closes it after COCKPIT_LINE_IDLE_S
        assert b"idle" in rest
    finally:
        await _close(writer)
    async with connect(sock) as conn:
        assert (await conn.call("ping"))["ok"] is True
