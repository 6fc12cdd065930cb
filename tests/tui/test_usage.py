"""Token usage in the cockpit: a task's runs in its detail, the active repo's total and the day's in the bar,
from the `agent.usage` events a real daemon records when a real agent process (a stand-in for aider, which
prints its usage) exits."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import Static

from cockpit.tui.usage import Usage, tokens_text
from cockpit.tui.widgets.bars import StatusBar
from cockpit_testkit.daemons import cli_json
from tests.tui.conftest import Cockpit, Workspace, run_cockpit

Build = Callable[..., Workspace]
WAIT_S = 120.0

# Prints what aider prints after each reply (the usage line its adapter reads from the pane log), then a
# second reply's line, commits its work and exits: the daemon records the run's usage when the agent exits.
FAKE_AIDER = """#!/bin/sh
echo "Tokens: 2.3k sent, 180 received. Cost: \\$0.01 message, \\$0.01 session."
echo "Tokens: 1.2k sent, 20 received. Cost: \\$0.03 message, \\$0.04 session."
echo export > export.txt && git add export.txt && git commit -qm "Add the export"
exit 0
"""


@pytest.fixture
def fake_aider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "aider"
    fake.write_text(FAKE_AIDER)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")  # the daemons and their panes


def bar_text(ck: Cockpit) -> str:
    return str(ck.app.main.query_one(StatusBar).render())


def detail_text(ck: Cockpit, widget_id: str) -> str:
    return str(ck.app.main.query_one(f"#{widget_id}", Static).render())


def test_tokens_read_short() -> None:
    assert [tokens_text(n) for n in (0, 950, 1000, 2480, 12_345, 123_456, 4_560_000)] == [
        "0", "950", "1k", "2.48k", "12.3k", "123k", "4.56M"]
    assert not Usage() and Usage.total([Usage(1, 2, None, 1), Usage(3, 4, 0.5, 1)]) == Usage(4, 6, 0.5, 2)


async def test_usage_per_task_per_repo_and_for_the_day_from_the_daemons_events(
    workspace: Build, fake_aider: None
) -> None:
    ws = workspace("backend", "frontend", settings={"agent.backend": "aider", "agent.sandbox": "none"})
    backend, frontend = ws.repos["backend"], ws.repos["frontend"]
    first = cli_json("task", "create", "Add an /export endpoint to the API", "--force", repo=backend)
    other = cli_json("task", "create", "Add a dark mode toggle", "--force", repo=frontend)
    async with run_cockpit(ws.root) as ck:
        assert "tokens" not in bar_text(ck), "no agent has run: no usage shown"
        await ck.select("backend", first["id"])
        cli_json("task", "approve", str(first["id"]), repo=backend)
        cli_json("task", "approve", str(other["id"]), repo=frontend)

        # The run's two replies: 3.5k in, 200 out, $0.04 (the per-message costs summed).
        await ck.wait(lambda: ck.state("backend", first["id"]) == "awaiting_review", timeout=WAIT_S,
                      message="backend's task did not pass its gates")
        assert len(ck.get("backend", first["id"]).usage_runs) == 1
        await ck.wait(lambda: "3.5k in · 200 out tokens · $0.04" in detail_text(ck, "agent-progress"),
                      message="the task's usage in its detail")
        assert "3.7k tokens $0.04" in detail_text(ck, "detail-head")
        await ck.wait(lambda: ck.state("frontend", other["id"]) == "awaiting_review", timeout=WAIT_S,
                      message="frontend's task did not pass its gates")
        # The active repo's total and the day's across both repos.
        await ck.wait(lambda: "backend 3.7k tokens $0.04 · today 7.4k tokens $0.08" in bar_text(ck),
                      message="the bar's usage")
        await ck.press("2")
        await ck.wait(lambda: "frontend 3.7k tokens $0.04 · today 7.4k tokens $0.08" in bar_text(ck),
                      message="the bar follows the active tab")
        # The repo totals are those the daemon reports to the CLI.
        listed = cli_json("task", "list", "--all", repo=frontend)
        assert listed["usage"]["input_tokens"] == ck.app.models["frontend"].usage().input_tokens == 3500


async def test_a_narrow_bar_keeps_the_keys_and_drops_the_repos_usage(
    workspace: Build, fake_aider: None
) -> None:
    ws = workspace("backend", settings={"agent.backend": "aider", "agent.sandbox": "none"})
    backend = ws.repos["backend"]
    task = cli_json("task", "create", "Add an /export endpoint to the API", "--force", repo=backend)
    cli_json("task", "approve", str(task["id"]), repo=backend)
    async with run_cockpit(ws.root, size=(80, 24)) as ck:
        await ck.wait(lambda: ck.get("backend", task["id"]).usage_runs, timeout=WAIT_S,
                      message="the run recorded no usage")
        await ck.wait(lambda: "today 3.7k tokens" in bar_text(ck), message="the day's usage")
        text = bar_text(ck)
        assert "backend 3.7k" not in text and text.rstrip().endswith("? keys")
