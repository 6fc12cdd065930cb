"""The daemon's lifecycle with real processes: start detaches and returns once the socket answers, one daemon
per repo (even when two starts race), stale files replaced, SIGTERM stops it cleanly, kill -9 loses nothing,
and on start it classifies what was left in created and sweeps executing tasks nobody accounts for."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.core import daemonfile
from cockpit.core.client import DaemonClient
from cockpit.core.config import DEFAULT_CONFIG
from cockpit.core.errors import DaemonUnavailable
from cockpit.core.models import Event
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.daemons import cli, cli_json, kill_daemon
from cockpit_testkit.gitrepos import make_repo
from cockpit_testkit.tasks import init_cockpit
from cockpit_testkit.waiting import wait_until

Daemons = Callable[[Path], dict[str, Any]]


def private_tmux(repo: Path) -> None:
    """`cockpit init`'s files, with the execution layer kept off any real tmux server (a socket name no server
    listens on), and the script agent as the backend (`doctor` checks it; no installed agent is needed)."""
    config = DEFAULT_CONFIG.replace('socket_name = ""', f'socket_name = "ck-none-{os.getpid()}-{repo.name}"')
    config = config.replace('backend = "claude"', 'backend = "script"')
    paths = init_cockpit(repo, config=config)

    async def create_store() -> None:
        await (await Store.open(paths.db)).close()

    asyncio.run(create_store())


async def hello_of(sock: str) -> dict[str, Any]:
    client = await DaemonClient.connect(sock, timeout=10)
    try:
        assert (await client.call("ping", timeout=10)) == {"pong": True}
        return client.hello
    finally:
        await client.close()


def test_start_status_stop(repo: Path, daemons: Daemons) -> None:
    started = daemons(repo)
    paths = RepoPaths(repo)
    assert started["already_running"] is False and started["protocol"] == 1
    assert started["socket"] == str(paths.cockpit / "daemon.sock") and paths.config.is_file()
    # start returned, so the socket answers now: no retry, no sleep.
    hello = asyncio.run(hello_of(started["socket"]))
    assert hello == {"protocol": 1, "repo": "repo", "root": str(repo.resolve()), "pid": started["pid"]}
    assert stat.S_IMODE(os.stat(started["socket"]).st_mode) == 0o600
    info = json.loads(paths.daemon_json.read_text())
    assert {k: info[k] for k in ("pid", "socket", "protocol", "root")} == {
        "pid": started["pid"], "socket": started["socket"], "protocol": 1, "root": str(repo.resolve())}

    second = cli("daemon", "start", repo=repo)
    assert second.code == 0
    assert f"already running for {repo.resolve()} (pid {started['pid']})" in second.stdout
    again = cli_json("daemon", "start", repo=repo)
    assert again["already_running"] is True and again["pid"] == started["pid"]
    status = cli_json("daemon", "status", repo=repo)
    assert status["running"] is True and status["pid"] == started["pid"]
    doctor = cli_json("doctor", repo=repo)
    assert doctor["ok"] is True
    assert doctor["checks"]["daemon"] == f"running (pid {started['pid']}, socket {started['socket']})"

    # `events --follow` subscribes: every event as it commits, as JSON lines, until the daemon goes away.
    follower = subprocess.Popen([sys.executable, "-m", "cockpit", "events", "--follow", "--repo", str(repo)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert follower.stdout is not None
        cli_json("task", "create", "add a health endpoint to the api", repo=repo)
        lines = [json.loads(follower.stdout.readline()) for _ in range(2)]
        assert [(e["seq"], e["type"], e["task_id"]) for e in lines] == [(1, "task.created", 1),
                                                                        (2, "task.classified", 1)]
        stopped = cli_json("daemon", "stop", repo=repo)
        assert follower.wait(20) == 0, follower.stderr.read() if follower.stderr else ""
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait()
    assert stopped == {"stopped": True, "pid": started["pid"]}
    assert not daemonfile.pid_alive(started["pid"])
    assert not paths.daemon_json.exists() and not Path(started["socket"]).exists()
    down = cli("daemon", "status", "--json", repo=repo)
    assert down.code == 1 and down.json == {"running": False}
    assert cli_json("daemon", "stop", repo=repo) == {"stopped": False, "pid": None}


def daemon_pids(repo: Path) -> list[int]:
    """Every daemon process serving `repo` (`python -m cockpit.daemon`, as `daemon start` runs it, or
    `cockpit daemon run`)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        is_daemon = b"cockpit.daemon" in argv or (b"daemon" in argv and b"run" in argv)
        if is_daemon and os.fsencode(str(repo)) in argv \
                and daemonfile.pid_alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def test_two_starts_at_once_make_one_daemon(repo: Path, daemons: Daemons) -> None:
    private_tmux(repo)
    argv = [sys.executable, "-m", "cockpit", "daemon", "start", "--json", "--repo", str(repo)]
    starts = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(3)]
    results = [json.loads(p.communicate(timeout=60)[0]) for p in starts]
    daemons(repo)  # registers the repo for teardown (and is itself one more start that finds it running)
    assert [p.returncode for p in starts] == [0, 0, 0], results
    assert len({r["pid"] for r in results}) == 1, results
    assert sorted(r["already_running"] for r in results) == [False, True, True]
    assert daemon_pids(repo) == [results[0]["pid"]]
    # A foreground run while one serves says so and exits 0 without touching the running one.
    run = cli("daemon", "run", repo=repo)
    assert run.code == 0 and "already running" in run.stderr
    assert asyncio.run(hello_of(results[0]["socket"]))["pid"] == results[0]["pid"]


def test_run_stays_in_the_foreground_and_sigterm_stops_it_cleanly(repo: Path) -> None:
    private_tmux(repo)
    paths = RepoPaths(repo)
    proc = subprocess.Popen([sys.executable, "-m", "cockpit", "daemon", "run", "--repo", str(repo)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = wait_until(lambda: daemonfile.read_live(paths.daemon_json), timeout=30,
                          message="daemon run never wrote daemon.json")
        assert info is not None and info.pid == proc.pid
        wait_until(lambda: _answers(info.socket), timeout=30, message="the socket never answered")
        task = cli_json("task", "create", "add a health endpoint", "--no-wait", repo=repo)
        assert task["state"] == "created"
        # The daemon classifies a --no-wait task in the background; `task wait` blocks until it settles.
        assert cli_json("task", "wait", "1", "--timeout", "20", repo=repo)["state"] == "pending"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopping" in err
    assert not paths.daemon_json.exists() and not Path(info.socket).exists()
    assert cli_json("task", "show", "1", repo=repo)["state"] == "pending"


def _answers(sock: str) -> bool:
    try:
        return asyncio.run(hello_of(sock)) is not None
    except DaemonUnavailable:
        return False


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_files_are_replaced_and_a_long_path_gets_a_short_socket(short_tmp: Path,
                                                                      daemons: Daemons) -> None:
    repo = make_repo(short_tmp / ("deep-" + "d" * 60) / ("repo-" + "r" * 40))
    private_tmux(repo)
    paths = RepoPaths(repo)
    sock = paths.socket
    assert sock.parent != paths.cockpit and len(os.fsencode(sock)) <= 100, "too long for sun_path: moved"
    # A daemon that died without cleaning up: daemon.json names a dead pid, its socket file is left behind.
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock))
    stale.close()
    paths.daemon_json.write_text(json.dumps({"pid": dead_pid(), "socket": str(sock), "protocol": 1,
                                             "started_at": 1.0, "repo": "repo", "root": str(repo)}))
    assert cli("daemon", "status", repo=repo).code == 1
    assert cli_json("task", "list", repo=repo)["tasks"] == [], "the CLI falls back to the store"

    started = daemons(repo)
    assert started["already_running"] is False and started["socket"] == str(sock)
    assert asyncio.run(hello_of(str(sock)))["pid"] == started["pid"]
    assert daemonfile.read(paths.daemon_json) == daemonfile.read_live(paths.daemon_json)
    cli_json("daemon", "stop", repo=repo)
    assert not sock.exists()


async def created_via_socket(sock: str, texts: list[str]) -> list[int]:
    async with await DaemonClient.connect(sock) as client:
        return [(await client.call("create_task", {"text": t, "force": True}))["id"] for t in texts]


async def events_after(sock: str, since: int, count: int) -> list[Event]:
    """Subscribe with `since` on a fresh connection and collect `count` events."""
    async with await DaemonClient.connect(sock) as client:
        events: list[Event] = []
        async with asyncio.timeout(20):
            async for event in client.subscribe(since):
                events.append(event)
                if len(events) == count:
                    break
        return events


def test_kill_9_then_restart_loses_nothing(repo: Path, daemons: Daemons) -> None:
    private_tmux(repo)
    first = daemons(repo)
    texts = ["add a health endpoint to the api", "document the cli flags in docs/cli.md",
             "fix the crash when uploading large files"]
    ids = asyncio.run(created_via_socket(first["socket"], texts))
    assert ids == [1, 2, 3]
    before = asyncio.run(events_after(first["socket"], 0, 6))
    last_seen = before[-1].seq

    # A daemon that is alive but does not answer is a problem doctor names.
    os.kill(first["pid"], signal.SIGSTOP)
    try:
        hung = cli("doctor", "--json", repo=repo)
    finally:
        assert kill_daemon(repo) == first["pid"]
    assert hung.code == 1
    assert f"pid {first['pid']} alive but not answering" in " ".join(hung.json["problems"])
    paths = RepoPaths(repo)
    assert paths.daemon_json.exists() and Path(first["socket"]).exists(), "kill -9 leaves its files behind"
    # With the daemon dead the CLI writes straight into the store.
    while_down = cli_json("task", "create", "rename UserService to AccountService", repo=repo)
    assert while_down["id"] == 4 and while_down["state"] == "pending"

    second = daemons(repo)
    assert second["already_running"] is False and second["pid"] != first["pid"]
    tasks = cli_json("task", "list", "--all", repo=repo)["tasks"]
    assert [(t["id"], t["description"]) for t in tasks] == list(
        zip([1, 2, 3, 4], [*texts, "rename UserService to AccountService"], strict=True))
    assert all(t["state"] == "pending" for t in tasks)
    # A subscriber that saw everything up to the kill resumes after it and misses nothing.
    after = asyncio.run(events_after(second["socket"], last_seen, 2))
    assert [(e.seq, e.task_id, e.type) for e in after] == [
        (last_seen + 1, 4, "task.created"), (last_seen + 2, 4, "task.classified")]
    assert cli_json("doctor", repo=repo)["ok"] is True


def test_start_classifies_created_tasks_and_sweeps_executing_ones(repo: Path, daemons: Daemons) -> None:
    private_tmux(repo)
    paths = RepoPaths(repo)

    async def leave_work_behind() -> None:
        store = await Store.open(paths.db)
        try:
            async with store.tx() as tx:
                # A peer's fallback write (or a crash before classification): recorded, never classified.
                await tx.append(1, "task.created", {"description": "fix the typo in README",
                                                    "source_repo": "backend", "source_task_id": 7})
                # A task whose agent was running when its daemon died, with no pane left.
                await tx.append(2, "task.created", {"description": "add a health endpoint to the api"})
                await tx.append(2, "task.classified", {"scope": "small", "state": "pending", "plan": []})
                await tx.append(2, "task.approved", {"by": "person"})
                await tx.append(2, "task.executing", {"agent": "script", "attempt": 1})
        finally:
            await store.close()

    asyncio.run(leave_work_behind())
    daemons(repo)
    # `daemon start` returns after recovery: the states are final now.
    classified = cli_json("task", "show", "1", repo=repo)
    assert classified["state"] != "created" and classified["scope"] == "small"
    assert classified["parent"] == {"repo": "backend", "id": 7}
    swept = cli_json("task", "show", "2", repo=repo)
    assert swept["state"] == "interrupted" and "daemon stopped" in swept["failure"]


def test_a_broken_config_stops_the_start_with_the_line(repo: Path) -> None:
    private_tmux(repo)
    paths = RepoPaths(repo)
    paths.config.write_text("[task]\nauto_approve_small = yes\n")
    result = cli("daemon", "start", "--json", repo=repo)
    assert result.code == 1 and result.json["error"]["code"] == "daemon_start"
    assert "line 2" in result.json["error"]["message"]
    assert not paths.daemon_json.exists()
    wait_until(lambda: daemon_pids(repo) == [], timeout=15, message="the failed daemon process exits")
