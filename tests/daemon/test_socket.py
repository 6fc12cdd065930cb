"""The daemon socket exactly as DESIGN section 6 says, spoken raw over a real Unix socket to a real daemon:
hello, request/response by id, subscribe with `since` replay and push, server-side wait_task, bad input
answered with errors (never a dead daemon), and only the daemon's own user let in."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import principals
from cockpit.core.config import DEFAULT_CONFIG
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.daemons import cli, kill_daemon, reap_configured_tmux
from cockpit_testkit.gitrepos import GIT_ENV, make_repo
from cockpit_testkit.tasks import init_cockpit

TIMEOUT = 20


@dataclass
class Served:
    base: Path
    repo: Path
    socket: str
    pid: int


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One real daemon for this module's tests (each test makes its own tasks)."""
    base = Path(tempfile.mkdtemp(prefix="ck-"))
    home = base / "home"
    home.mkdir()
    env = {"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **GIT_ENV}
    repo = make_repo(base / "repo")
    config = DEFAULT_CONFIG.replace('socket_name = ""', f'socket_name = "ck-none-{base.name}"')
    init_cockpit(repo, config=config)
    started = cli("daemon", "start", "--json", repo=repo, env=env)
    try:
        assert started.code == 0, started.stderr
        yield Served(base, repo, started.json["socket"], started.json["pid"])
    finally:
        if cli("daemon", "stop", repo=repo, env=env, timeout=30).code != 0:
            kill_daemon(repo)
        reap_configured_tmux(repo)
        shutil.rmtree(base, ignore_errors=True)


class Raw:
    """A bare JSON-lines connection: what any client in any language would see."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ids = 0

    async def line(self) -> dict[str, Any]:
        async with asyncio.timeout(TIMEOUT):
            data = await self.reader.readline()
        assert data, "the daemon closed the connection"
        message: dict[str, Any] = json.loads(data)
        return message

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, op: str, **args: Any) -> int:
        self.ids += 1
        await self.send(json.dumps({"id": self.ids, "op": op, "args": args}).encode() + b"\n")
        return self.ids

    async def call(self, op: str, **args: Any) -> dict[str, Any]:
        request_id = await self.request(op, **args)
        reply = await self.line()
        assert reply["id"] == request_id, reply
        return reply


@contextlib.asynccontextmanager
async def raw(served: Served, *, person: bool = True) -> AsyncIterator[Raw]:
    """A bare connection; with `person` it presents the person's token first, as the CLI does."""
    reader, writer = await asyncio.open_unix_connection(served.socket, limit=64 * 1024 * 1024)
    conn = Raw(reader, writer)
    try:
        hello = await conn.line()
        assert hello == {"hello": {"protocol": 1, "repo": "repo", "root": str(served.repo.resolve()),
                                   "pid": served.pid}}
        if person:
            token = principals.read_token()
            assert token is not None
            assert (await conn.call("auth", token=token))["result"] == {"principal": "person"}
            conn.ids = 0
        yield conn
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def test_hello_then_replies_matched_by_id(served: Served) -> None:
    async with raw(served) as conn:
        assert await conn.call("ping") == {"id": 1, "ok": True, "result": {"pong": True}}
        # Pipelined requests with ids of any JSON type; each reply carries its request's id.
        await conn.send(b'{"id": "a", "op": "ping"}\n{"id": [2], "op": "ping", "args": {}}\n'
                        b'{"op": "ping", "args": null}\n')
        replies = [await conn.line() for _ in range(3)]
        assert sorted(json.dumps(r["id"]) for r in replies) == sorted(['"a"', "[2]", "null"])
        assert all(r["ok"] is True and r["result"] == {"pong": True} for r in replies)
        created = await conn.call("create_task", text="add a metrics endpoint to the socket server",
                                  force=True)
        assert created["ok"] is True and created["result"]["state"] == "pending"
        task_id = created["result"]["id"]
        shown = await conn.call("get_task", id=task_id)
        assert shown["result"]["description"] == "add a metrics endpoint to the socket server"
        refused = await conn.call("approve_task", id=task_id + 1000)
        assert refused["ok"] is False and refused["error"]["code"] == "not_found"
        assert set(refused) == {"id", "ok", "error"} and refused["error"]["message"]


BAD_LINES: list[tuple[bytes, str]] = [
    (b"garbage\n", "invalid_json"),
    (b"{not json}\n", "invalid_json"),
    (b"\xff\xfe\x00\x01\n", "invalid_json"),
    (b"[1, 2, 3]\n", "bad_request"),
    (b"42\n", "bad_request"),
    (b'{"id": 7}\n', "bad_request"),
    (b'{"id": 8, "op": "launch_missiles"}\n', "unknown_op"),
    (b'{"id": 9, "op": "get_task", "args": [1]}\n', "bad_request"),
    (b'{"id": 10, "op": "get_task", "args": {"id": "seven"}}\n', "bad_request"),
    (b'{"id": 11, "op": "list_tasks", "args": {"states": ["bogus"]}}\n', "bad_request"),
    (b'{"id": 12, "op": "create_task", "args": {"text": 5}}\n', "bad_request"),
    (b'{"id": 13, "op": "create_task", "args": {"text": "   "}}\n', "usage"),
    (b'{"id": 14, "op": "events", "args": {"since": -1}}\n', "bad_request"),
    (b'{"id": 15, "op": "subscribe", "args": {"since": "x"}}\n', "bad_request"),
    (b'{"id": 16, "op": "wait_task", "args": {"id": 1, "timeout_s": -1}}\n', "bad_request"),
    # Non-finite numbers: NaN made the wait loop spin on the daemon's loop.
    (b'{"id": 17, "op": "wait_task", "args": {"id": 1, "timeout_s": NaN}}\n', "bad_request"),
    (b'{"id": 18, "op": "wait_task", "args": {"id": 1, "timeout_s": Infinity}}\n', "bad_request"),
    # Text over the 64 KiB cap is refused at intake, whoever sends it.
    (b'{"id": 19, "op": "create_task", "args": {"text": "fix ' + b"x" * 70_000 + b'"}}\n', "too_large"),
    (b'{"id": 20, "op": "create_task", "args": {"text": "fix it", "source_repo": "p", "no_wait": true, '
     b'"script": "' + b"s" * 70_000 + b'"}}\n', "too_large"),
]


async def test_bad_input_gets_error_replies_and_the_daemon_keeps_answering(served: Served) -> None:
    async with raw(served) as conn:
        for line, code in BAD_LINES:
            await conn.send(line)
            reply = await conn.line()
            assert reply["ok"] is False and reply["error"]["code"] == code, (line, reply)
            assert reply["error"]["message"]
        # A 10 MiB line: dropped with one error reply, and the very next line on the connection works.
        chunk = b"x" * (1024 * 1024)
        for _ in range(10):
            await conn.send(chunk)
        await conn.send(b"\n")
        reply = await conn.line()
        assert reply["ok"] is False and reply["error"]["code"] == "line_too_long"
        assert "10485760 bytes is over the 1 MiB limit" in reply["error"]["message"]
        assert (await conn.call("ping"))["result"] == {"pong": True}
        # A line just under the cap is read and answered (here: its text is too long to be JSON-valid).
        await conn.send(b'{"id": 99, "op": "ping", "args": {"pad": "' + b"p" * (1024 * 1024 - 60) + b'"}}\n')
        assert (await conn.line()) == {"id": 99, "ok": True, "result": {"pong": True}}
    # Clients that vanish mid-line or mid-flood do no harm either.
    for junk in (b'{"id": 1, "op": "pi', b"y" * (3 * 1024 * 1024)):
        _reader, writer = await asyncio.open_unix_connection(served.socket)
        writer.write(junk)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    async with raw(served) as conn:
        status = await conn.call("status")
        assert status["result"]["pid"] == served.pid


async def test_subscribe_replays_since_then_pushes_and_a_reconnect_misses_nothing(served: Served) -> None:
    async with raw(served) as other:
        start = (await other.call("status"))["result"]["last_seq"]
        async with raw(served) as sub:
            await sub.request("subscribe", since=max(0, start - 2))
            reply = await sub.line()
            # The reply comes before the replayed events, then every event after `since`, in order.
            assert reply["ok"] is True and reply["result"]["subscribed"] is True
            replayed = [(await sub.line())["event"] for _ in range(min(2, start))]
            assert [e["seq"] for e in replayed] == list(range(max(1, start - 1), start + 1))

            created = (await other.call("create_task", text="add rate limiting to the login endpoint",
                                        force=True))["result"]
            pushed = [(await sub.line())["event"] for _ in range(2)]
            assert [(e["seq"], e["task_id"], e["type"]) for e in pushed] == [
                (start + 1, created["id"], "task.created"), (start + 2, created["id"], "task.classified")]
            assert set(pushed[0]) == {"seq", "ts", "task_id", "type", "data", "key"}
            assert pushed[0]["data"]["description"] == "add rate limiting to the login endpoint"
            seen = pushed[-1]["seq"]

        # While nobody listens, work goes on.
        await other.call("reject_task", id=created["id"], reason="not now")
        await other.call("create_task", text="write the changelog for version two", no_wait=True, force=True)

        async with raw(served) as again:
            await again.request("subscribe", since=seen)
            assert (await again.line())["ok"] is True
            missed = [(await again.line())["event"] for _ in range(2)]
            assert [(e["seq"], e["type"]) for e in missed] == [(seen + 1, "task.rejected"),
                                                              (seen + 2, "task.created")]
            await other.call("cancel_task", id=created["id"])  # refused: nothing is pushed for it
            await other.call("classify_task", id=missed[1]["task_id"])
            live = (await again.line())["event"]
            assert (live["seq"], live["type"]) == (seen + 3, "task.classified")


async def test_wait_task_blocks_server_side_and_wakes_on_the_change(served: Served) -> None:
    async with raw(served) as waiter, raw(served) as actor:
        task = (await actor.call("create_task", text="remove the deprecated v1 billing api",
                                 force=True))["result"]
        assert task["state"] == "pending"
        wait_id = await waiter.request("wait_task", id=task["id"], states=["rejected"], timeout_s=TIMEOUT)
        # The wait holds no connection up: the same connection answers other requests meanwhile.
        assert (await waiter.call("ping"))["result"] == {"pong": True}
        await actor.call("reject_task", id=task["id"], reason="duplicate of the v2 work")
        woke = await waiter.line()
        assert woke["id"] == wait_id and woke["ok"] is True
        assert woke["result"]["timed_out"] is False and woke["result"]["task"]["state"] == "rejected"

        pending = (await actor.call("create_task", text="add a dark theme to the settings page",
                                    force=True))["result"]
        timed = await waiter.call("wait_task", id=pending["id"], states=["approved"], timeout_s=0.2)
        assert timed["result"]["timed_out"] is True and timed["result"]["task"]["state"] == "pending"

        # --no-wait: the reply comes at created, and the daemon classifies it right after in the background;
        # a wait with no states returns at the first settled state.
        quick = (await actor.call("create_task", text="write a migration guide for the v2 api", no_wait=True,
                                  force=True))["result"]
        assert quick["state"] == "created"
        settled = await waiter.call("wait_task", id=quick["id"], timeout_s=TIMEOUT)
        assert settled["result"]["timed_out"] is False
        assert settled["result"]["task"]["state"] == "pending" and settled["result"]["task"]["scope"]

        never = await waiter.call("wait_task", id=task["id"], states=["done"])
        assert never["ok"] is False and never["error"]["code"] == "unreachable"
        missing = await waiter.call("wait_task", id=99999, timeout_s=1)
        assert missing["ok"] is False and missing["error"]["code"] == "not_found"


async def test_writes_by_another_process_reach_subscribers_and_waiters(served: Served) -> None:
    """A peer's fallback write, or a CLI racing the daemon, commits straight into the store."""
    async with raw(served) as conn, raw(served) as sub:
        task = (await conn.call("create_task", text="bump django to 5.0", force=True))["result"]
        wait_id = await conn.request("wait_task", id=task["id"], states=["cancelled"], timeout_s=TIMEOUT)
        last = (await conn.call("status"))["result"]["last_seq"]
        await sub.request("subscribe", since=last)
        assert (await sub.line())["ok"] is True
        store = await Store.open(RepoPaths(served.repo).db)
        try:
            event, _ = await store.append(task["id"], "task.cancelled", {"by": "peer", "reason": "moved"})
        finally:
            await store.close()
        pushed = (await sub.line())["event"]
        assert (pushed["seq"], pushed["type"], pushed["data"]["by"]) == (event.seq, "task.cancelled", "peer")
        woke = await conn.line()
        assert woke["id"] == wait_id and woke["result"]["task"]["state"] == "cancelled"


NOBODY_CONNECT = """
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect_error": exc.errno}))
    sys.exit(0)
s.settimeout(10)
data = b""
while not data.endswith(b"\\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(json.dumps({"first": data.decode()}))
"""


SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to run a child as another user")
async def test_another_user_is_refused(served: Served) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    python = SYSTEM_PYTHON  # the venv's interpreter may live where `nobody` cannot read
    # Let `nobody` reach the socket file, so the file mode and then the peer check are what stop it.
    for directory in (served.base, served.repo, served.repo / ".cockpit"):
        directory.chmod(0o755)

    def as_nobody() -> dict[str, Any]:
        proc = subprocess.run([python, "-c", NOBODY_CONNECT, served.socket], capture_output=True, text=True,
                              timeout=30, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/")
        assert proc.returncode == 0, proc.stderr
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    import errno

    assert await asyncio.to_thread(as_nobody) == {"connect_error": errno.EACCES}, "mode 0600 keeps others out"
    os.chmod(served.socket, 0o666)
    try:
        got = await asyncio.to_thread(as_nobody)
    finally:
        os.chmod(served.socket, 0o600)
    # SO_PEERCRED: connected, but refused before any hello, and disconnected.
    assert "connect_error" not in got
    first = got["first"]
    assert "hello" not in first
    assert json.loads(first) == {"id": None, "ok": False, "error": {
        "code": "forbidden", "message": "only the daemon's own user may connect"}}
    async with raw(served) as conn:
        assert (await conn.call("ping"))["ok"] is True
