"""The command palette (ctrl+p): the actions that apply now, named as the keys help names it, and every task
of every repo, found by `repo#id` or by words of its title."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider

from cockpit.tui.messages import RepoAction
from cockpit.tui.screens.cockpit import CockpitScreen, task_action
from cockpit.tui.screens.keys import key_label
from cockpit.tui.widgets.task_detail import offered

Command = tuple[str, str, Callable[[], Any]]
TASK_HITS = 30


class CockpitCommands(Provider):
    def _main(self) -> CockpitScreen | None:
        """The main screen (at the bottom of the stack, whichever screen the palette opened on)."""
        return next((s for s in self.app.screen_stack if isinstance(s, CockpitScreen)), None)

    def _commands(self) -> list[Command]:
        main = self._main()
        if main is None:
            return []
        repos = main.cockpit
        commands: list[Command] = []
        chosen = main.selected()
        applicable = set(offered(chosen[1])) if chosen is not None else set()
        if "stop" in applicable:
            applicable.add("cancel_task")
        for binding in CockpitScreen.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if task_action(binding.action) not in applicable:
                continue
            if chosen is not None:
                commands.append(
                    (
                        f"{binding.description} ({key_label(binding.key)})",
                        f"on {chosen[0]}#{chosen[1].id}",
                        partial(main.run_action, binding.action),
                    )
                )
        for binding in self.app.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                commands.append(
                    (
                        f"{binding.description} ({key_label(binding.key)})",
                        "",
                        partial(self.app.run_action, binding.action),
                    )
                )
        for i, repo in enumerate(repos.models):
            commands.append(
                (
                    f"Show {repo}" + (f" ({i + 1})" if i < 9 else ""),
                    "switch to the repo's tab",
                    partial(main.show_repo, repo),
                )
            )
            if not repos.links[repo].connected:
                commands.append(
                    (
                        f"Start the daemon of {repo}",
                        "then the tab follows it live",
                        partial(main.post_message, RepoAction("start_daemon", repo)),
                    )
                )
        return commands

    def _tasks(self, query: str) -> list[tuple[float, str, str, Callable[[], Any]]]:
        """Tasks whose `repo#id` or title hold every word of the query: (score, name, help, command)."""
        main = self._main()
        if main is None:
            return []
        words = query.lower().replace("#", " # ").split()
        if not words:
            return []
        ids = {int(w) for w in words if w.isdigit()}
        text_words = [w for w in words if not w.isdigit() and w != "#"]
        found: list[tuple[float, str, str, Callable[[], Any]]] = []
        for repo, model in main.cockpit.models.items():
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
                              partial(main.focus_task, repo, task.id)))
                if len(found) >= TASK_HITS * 4:
                    break
        found.sort(key=lambda hit: -hit[0])
        return found[:TASK_HITS]

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
