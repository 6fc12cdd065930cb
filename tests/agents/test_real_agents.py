"""The real agent CLIs, driven through cockpit against the fake model server: the loop closes by itself.

Each test runs one pinned CLI (scripts/install-agents) in a pane of the test's private tmux server, started
by a real daemon for a real repo; the model's answers are scripted so the agent really edits, commits and
reports done. Nobody types `/exit`: the agent's done report (or, for aider, its exit) starts the gates.
"""

from __future__ import annotations

import importlib.util
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cockpit.core import processes
from cockpit_testkit.agentkit import Driver
from cockpit_testkit.gitrepos import git
from cockpit_testkit.model_server import Commit, Done, ModelServer, Shell, Step, Write
from cockpit_testkit.waiting import wait_until

pytestmark = [pytest.mark.agents, pytest.mark.timeout(420)]

ALL = ["claude", "codex", "gemini", "aider"]
INTERACTIVE = ["claude", "codex", "gemini"]

# Known defects of the adapters, found by these tests (a run would only wait out its timeouts, minutes each).
KNOWN: dict[str, str] = {}


# Until the adapters (per-agent modules, done/rework/stop) are in this build, nothing here can pass.
def _has_adapters() -> bool:
    try:
        return importlib.util.find_spec("cockpit.core.agents.base") is not None
    except ModuleNotFoundError:  # cockpit.core.agents is still a single module
        return False


ADAPTERS = _has_adapters()


def nested_sandbox() -> bool:
    from cockpit.core import sandbox

    return sandbox.resolve("auto") == "none" or sandbox.nests()


def agents(*names: str) -> list[object]:
    out: list[object] = []
    for n in names:
        reason = KNOWN.get(n) if ADAPTERS else "the agent adapters are not in this build yet"
        out.append(pytest.param(n, marks=pytest.mark.xfail(reason=reason, run=False)) if reason else n)
    return out

Drivers = Callable[..., Driver]


def token() -> str:
    return uuid.uuid4().hex[:10]


def branch_subjects(driver: Driver, task: dict[str, object]) -> list[str]:
    return git(driver.repo, "log", "--format=%s", f"main..{task['branch']}").splitlines()


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return f"{pid} (gone)"


def usage_events(driver: Driver, task_id: int) -> list[dict[str, object]]:
    return [e["data"] for e in driver.events(task_id) if e["type"] == "agent.usage"]


@pytest.mark.parametrize("agent", agents(*ALL))
def test_task_runs_to_review_and_reworks_in_the_same_session(
    agent: str, drivers: Drivers, model_server: ModelServer
) -> None:
    settings: dict[str, str] = {}
    if agent == "codex" and not nested_sandbox():
        # Here Codex's own sandbox cannot run inside cockpit's (root: no user namespace mapping root without
        # capabilities), so under cockpit's it gets full access and asks nothing. Its own sandbox, and the
        # approval overlay of a command that leaves it, are what this test checks; the next one runs it under
        # cockpit's sandbox.
        settings["agent.sandbox"] = "none"
    driver = drivers(agent, **settings)
    tag, again = token(), token()
    if agent == "aider":
        # aider asks before it creates a file (no --yes-always) and exits after its message: the rework is a
        # new run whose prompt holds the reviewer's words.
        model_server.script(again, [Step("Adding the farewell.", (Write("bye.txt", "bye\n"),))])
        model_server.script(tag, [Step("Adding the greeting.", (Write("hello.txt", "hello\n"),))])
    else:
        model_server.script(tag, [
            # A command that needs a person's approval in every agent (Codex: it asks for escalation).
            Step("Adding the greeting.", (Shell("echo hello > hello.txt", ask=True), Commit("add hello"))),
            Step("Committed; reporting done.", (Done(),)),
            Step("The greeting is in place."),
            Step("Adding the farewell.", (Write("bye.txt", "bye\n"), Commit("add bye"))),
            Step("Reporting done again.", (Done(),)),
            Step("The farewell is in place."),
        ])
    task_id = driver.create(f"Add a greeting file {tag}")
    driver.cockpit("task", "approve", str(task_id), "--anyway")
    flagged: list[dict[str, object]] = []

    def answer(tid: int) -> None:
        flagged.append(driver.show(tid))
        driver.answer(tid)

    task = driver.drive(task_id, "awaiting_review", on_dialog=answer)

    # The permission dialog was flagged needs_input and answered with `cockpit task send`.
    assert flagged and all(t["needs_input"] is True for t in flagged)
    seen = [e["type"] for e in driver.events(task_id)]
    assert "agent.needs_input" in seen and "agent.input_resolved" in seen, seen
    assert task["needs_input"] is False
    # The agent edited and committed; its report (or aider's exit) started the gates; they passed.
    assert (Path(str(task["worktree"])) / "hello.txt").read_text() == "hello\n"
    assert git(driver.repo, "status", "--porcelain") == ""
    assert len(branch_subjects(driver, task)) == 1
    assert seen.index("task.executing") < seen.index("task.gating") < seen.index("task.awaiting_review")
    if agent in INTERACTIVE:
        # Done was reported, not typed: the session is still open while the task waits for review.
        assert "agent.done" in seen, seen
        assert driver.pane_alive(task_id), driver.screen(task_id)
    # Usage is read at the end of each turn, which may come just after the gates passed.
    usage = wait_until(lambda: usage_events(driver, task_id), timeout=30, interval=0.3,
                       message=f"{agent}'s usage should be recorded")
    assert all(int(str(u["input_tokens"])) > 0 for u in usage), usage

    message = f"Please also add a farewell file {again}"
    driver.cockpit("task", "rework", str(task_id), "--message", message)
    task = driver.drive(task_id, "awaiting_review", timeout=150)
    assert (Path(str(task["worktree"])) / "bye.txt").read_text() == "bye\n"
    assert len(branch_subjects(driver, task)) == 2
    assert "task.rework_requested" in [e["type"] for e in driver.events(task_id)]
    if agent in INTERACTIVE:
        # The reviewer's words reached the model inside the first conversation: the same session.
        same = [r for r in model_server.answered(message) if "ck-step 2" in json.dumps(r.body)]
        assert same, [r.step for r in model_server.answered(tag)]
        assert driver.pane_alive(task_id)


@pytest.mark.parametrize("agent", agents(*ALL))
def test_two_tasks_at_once_see_only_their_own_environment_and_one_is_stopped(
    agent: str, drivers: Drivers, model_server: ModelServer
) -> None:
    driver = drivers(agent)
    waits, works = token(), token()
    record = Shell('printf "%s %s\\n" "$COCKPIT_TASK_ID" "$COCKPIT_WORKTREE" > seen.txt')
    if agent == "aider":
        # aider runs no shell command of its own; the stopped one is left at its "Create new file?" question.
        model_server.script(waits, [Step("Writing.", (Write("waits.txt", "waits\n"),))])
        model_server.script(works, [Step("Writing.", (Write("works.txt", "works\n"),))])
    else:
        model_server.script(waits, [
            Step("Recording my environment.", (record,)),
            Step("Which colour should the button be?"),
        ])
        model_server.script(works, [
            Step("Recording my environment.", (record, Commit("record the environment"))),
            Step("Reporting done.", (Done(),)),
            Step("Finished."),
        ])
    waiting_id = driver.create(f"Paint the button {waits}")
    working_id = driver.create(f"Record the environment {works}")
    driver.cockpit("task", "approve", str(waiting_id), "--anyway")
    driver.cockpit("task", "approve", str(working_id), "--anyway")

    # One waits for a person: its turn ended with a question and no done report (aider: at its question).
    waiting = driver.drive_until_waiting(waiting_id, answer_dialogs=agent != "aider")
    assert waiting["state"] == "executing" and waiting["needs_input"] is True
    if agent != "aider":
        seen = driver.events(waiting_id)
        assert "agent.turn_ended" in [e["type"] for e in seen], "\n".join(json.dumps(e) for e in seen)
        asked = [e["data"] for e in seen if e["type"] == "agent.needs_input"]
        assert any("Which colour" in json.dumps(data) for data in asked), asked
    # The other, at the same time, runs to review.
    working = driver.drive(working_id, "awaiting_review")

    for task_id, task in ((waiting_id, waiting), (working_id, working)):
        worktree = Path(str(task["worktree"]))
        if agent != "aider":
            assert (worktree / "seen.txt").read_text() == f"{task_id} {worktree}\n"
    if agent == "aider":
        assert (Path(str(working["worktree"])) / "works.txt").is_file()
        assert not (Path(str(working["worktree"])) / "waits.txt").exists()

    # Stop ends the waiting agent and keeps its work.
    driver.cockpit("task", "stop", str(waiting_id), timeout=90)
    stopped = driver.drive(waiting_id, "interrupted", timeout=60)
    assert Path(str(stopped["worktree"])).is_dir()
    assert git(driver.repo, "rev-parse", "--verify", str(stopped["branch"]))
    assert not driver.pane_alive(waiting_id), driver.screen(waiting_id)
    # Nothing the agent started outlives it (its MCP server, shells, helpers).
    wait_until(lambda: not driver.task_processes(waiting_id), timeout=10, interval=0.2,
               message=f"the stopped agent's processes should be gone: {driver.task_processes(waiting_id)}")
    if agent in INTERACTIVE:
        assert driver.task_processes(working_id), "the other task's session stays open at review"
    assert "task.stopped" in [e["type"] for e in driver.events(waiting_id)]
    # Nothing of the stopped agent lives on (its pane's processes, a server of its own): each carries the
    # task's worktree in its environment. (The pane's exit notice to tmux lingers ~2 s: hence the wait.)
    # The other task's agent still runs.
    left: list[str] = []

    def gone() -> bool:
        left[:] = [command_line(p) for p in processes.with_env("COCKPIT_WORKTREE", str(stopped["worktree"]))]
        return not left

    try:
        wait_until(gone, timeout=10, interval=0.2)
    except AssertionError:
        raise AssertionError(f"the stopped agent's processes live on: {left}") from None
    if agent in INTERACTIVE:
        assert processes.with_env("COCKPIT_WORKTREE", str(working["worktree"]))
    assert driver.show(working_id)["state"] == "awaiting_review"


@pytest.mark.parametrize("agent", agents(*INTERACTIVE))
def test_a_failing_gate_is_fixed_in_the_same_session(
    agent: str, drivers: Drivers, model_server: ModelServer
) -> None:
    driver = drivers(agent)
    tag = token()
    model_server.script(tag, [
        # Done reported with the file left uncommitted: has-commits and clean-tree fail.
        Step("Writing the greeting.", (Write("hello.txt", "hello\n"), Done())),
        Step("Reported."),
        Step("Committing it.", (Commit("add hello"), Done())),
        Step("Fixed."),
    ])
    task_id = driver.create(f"Add a greeting file {tag}")
    driver.cockpit("task", "approve", str(task_id), "--anyway")
    task = driver.drive(task_id, "awaiting_review", timeout=180)

    events = driver.events(task_id)
    failed = [e for e in events if e["type"] == "gate.finished" and e["data"]["status"] == "failed"]
    assert {e["data"]["name"] for e in failed} >= {"has-commits"}, failed
    # The fix prompt went into the live session (no new pane) and reached the model in the first conversation.
    assert any(e["type"] == "task.executing" and e["data"].get("in_session") for e in events)
    assert len([e for e in events if e["type"] == "task.pane"]) == 1
    fixed = [r for r in model_server.answered(tag) if "gates failed" in json.dumps(r.body)]
    assert fixed and any("ck-step 1" in json.dumps(r.body) for r in fixed), [r.step for r in fixed]
    assert branch_subjects(driver, task) == ["add hello"]
    assert driver.pane_alive(task_id)


@pytest.mark.parametrize("agent", agents(*INTERACTIVE))
def test_cancel_of_an_agent_at_a_permission_dialog_ends_it_and_cancels(
    agent: str, drivers: Drivers, model_server: ModelServer
) -> None:
    settings: dict[str, str] = {}
    if agent == "codex" and not nested_sandbox():
        # Under cockpit's sandbox, where its own cannot nest, Codex runs with full access and asks nothing.
        settings["agent.sandbox"] = "none"
    driver = drivers(agent, **settings)
    tag = token()
    # The agent asks to run a long command; nobody answers: its exit text cannot reach it past the dialog.
    model_server.script(tag, [
        Step("Warming the cache.", (Shell("echo warm > cache.txt && sleep 600", ask=True),)),
        Step("Warmed."),
    ])
    task_id = driver.create(f"Wait for the cache to warm {tag}")
    driver.cockpit("task", "approve", str(task_id), "--anyway")

    def at_dialog() -> dict[str, Any] | None:
        task = driver.show(task_id)
        assert task["state"] == "executing", task
        return task if task["needs_input"] and driver.spec.dialog in driver.screen(task_id) else None

    wait_until(at_dialog, timeout=150, interval=0.3, message=f"{agent}'s dialog should be flagged")

    cancelled = driver.cockpit("task", "cancel", str(task_id), timeout=90)
    task = cancelled.get("task", cancelled)
    assert task["state"] == "cancelled", task
    assert not driver.pane_alive(task_id), driver.screen(task_id)
    seen = driver.events(task_id)
    stopped = [e["data"] for e in seen if e["type"] == "task.stopped"]
    assert stopped and stopped[-1].get("then") == "cancel", stopped
    assert "task.cancelled" in [e["type"] for e in seen]
    assert not [r for r in model_server.answered(tag) if r.step == 1], "the command was never allowed"
    # Nothing of the cancelled agent lives on: the agent, a server of its own, the pending command.
    assert task["worktree"], task
    left: list[str] = []

    def gone() -> bool:
        left[:] = [command_line(p) for p in processes.with_env("COCKPIT_WORKTREE", str(task["worktree"]))]
        return not left

    try:
        wait_until(gone, timeout=10, interval=0.2)
    except AssertionError:
        raise AssertionError(f"the cancelled agent's processes live on: {left}") from None
