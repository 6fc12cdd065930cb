"""What the cockpit opens (a workspace's repos, or one repo) and what its callers change about it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core.errors import NotARepoError, UsageError
from cockpit.core.paths import find_repo_root
from cockpit.core.workspace import WORKSPACE_FILE, Workspace


def styles_dir() -> Path:
    """`cockpit/styles` in an installed wheel, else the source tree's `styles/`."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "styles", package.parent / "styles"):
        if (candidate / "app.tcss").is_file():
            return candidate
    return package.parent / "styles"


@dataclass(frozen=True)
class AppConfig:
    """What the CLI, the tests and the benchmarks change about the app."""

    now: Callable[[], float] = time.time  # ages are computed from this; tests freeze it
    clock: bool = True  # the clock in the top bar and the timer that refreshes ages
    watch: bool = True  # watch the stores of down daemons and the followed agent's log
    toasts: bool = True
    cursor_blink: bool = True
    backoff: tuple[float, float] = (0.2, 5.0)  # reconnect delays: first, most
    # Runs an attach argv (tmux); the default suspends the app and runs it in this terminal.
    attach: Callable[[list[str]], int] | None = None
    title: str | None = None  # the top bar's title; default: the workspace's directory name
    notify: bool = True  # terminal / bell / desktop notifications when something newly needs a person
    # Where terminal notifications are written; default: the app's terminal. Tests capture them here.
    terminal_write: Callable[[str], None] | None = None

    @classmethod
    def for_tests(cls, now: float | None = None, **changes: Any) -> AppConfig:
        frozen = time.time() if now is None else now
        return cls(**{"now": lambda: frozen, "clock": False, "cursor_blink": False, **changes})


@dataclass(frozen=True)
class Target:
    """What the cockpit opens: a workspace's repos, or a single repo."""

    title: str
    repos: dict[str, Path]
    workspace: Workspace | None = None


def resolve_target(path: Path) -> Target:
    """The workspace file at or around `path`, else the git repo around it."""
    path = path.expanduser().resolve()
    if path.is_file() and path.name == WORKSPACE_FILE:
        ws: Workspace | None = Workspace.load(path)
    elif path.is_dir() or path.exists():
        ws = Workspace.find(path if path.is_dir() else path.parent)
    else:
        raise UsageError(f"{path} does not exist; pass a workspace directory or a git repository")
    if ws is not None and ws.repos:
        return Target(ws.root.name, dict(ws.repos), ws)
    try:
        root = find_repo_root(path if path.is_dir() else path.parent)
    except NotARepoError:
        raise UsageError(
            f"{path} is neither in a workspace (no {WORKSPACE_FILE} above it) nor in a git "
            f"repository; create one with `cockpit workspace init` or pass --workspace PATH"
        ) from None
    return Target(root.name, {root.name: root})
