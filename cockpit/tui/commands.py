"""The command palette (ctrl+p): the actions that apply now, named as the keys help names it, and every task
of every repo, found by `repo#id` or by words of its title."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from cockpit.tui.app import CockpitApp

Command = tuple[str, str, Callable[[], Any]]
TASK_HITS = 30


class CockpitCommands(Provider):
    def _commands(self) -> list[Command]:
        from cockpit.tui.app import CockpitApp
        from cockpit.tui.screens.cockpit import CockpitScreen
        from cockpit.tui.screens.keys import key_label

        app = self.app
        if not isinstance(app, CockpitApp):
            return []
        from cockpit.tui.widgets.task_detail import offered

        cockpit: CockpitApp = app
        commands: list[Command] = []
        chosen = cockpit.main.selected()
        applicable = set(offered(chosen[1])) if chosen is not None else set()
        if "stop" in applicable:
            applicable.add("cancel_task")
        for binding in CockpitScreen.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if binding.action == "start_daemon" or binding.action not in applicable:
                continue
            if chosen is not None:
                commands.append(
                    (
                        f"{binding.description} ({key_label(binding.key)})",
                        f"on {chosen[0]}#{chosen[1].id}",
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
            if not cockpit.links[repo].connected:
                commands.append(
                    (
                        f"Start the daemon of {repo}",
                        "then the tab follows it live",
                        partial(cockpit.start_daemon, repo),
                    )
                )
        return commands

    def _tasks(self, query: str) -> list[tuple[float, str, str, Callable[[], Any]]]:
        """Tasks whose `repo#id` or title hold every word of the query: (score, name, help, command)."""
        from cockpit.tui.app import CockpitApp

        app = self.app
        if not isinstance(app, CockpitApp):
            return []
        words = query.lower().replace("#", " # ").split()
        if not words:
            return []
        ids = {int(w) for w in words if w.isdigit()}
        text_words = [w for w in words if not w.isdigit() and w != "#"]
        found: list[tuple[float, str, str, Callable[[], Any]]] = []
        for repo, model in app.models.items():
            repo_hit = [w for w in text_words if w in repo.lower()]
            for task in model.tasks.values():
                if ids and task.id not in ids:
                    continue
                title = task.title.lower()
                if not all(w in title or w in repo_hit for w in text_words):
                    continue
                # An exact id ranks first, then titles matched by more of the words.
                score = (2.0 if task.id in ids else 1.0) + sum(w in title for w in text_words) / 10
                found.append((score, f"{repo}#{task.id} {task.title}", f"{task.state.value} · go to it",
                              partial(app.main.focus_task, repo, task.id)))
                if len(found) >= TASK_HITS * 4:
                    break
        found.sort(key=lambda hit: -hit[0])
        return found[:TASK_HITS]

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
        for score, name, help_text, command in self._tasks(query):
            yield Hit(min(1.0, score / 2.2), name, command, help=help_text)
