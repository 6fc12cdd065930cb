"""`cockpit demo`: the seeded workspace (every state, from the real daemons), and the demo end to end in tmux.

Everything is real: the demo's git repos, daemons, private tmux server and script agent; the end-to-end test
runs `cockpit demo` in a window of the test's own tmux server, types keys with send-keys and reads the screen
with capture-pane.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.demo import workspace
from cockpit_testkit.daemons import cli, cli_json, kill_daemon
from cockpit_testkit.tmuxserver import reap_tmux_server, tmux_server_running
from cockpit_testkit.waiting import wait_until

WAIT_S = 120
SIZE = ("200", "50")


def stop_demo(root: Path) -> None:
    """Whatever a demo in `root` left running: its daemons (stopped, else killed) and its tmux server."""
    with contextlib.suppress(Exception):
        ws = workspace.DemoWorkspace.load(root)
        workspace.stop(ws)
    state = root / workspace.STATE_FILE
    if state.exists():
        data = json.loads(state.read_text())
        for path in data["repos"].values():
            kill_daemon(Path(path))
        reap_tmux_server(str(data["tmux_socket"]))
    for name in workspace.REPO_NAMES:
        if (root / name).exists():
            kill_daemon(root / name)


@pytest.fixture
def demo_dir(short_tmp: Path) -> Iterator[Path]:
    """Where the test's demo is built; everything it started is stopped at teardown, even on failure."""
    root = short_tmp / "demo"
    try:
        yield root
    finally:
        stop_demo(root)


def tasks(repo: Path) -> dict[int, dict[str, Any]]:
    listed = cli_json("task", "list", "--all", repo=repo)
    return {int(t["id"]): t for t in listed["tasks"]}


def show(repo: Path, task_id: int) -> dict[str, Any]:
    data: dict[str, Any] = cli_json("task", "show", str(task_id), repo=repo)
    return data


def wait_state(repo: Path, task_id: int, *states: str) -> dict[str, Any]:
    result = cli("task", "wait", str(task_id), "--state", *states, "--timeout", str(WAIT_S), "--json",
                 repo=repo, timeout=WAIT_S + 30)
    assert result.code == 0, f"{repo.name}#{task_id} did not reach {states}: {result.stdout} {result.stderr}"
    data: dict[str, Any] = result.json
    return data


def delegate_step(task: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = next(s for s in task["plan"] if s["verb"] == "delegate")
    return step


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout.strip()


def daemon_down(repo: Path) -> bool:
    return cli("daemon", "status", repo=repo).code == 1


# -- the seeded workspace ------------------------------------------------------------------------------------

@pytest.mark.timeout(300)
def test_demo_no_ui_seeds_every_state(demo_dir: Path) -> None:
    result = cli("demo", "--dir", str(demo_dir), "--no-ui", "--json", timeout=WAIT_S + 60)
    assert result.code == 0, result.stderr
    info = result.json
    assert info["workspace"] == str(demo_dir.resolve())
    backend, frontend = Path(info["repos"]["backend"]), Path(info["repos"]["frontend"])
    assert (demo_dir / "cockpit-workspace.toml").is_file()
    assert info["tasks"]["delegated"] == {"repo": "frontend", "id": 1, "state": "pending",
                                          "parent": {"repo": "backend", "id": 1}}

    # --no-ui leaves it running: the daemons answer, the agents' panes live on the private tmux server.
    assert not daemon_down(backend) and not daemon_down(frontend)
    assert tmux_server_running(info["tmux_socket"])

    seeded = tasks(backend)
    assert {i: t["state"] for i, t in seeded.items()} == {
        1: "executing", 2: "executing", 3: "awaiting_review", 4: "done", 5: "failed"}

    # backend#1 delegated the export page to frontend, where it is large and waits for a person.
    delegating = seeded[1]
    assert delegating["scope"] == "large"
    step = delegate_step(delegating)
    assert (step["peer"], step["peer_task_id"], step["peer_state"]) == ("frontend", 1, "pending")
    assert delegating["children"] == [{"repo": "frontend", "id": 1, "step": 3, "state": "pending"}]
    assert delegating["agent_status"] == "exited"  # its own part is done; it holds for frontend
    child = tasks(frontend)[1]
    assert (child["state"], child["scope"]) == ("pending", "large")
    assert child["parent"] == {"repo": "backend", "id": 1}
    assert child["description"] == step["description"]

    # backend#2's agent asks a question in its pane.
    asking = seeded[2]
    assert asking["needs_input"] is True
    assert "Limit per API key" in "\n".join(cli_json("task", "tail", "2", repo=backend)["lines"])

    # backend#3 awaits review with every gate passed, the unittest gate among them.
    review = seeded[3]
    assert review["gates"] and all(g["status"] == "passed" for g in review["gates"])
    assert "tests" in {g["name"] for g in review["gates"]}

    # backend#4 is merged into main with a rollback point, and rolls back.
    merged = seeded[4]
    merge = merged["merge"]
    assert merge["state"] == "merged" and merge["rollback_sha"] and merge["merge_sha"]
    assert git(backend, "rev-parse", "main") == merge["merge_sha"]
    # backend#5 failed its tests gate after the fix attempt; the gate's log tail says why.
    failed = seeded[5]
    gate = next(g for g in failed["gates"] if g["name"] == "tests")
    assert gate["status"] == "failed"
    assert any("FAILED" in line for line in gate["log_tail"]), gate["log_tail"]
    assert "tests" in failed["failure"]

    rolled = cli_json("task", "rollback", "4", repo=backend)
    assert rolled["task"]["state"] == "rolled_back"
    assert git(backend, "rev-parse", "main") == merge["rollback_sha"]

    # `--stop` stops what the demo started and keeps the files.
    stopped = cli_json("demo", "--stop", "--dir", str(demo_dir))
    assert stopped["stopped"] is True
    assert daemon_down(backend) and daemon_down(frontend)
    assert not tmux_server_running(info["tmux_socket"])
    assert (backend / ".git").exists()


def test_demo_refuses_a_directory_that_holds_something(short_tmp: Path) -> None:
    target = short_tmp / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    result = cli("demo", "--dir", str(target), "--no-ui")
    assert result.code == 2
    assert "not an empty directory" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["notes.txt"]


def test_demo_with_an_agent_that_is_not_installed_says_so(short_tmp: Path) -> None:
    # A PATH without claude (the suite's own PATH has the pinned agent CLIs on it).
    path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                           if not (Path(d) / "claude").exists())
    result = cli("demo", "--dir", str(short_tmp / "d"), "--agent", "claude", "--no-ui", env={"PATH": path})
    assert result.code == 2
    assert "`claude` is not installed" in result.stderr
    assert not (short_tmp / "d").exists()


# -- end to end, in tmux -------------------------------------------------------------------------------------

class Terminal:
    """A window of the test's private tmux server: type into it, read its screen.

    `ended` is the file the window's command writes its exit status to: waiting for a screen stops at once
    when the command has ended.
    """

    def __init__(self, socket_name: str, target: str, ended: Path) -> None:
        self.socket_name = socket_name
        self.target = target
        self.ended = ended

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket_name, *args], capture_output=True, text=True,
                              check=False, timeout=30)

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.target).stdout

    def keys(self, *keys: str) -> None:
        result = self.tmux("send-keys", "-t", self.target, *keys)
        assert result.returncode == 0, result.stderr

    def wait_for(self, check: Callable[[str], bool], message: str, timeout: float = WAIT_S) -> str:
        def seen() -> str:
            screen = self.screen()
            if check(screen):
                return screen
            if self.ended.exists():
                status = self.ended.read_text().strip()
                raise AssertionError(f"{message}: the command ended with status {status}"
                                     f"\n--- the screen ---\n{screen}")
            return ""

        try:
            screen: str = wait_until(seen, timeout=timeout, interval=0.1, message=message)
        except AssertionError as exc:
            if self.ended.exists():
                raise
            raise AssertionError(f"{exc}\n--- the screen ---\n{self.screen()}") from None
        return screen


DELEGATED = "Frontend redesign the export page"


def row(screen: str, text: str) -> str:
    """The first line of the screen showing `text`: in the cockpit, the task table's row of that title."""
    return next((line for line in screen.splitlines() if text in line), "")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_demo_end_to_end_in_tmux(demo_dir: Path, short_tmp: Path, tmux_socket: str) -> None:
    rc_file = short_tmp / "demo.rc"
    runner = short_tmp / "run-demo.sh"
    # COLUMNS/LINES inherited from the test run would override the window's real size.
    runner.write_text("unset COLUMNS LINES\n"
                      f"{shlex.quote(sys.executable)} -m cockpit demo --dir {shlex.quote(str(demo_dir))}\n"
                      f"echo $? > {shlex.quote(str(rc_file))}\n")
    started = subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-x", SIZE[0], "-y", SIZE[1], "-s", "demo",
         "sh", str(runner), ";", "set-option", "-w", "-t", "demo", "remain-on-exit", "on"],
        capture_output=True, text=True, check=False)
    assert started.returncode == 0, started.stderr
    term = Terminal(tmux_socket, "demo", rc_file)
    backend, frontend = demo_dir / "backend", demo_dir / "frontend"

    # The demo seeds its tasks, then the cockpit opens on the backend tab.
    term.wait_for(lambda s: "2 frontend" in s and "Add an /export endpoint" in s,
                  "the cockpit should open on the seeded backend tab")
    assert not rc_file.exists()
    state = json.loads((demo_dir / workspace.STATE_FILE).read_text())
    assert state["tasks"]["delegated"]["state"] == "pending"

    # 2 switches to the frontend tab, where the delegated task is the only row (and so selected).
    term.keys("2")
    term.wait_for(lambda s: "pending" in row(s, DELEGATED),
                  "the frontend tab should list the delegated task, pending")
    assert show(frontend, 1)["state"] == "pending"

    # a approves it, as a person, in the repo where it runs.
    term.keys("a")

    def left_pending() -> dict[str, Any]:
        task = show(frontend, 1)
        return task if task["state"] != "pending" else {}

    approved = wait_until(left_pending, timeout=WAIT_S, message="frontend#1 should leave pending")
    assert approved["approved_by"] == "person"

    # The script agent does it and its gates pass; backend#1's delegate step follows the child's state.
    wait_state(frontend, 1, "awaiting_review")
    wait_until(lambda: delegate_step(show(backend, 1))["peer_state"] == "awaiting_review", timeout=WAIT_S,
               message="backend#1's delegate step should show frontend#1 awaiting review")
    term.wait_for(lambda s: "awaiting_review" in row(s, DELEGATED),
                  "the frontend tab should show the task awaiting review")
    assert show(backend, 1)["state"] == "executing"  # held until frontend's work is merged

    # Merged in frontend, the delegated work is done: backend#1 proceeds to its own gates and review.
    merged = cli_json("task", "merge", "1", repo=frontend, timeout=WAIT_S)
    assert merged["task"]["state"] == "done"
    proceeded = wait_state(backend, 1, "awaiting_review", "failed")
    assert proceeded["state"] == "awaiting_review", proceeded.get("failure")
    step = delegate_step(proceeded)
    assert (step["status"], step["peer_state"]) == ("done", "done")

    # q quits the cockpit, and the demo stops what it started.
    term.keys("q")
    status = wait_until(lambda: rc_file.exists() and rc_file.read_text().strip(), timeout=60,
                        message="the demo should exit after q")
    assert status == "0", term.screen()
    assert daemon_down(backend) and daemon_down(frontend)
    assert not tmux_server_running(state["tmux_socket"])
    assert (demo_dir / workspace.STATE_FILE).exists()  # --dir: the files are kept, only the processes stop
