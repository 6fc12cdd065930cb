"""Drive the cockpit headless over a workspace and write SVG screenshots of its main views.

    scripts/screenshots [WORKSPACE] [--out DIR] [--size 160x48]

With WORKSPACE (a directory holding cockpit-workspace.toml, or a repo), the cockpit opens on it as it is and
nothing is changed there. Without, the built-in demo workspace (`cockpit.demo`: real repos, daemons and
a private tmux server) is built in a temporary directory, seeded, photographed and stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.screen import Screen  # noqa: E402

from cockpit.core.states import State  # noqa: E402
from cockpit.demo import seeding, workspace  # noqa: E402
from cockpit.tui.app import AppConfig, CockpitApp, make_app  # noqa: E402
from cockpit.tui.repo_model import OFFLINE, UNINITIALISED  # noqa: E402
from cockpit.tui.screens.diff import DiffScreen  # noqa: E402

WAIT_S = 30.0


async def until(pilot: Pilot[int], check: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: gave up waiting for {what}")
        await pilot.pause(0.05)


def first(app: CockpitApp, *states: State, needs_input: bool = False) -> tuple[str, int] | None:
    """The first task (in tab order) in one of `states` (or waiting for input)."""
    for repo, model in app.models.items():
        for task in sorted(model.tasks.values(), key=lambda t: t.id):
            if (needs_input and task.needs_input) or (not needs_input and task.state in states):
                return repo, task.id
    return None


async def shoot(app: CockpitApp, pilot: Pilot[int], out: Path, name: str) -> None:
    await pilot.pause(0.2)
    await pilot.wait_for_scheduled_animations()
    path = out / f"{name}.svg"
    path.write_text(app.export_screenshot(title=f"cockpit · {name}"))
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")


async def photograph(where: Path, out: Path, size: tuple[int, int]) -> None:
    app = make_app(where, config=AppConfig(clock=False, toasts=False, cursor_blink=False, title="workspace"))
    async with app.run_test(size=size) as pilot:
        await until(pilot, lambda: all(m.loaded or m.mode in (UNINITIALISED, OFFLINE)
                                       for m in app.models.values()), "the repos to load")

        async def on(
            task: tuple[str, int] | None, name: str, then: Callable[[], Awaitable[None]] | None = None
        ) -> None:
            if task is None:
                print(f"skipped {name}: no task for it in this workspace")
                return
            app.main.focus_task(*task)
            await pilot.pause(0.3)  # the agent output is fetched once the selection rests
            if then is None:
                await shoot(app, pilot, out, name)
            else:
                await then()

        async def opened(kind: type[Screen[Any]]) -> None:
            await until(pilot, lambda: isinstance(app.screen, kind) and app.screen.is_mounted, kind.__name__)

        await on(first(app, needs_input=True) or first(app, State.EXECUTING), "main")
        await on(first(app, State.PENDING, State.PENDING_CLARIFICATION), "plan-review")
        review = first(app, State.AWAITING_REVIEW)
        await on(review, "gates")

        async def diff() -> None:
            await pilot.press("d")
            await opened(DiffScreen)
            screen = app.screen
            assert isinstance(screen, DiffScreen)
            await until(pilot, lambda: screen.files, "the diff")
            await shoot(app, pilot, out, "diff")
            await pilot.press("escape")

        await on(review, "diff", diff)

        async def preflight() -> None:
            await pilot.press("m")
            await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen", "the preflight")
            await shoot(app, pilot, out, "merge-preflight")
            await pilot.press("n")

        await on(review, "merge-preflight", preflight)
        await pilot.press("M")
        await shoot(app, pilot, out, "merges")
        await pilot.press("escape")
        await pilot.press("question_mark")
        await shoot(app, pilot, out, "keys")
        await pilot.press("escape")
        await pilot.press("n")
        await pilot.press(*"Add a dark mode toggle")
        await shoot(app, pilot, out, "new-task")
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"merge")
        await pilot.pause(0.3)
        await shoot(app, pilot, out, "palette")
        await pilot.press("escape")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("workspace", nargs="?", type=Path,
                        help="a workspace or repo (default: build the demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots", help="where the SVGs go")
    parser.add_argument("--size", default="160x48", help="terminal size, COLUMNSxROWS")
    args = parser.parse_args(argv)
    columns, rows = (int(x) for x in args.size.lower().split("x"))
    args.out.mkdir(parents=True, exist_ok=True)
    if args.workspace is not None:
        asyncio.run(photograph(args.workspace, args.out, (columns, rows)))
        return 0
    with tempfile.TemporaryDirectory(prefix="cockpit-shots-") as tmp:
        ws = workspace.build(Path(tmp) / "demo", tmux_socket=workspace.new_tmux_socket(), progress=print)
        try:
            workspace.start(ws, progress=print)
            asyncio.run(seeding.seed(ws, progress=print))
            asyncio.run(photograph(ws.root, args.out, (columns, rows)))
        finally:
            for problem in workspace.stop(ws):
                print(f"while stopping the demo: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
