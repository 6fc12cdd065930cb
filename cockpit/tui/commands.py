"""The command palette (ctrl+p): every action of the cockpit, named as the keys help names it."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from cockpit.tui.app import CockpitApp

Command = tuple[str, str, Callable[[], Any]]


class CockpitCommands(Provider):
    def _commands(self) -> list[Command]:
        from cockpit.tui.app import CockpitApp
        from cockpit.tui.screens.cockpit import CockpitScreen
        from cockpit.tui.screens.keys import key_label

        app = self.app
        if not isinstance(app, CockpitApp):
            return []
        cockpit: CockpitApp = app
        commands: list[Command] = []
        for binding in CockpitScreen.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                commands.append(
                    (
                        f"{binding.description} ({key_label(binding.key)})",
                        "on the selected task",
                        partial(cockpit.main.run_action, binding.action),
                    )
                )
        for binding in cockpit.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                commands.append(
                    (
                        f"{binding.description} ({key_label(binding.key)})",
                        "",
                        partial(cockpit.run_action, binding.action),
                    )
                )
        for i, repo in enumerate(cockpit.models):
            commands.append(
                (
                    f"Show {repo}" + (f" ({i + 1})" if i < 9 else ""),
                    "switch to the repo's tab",
                    partial(self._show_repo, cockpit, repo),
                )
            )
            commands.append(
                (
                    f"Start the daemon of {repo}",
                    "then the tab follows it live",
                    partial(cockpit.start_daemon, repo),
                )
            )
        return commands

    @staticmethod
    def _show_repo(app: CockpitApp, repo: str) -> None:
        app.main.show_repo(repo)

    async def discover(self) -> Hits:
        for name, help_text, command in self._commands():
            yield DiscoveryHit(name, command, help=help_text or None)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, command in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, help=help_text or None)
