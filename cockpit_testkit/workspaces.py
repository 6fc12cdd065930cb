"""A real workspace of real git repos for delegation tests: the workspace file, `.cockpit/` in each repo."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

from cockpit.core import config as cfg
from cockpit.core.store import Store
from cockpit.core.workspace import Workspace
from cockpit_testkit.gitrepos import make_repo
from cockpit_testkit.tasks import init_cockpit

Settings = dict[str, str]


def configure(root: Path, settings: Settings) -> None:
    """`cockpit config set KEY VALUE` for each pair, in-process."""
    for key, value in settings.items():
        cfg.set_value(root / ".cockpit" / "config.toml", key, value)


def create_store(root: Path) -> None:
    """The empty `index.db`, as `cockpit init` leaves it (run on a thread: callers may be inside a loop)."""

    async def create() -> None:
        await (await Store.open(root / ".cockpit" / "index.db")).close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, create()).result()


def build_workspace(base: Path, names: list[str], *, settings: Settings | None = None,
                    per_repo: dict[str, Settings] | None = None,
                    files: dict[str, dict[str, str]] | None = None) -> dict[str, Path]:
    """Repos `names` under `base`, each a git repo with `.cockpit/`, all in `base/cockpit-workspace.toml`."""
    workspace, _ = Workspace.init(base)
    repos: dict[str, Path] = {}
    for name in names:
        root = make_repo(base / name, (files or {}).get(name))
        init_cockpit(root)
        create_store(root)
        configure(root, {**(settings or {}), **(per_repo or {}).get(name, {})})
        workspace = workspace.add(name, root)
        repos[name] = root.resolve()
    return repos


def script_agent(tmux_socket: str) -> Settings:
    """Settings for repos whose tasks really execute: the script agent on the test's private tmux server."""
    return {"agent.backend": "script", "tmux.socket_name": tmux_socket}
