"""What every screen of the cockpit reads: the repos' models and links, the app's settings, and the signal
that says which tasks changed. The app builds it once and hands it to each screen; screens never reach back
into the app: they post messages (`TaskAction`, `RepoAction`, `Say`) that the app carries out.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from textual.signal import Signal

from cockpit.tui.link import RepoLink
from cockpit.tui.repo_model import RepoModel
from cockpit.tui.target import AppConfig

LINK_STOP_S = 3.0


@dataclass
class Repos:
    models: dict[str, RepoModel]
    links: dict[str, RepoLink]
    config: AppConfig
    # Published with (repo, changed task ids) after the main screen took a change: other screens follow it.
    tasks_changed: Signal[tuple[str, set[int]]]

    def now(self) -> float:
        return self.config.now()

    def stop_links(self) -> None:
        for link in self.links.values():
            link.stop()

    async def links_stopped(self) -> None:
        """Wait (a while) until every link has closed its store and sockets, before the app cancels them."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINK_STOP_S):
                await asyncio.gather(*(link.stopped() for link in self.links.values()))
