"""Snapshot tests of the cockpit's main views (pytest-textual-snapshot), at 160x48 with the clock frozen.

The data is real (repos, daemons, the heuristic classifier) and deterministic: fixed task texts, ids from 1,
ages frozen to "now", no clock, no toasts, no blinking cursors, a fixed title, no temp paths on screen.
Update the SVGs with `pytest tests/tui/test_snapshots.py --snapshot-update`, and look at them before a commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from cockpit.core.client import DaemonClient
from cockpit.tui.app import AppConfig, CockpitApp, make_app
from cockpit.tui.repo_model import OFFLINE, UNINITIALISED
from cockpit.tui.screens.keys import KeysScreen
from cockpit.tui.screens.merges import MergesScreen
from cockpit_testkit.daemons import cli_json
from tests.tui.conftest import Workspace

SIZE = (160, 48)
SETTLE_S = 20.0
Build = Callable[..., Workspace]
SnapCompare = Callable[..., bool]


def create(repo: Path, text: str) -> dict[str, Any]:
    task: dict[str, Any] = cli_json("task", "create", text, "--force", repo=repo)
    return task


async def _delegate(socket: str) -> None:
    client = await DaemonClient.connect(socket)
    try:
        await client.call("create_task", {"text": "Redesign the export page for the new /export endpoint",
                                          "source_repo": "backend", "source_task_id": 1, "force": True})
    finally:
        await client.close()


@pytest.fixture
def demo(workspace: Build) -> Workspace:
    """backend (daemon): pending, ambiguous and rejected tasks; frontend (daemon): a task delegated by
    backend; docs: no daemon, one task written into its store."""
    ws = workspace("backend", "frontend", "docs", start=("backend", "frontend"))
    backend = ws.repos["backend"]
    create(backend, "Add an /export endpoint to the API")
    create(backend, "Improve things")
    typo = create(backend, "Fix the typo in the README heading")
    cli_json("task", "reject", str(typo["id"]), "--reason", "fixed upstream already", repo=backend)
    socket = cli_json("daemon", "status", repo=ws.repos["frontend"])["socket"]
    asyncio.run(_delegate(socket))
    create(ws.repos["docs"], "Document the /export endpoint in the API guide")
    return ws


def cockpit(ws: Workspace) -> CockpitApp:
    return make_app(ws.root, config=AppConfig.for_tests(now=time.time(), toasts=False, title="demo"))


def settled(app: CockpitApp) -> bool:
    """Every repo loaded and every tab title showing its counts."""
    if not all(m.loaded or m.mode in (UNINITIALISED, OFFLINE) for m in app.models.values()):
        return False
    return not app.main.settling


Step = Callable[[Pilot[int]], Awaitable[None]]


def before(then: Step | None = None) -> Step:
    async def run_before(pilot: Pilot[int]) -> None:
        app = pilot.app
        assert isinstance(app, CockpitApp)
        deadline = time.monotonic() + SETTLE_S
        while not settled(app):
            assert time.monotonic() < deadline, "the cockpit did not settle"
            await pilot.pause(0.05)
        if then is not None:
            await then(pilot)
        await pilot.pause(0.2)
        assert not app.problems.worker_errors, app.problems.worker_errors

    return run_before


def test_main_view(demo: Workspace, snap_compare: SnapCompare) -> None:
    """The backend tab: its tasks, the first one's plan with Approve / Reject, counts and markers."""
    assert snap_compare(cockpit(demo), terminal_size=SIZE, run_before=before())


def test_plan_review_of_an_ambiguous_task(demo: Workspace, snap_compare: SnapCompare) -> None:
    """Questions for the person and the Clarify button."""

    async def select(pilot: Pilot[int]) -> None:
        await pilot.press("down")

    assert snap_compare(cockpit(demo), terminal_size=SIZE, run_before=before(select))


def test_delegated_task_in_the_peer_tab(demo: Workspace, snap_compare: SnapCompare) -> None:
    """frontend: a task delegated by backend#1 (the ← mark), pending approval there."""
    assert snap_compare(cockpit(demo), press=["2"], terminal_size=SIZE, run_before=before())


def test_a_repo_whose_daemon_is_down(demo: Workspace, snap_compare: SnapCompare) -> None:
    """docs: followed through its store, with the banner saying so and how to start it."""
    assert snap_compare(cockpit(demo), press=["3"], terminal_size=SIZE, run_before=before())


def test_keys(demo: Workspace, snap_compare: SnapCompare) -> None:
    async def keys(pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")
        while not isinstance(pilot.app.screen, KeysScreen):
            await pilot.pause(0.05)

    assert snap_compare(cockpit(demo), terminal_size=SIZE, run_before=before(keys))


def test_new_task_form(demo: Workspace, snap_compare: SnapCompare) -> None:
    async def form(pilot: Pilot[int]) -> None:
        await pilot.press("n")
        await pilot.pause(0.2)
        await pilot.press(*"Add a dark mode toggle")

    assert snap_compare(cockpit(demo), terminal_size=SIZE, run_before=before(form))


def test_merges_view_with_no_merges(demo: Workspace, snap_compare: SnapCompare) -> None:
    async def merges(pilot: Pilot[int]) -> None:
        await pilot.press("M")
        while not isinstance(pilot.app.screen, MergesScreen):
            await pilot.pause(0.05)

    assert snap_compare(cockpit(demo), terminal_size=SIZE, run_before=before(merges))


def test_reject_asks_for_a_reason(demo: Workspace, snap_compare: SnapCompare) -> None:
    assert snap_compare(cockpit(demo), press=["r"], terminal_size=SIZE, run_before=before())


SIZES = [(80, 24), (120, 40), (200, 60)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_view_at_every_size(
    demo: Workspace, snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    """The key bar keeps ? and q, the top bar keeps "? keys", the plan and its buttons show."""
    assert snap_compare(cockpit(demo), terminal_size=size, run_before=before())


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_questions_at_every_size(
    demo: Workspace, snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    async def clarify(pilot: Pilot[int]) -> None:
        await pilot.press("down")
        await pilot.pause(0.2)
        await pilot.press("c")

    assert snap_compare(cockpit(demo), terminal_size=size, run_before=before(clarify))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_keys_at_every_size(
    demo: Workspace, snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    async def keys(pilot: Pilot[int]) -> None:
        await pilot.press("question_mark")
        while not isinstance(pilot.app.screen, KeysScreen):
            await pilot.pause(0.05)

    assert snap_compare(cockpit(demo), terminal_size=size, run_before=before(keys))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_new_task_form_at_every_size(
    demo: Workspace, snap_compare: SnapCompare, size: tuple[int, int]
) -> None:
    """The Create button is on screen at 80x24."""

    async def form(pilot: Pilot[int]) -> None:
        await pilot.press("n")
        await pilot.pause(0.2)
        await pilot.press(*"Add a dark mode toggle")
        screen = pilot.app.screen
        assert screen.query_one("#new-task-form").region.contains_region(screen.query_one("#ok").region)

    assert snap_compare(cockpit(demo), terminal_size=size, run_before=before(form))
