"""The cockpit test harness: a real workspace of real repos and daemons, and an app run headless that fails
the test on any exception, worker error, error toast or unexpected error on the flash line.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, overload

import pytest
from textual.pilot import Pilot
from textual.screen import Screen

from cockpit.core.models import Task
from cockpit.tui.app import AppConfig, CockpitApp, Flash, make_app
from cockpit.tui.repo_model import OFFLINE, UNINITIALISED
from cockpit_testkit.daemons import cli, kill_daemon
from cockpit_testkit.workspaces import build_workspace, script_agent

T = TypeVar("T")
S = TypeVar("S", bound=Screen[Any])
SIZE = (160, 48)
WAIT_S = 30.0


@dataclass
class Cockpit:
    """A running cockpit and what it said: drive it with `press`, wait on conditions with `wait`."""

    app: CockpitApp
    pilot: Pilot[int]
    toasts: list[tuple[str, str, str]] = field(default_factory=list)  # (severity, title, message)
    flashes: list[Flash] = field(default_factory=list)
    expected_errors: list[str] = field(default_factory=list)

    @overload
    async def wait(
        self, predicate: Callable[[], Awaitable[T]], timeout: float = ..., message: str = ...  # noqa: ASYNC109
    ) -> T: ...

    @overload
    async def wait(
        self, predicate: Callable[[], T], timeout: float = ..., message: str = ...  # noqa: ASYNC109
    ) -> T: ...

    async def wait(
        self,
        predicate: Callable[[], Any],
        timeout: float = WAIT_S,  # noqa: ASYNC109 - a deadline for the condition, as in cockpit_testkit/waiting.py
        message: str = "",
    ) -> Any:
        """Let the app run until `predicate()` is truthy; fail after `timeout` seconds.

        The predicate may be async: anything that runs the CLI must not block the app's loop, since in store
        mode the app itself may hold a write transaction the CLI then waits for.
        """
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            value = await result if isinstance(result, Awaitable) else result
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{message or 'condition not met'} (waited {timeout:g}s; last: {value!r}; "
                    f"flash: {self.app.flash.text!r})"
                )
            await self.pilot.pause(0.02)

    async def screen(self, kind: type[S]) -> S:
        """Wait until a screen of that kind is on top with its widgets mounted; return it."""

        def opened() -> S | None:
            screen = self.app.screen
            return screen if isinstance(screen, kind) and screen.is_mounted else None

        found = await self.wait(opened, message=f"{kind.__name__} did not open")
        assert found is not None
        await self.pilot.pause()
        return found

    async def closed(self, kind: type[Screen[Any]]) -> None:
        await self.wait(
            lambda: not isinstance(self.app.screen, kind), message=f"{kind.__name__} did not close"
        )

    async def press(self, *keys: str) -> None:
        await self.pilot.press(*keys)

    def task(self, repo: str, task_id: int) -> Task | None:
        return self.app.models[repo].tasks.get(task_id)

    def get(self, repo: str, task_id: int) -> Task:
        task = self.task(repo, task_id)
        assert task is not None, f"the cockpit has no {repo}#{task_id}"
        return task

    def state(self, repo: str, task_id: int) -> str | None:
        task = self.task(repo, task_id)
        return task.state.value if task is not None else None

    async def select(self, repo: str, task_id: int) -> None:
        """Put the cursor on a task (its row must exist)."""
        await self.wait(lambda: self.task(repo, task_id) is not None, message=f"no {repo}#{task_id}")
        self.app.main.focus_task(repo, task_id)
        await self.wait(lambda: self.selected() == (repo, task_id))

    def selected(self) -> tuple[str, int] | None:
        """(repo, task id) under the cursor of the active tab."""
        chosen = self.app.main.selected()
        return (chosen[0], chosen[1].id) if chosen is not None else None

    def expect_error(self, fragment: str) -> None:
        """An error on the flash line containing `fragment` is part of the test, not a failure."""
        self.expected_errors.append(fragment)

    def problems(self) -> list[str]:
        found = [f"worker error: {e}" for e in self.app.problems.worker_errors]
        found += [
            f"error toast: {title}: {msg}" for severity, title, msg in self.toasts if severity == "error"
        ]
        for flash in self.flashes:
            if flash.level == "error" and not any(f in flash.text for f in self.expected_errors):
                found.append(f"error on the flash line: {flash.text}")
        return found


@contextlib.asynccontextmanager
async def run_cockpit(
    path: Path, config: AppConfig | None = None, size: tuple[int, int] = SIZE, *, loaded: bool = True
) -> AsyncIterator[Cockpit]:
    """Run the cockpit headless on `path`; on exit fail on anything that went wrong inside it."""
    app = make_app(path, config=config or AppConfig.for_tests())
    harness: Cockpit | None = None
    notify = app.notify
    say = app.say

    def record_notify(
        message: str,
        *,
        title: str = "",
        severity: Any = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        if harness is not None:
            harness.toasts.append((str(severity), title, message))
        notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def record_say(text: str, level: str = "info") -> None:
        if harness is not None:
            harness.flashes.append(Flash(text, level))
        say(text, level)

    app.notify = record_notify  # type: ignore[method-assign]
    app.say = record_say  # type: ignore[method-assign]
    async with app.run_test(size=size, notifications=True) as pilot:
        harness = Cockpit(app, pilot)
        if loaded:
            await harness.wait(
                lambda: all(m.loaded or m.mode in (UNINITIALISED, OFFLINE) for m in app.models.values()),
                message="the repos did not load",
            )
        yield harness
        await pilot.pause()
        problems = harness.problems()
    assert not problems, "\n".join(problems)


@dataclass
class AttachRecorder:
    """Stands in for the terminal hand-over (`AppConfig.attach`): records each argv, exits 0."""

    argvs: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: list[str]) -> int:
        self.argvs.append(argv)
        return 0


@dataclass
class Workspace:
    root: Path
    repos: dict[str, Path]
    tmux_socket: str
    started: list[Path] = field(default_factory=list)

    def start(self, *names: str) -> None:
        for name in names:
            root = self.repos[name]
            result = cli("daemon", "start", "--json", repo=root)
            assert result.code == 0, result.stdout + result.stderr
            self.started.append(root)

    def stop(self, name: str) -> None:
        result = cli("daemon", "stop", repo=self.repos[name], timeout=30)
        assert result.code == 0, result.stdout + result.stderr


@pytest.fixture
def workspace(short_tmp: Path, tmux_socket: str) -> Iterator[Callable[..., Workspace]]:
    """`workspace("backend", "frontend")`: real repos (script agent, private tmux) in a workspace."""
    made: list[Workspace] = []

    def build(
        *names: str,
        start: bool | tuple[str, ...] = True,
        settings: dict[str, str] | None = None,
        files: dict[str, dict[str, str]] | None = None,
    ) -> Workspace:
        base = short_tmp / f"ws{len(made)}"
        base.mkdir()
        repos = build_workspace(
            base, list(names), settings={**script_agent(tmux_socket), **(settings or {})}, files=files
        )
        ws = Workspace(base, repos, tmux_socket)
        made.append(ws)
        ws.start(*(names if start is True else start or ()))
        return ws

    yield build
    for ws in made:
        for root in ws.repos.values():
            if cli("daemon", "stop", repo=root, timeout=30).code != 0:
                kill_daemon(root)
            kill_daemon(root)
