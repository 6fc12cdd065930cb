"""Pilot tests: every key and button of the cockpit against real daemons, asserting on the daemons' state."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console, RenderableType
from textual.widgets import Button, Input, OptionList, Static, TabbedContent, TextArea

from cockpit.cli import main
from cockpit.core.client import DaemonClient
from cockpit.core.paths import RepoPaths
from cockpit.core.tmux import TmuxPanes
from cockpit.tui.app import AppConfig, CockpitApp, resolve_target
from cockpit.tui.repo_model import LIVE, STORE
from cockpit.tui.screens.diff import DiffScreen
from cockpit.tui.screens.forms import AnswerScreen, ClarifyScreen, ConfirmScreen, NewTaskScreen, ReasonScreen
from cockpit.tui.screens.keys import KeysScreen
from cockpit.tui.screens.merges import MergesScreen
from cockpit.tui.widgets.task_detail import TaskDetail
from cockpit_testkit.daemons import cli, cli_json, kill_daemon
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import make_reviewable_task
from tests.tui.conftest import AttachRecorder, Cockpit, Workspace, run_cockpit

Build = Callable[..., Workspace]
ASK_SCRIPT = """\
[[step]]
ask = "deploy to staging? (y/n)"
[[step]]
write = { path = "deploy.txt", content = "staging\\n" }
[[step]]
commit = "deploy to staging"
"""


def create(repo: Path, text: str, *, script: str | None = None) -> dict[str, Any]:
    args = ["task", "create", text, "--force"]
    if script is not None:
        file = repo.parent / f"script-{abs(hash(text))}.toml"
        file.write_text(script)
        args += ["--script", str(file)]
    task: dict[str, Any] = cli_json(*args, repo=repo)
    return task


def show(repo: Path, task_id: int) -> dict[str, Any]:
    task: dict[str, Any] = cli_json("task", "show", str(task_id), repo=repo)
    return task


# Inside a running cockpit the CLI runs on a thread: blocking the app's loop while it holds a write
# transaction (store mode) would deadlock the two.
async def ashow(repo: Path, task_id: int) -> dict[str, Any]:
    return await asyncio.to_thread(show, repo, task_id)


async def acreate(repo: Path, text: str, *, script: str | None = None) -> dict[str, Any]:
    return await asyncio.to_thread(create, repo, text, script=script)


async def acli_json(*args: str, repo: Path) -> Any:
    return await asyncio.to_thread(cli_json, *args, repo=repo)


async def aevent_types(repo: Path, task_id: int) -> list[str]:
    return await asyncio.to_thread(event_types, repo, task_id)


def plain(renderable: RenderableType) -> str:
    console = Console(width=160, record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def confirm_text(cockpit: Cockpit) -> str:
    screen = cockpit.app.screen
    assert isinstance(screen, ConfirmScreen)
    return plain(screen.body)


def events(repo: Path) -> list[dict[str, Any]]:
    """Every event of the repo, as the daemon (or the store) has them (`cockpit events` prints JSON lines)."""
    result = cli("events", repo=repo)
    assert result.code == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def event_types(repo: Path, task_id: int) -> list[str]:
    return [e["type"] for e in events(repo) if e["task_id"] == task_id]


async def wait_state(
    cockpit: Cockpit,
    repo: Path,
    task_id: int,
    *states: str,
    timeout: float = 60,  # noqa: ASYNC109 - a deadline for the condition, passed to Cockpit.wait
) -> dict[str, Any]:
    """Wait until the daemon (not only the screen) has the task in one of `states`."""
    await cockpit.wait(
        lambda: cockpit.state(repo.name, task_id) in states,
        timeout=timeout,
        message=f"{repo.name}#{task_id} should become {states}",
    )
    found = await ashow(repo, task_id)
    assert found["state"] in states, (
        f"the daemon has {repo.name}#{task_id} {found['state']}, the screen {states}"
    )
    return found


# -- loading, tabs, tab titles ------------------------------------------------------------------------------


async def test_tabs_show_each_repo_with_counts_and_a_marker(workspace: Build) -> None:
    ws = workspace("backend", "frontend")
    create(ws.repos["backend"], "Add an /export endpoint to the API")
    create(ws.repos["backend"], "Fix the typo in the README heading")
    async with run_cockpit(ws.root) as ck:
        await ck.wait(lambda: len(ck.app.models["backend"].tasks) == 2)
        tabs = ck.app.main.query_one("#repos", TabbedContent)

        def label(pane: str) -> str:
            return str(tabs.get_tab(pane).label)

        # Titles trail a burst of changes by a moment.
        await ck.wait(lambda: " 2" in label("repo-0") and "⚑2" in label("repo-0"))
        assert "backend" in label("repo-0")
        assert "frontend" in label("repo-1") and "⚑" not in label("repo-1")
        table = ck.app.main.table("backend")
        assert table.row_count == 2 and table.shows(1) and table.shows(2)
        assert ck.app.models["backend"].mode == LIVE


async def test_number_keys_switch_tabs(workspace: Build) -> None:
    ws = workspace("backend", "frontend")
    async with run_cockpit(ws.root) as ck:
        await ck.press("2")
        assert ck.app.main.active_repo == "frontend"
        await ck.press("1")
        assert ck.app.main.active_repo == "backend"
        await ck.press("9")  # no ninth repo: nothing happens
        assert ck.app.main.active_repo == "backend"


async def test_cursor_keys_move_in_the_active_table(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    for text in ("Add an /export endpoint to the API", "Fix the typo in the README heading",
                 "Add a dark mode toggle to the settings page"):
        create(ws.repos["backend"], text)
    async with run_cockpit(ws.root) as ck:
        await ck.wait(lambda: ck.app.main.table("backend").row_count == 3)
        assert ck.selected() == ("backend", 1)
        moves = [("j", 2), ("down", 3), ("k", 2), ("up", 1), ("end", 3), ("home", 1), ("pagedown", 3)]
        for key, expected in moves:
            await ck.press(key)
            assert ck.selected() == ("backend", expected), key
        detail = ck.app.main.query_one(TaskDetail)
        assert "dark mode" in str(detail.query_one("#detail-head", Static).render())


async def test_rows_update_by_key_from_pushed_events(workspace: Build) -> None:
    ws = workspace("backend")
    async with run_cockpit(ws.root) as ck:
        table = ck.app.main.table("backend")
        first = await acreate(ws.repos["backend"], "Add an /export endpoint to the API")
        await ck.wait(lambda: table.shows(first["id"]))
        row_key = table.selected_id
        await acli_json("task", "reject", str(first["id"]), "--reason", "not now", repo=ws.repos["backend"])
        await ck.wait(lambda: ck.state("backend", first["id"]) == "rejected")
        # The same row (same key) was updated in place.
        assert table.row_count == 1
        assert table.selected_id == row_key
        assert "rejected" in str(table.get_cell(str(first["id"]), "state"))


# -- plan review: a, r, c and the buttons --------------------------------------------------------------------


async def test_a_approves_the_selected_task_in_the_daemon(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.press("a")
        await ck.wait(lambda: ck.get("backend", task["id"]).approved_by == "person")
        shown = await ashow(repo, task["id"])
        assert shown["approved_by"] == "person" and shown["state"] != "pending"
        assert "task.approved" in await aevent_types(repo, task["id"])


async def test_a_approves_in_the_store_when_the_daemon_is_down(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        assert ck.app.models["backend"].mode == STORE
        await ck.select("backend", task["id"])
        await ck.press("a")
        # No daemon runs, so nothing executes it: the store holds it in approved.
        await wait_state(ck, repo, task["id"], "approved")


async def test_approve_button(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.pilot.click("#approve")
        await wait_state(ck, repo, task["id"], "approved")


async def test_r_rejects_with_a_reason(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.press("r")
        await ck.screen(ReasonScreen)
        ck.app.screen.query_one("#reason", Input).value = "we have one already"
        await ck.press("enter")
        shown = await wait_state(ck, repo, task["id"], "rejected")
        assert shown["failure"] == "we have one already"


async def test_reject_button_and_escape_cancels(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.pilot.click("#reject")
        await ck.screen(ReasonScreen)
        await ck.press("escape")
        await ck.closed(ReasonScreen)
        assert (await ashow(repo, task["id"]))["state"] == "pending"
        await ck.pilot.click("#reject")
        await ck.screen(ReasonScreen)
        await ck.pilot.click("#ok")
        await wait_state(ck, repo, task["id"], "rejected")


async def test_c_clarifies_an_ambiguous_task(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = create(repo, "Improve things")
    assert task["state"] == "pending_clarification"
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        detail = ck.app.main.query_one(TaskDetail)
        assert not detail.query_one("#clarify", Button).disabled
        await ck.press("c")
        await ck.screen(ClarifyScreen)
        ck.app.screen.query_one("#answer-0", Input).value = "the README's install section"
        await ck.press("ctrl+s")
        await ck.wait(lambda: ck.get("backend", task["id"]).answers)
        assert (await ashow(repo, task["id"]))["answers"] == ["the README's install section"]


async def test_clarify_button_opens_the_form(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    task = create(repo, "Improve things")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.pilot.click("#clarify")
        await ck.screen(ClarifyScreen)
        questions = ck.app.screen.query(".answer")
        for i, field in enumerate(questions.results(Input)):
            field.value = f"answer {i}"
        await ck.pilot.click("#ok")
        await ck.wait(lambda: ck.get("backend", task["id"]).answers)
        assert len((await ashow(repo, task["id"]))["answers"]) == len(questions)


async def test_a_refusal_is_shown_inline_not_raised(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    cli_json("task", "reject", str(task["id"]), repo=repo)
    async with run_cockpit(ws.root) as ck:
        ck.expect_error("cannot approve")
        await ck.select("backend", task["id"])
        await ck.press("a")
        await ck.wait(lambda: "cannot approve" in ck.app.flash.text)
        assert ck.app.flash.level == "error"
        assert (await ashow(repo, task["id"]))["state"] == "rejected"


# -- new task, inbox, keys, palette --------------------------------------------------------------------------


async def test_n_creates_a_task_in_the_chosen_repo(workspace: Build) -> None:
    ws = workspace("backend", "frontend")
    async with run_cockpit(ws.root) as ck:
        await ck.press("2")
        await ck.press("n")
        await ck.screen(NewTaskScreen)
        ck.app.screen.query_one("#text", TextArea).text = "Add a dark mode toggle to the settings page"
        await ck.press("ctrl+s")
        await ck.wait(lambda: ck.app.models["frontend"].tasks)
        tasks = (await acli_json("task", "list", repo=ws.repos["frontend"]))["tasks"]
        assert tasks[0]["description"] == "Add a dark mode toggle to the settings page"
        await ck.wait(lambda: ck.selected() == ("frontend", tasks[0]["id"]))


async def test_n_with_a_script_file(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    script = ws.root / "steps.toml"
    script.write_text('[[step]]\nsay = "hello"\n')
    async with run_cockpit(ws.root) as ck:
        await ck.press("n")
        await ck.screen(NewTaskScreen)
        ck.app.screen.query_one("#text", TextArea).text = "Say hello from the script agent"
        ck.app.screen.query_one("#script", Input).value = str(script)
        await ck.pilot.click("#ok")
        await ck.wait(lambda: ck.app.models["backend"].tasks)
        assert (await ashow(ws.repos["backend"], 1))["script"] == '[[step]]\nsay = "hello"\n'


async def test_bang_jumps_to_the_oldest_item_needing_a_person(workspace: Build) -> None:
    ws = workspace("backend", "frontend")
    oldest = create(ws.repos["frontend"], "Add a dark mode toggle to the settings page")
    create(ws.repos["backend"], "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        assert ck.app.main.active_repo == "backend"
        await ck.press("exclamation_mark")
        await ck.wait(lambda: ck.app.main.active_repo == "frontend")
        await ck.wait(lambda: ck.selected() == ("frontend", oldest["id"]))
        assert "pending approval" in ck.app.flash.text


async def test_question_mark_lists_the_keys(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    async with run_cockpit(ws.root) as ck:
        await ck.press("question_mark")
        await ck.screen(KeysScreen)
        sections = dict(ck.app.key_sections())
        keys = {key for key, _ in sections["tasks"]}
        assert {"a", "r", "c", "t", "s", "d", "m", "u", "D"} <= keys
        await ck.press("escape")
        await ck.closed(KeysScreen)


async def test_command_palette_runs_an_action(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    task = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await ck.press("ctrl+p")
        await ck.pilot.pause()
        await ck.press(*"Approve (a)")
        await ck.wait(lambda: ck.app.screen.query("CommandList Option") or True)
        await ck.pilot.pause(0.3)
        await ck.press("enter")
        await wait_state(ck, repo, task["id"], "approved")


# -- daemon down: store watch, D starts it -------------------------------------------------------------------


async def test_a_down_daemon_is_followed_through_its_store_and_D_starts_it(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    async with run_cockpit(ws.root) as ck:
        model = ck.app.models["backend"]
        assert model.mode == STORE
        assert "⊘" in str(ck.app.main.query_one("#repos", TabbedContent).get_tab("repo-0").label)
        # A write by another process shows up without a daemon.
        task = await acreate(repo, "Add an /export endpoint to the API")
        await ck.wait(lambda: ck.app.main.table("backend").shows(task["id"]))
        await ck.press("D")
        await ck.wait(lambda: model.mode == LIVE, message="the daemon did not come up")
        ws.started.append(repo)
        # Live now: a new task arrives by push.
        second = await acreate(repo, "Fix the typo in the README heading")
        await ck.wait(lambda: ck.app.main.table("backend").shows(second["id"]))


async def test_reconnects_after_the_daemon_restarts_and_misses_nothing(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    async with run_cockpit(ws.root) as ck:
        model = ck.app.models["backend"]
        await asyncio.to_thread(kill_daemon, repo)
        await ck.wait(lambda: model.mode == STORE, message="did not fall back to the store")
        task = await acreate(repo, "Add an /export endpoint to the API")  # written straight into the store
        await ck.wait(lambda: ck.app.main.table("backend").shows(task["id"]))
        await asyncio.to_thread(ws.start, "backend")
        await ck.wait(lambda: model.mode == LIVE)
        await acli_json("task", "reject", str(task["id"]), repo=repo)
        await ck.wait(lambda: ck.state("backend", task["id"]) == "rejected")
        assert model.last_seq == (await asyncio.to_thread(events, repo))[-1]["seq"]


# -- toasts --------------------------------------------------------------------------------------------------


async def test_a_toast_when_a_peers_task_becomes_pending(workspace: Build) -> None:
    ws = workspace("backend", "frontend")
    async with run_cockpit(ws.root) as ck:
        info = await acli_json("daemon", "status", repo=ws.repos["frontend"])
        client = await DaemonClient.connect(info["socket"])
        try:
            await client.call(
                "create_task",
                {
                    "text": "Update the JS client for the /export endpoint",
                    "source_repo": "backend",
                    "source_task_id": 7,
                    "force": True,
                },
            )
        finally:
            await client.close()
        await ck.wait(lambda: any("peer" in title for _, title, _ in ck.toasts))
        await ck.press("2")
        table = ck.app.main.table("frontend")
        assert "← backend#7" in str(table.get_cell("1", "links"))


def test_resolve_target_finds_the_workspace_or_a_single_repo(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    assert resolve_target(ws.repos["backend"]).repos == ws.repos
    assert resolve_target(ws.root / "cockpit-workspace.toml").repos == ws.repos
    lone = ws.root.parent / "lone"
    subprocess.run(["git", "init", "-q", str(lone)], check=True)
    assert list(resolve_target(lone).repos) == ["lone"]


# -- execution: needs input, answer, attach, shell, diff, gates, merge, rollback -----------------------------


async def _run_to_review(ck: Cockpit, repo: Path, text: str, script: str | None = None) -> int:
    task = await acreate(repo, text, script=script)
    await ck.select(repo.name, task["id"])
    await ck.press("a")
    await wait_state(ck, repo, task["id"], "awaiting_review")
    return int(task["id"])


async def approve_anyway(ck: Cockpit, repo: str, task_id: int) -> None:
    """`a`, and `y` when the task is ambiguous (the cockpit then asks before approving it unanswered)."""
    await ck.wait(lambda: ck.state(repo, task_id) in ("pending", "pending_clarification"))
    ambiguous = ck.state(repo, task_id) == "pending_clarification"
    await ck.press("a")
    if ambiguous:
        await ck.screen(ConfirmScreen)
        await ck.press("y")


async def test_needs_input_toast_banner_and_enter_answers(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    task = create(repo, "Deploy the API to staging", script=ASK_SCRIPT)
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task["id"])
        await approve_anyway(ck, "backend", task["id"])
        await ck.wait(
            lambda: (t := ck.task("backend", task["id"])) is not None and t.needs_input,
            timeout=60,
            message="the agent never asked",
        )
        await ck.wait(lambda: any("needs input" in title for _, title, _ in ck.toasts))
        detail = ck.app.main.query_one(TaskDetail)
        assert detail.has_class("-needs-input")
        await ck.wait(
            lambda: any("deploy to staging" in line for line in ck.app.main.output),
            message="the agent's output did not show",
        )
        await ck.press("enter")
        await ck.screen(AnswerScreen)
        ck.app.screen.query_one("#answer", Input).value = "y"
        await ck.press("enter")
        await wait_state(ck, repo, task["id"], "awaiting_review")
        assert not (await ashow(repo, task["id"]))["needs_input"]


async def test_t_attaches_to_the_agents_pane(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    attach = AttachRecorder()
    ran = attach.argvs

    task = create(repo, "Deploy the API to staging", script=ASK_SCRIPT)
    async with run_cockpit(ws.root, AppConfig.for_tests(attach=attach)) as ck:
        await ck.select("backend", task["id"])
        await approve_anyway(ck, "backend", task["id"])
        await ck.wait(lambda: (t := ck.task("backend", task["id"])) is not None and t.needs_input, timeout=60)
        await ck.press("t")
        await ck.wait(lambda: ran)
        argv = ran[0]
        assert argv[:3] == ["tmux", "-L", ws.tmux_socket]
        assert f"=cockpit-backend:=task-{task['id']}" in argv
        # Once attached, tmux says how to come back.
        assert argv[-5:-1] == [";", "display-message", "-d", "6000"] and "C-b d" in argv[-1]
        assert "back from" in ck.app.flash.text
        # Let the agent finish so no pane is left asking.
        await ck.press("i")
        await ck.screen(AnswerScreen)
        ck.app.screen.query_one("#answer", Input).value = "y"
        await ck.press("enter")
        await wait_state(ck, repo, task["id"], "awaiting_review")


async def test_s_opens_a_shell_in_the_worktree(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    attach = AttachRecorder()
    ran = attach.argvs
    async with run_cockpit(ws.root, AppConfig.for_tests(attach=attach)) as ck:
        task_id = await _run_to_review(ck, repo, "Write the plan down for the export endpoint")
        await ck.press("s")
        await ck.wait(lambda: ran)
        # A session of its own, so that `exit` ends it and the terminal comes back to the cockpit.
        panes = TmuxPanes(ws.tmux_socket, f"cockpit-backend-shell-{task_id}")
        assert panes.list_windows() == [f"shell-{task_id}"]
        assert f"=cockpit-backend-shell-{task_id}:=shell-{task_id}" in ran[0]
        assert "exit (or C-b d) comes back" in ran[0][-1]
        assert f"shell-{task_id}" not in TmuxPanes(ws.tmux_socket, "cockpit-backend").list_windows()
        pane = panes.find_pane(f"shell-{task_id}")
        assert pane is not None
        panes.send_text(pane, "exit")
        await ck.wait(lambda: not panes.list_windows(), message="the shell's session ends with the shell")


async def test_d_shows_the_diff_file_by_file(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    async with run_cockpit(ws.root) as ck:
        task_id = await _run_to_review(ck, repo, "Write the plan down for the export endpoint")
        await ck.press("d")
        screen = await ck.screen(DiffScreen)
        await ck.wait(lambda: screen.files)
        assert any(f.path == f"docs/tasks/task-{task_id}.md" for f in screen.files)
        options = screen.query_one("#diff-files", OptionList)
        assert options.option_count == len(screen.files)
        await ck.press("escape")
        await ck.closed(DiffScreen)


async def test_g_runs_the_gates_again(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    async with run_cockpit(ws.root) as ck:
        task_id = await _run_to_review(ck, repo, "Write the plan down for the export endpoint")
        before = (await aevent_types(repo, task_id)).count("task.gating")
        await ck.press("g")

        async def gated_again() -> bool:
            return (await aevent_types(repo, task_id)).count("task.gating") > before

        await ck.wait(gated_again, timeout=60)
        await wait_state(ck, repo, task_id, "awaiting_review")


async def test_m_merges_after_the_preflight_and_u_rolls_back(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    before = git(repo, "rev-parse", "main")
    async with run_cockpit(ws.root) as ck:
        task_id = await _run_to_review(ck, repo, "Write the plan down for the export endpoint")
        await ck.press("m")
        await ck.screen(ConfirmScreen)
        await ck.press("y")
        shown = await wait_state(ck, repo, task_id, "done")
        merged = git(repo, "rev-parse", "main")
        assert merged == shown["merge"]["merge_sha"] != before
        # The merges view lists it; u there rolls it back after one confirmation.
        await ck.press("M")
        await ck.screen(MergesScreen)
        merges = ck.app.screen.query_one("#merges")
        await ck.wait(lambda: merges.row_count == 1)  # type: ignore[attr-defined]
        await ck.press("u")
        await ck.screen(ConfirmScreen)
        body = confirm_text(ck)
        assert "reset to" in body and before[:10] in body
        await ck.press("y")
        await wait_state(ck, repo, task_id, "rolled_back")
        assert git(repo, "rev-parse", "main") == before


async def test_merge_and_rollback_buttons_revert_once_main_moved(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    async with run_cockpit(ws.root) as ck:
        task_id = await _run_to_review(ck, repo, "Write the plan down for the export endpoint")
        await ck.pilot.click("#merge")
        await ck.screen(ConfirmScreen)
        await ck.pilot.click("#yes")
        await wait_state(ck, repo, task_id, "done")
        (repo / "later.txt").write_text("later\n")
        git(repo, "add", "later.txt")
        git(repo, "commit", "-q", "-m", "a later commit")
        later = git(repo, "rev-parse", "main")
        await ck.wait(lambda: ck.app.main.query_one("#rollback").display)
        await ck.pilot.click("#rollback")
        await ck.screen(ConfirmScreen)
        assert "revert commit" in confirm_text(ck)
        await ck.pilot.click("#yes")
        await wait_state(ck, repo, task_id, "rolled_back")
        assert git(repo, "rev-parse", "main^") == later
        assert not (repo / f"docs/tasks/task-{task_id}.md").exists()


async def test_merge_of_a_reviewable_task_written_to_the_store(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    repo = ws.repos["backend"]
    task = await asyncio.to_thread(
        make_reviewable_task, repo, {"api.py": "print('export')\n"}, title="add export"
    )
    ws.start("backend")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", task.id)
        await ck.press("m")
        await ck.screen(ConfirmScreen)
        await ck.press("y")
        await wait_state(ck, repo, task.id, "done")
        assert (repo / "api.py").read_text() == "print('export')\n" or git(repo, "show", "main:api.py")


async def test_x_cancels_and_R_retries(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    failing = create(repo, "Break the build on purpose", script='[[step]]\nfail = "boom"\n')
    pending = create(repo, "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        await ck.select("backend", pending["id"])
        await ck.press("x")
        await ck.screen(ConfirmScreen)
        await ck.press("y")
        await wait_state(ck, repo, pending["id"], "cancelled")
        await ck.select("backend", failing["id"])
        await ck.press("a")
        await wait_state(ck, repo, failing["id"], "failed")
        await ck.press("R")

        async def retried() -> bool:
            return (await aevent_types(repo, failing["id"])).count("task.approved") == 2

        await ck.wait(retried)
        await wait_state(ck, repo, failing["id"], "failed")


@pytest.mark.parametrize("key", ["t", "s", "d", "m", "u", "i", "g"])
async def test_task_keys_on_a_pending_task_explain_instead_of_failing(workspace: Build, key: str) -> None:
    ws = workspace("backend", start=False)
    create(ws.repos["backend"], "Add an /export endpoint to the API")
    async with run_cockpit(ws.root) as ck:
        ck.expect_error("")  # `g` is refused by the store backend: run_gates needs a daemon
        await ck.select("backend", 1)
        await ck.press(key)
        await ck.wait(lambda: ck.app.flash.text)
        assert (await ashow(ws.repos["backend"], 1))["state"] == "pending"


async def test_action_buttons_follow_the_task(workspace: Build) -> None:
    ws = workspace("backend")
    repo = ws.repos["backend"]
    async with run_cockpit(ws.root) as ck:
        task_id = await _run_to_review(ck, repo, "Write the plan down for the export endpoint")
        detail = ck.app.main.query_one(TaskDetail)
        shown = {b.id for b in detail.query(".task-action").results(Button) if b.display}
        assert shown == {"merge", "diff", "shell", "reject", "log"}
        await ck.pilot.click("#diff")
        await ck.screen(DiffScreen)
        await ck.press("escape")
        await ck.closed(DiffScreen)
        await ck.pilot.click("#reject")
        await ck.screen(ReasonScreen)
        await ck.press("enter")
        await wait_state(ck, repo, task_id, "rejected")
        # Nothing is left to do with a rejected task but read what ran.
        await ck.wait(lambda: {b.id for b in detail.query(".task-action").results(Button) if b.display}
                      == {"log"})


async def test_key_bar_clicks_and_q_quits(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    async with run_cockpit(ws.root) as ck:
        bar = ck.app.main.query_one("#keys")
        text = str(bar.render())
        await ck.pilot.click("#keys", offset=(text.index(" ? ") + 1, 0))
        await ck.screen(KeysScreen)
        await ck.press("escape")
        await ck.closed(KeysScreen)
        await ck.press("q")
        await ck.wait(lambda: ck.app.return_code is not None or not ck.app.is_running)


def test_cockpit_opens_from_the_command_line(workspace: Build, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = workspace("backend", "frontend", start=False)
    opened: list[list[str]] = []

    def run(self: CockpitApp, **kwargs: Any) -> int:
        opened.append(list(self.models))
        return 0

    monkeypatch.setattr(CockpitApp, "run", run)
    monkeypatch.chdir(ws.repos["frontend"])
    assert main([]) == 0  # the workspace around the current directory
    assert main(["--workspace", str(ws.root / "cockpit-workspace.toml")]) == 0
    assert main(["ui", str(ws.repos["backend"])]) == 0
    assert opened == [["backend", "frontend"]] * 3


def test_event_types_helper_is_sane(workspace: Build) -> None:
    ws = workspace("backend", start=False)
    create(ws.repos["backend"], "Add an /export endpoint to the API")
    assert event_types(ws.repos["backend"], 1)[:2] == ["task.created", "task.classified"]
    assert RepoPaths(ws.repos["backend"]).db.exists()
