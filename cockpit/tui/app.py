"""The cockpit app and its factory, `make_app(path, config=...)`, shared by the CLI, tests and benchmarks.

The app owns one `RepoModel` and one `RepoLink` per repo (held together, with the settings, in `Repos`, which
every screen is given). Links run as async workers on the app's loop and post `TasksChanged` / `LinkChanged`
/ `AttentionNeeded`; screens post `TaskAction` / `RepoAction` / `Say`, which `TaskActions` carries out: ops
in workers that report back by `OpFinished`, shown on the flash line (a daemon's refusal is information, not
a crash or an error toast). Blocking work (a daemon's start, notifications) runs in thread workers.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.signal import Signal
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from cockpit.core.config import load_settings
from cockpit.core.errors import CockpitError
from cockpit.core.models import Task
from cockpit.core.remote.daemons import hosted_repo
from cockpit.core.states import CLOSED, State
from cockpit.tui.actions import TaskActions
from cockpit.tui.commands import CockpitCommands
from cockpit.tui.link import RepoLink
from cockpit.tui.messages import (
    AgentOutput,
    AttentionNeeded,
    Flash,
    LinkChanged,
    OpFinished,
    RepoAction,
    Say,
    TaskAction,
    TasksChanged,
)
from cockpit.tui.notify import NotifySettings, desktop_notify, summary, terminal_sequences
from cockpit.tui.repo_model import OFFLINE, UNINITIALISED, Attention, RepoModel, attention_kind
from cockpit.tui.reports import AFTER_OP, DONE_VERBS, transition_note
from cockpit.tui.repos import Repos
from cockpit.tui.screens.cockpit import CockpitScreen
from cockpit.tui.screens.diff import DiffScreen
from cockpit.tui.screens.forms import NewTask, NewTaskScreen
from cockpit.tui.screens.keys import KeysScreen, binding_rows
from cockpit.tui.screens.merges import MergesScreen
from cockpit.tui.target import AppConfig, Target, resolve_target, styles_dir

# The names other modules (the CLI, tests, benchmarks) import from here.
__all__ = ["AppConfig", "CockpitApp", "Flash", "Target", "make_app", "resolve_target", "styles_dir"]

TICK_S = 30.0
NOTIFY_BURST_S = 0.3  # notes arriving within this make one notification


@dataclass
class Problems:
    """What went wrong inside the app without stopping it: the test harness fails on any of these."""

    worker_errors: list[str] = field(default_factory=list)


class CockpitApp(App[int]):
    CSS_PATH: ClassVar[list[str | PurePath]] = [styles_dir() / "base.tcss", styles_dir() / "app.tcss"]
    TITLE = "cockpit"
    COMMANDS = App.COMMANDS | {CockpitCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("exclamation_mark", "inbox", "Inbox"),
        Binding("n", "new_task", "New task"),
        Binding("M", "merges", "Merges"),
        Binding("question_mark", "keys", "Keys"),
        Binding("q", "quit", "Quit"),
    ]

    flash: reactive[Flash] = reactive(Flash, always_update=True)

    def __init__(self, target: Target, config: AppConfig | None = None) -> None:
        super().__init__()
        self.target = target
        self.config = config or AppConfig()
        self.problems = Problems()
        ws = target.workspace
        self.models: dict[str, RepoModel] = {
            name: RepoModel(name, root, host=ws.host_of(name) if ws is not None else None)
            for name, root in target.repos.items()
        }
        self.links: dict[str, RepoLink] = {
            name: RepoLink(model, self.post_message, watch=self.config.watch, backoff=self.config.backoff,
                           hosted=hosted_repo(name, model.host, str(model.root),
                                              trust=ws is not None and name in ws.trusted)
                           if model.host else None)
            for name, model in self.models.items()
        }
        self.repos = Repos(self.models, self.links, self.config, Signal(self, "tasks-changed"))
        # Late-bound: the test harness wraps `say` after the app is made.
        self.actions = TaskActions(self, self.repos, lambda text, level: self.say(text, level))
        self.main = CockpitScreen(self.repos, self.config.title or target.title, self.BINDINGS)
        self._focus_when_seen: tuple[str, int] | None = None
        self._settled = False
        # Tasks the person acted on, with the state last reported: their next moves go on the flash line.
        self._watched: dict[tuple[str, int], State | None] = {}
        self._inbox_at: tuple[str, int] | None = None  # what `!` showed last
        self._inbox: tuple[tuple[int, ...], list[tuple[str, Task]]] | None = None
        self._notes: list[Attention] = []
        self._notes_timer: Timer | None = None
        self._notify_settings: dict[str, NotifySettings] = {}

    def get_default_screen(self) -> Screen[Any]:
        return self.main

    def on_mount(self) -> None:
        self.theme = "textual-dark"
        # The app mounts before its default screen is composed: touch the screen's widgets once it is.
        self.call_after_refresh(self._start)

    def _start(self) -> None:
        for name, link in self.links.items():
            if link.hosted is not None or link.paths.root.is_dir():
                self.run_worker(link.run(), name=f"link:{name}", group="links", exit_on_error=False)
            else:
                self.models[name].mode = "offline"
                self.models[name].detail = f"{link.paths.root} does not exist"
                self.main.link_changed(name)
        if self.config.clock:
            self.main.tick(self.now())
            self.set_interval(TICK_S, lambda: self.main.tick(self.now()), name="clock")

    def now(self) -> float:
        return self.config.now()

    def say(self, text: str, level: str = "info") -> None:
        """Show one line on the flash line (never a toast: refusals are part of the conversation)."""
        self.flash = Flash(text, level)

    def stop_links(self) -> None:
        self.repos.stop_links()

    async def links_stopped(self) -> None:
        await self.repos.links_stopped()

    # -- messages from the workers ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """The main screen can take updates (not once the app shuts down and prunes it)."""
        return self.main.is_attached

    def on_tasks_changed(self, message: TasksChanged) -> None:
        if not self.ready:
            return  # shutting down
        ids = self.links[message.repo].acknowledge()
        if not ids:
            return
        models = self.models.values()
        if not self._settled and all(m.loaded or m.mode in (UNINITIALISED, OFFLINE) for m in models):
            # Every repo's tasks are loaded and live as long as the app: take them out of the garbage
            # collector's full scans, which with thousands of tasks would pause a frame for 100 ms and more.
            self._settled = True
            gc.freeze()
        self.main.tasks_changed(message.repo, ids)
        if self._watched:
            self._report_transitions(message.repo, ids)
        self.repos.tasks_changed.publish((message.repo, ids))
        if (
            self._focus_when_seen is not None
            and self._focus_when_seen[0] == message.repo
            and self._focus_when_seen[1] in ids
        ):
            self.main.focus_task(*self._focus_when_seen)
            self._focus_when_seen = None

    def on_link_changed(self, message: LinkChanged) -> None:
        if self.ready:
            self.main.link_changed(message.repo)

    def on_attention_needed(self, message: AttentionNeeded) -> None:
        note = message.note
        if self.config.notify:
            self._notes.append(note)
            if self._notes_timer is None:
                self._notes_timer = self.set_timer(NOTIFY_BURST_S, self._flush_notes)
        if not self.config.toasts or note.kind == "waiting":
            return
        if note.kind == "needs_input":
            self.notify(
                f"{note.repo}#{note.task_id} {note.title}",
                title="an agent needs input",
                severity="warning",
                timeout=10,
            )
        else:
            self.notify(
                f"{note.repo}#{note.task_id} {note.title}",
                title="a peer's task waits for approval",
                timeout=10,
            )

    def _flush_notes(self) -> None:
        self._notes_timer = None
        notes, self._notes = self._notes, []
        if notes:
            self._notify(notes)

    @work(thread=True, exit_on_error=False, group="notify")
    def _notify(self, notes: list[Attention]) -> None:
        """One notification per burst, on the channels the repos leave on (thread: config, a process)."""
        chosen: dict[str, NotifySettings] = {}
        for repo in {n.repo for n in notes}:
            if repo not in self._notify_settings:
                try:
                    values = load_settings(self.links[repo].paths.config).values
                except CockpitError:
                    values = {}
                self._notify_settings[repo] = NotifySettings(
                    terminal=bool(values.get("notify.terminal", True)),
                    bell=bool(values.get("notify.bell", True)),
                    desktop=bool(values.get("notify.desktop", True)),
                )
            chosen[repo] = self._notify_settings[repo]
        for channel in ("terminal", "bell", "desktop"):
            wanted = [n for n in notes if getattr(chosen[n.repo], channel)]
            if not wanted:
                continue
            title, body = summary(wanted)
            if channel == "desktop":
                desktop_notify(title, body)
                continue
            only = NotifySettings(terminal=channel == "terminal", bell=channel == "bell", desktop=False)
            self.call_from_thread(self._write_terminal, terminal_sequences(title, body, only))

    def _write_terminal(self, data: str) -> None:
        if self.config.terminal_write is not None:
            self.config.terminal_write(data)
            return
        driver = self._driver
        if driver is not None and not self.is_headless:
            driver.write(data)
            driver.flush()

    def on_agent_output(self, message: AgentOutput) -> None:
        if self.ready:
            self.main.on_agent_output(message)

    def on_op_finished(self, message: OpFinished) -> None:
        if not self.ready:
            return
        where = f"{message.repo}#{message.task_id}" if message.task_id is not None else message.repo
        if message.error is not None:
            if message.code == "unknown_op":
                self.say(
                    f"{where}: this daemon does not offer {message.op} (restart it on a newer cockpit)",
                    "error",
                )
            else:
                self.say(f"{where}: {message.error}", "error")
            return
        result = message.result
        if message.op == "create_task" and "id" in result:
            where = f"{message.repo}#{result['id']}"
            self._focus_when_seen = (message.repo, int(result["id"]))
            if int(result["id"]) in self.models[message.repo].tasks:
                self.main.focus_task(message.repo, int(result["id"]))
                self._focus_when_seen = None
        verb = DONE_VERBS.get(message.op, message.op)
        self.say(f"{verb} {where}" + AFTER_OP.get(message.op, ""), "ok")
        task_id = message.task_id if message.task_id is not None else result.get("id")
        if isinstance(task_id, int):
            self._watch(message.repo, task_id, result.get("state"))

    # -- what happens next to a task the person acted on is reported when it happens ------------------------

    def _watch(self, repo: str, task_id: int, state: object = None) -> None:
        """Report the task's next moves; `state` is the one the op left it in (already said)."""
        if isinstance(state, str) and state in State.__members__.values():
            self._watched[(repo, task_id)] = State(state)
            return
        task = self.models[repo].tasks.get(task_id)
        self._watched[(repo, task_id)] = task.state if task is not None else None

    def _report_transitions(self, repo: str, ids: set[int]) -> None:
        for key in [k for k in self._watched if k[0] == repo and k[1] in ids]:
            task = self.models[repo].tasks.get(key[1])
            if task is None or task.state == self._watched[key]:
                continue
            before = self._watched[key]
            self._watched[key] = task.state
            if task.state in CLOSED:
                del self._watched[key]
            text, level = transition_note(repo, task, before)
            self.say(text, level)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is WorkerState.ERROR:
            error = worker.error
            text = f"{worker.name or worker.group}: {type(error).__name__}: {error}"
            self.problems.worker_errors.append(text)
            self.say(f"internal error in {text}", "error")

    # -- what the screens ask for ----------------------------------------------------------------------------

    def on_task_action(self, message: TaskAction) -> None:
        message.stop()
        self.actions.run(message)

    def on_repo_action(self, message: RepoAction) -> None:
        message.stop()
        if message.action == "start_daemon":
            self.actions.start_daemon(message.repo)

    def on_say(self, message: Say) -> None:
        message.stop()
        self.say(message.text, message.level)

    # -- app-wide keys ---------------------------------------------------------------------------------------

    def _back_to_main(self) -> None:
        while self.screen is not self.main and len(self.screen_stack) > 1:
            self.pop_screen()

    def inbox(self) -> list[tuple[str, Task]]:
        """Everything that needs a person, across repos, the longest-waiting first."""
        versions = tuple(m.waiting_version for m in self.models.values())
        if self._inbox is None or self._inbox[0] != versions:
            waiting = [
                (task.updated_at, i, task.id, name, task)
                for i, (name, model) in enumerate(self.models.items())
                for task in model.waiting()
            ]
            ordered = [(name, task) for _, _, _, name, task in sorted(waiting, key=lambda w: w[:3])]
            # Kept until a repo's waiting tasks change: `!` is pressed again and again on the same inbox.
            self._inbox = (versions, ordered)
        return self._inbox[1]

    def action_inbox(self) -> None:
        """Walk the inbox: the oldest item first, then on each press the next one (and round again)."""
        waiting = self.inbox()
        if not waiting:
            self.say("nothing needs you", "ok")
            return
        chosen = self.main.selected() if self.screen is self.main else None
        here = (chosen[0], chosen[1].id) if chosen is not None else None
        keys = [(repo, task.id) for repo, task in waiting]
        # Still on the item the last press showed: the next one; anywhere else: the oldest again.
        at = keys.index(here) + 1 if here is not None and here == self._inbox_at and here in keys else 0
        repo, task = waiting[at % len(waiting)]
        self._inbox_at = (repo, task.id)
        self._back_to_main()
        self.main.focus_task(repo, task.id)
        position = f"{at % len(waiting) + 1} of {len(waiting)}"
        more = " · ! for the next" if len(waiting) > 1 else ""
        self.say(f"{repo}#{task.id} {attention_kind(task)}: {task.title} ({position}{more})", "warning")

    def action_new_task(self) -> None:
        repos = list(self.models)
        if not repos:
            return
        repo = self.main.active_repo or repos[0]

        def done(new: NewTask | None) -> None:
            if new is not None:
                self.actions.create(new)

        self.push_screen(NewTaskScreen(repos, repo, blink=self.config.cursor_blink), done)

    def action_merges(self) -> None:
        if not isinstance(self.screen, MergesScreen):
            self._back_to_main()
            self.push_screen(MergesScreen(self.repos))

    def key_sections(self) -> list[tuple[str, list[tuple[str, str]]]]:
        table_keys = [
            ("↑ ↓ / j k", "move in the task list"),
            ("1-9", "switch to that repo's tab"),
            ("enter", "answer the agent (on an executing task or the agent pane)"),
        ]
        return [
            ("tasks", table_keys + binding_rows(CockpitScreen.BINDINGS)),
            ("everywhere", [*binding_rows(self.BINDINGS), ("ctrl+p", "command palette: every action")]),
            ("merges view", binding_rows(MergesScreen.BINDINGS)),
            ("diff view", binding_rows(DiffScreen.BINDINGS)),
        ]

    def action_keys(self) -> None:
        self.push_screen(KeysScreen(self.key_sections()))


def make_app(workspace_or_repo: Path, *, config: AppConfig | None = None) -> CockpitApp:
    """The cockpit for a workspace (its file or a directory in it) or a single repo."""
    return CockpitApp(resolve_target(workspace_or_repo), config)
