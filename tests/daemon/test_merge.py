"""Merging through a real daemon and the real CLI: the queue, disconnects, kill -9 at each step + reconcile.

Killing at an exact step uses the orchestrator's test hook: a daemon started with
COCKPIT_MERGE_PAUSE_AT=<step> writes `.cockpit/merge-paused.<step>` there and blocks, and the test kills it.
Gates that must hold a merge open read a FIFO (`cat fifo`), which the test opens to let each one finish.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import git as cg
from cockpit.core.client import DaemonClient
from cockpit.core.merge.lock import PAUSE_ENV
from cockpit.core.paths import RepoPaths
from cockpit_testkit.daemons import cli, cli_json, kill_daemon
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import commit_files, init_cockpit, make_reviewable_task
from cockpit_testkit.waiting import wait_until

BASE_FILES = {"README.md": "# demo\n", "app.txt": "line 1\nline 2\nline 3\n"}
HOLD_GATE = """
[[gates]]
name = "hold"
command = "cat {fifo} > /dev/null"
timeout_s = 60
"""


class Daemons:
    """Start daemons (optionally with extra environment); every one is stopped or killed at teardown."""

    def __init__(self) -> None:
        self.roots: list[Path] = []
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, root: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
        self.roots.append(root)
        result = cli("daemon", "start", "--json", repo=root, env=env)
        assert result.code == 0, result.stdout + result.stderr
        data: dict[str, Any] = result.json
        return data

    def popen(self, *args: str, repo: Path) -> subprocess.Popen[str]:
        """A CLI command running in the background."""
        proc = subprocess.Popen([sys.executable, "-m", "cockpit", *args, "--repo", str(repo)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=30)
        for root in self.roots:
            if cli("daemon", "stop", repo=root, timeout=30).code != 0:
                kill_daemon(root)
            kill_daemon(root)


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    d = Daemons()
    try:
        yield d
    finally:
        d.close()


def setup_repo(repo_factory: Callable[..., Path], config: str = "") -> Path:
    root = repo_factory("repo", files=BASE_FILES)
    # The script agent: `doctor` checks the configured backend, and these tests need no installed agent.
    init_cockpit(root, config=config or None, backend="script")
    return root


def task_json(root: Path, task_id: int) -> dict[str, Any]:
    data: dict[str, Any] = cli_json("task", "show", str(task_id), repo=root)
    return data


def events(root: Path) -> list[dict[str, Any]]:
    """Every event of the repo (`cockpit events` prints one JSON object a line)."""
    result = cli("events", repo=root)
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def merge_queue(root: Path) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        client = await DaemonClient.for_repo(RepoPaths(root))
        assert client is not None
        try:
            return await client.call("merge_queue")
        finally:
            await client.close()

    return asyncio.run(call())


def release(fifo: Path, timeout: float = 30) -> None:
    """Let one gate blocked on `cat fifo` finish (waits for a reader; fails if none comes)."""
    opened = threading.Event()

    def opener() -> None:
        with open(fifo, "w"):
            opened.set()

    thread = threading.Thread(target=opener, daemon=True)
    thread.start()
    thread.join(timeout)
    if not opened.is_set():
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # unblocks the writer so the thread ends
        os.close(fd)
        thread.join(5)
        raise AssertionError(f"no gate read {fifo} within {timeout}s")


def gate_running(root: Path, task_id: int, count: int = 1) -> bool:
    started = [e for e in events(root) if e["task_id"] == task_id and e["type"] == "gate.started"
               and e["data"]["name"] == "hold"]
    return len(started) >= count


# ---------------------------------------------------------------------------------------------------- flows


def test_merge_list_and_rollback_through_the_daemon(
    repo_factory: Callable[..., Path], daemons: Daemons
) -> None:
    root = setup_repo(repo_factory)
    a = make_reviewable_task(root, {"a.txt": "a\n"}, title="add a")
    b = make_reviewable_task(root, {"app.txt": "line 1\nline 2 from b\nline 3\n"}, title="edit app")
    daemons.start(root)
    before = cg.ref_sha(root, "main")

    dry = cli_json("task", "merge", str(a.id), "--dry-run", repo=root)
    assert dry["dry_run"] is True and dry["preflight"]["ok"] is True and cg.ref_sha(root, "main") == before

    merged = cli_json("task", "merge", str(a.id), repo=root)
    assert merged["task"]["state"] == "done" and merged["merge"]["rollback_sha"] == before
    assert merged["task"]["merge"]["merge_sha"] == cg.ref_sha(root, "main") and (root / "a.txt").exists()

    again = cli_json("task", "merge", str(a.id), repo=root)
    assert again["already_merged"] is True and again["merge"]["merge_sha"] == merged["merge"]["merge_sha"]

    # A conflicting change: refused (exit 1) with the file named, nothing moved.
    commit_files(root, {"app.txt": "line 1\nline 2 from main\nline 3\n"}, "main edits app")
    tip = cg.ref_sha(root, "main")
    refused = cli("task", "merge", str(b.id), "--json", repo=root)
    assert refused.code == 1
    error = refused.json["error"]
    assert error["code"] == "refused" and error["conflicts"] == ["app.txt"] and "app.txt" in error["message"]
    assert cg.ref_sha(root, "main") == tip and task_json(root, b.id)["state"] == "awaiting_review"
    human = cli("task", "merge", str(b.id), repo=root)
    assert human.code == 1 and "app.txt" in human.stderr

    listed = cli_json("merges", repo=root)["merges"]
    assert [(m["task_id"], m["state"], m["rollback_now"]) for m in listed] == [(a.id, "merged", "revert")]
    assert listed[0]["merge_sha"] == merged["merge"]["merge_sha"] and listed[0]["rollback_sha"] == before
    assert "add a" in cli("merges", repo=root).stdout

    rolled = cli_json("task", "rollback", str(a.id), repo=root)
    assert rolled["rollback"]["method"] == "revert" and rolled["task"]["state"] == "rolled_back"
    assert rolled["task"]["merge"]["rollback_method"] == "revert" and not (root / "a.txt").exists()
    assert cli("task", "rollback", str(b.id), repo=root).code == 1  # not done


def test_an_agent_branch_committing_cockpit_as_a_symlink_leaves_the_daemon_and_its_state_alone(
    repo_factory: Callable[..., Path], daemons: Daemons
) -> None:
    root = setup_repo(repo_factory)
    elsewhere = root.parent / "elsewhere"
    elsewhere.mkdir()

    def symlink_cockpit(worktree: Path) -> None:  # as an agent can, past info/exclude
        os.symlink(elsewhere, worktree / ".cockpit")
        git(worktree, "add", "-f", ".cockpit")
        git(worktree, "commit", "-q", "-m", "agent work")

    bad = make_reviewable_task(root, {"a.txt": "a\n"}, title="add a", prepare=symlink_cockpit)
    other = make_reviewable_task(root, {"b.txt": "b\n"}, title="add b")
    (Path(other.worktree or "") / "wip.txt").write_text("another task's uncommitted work\n")
    daemons.start(root)
    before = cg.ref_sha(root, "main")
    refused = cli("task", "merge", str(bad.id), "--json", repo=root)
    assert refused.code == 1
    error = refused.json["error"]
    assert error["step"] == "preflight" and ".cockpit" in error["message"] and error["files"] == [".cockpit"]
    assert cg.ref_sha(root, "main") == before and not (root / ".cockpit").is_symlink()
    # The store, the config, the other task's worktree and its uncommitted work, and the daemon: all there.
    paths = RepoPaths(root)
    assert paths.db.is_file() and paths.config.is_file()
    assert (Path(other.worktree or "") / "wip.txt").read_text() == "another task's uncommitted work\n"
    assert task_json(root, bad.id)["state"] == "awaiting_review"
    assert merge_queue(root)["depth"] == 0
    assert cli_json("task", "merge", str(other.id), repo=root)["task"]["state"] == "done"


def test_without_a_daemon_the_cli_merges_and_rolls_back(repo_factory: Callable[..., Path]) -> None:
    root = setup_repo(repo_factory)
    task = make_reviewable_task(root, {"a.txt": "a\n"})
    before = cg.ref_sha(root, "main")
    merged = cli_json("task", "merge", str(task.id), repo=root)
    assert merged["task"]["state"] == "done"
    assert git(root, "rev-parse", "HEAD") == merged["merge"]["merge_sha"]
    assert cli_json("merges", repo=root)["merges"][0]["rollback_now"] == "reset"
    rolled = cli_json("task", "rollback", str(task.id), repo=root)
    expected = {"method": "reset", "from_sha": merged["merge"]["merge_sha"], "to_sha": before}
    assert rolled["rollback"] == expected
    assert git(root, "rev-parse", "HEAD") == before and not (root / "a.txt").exists()


def test_merges_queue_one_at_a_time(repo_factory: Callable[..., Path], daemons: Daemons,
                                    short_tmp: Path) -> None:
    fifo = short_tmp / "hold.fifo"
    os.mkfifo(fifo)
    root = setup_repo(repo_factory, config=HOLD_GATE.format(fifo=fifo))
    a = make_reviewable_task(root, {"a.txt": "a\n"}, title="add a")
    b = make_reviewable_task(root, {"b.txt": "b\n"}, title="add b")
    daemons.start(root)
    first = daemons.popen("task", "merge", str(a.id), "--json", repo=root)
    wait_until(lambda: gate_running(root, a.id), timeout=30, message="task a's verify gate never started")
    second = daemons.popen("task", "merge", str(b.id), "--json", repo=root)
    wait_until(lambda: merge_queue(root)["depth"] == 2, timeout=30, message="task b was never queued")
    assert merge_queue(root)["running"] == "merge_task"
    assert not [e for e in events(root) if e["task_id"] == b.id and e["type"].startswith("merge.")]

    release(fifo)  # a's verify gate
    out_a, err_a = first.communicate(timeout=60)
    assert first.returncode == 0, out_a + err_a
    # Each release waits for its gate to start: the previous `cat` has exited by then (gates run in turn).
    wait_until(lambda: gate_running(root, b.id, 1), timeout=30, message="b's rebase gates never started")
    release(fifo)  # b's gates after its rebase
    wait_until(lambda: gate_running(root, b.id, 2), timeout=30, message="b's verify gates never started")
    release(fifo)  # b's verify gate
    out_b, err_b = second.communicate(timeout=60)
    assert second.returncode == 0, out_b + err_b
    result_b = json.loads(out_b)
    assert result_b["rebased"] is True and result_b["task"]["state"] == "done"
    merge_events = [(e["task_id"], e["type"]) for e in events(root) if e["type"].startswith("merge.")]
    assert merge_events == [(a.id, "merge.preflight"), (a.id, "merge.started"), (a.id, "merge.finished"),
                            (b.id, "merge.preflight"), (b.id, "merge.rebased"), (b.id, "merge.started"),
                            (b.id, "merge.finished")]
    assert merge_queue(root)["depth"] == 0


def test_a_client_that_goes_away_does_not_abandon_the_merge(
    repo_factory: Callable[..., Path], daemons: Daemons, short_tmp: Path
) -> None:
    fifo = short_tmp / "hold.fifo"
    os.mkfifo(fifo)
    root = setup_repo(repo_factory, config=HOLD_GATE.format(fifo=fifo))
    task = make_reviewable_task(root, {"a.txt": "a\n"})
    daemons.start(root)
    client = daemons.popen("task", "merge", str(task.id), repo=root)
    wait_until(lambda: gate_running(root, task.id), timeout=30, message="the verify gate never started")
    client.send_signal(signal.SIGKILL)
    client.wait(30)
    release(fifo)
    done = cli_json("task", "wait", str(task.id), "--state", "done", "--timeout", "30", repo=root)
    assert done["state"] == "done" and cg.ref_sha(root, "main") == done["merge"]["merge_sha"]


# ------------------------------------------------------------------------------------------ kill -9 + restart


def _kill_at(step: str, root: Path, daemons: Daemons) -> tuple[str | None, str | None]:
    """Merge task 1 through a daemon that pauses at `step`; kill -9 it there. Returns (main, task branch)."""
    daemons.start(root, env={PAUSE_ENV: step})
    client = daemons.popen("task", "merge", "1", "--json", repo=root)
    marker = RepoPaths(root).cockpit / f"merge-paused.{step}"
    wait_until(marker.exists, timeout=60, message=f"the merge never reached {step}")
    assert kill_daemon(root) is not None
    client.communicate(timeout=30)
    assert client.returncode != 0  # its daemon died under it
    return cg.ref_sha(root, "main"), cg.ref_sha(root, "cockpit/task-1-demo-change")


@pytest.mark.parametrize(("step", "expected"), [
    ("preflight", "awaiting_review"), ("rebased", "awaiting_review"), ("started", "awaiting_review"),
    ("verified", "awaiting_review"), ("moved", "done"),
])
def test_kill_9_at_each_step_then_restart_matches_the_ref(
    repo_factory: Callable[..., Path], daemons: Daemons, step: str, expected: str
) -> None:
    root = setup_repo(repo_factory)
    task = make_reviewable_task(root, {"feature.txt": "new\n"})
    moved = commit_files(root, {"other.txt": "main moved\n"}, "main moved")  # so the merge rebases
    main_at_kill, _ = _kill_at(step, root, daemons)
    assert task_json(root, task.id)["state"] in ("awaiting_review", "merging")

    daemons.start(root)  # reconciles on start, before it answers
    after = task_json(root, task.id)
    assert after["state"] == expected
    main = cg.ref_sha(root, "main")
    assert main == main_at_kill
    if expected == "done":
        assert main == after["merge"]["merge_sha"] and after["merge"]["rollback_sha"] == moved
        assert after["worktree"] is None and not Path(task.worktree or "").exists()
        assert (root / "feature.txt").exists()
    else:
        assert main == moved and not (root / "feature.txt").exists()
        # Merged again, it goes through.
        merged = cli_json("task", "merge", str(task.id), repo=root)
        assert merged["task"]["state"] == "done" and cg.ref_sha(root, "main") == merged["merge"]["merge_sha"]
    worktrees = [w.path for w in cg.list_worktrees(root)]
    assert worktrees == [root]  # no scratch worktree left behind
    assert cli_json("doctor", repo=root)["checks"]["replay"] == "ok"


def test_kill_9_then_someone_moves_the_target_needs_a_person(
    repo_factory: Callable[..., Path], daemons: Daemons
) -> None:
    root = setup_repo(repo_factory)
    task = make_reviewable_task(root, {"feature.txt": "new\n"})
    _kill_at("verified", root, daemons)
    stuck = task_json(root, task.id)
    assert stuck["state"] == "merging"
    planned, rollback_point = stuck["merge"]["merge_sha"], stuck["merge"]["rollback_sha"]
    elsewhere = commit_files(root, {"x.txt": "someone else\n"}, "someone else commits")

    daemons.start(root)
    after = task_json(root, task.id)
    assert after["state"] == "merging" and after["merge"]["state"] == "needs_attention"
    assert planned[:10] in after["merge"]["detail"] and rollback_point[:10] in after["merge"]["detail"]
    assert cg.ref_sha(root, "main") == elsewhere and Path(task.worktree or "").is_dir()
    listed = cli_json("merges", repo=root)["merges"]
    assert listed[0]["state"] == "needs_attention"
    refused = cli("task", "merge", str(task.id), "--json", repo=root)
    assert refused.code == 1 and refused.json["error"]["code"] == "needs_attention"
    assert cg.ref_sha(root, "main") == elsewhere


@pytest.mark.parametrize(("step", "expected"), [("started", "awaiting_review"), ("moved", "done")])
def test_kill_9_of_a_cli_merging_without_a_daemon(
    repo_factory: Callable[..., Path], daemons: Daemons, step: str, expected: str
) -> None:
    root = setup_repo(repo_factory)
    task = make_reviewable_task(root, {"feature.txt": "new\n"})
    env = {**os.environ, PAUSE_ENV: step}
    proc = subprocess.Popen([sys.executable, "-m", "cockpit", "task", "merge", "1", "--repo", str(root)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    daemons.procs.append(proc)
    marker = RepoPaths(root).cockpit / f"merge-paused.{step}"
    wait_until(marker.exists, timeout=60, message=f"the CLI never reached {step}")
    proc.kill()
    proc.communicate(timeout=30)
    assert task_json(root, task.id)["state"] == "merging"
    daemons.start(root)
    after = task_json(root, task.id)
    assert after["state"] == expected
    if expected == "done":
        assert cg.ref_sha(root, "main") == after["merge"]["merge_sha"]
    else:
        assert cg.ref_sha(root, "main") == after["merge"]["rollback_sha"]


def test_a_daemon_starting_while_a_cli_holds_the_lock_reconciles_later(
    repo_factory: Callable[..., Path], daemons: Daemons
) -> None:
    root = setup_repo(repo_factory)
    task = make_reviewable_task(root, {"feature.txt": "new\n"})
    paths = RepoPaths(root)
    proc = subprocess.Popen([sys.executable, "-m", "cockpit", "task", "merge", "1", "--repo", str(root)],
                            env={**os.environ, PAUSE_ENV: "moved"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    daemons.procs.append(proc)
    wait_until((paths.cockpit / "merge-paused.moved").exists, timeout=60, message="the CLI never moved main")
    proc.kill()
    proc.communicate(timeout=30)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys\n"
         f"fd = os.open({str(paths.cockpit / 'merge.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        daemons.start(root)  # does not wait for the lock
        assert task_json(root, task.id)["state"] == "merging"
        assert merge_queue(root)["depth"] == 1  # the reconcile job waits in the queue
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
        done = cli_json("task", "wait", str(task.id), "--state", "done", "--timeout", "30", repo=root)
        assert done["state"] == "done" and cg.ref_sha(root, "main") == done["merge"]["merge_sha"]
    finally:
        holder.kill()
        holder.wait(30)
