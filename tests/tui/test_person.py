"""The cockpit for a person: the inbox walks everything waiting, an ambiguous task is approved only anyway,
the palette finds tasks, a failed gate says why and its whole log is a key away."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.widgets import Static

from cockpit.core.paths import RepoPaths
from cockpit.tui.commands import CockpitCommands
from cockpit.tui.screens.forms import ConfirmScreen
from cockpit.tui.screens.log import LogScreen
from cockpit_testkit.daemons import cli, cli_json
from tests.tui.conftest import Cockpit, Workspace, run_cockpit

Build = Callable[..., Workspace]
WAIT_S = 120.0


def create(repo: Path, text: str) -> dict[str, Any]:
    task: dict[str, Any] = cli_json("task", "create", text, "--force", repo=repo)
    return task


async def wait_state(ck: Cockpit, repo: Path, task_id: int, *states: str) -> None:
    await ck.wait(lambda: ck.state(repo.name, task_id) in states, timeout=WAIT_S,
                  message=f"{repo.name}#{task_id} should become {states}")


async def test_bang_walks_everything_needing_a_person_oldest_first(workspace: Build) -> None:
    ws = workspace("backend", "frontend")
    oldest = create(ws.repos["frontend"], "Add a dark mode toggle to the settings page")
    newer = create(ws.repos["backend"], "Add an /export endpoint to the API")
    vague = create(ws.repos["backend"], "Improve things")
    async with run_cockpit(ws.root) as ck:
        assert ck.app.main.active_repo == "backend"
        await ck.press("exclamation_mark")
        await ck.wait(lambda: ck.selected() == ("frontend", oldest["id"]))
        assert "pending approval" in ck.app.flash.text and "1 of 3" in ck.app.flash.text
        await ck.press("exclamation_mark")
        await ck.wait(lambda: ck.selected() == ("backend", newer["id"]))
        assert "2 of 3" in ck.app.flash.text
        await ck.press("exclamation_mark")
        await ck.wait(lambda: ck.selected() == ("backend", vague["id"]))
        assert "needs answers" in ck.app.flash.text
        await ck.press("exclamation_mark")
        await ck.wait(lambda: ck.selected() == ("frontend", oldest["id"]), message="round again")


async def test_an_ambiguous_task_is_approved_only_anyway(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    vague = create(repo, "Improve things")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", vague["id"])
        await ck.press("a")
        confirm = await ck.screen(ConfirmScreen)
        assert "questions are not answered" in str(confirm.body)
        await ck.press("n")
        await ck.closed(ConfirmScreen)
        assert ck.state("backend", vague["id"]) == "pending_clarification"
        await ck.press("a")
        await ck.screen(ConfirmScreen)
        await ck.press("y")
        await wait_state(ck, repo, vague["id"], "approved")


async def test_palette_finds_tasks_across_repos_and_offers_only_what_applies(workspace: Build) -> None:
    ws = workspace("backend", "frontend", start=("frontend",))
    create(ws.repos["backend"], "Add an /export endpoint to the API")
    settings = create(ws.repos["frontend"], "Redesign the settings page")
    async with run_cockpit(ws.root) as ck:
        await ck.wait(lambda: ck.app.links["frontend"].connected)
        await ck.select("backend", 1)
        provider = CockpitCommands(ck.app.screen)
        names = [name for name, _, _ in provider._commands()]
        assert "Approve (a)" in names and "Merge (m)" not in names
        assert "Start the daemon of backend" in names
        assert "Start the daemon of frontend" not in names, "its daemon runs"
        hits = [hit async for hit in provider.search("settings page")]
        found = [str(hit.text) for hit in hits if "#" in str(hit.text)]
        assert found == [f"frontend#{settings['id']} Redesign the settings page"]
        by_id = [hit async for hit in provider.search("frontend#1")
                 if str(hit.text).startswith("frontend#1 ")]
        assert by_id
        by_id[0].command()
        await ck.wait(lambda: ck.selected() == ("frontend", settings["id"]))


FAILING_GATE = """
[[gates]]
name = "tests"
command = "python3 -c 'assert 1 == 2, \\"expected 2 reports, got 1\\"'"
"""


async def test_a_failed_gate_shows_why_and_l_pages_its_log(workspace: Build) -> None:
    ws = workspace("backend", start=False, settings={"task.fix_attempts": "0"})
    repo = ws.repos["backend"]
    with (repo / ".cockpit" / "config.toml").open("a") as fh:
        fh.write(FAILING_GATE)
    ws.start("backend")
    task = create(repo, "Write the plan down for the export endpoint")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.press("a")
        await wait_state(ck, repo, task["id"], "failed")
        await ck.wait(lambda: "gate tests failed" in ck.app.flash.text, message="the flash says which gate")
        gates = str(ck.app.main.query_one("#gates", Static).render())
        assert "AssertionError: expected 2 reports, got 1" in gates
        assert gates.index("tests") < gates.index("has-commits"), "the failed gate comes first"
        assert "exit None" not in gates
        await ck.press("l")
        log = await ck.screen(LogScreen)
        await ck.wait(lambda: any("AssertionError" in line for line in log.lines))
        await ck.press("escape")
        await ck.closed(LogScreen)
        await ck.press("exclamation_mark")
        await ck.wait(lambda: "failed" in ck.app.flash.text and "1 of 1" in ck.app.flash.text)
    shown = await asyncio.to_thread(cli, "task", "show", str(task["id"]), repo=repo)
    assert f"gates log: {RepoPaths(repo).gate_log(task['id'])}" in shown.stdout


async def test_review_like_a_pull_request_and_send_comments_back(workspace: Build) -> None:
    from textual.widgets import TextArea

    from cockpit.tui.screens.diff import DiffScreen
    from cockpit.tui.screens.forms import CommentScreen

    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = create(repo, "Write the plan down for the export endpoint")
    async with run_cockpit(ws.root) as ck:
        ck.expect_error("rework_task")  # a daemon from before rework_task says it does not offer it
        await ck.select("backend", task["id"])
        await ck.press("a")
        await wait_state(ck, repo, task["id"], "awaiting_review")
        await ck.press("d")
        screen = await ck.screen(DiffScreen)
        await ck.wait(lambda: screen.files)
        plan = str(screen.query_one("#diff-plan", Static).render())
        assert "approved by" in plan and "reason" in plan
        assert "has-commits" in str(screen.query_one("#diff-gates", Static).render())
        await ck.press("n")
        assert screen.hunk == 0 and screen.where().startswith(f"docs/tasks/task-{task['id']}.md (-")
        await ck.press("c")
        form = await ck.screen(CommentScreen)
        area = form.query_one("#comment", TextArea)
        assert area.text.startswith(f"docs/tasks/task-{task['id']}.md")
        area.insert(" say which endpoint")
        await ck.press("ctrl+s")
        await ck.closed(CommentScreen)

        def sent() -> bool:
            flash = ck.app.flash.text
            moved = ck.state("backend", task["id"]) != "awaiting_review"
            # The script agent reworks at once and may be back in review before this looks: the store says.
            recorded = '"task.rework_requested"' in cli("events", repo=repo).stdout
            return "rework_task" in flash or "back with your comments" in flash or moved or recorded

        await ck.wait(sent, message="the comment went to the daemon")


async def test_something_newly_waiting_notifies_the_terminal_the_desktop_and_the_tmux_segment(
    workspace: Build, short_tmp: Path, monkeypatch: Any
) -> None:
    from cockpit.tui.app import AppConfig

    bin_dir = short_tmp / "bin"
    bin_dir.mkdir()
    sent = short_tmp / "notify-send.args"
    fake = bin_dir / "notify-send"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" >> {sent}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    ws = workspace("backend", settings={"notify.bell": "false"})
    repo = ws.repos["backend"]
    written: list[str] = []
    async with run_cockpit(ws.root, AppConfig.for_tests(terminal_write=written.append)) as ck:
        task = await asyncio.to_thread(create, repo, "Add an /export endpoint to the API")
        await ck.wait(lambda: any("backend#1" in w for w in written), message="no terminal notification")
        note = "".join(written)
        title = "cockpit: backend#1 pending approval"
        assert f"\x1b]777;notify;{title};Add an /export endpoint to the API" in note
        assert "\x1b]9;" in note and "\a" not in note, "the bell is off in this repo's config"
        await ck.wait(lambda: sent.exists() and "backend#1" in sent.read_text(), message="no notify-send")
        assert ck.state("backend", task["id"]) == "pending"
    segment = await asyncio.to_thread(cli, "status", "--tmux", str(ws.root))
    assert segment.code == 0 and segment.stdout.strip() == "⚑ 1 backend#1 approve"
    status = await asyncio.to_thread(cli, "status", "--json", str(ws.root))
    assert [(t["repo"], t["id"], t["why"]) for t in status.json["waiting"]] == [
        ("backend", 1, "pending approval")]
