"""The main view: one tab per repo with its live task list, the selected task's detail below.

The screen only renders: tasks come from the repos' models (folded by the links), and every action is a
`TaskAction` message the app carries out (it sends the op in a worker and reports the outcome on the flash
line). The task keys are bound to `task('<action>')`, one action for all of them.
"""

from __future__ import annotations

import asyncio
import gc
import re
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Static, TabbedContent, TabPane

from cockpit.core import filewatch
from cockpit.core.models import Task
from cockpit.core.states import State
from cockpit.tui.messages import AgentOutput, RepoAction, Say, TaskAction
from cockpit.tui.repo_model import CONNECTING, LIVE, OFFLINE, STORE, UNINITIALISED, RepoModel
from cockpit.tui.repos import Repos
from cockpit.tui.screens.keys import bar_keys
from cockpit.tui.usage import Usage, day_start
from cockpit.tui.widgets.bars import FlashLine, KeyBar, StatusBar
from cockpit.tui.widgets.task_detail import AgentOutputView, DetailContext, TaskDetail
from cockpit.tui.widgets.task_table import TaskTable

# States whose agent output is worth following.
FOLLOWED = frozenset({State.EXECUTING, State.GATING, State.AWAITING_REVIEW, State.FAILED, State.INTERRUPTED})
# A selection must rest this long before its agent output is fetched and followed.
FOLLOW_DELAY_S = 0.12
# Tab titles and the bar's counts trail task changes by this much (see `CockpitScreen._later`).
SUMMARY_DELAY_S = 0.15
BANNERS = {
    CONNECTING: "connecting to the daemon…",
    STORE: "⊘ daemon down · following its store: changes still show up · D starts the daemon",
    UNINITIALISED: "⊘ no cockpit store yet · D starts the daemon (which creates it)",
    OFFLINE: "⊘ daemon unreachable",
}


TASK_BINDING = re.compile(r"^task\('(\w+)'\)$")


def task_action(action: str) -> str | None:
    """'approve' for a binding's `task('approve')`; None for any other action."""
    found = TASK_BINDING.match(action)
    return found.group(1) if found else None


def pane_id(index: int) -> str:
    return f"repo-{index}"


class RepoPane(Vertical):
    def __init__(self, repo: str, index: int) -> None:
        super().__init__(id=f"pane-{index}", classes="repo-pane")
        self.repo = repo
        self.index = index

    def compose(self) -> ComposeResult:
        yield Static(classes="link-banner")
        yield TaskTable(self.repo, id=f"table-{self.index}")

    @property
    def table(self) -> TaskTable:
        return self.query_one(TaskTable)

    def show_link(self, mode: str, detail: str, host: str | None = None) -> None:
        self.set_class(mode != LIVE, "-not-live")
        # A repo on another host keeps a header line saying where it is, live or not.
        self.set_class(host is not None, "-hosted")
        text = BANNERS.get(mode, "")
        if mode == OFFLINE and detail:
            text = f"⊘ {detail}"
        elif host is not None and mode == LIVE:
            text = f"⌁ {self.repo} on {host} · over ssh" + (f" · {detail}" if detail else "")
        self.query_one(".link-banner", Static).update(Text(text), layout=False)


class CockpitScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "task('approve')", "Approve"),
        Binding("r", "task('reject')", "Reject"),
        Binding("c", "task('clarify')", "Clarify"),
        Binding("i", "task('answer')", "Answer the agent (enter on the agent pane)", show=False),
        Binding("t", "task('attach')", "Attach"),
        Binding("s", "task('shell')", "Shell"),
        Binding("d", "task('diff')", "Diff"),
        Binding("m", "task('merge')", "Merge"),
        Binding("u", "task('rollback')", "Roll back the task's merge", show=False),
        Binding("g", "task('run_gates')", "Run the gates again", show=False),
        Binding("l", "task('log')", "Log: the whole gate log (or the agent's)", show=False),
        Binding("x", "task('cancel_task')", "Stop the agent (executing) or cancel the task", show=False),
        Binding("f", "task('mark_done')", "Mark the agent's work done (the gates run)", show=False),
        Binding("R", "task('retry')", "Retry the task", show=False),
        Binding("D", "start_daemon", "Start this repo's daemon", show=False),
        *(Binding(str(n), f"switch_tab({n})", "", show=False) for n in range(1, 10)),
        # The task tables never take the focus (see TaskTable): these move the active one's cursor.
        Binding("down,j", "cursor('down')", "", show=False),
        Binding("up,k", "cursor('up')", "", show=False),
        Binding("pagedown", "cursor('page_down')", "", show=False),
        Binding("pageup", "cursor('page_up')", "", show=False),
        Binding("home", "cursor('top')", "", show=False),
        Binding("end", "cursor('bottom')", "", show=False),
        Binding("enter", "cursor('select')", "", show=False),
    ]

    def __init__(self, repos: Repos, title: str, app_keys: list[BindingType]) -> None:
        super().__init__()
        self.cockpit = repos
        self.repos = list(repos.models)
        self.index = {name: i for i, name in enumerate(self.repos)}
        self.bar_title = title
        self._app_keys = app_keys
        self._labels: dict[str, Content] = {}
        self._shown: tuple[str, int] | None = None  # (repo, task id) in the detail
        self._follow_stop: asyncio.Event | None = None
        self._follow_poke: asyncio.Event | None = None
        self._followed: tuple[str, int] | None = None
        self._output: list[str] = []
        self._stale: set[str] = set()
        self._hidden_changes: dict[str, set[int]] = {}
        self._summary_timer: Timer | None = None

    # -- layout ----------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar(self.bar_title, id="status-bar")
        with TabbedContent(id="repos"):
            for i, repo in enumerate(self.repos):
                with TabPane(self._label(repo), id=pane_id(i)):
                    yield RepoPane(repo, i)
        yield TaskDetail(id="detail")
        yield FlashLine(id="flash")
        yield KeyBar(bar_keys(self.BINDINGS) + bar_keys(self._app_keys, "app"), id="keys")

    def on_resize(self, event: events.Resize) -> None:
        # No media queries in Textual CSS: the size classes do it (see app.tcss).
        self.set_class(event.size.width < 120, "-narrow")
        self.set_class(event.size.height < 32, "-short")

    def on_mount(self) -> None:
        for repo in self.repos:
            model = self.cockpit.models[repo]
            self.pane(repo).show_link(model.mode, model.detail, model.host)
        self._update_bar()

    def pane(self, repo: str) -> RepoPane:
        return self.query_one(f"#pane-{self.index[repo]}", RepoPane)

    def table(self, repo: str) -> TaskTable:
        return self.pane(repo).table

    @property
    def active_repo(self) -> str | None:
        active = self.query_one("#repos", TabbedContent).active
        if not active:
            return self.repos[0] if self.repos else None
        return self.repos[int(active.removeprefix("repo-"))]

    def selected(self) -> tuple[str, Task] | None:
        repo = self.active_repo
        if repo is None:
            return None
        task_id = self.table(repo).selected_id
        task = self.cockpit.models[repo].tasks.get(task_id) if task_id is not None else None
        return (repo, task) if task is not None else None

    # -- changes from the links ------------------------------------------------------------------------------

    def tasks_changed(self, repo: str, ids: set[int]) -> None:
        if repo == self.active_repo:
            self._upsert(repo, ids)
        else:
            # A hidden table is brought up to date when its tab is shown: rows nobody can see would still cost
            # the frames of the visible ones (a new row resizes its table, which lays out the whole screen).
            self._hidden_changes.setdefault(repo, set()).update(ids)
        self._later(repo)
        shown = self._shown
        if shown is None:
            if repo == self.active_repo:
                self.refresh_detail()
            return
        shown_repo, shown_id = shown
        if shown_repo == repo and shown_id in ids:
            self.refresh_detail()
            if self._follow_poke is not None and self._followed == shown:
                self._follow_poke.set()
        elif shown_repo != repo and self._refers_to(shown, repo, ids):
            self.refresh_detail()

    def _refers_to(self, shown: tuple[str, int], repo: str, ids: set[int]) -> bool:
        task = self.cockpit.models[shown[0]].tasks.get(shown[1])
        if task is None:
            return False
        if task.parent is not None and task.parent.repo == repo and task.parent.id in ids:
            return True
        return any(c.repo == repo and c.id in ids for c in task.children) or any(
            s.peer == repo and s.peer_task_id in ids for s in task.plan
        )

    def _upsert(self, repo: str, ids: set[int]) -> None:
        model = self.cockpit.models[repo]
        table = self.table(repo)
        now = self.cockpit.now()
        for task_id in sorted(ids):
            task = model.tasks.get(task_id)
            if task is not None:
                table.upsert(task, now)

    def _catch_up(self, repo: str) -> None:
        """Apply the changes the repo's table missed while its tab was hidden."""
        ids = self._hidden_changes.pop(repo, None)
        if ids:
            self._upsert(repo, ids)

    def _later(self, repo: str) -> None:
        """Tab titles and the bar's counts follow a burst of changes a moment later, in one go: a new title
        costs a screen-wide layout, which would otherwise hold up the frame showing the changed rows."""
        self._stale.add(repo)
        if self._summary_timer is None:
            self._summary_timer = self.set_timer(SUMMARY_DELAY_S, self._summarise)

    @property
    def settling(self) -> bool:
        """Tab titles or the bar's counts still have changes to show."""
        return bool(self._stale) or self._summary_timer is not None

    def _summarise(self) -> None:
        self._summary_timer = None
        stale, self._stale = self._stale, set()
        for repo in stale:
            self._relabel(repo)
        self._update_bar()

    def link_changed(self, repo: str) -> None:
        model = self.cockpit.models[repo]
        self.pane(repo).show_link(model.mode, model.detail, model.host)
        self._relabel(repo)
        self._update_bar()

    def _label(self, repo: str) -> Content:
        model = self.cockpit.models[repo]
        i = self.index[repo]
        parts: list[str | tuple[str, str]] = []
        if i < 9:
            parts.append((f"{i + 1} ", "dim"))
        parts.append((repo, "bold"))
        if model.host is not None:
            parts.append((f"@{model.host}", "dim"))
        if model.loaded:
            parts.append((f" {model.active_count():>2} open", ""))  # padded: its width changes less often
        waiting = model.waiting_count()
        # The marker keeps its place when it goes away, so the title's width (see `_relabel`) stays put.
        parts.append((f" ⚑{waiting:<2}", "bold $warning") if waiting else "    ")
        if model.mode in (STORE, UNINITIALISED, OFFLINE):
            parts.append((" ⊘", "bold $error"))
        return Content.assemble(*parts)

    def _relabel(self, repo: str) -> None:
        label = self._label(repo)
        if self._labels.get(repo) == label:
            return
        self._labels[repo] = label
        # Through the tab's public label (a screen-wide layout, which is why titles trail bursts: `_later`).
        self.query_one("#repos", TabbedContent).get_tab(pane_id(self.index[repo])).label = label

    def _update_bar(self) -> None:
        models = self.cockpit.models
        waiting = sum(m.waiting_count() for m in models.values())
        down = sum(1 for m in models.values() if m.mode in (STORE, UNINITIALISED, OFFLINE))
        bar = self.query_one(StatusBar)
        bar.set_counts(waiting, down)
        repo = self.active_repo
        today = day_start(self.cockpit.now())
        bar.set_usage(repo, models[repo].usage() if repo is not None else Usage(),
                      Usage.total(m.usage(since=today) for m in models.values()))

    def tick(self, now: float) -> None:
        """The clock moved: the bar's clock and the active tab's ages."""
        self.query_one(StatusBar).set_clock(now if self.cockpit.config.clock else None)
        self._update_bar()  # the day may have turned
        repo = self.active_repo
        if repo is not None:
            self.table(repo).refresh_ages(self.cockpit.models[repo].tasks.values(), now)

    # -- the detail ------------------------------------------------------------------------------------------

    def detail_context(self, repo: str, task: Task) -> DetailContext:
        models = self.cockpit.models

        def peer_state(peer: str, task_id: int) -> str | None:
            model: RepoModel | None = models.get(peer)
            found = model.tasks.get(task_id) if model is not None else None
            return found.state.value if found is not None else None

        return DetailContext(
            repo=repo,
            now=self.cockpit.now(),
            peer_state=peer_state,
            progress=models[repo].progress.get(task.id, {}),
        )

    def refresh_detail(self) -> None:
        chosen = self.selected()
        detail = self.query_one(TaskDetail)
        if chosen is None:
            self._shown = None
            detail.show(None, None)
            self._follow(None)
            return
        repo, task = chosen
        key = (repo, task.id)
        if key != self._shown:
            self._output = []
            detail.show_output([], "")
        self._shown = key
        detail.show(task, self.detail_context(repo, task))
        self._follow(key if task.state in FOLLOWED and (task.pane or task.agent) else None)

    @on(TaskTable.Highlighted)
    def _row_highlighted(self, event: TaskTable.Highlighted) -> None:
        if event.table.repo == self.active_repo:
            self.refresh_detail()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        repo = self.active_repo
        if repo is None:
            return
        self._catch_up(repo)
        table = self.table(repo)
        # The tab's rows and their rendering caches (thousands of objects) live on: once drawn, keep them
        # out of the garbage collector's full scans, which would otherwise pause a later frame for 100 ms.
        self.call_after_refresh(gc.freeze)
        table.refresh_ages(self.cockpit.models[repo].tasks.values(), self.cockpit.now())
        self.refresh_detail()
        self._update_bar()  # the bar shows the active repo's usage

    @on(TaskTable.Selected)
    def _row_selected(self, event: TaskTable.Selected) -> None:
        chosen = self.selected()
        if chosen is not None and chosen[1].state is State.EXECUTING:
            self.action_task("answer")

    @on(AgentOutputView.AnswerRequested)
    def _answer_requested(self) -> None:
        self.action_task("answer")

    @on(TaskDetail.ActionPressed)
    def _action_pressed(self, message: TaskDetail.ActionPressed) -> None:
        self.action_task(message.action)

    # -- agent output: fetched when the selection rests, then followed on each write to the task's log -------

    def _follow(self, key: tuple[str, int] | None) -> None:
        if key == self._followed:
            return
        if self._follow_stop is not None:
            self._follow_stop.set()
        self._followed = key
        self._follow_stop = self._follow_poke = None
        if key is None:
            return
        self._follow_stop, self._follow_poke = asyncio.Event(), asyncio.Event()
        self.follow_output(key, self._follow_stop, self._follow_poke)

    @work(exclusive=True, exit_on_error=False, group="agent-output")
    async def follow_output(self, key: tuple[str, int], stop: asyncio.Event, poke: asyncio.Event) -> None:
        await asyncio.sleep(FOLLOW_DELAY_S)
        if stop.is_set():
            return
        repo, task_id = key
        link = self.cockpit.links[repo]
        log = link.paths.task_log(task_id)
        changes = None
        pending: asyncio.Future[Any] | None = None
        # A hosted repo's log is on its host: its output is fetched through the daemon on each event instead.
        if self.cockpit.config.watch and link.hosted is None and log.parent.is_dir():

            def is_log(change: filewatch.Change, path: str) -> bool:
                return Path(path).name == log.name

            changes = filewatch.awatch(log.parent, watch_filter=is_log, stop_event=stop, debounce=50)
            pending = asyncio.ensure_future(changes.__anext__())
            await asyncio.sleep(0)
        try:
            while not stop.is_set():
                poke.clear()
                self.post_message(await link.fetch_output(task_id))
                waits: set[asyncio.Future[object]] = {
                    asyncio.ensure_future(poke.wait()),
                    asyncio.ensure_future(stop.wait()),
                }
                if pending is not None:
                    waits.add(pending)
                done, rest = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                for waiter in rest:
                    if waiter is not pending:
                        waiter.cancel()
                if pending is not None and pending in done:
                    if pending.exception() is not None:
                        pending = None
                    else:
                        assert changes is not None
                        pending = asyncio.ensure_future(changes.__anext__())
        finally:
            stop.set()
            await filewatch.close_watch(pending, changes)

    def on_agent_output(self, message: AgentOutput) -> None:
        if (message.repo, message.task_id) != self._shown:
            return
        self._output = message.lines
        self.query_one(TaskDetail).show_output(message.lines, message.error)

    @property
    def output(self) -> list[str]:
        return self._output

    async def on_unmount(self) -> None:
        if self._follow_stop is not None:
            self._follow_stop.set()
        self.cockpit.stop_links()
        await self.cockpit.links_stopped()

    # -- actions: resolve the selection, hand over to the app ------------------------------------------------

    def action_cursor(self, move: str) -> None:
        repo = self.active_repo
        if repo is None:
            return
        table = self.table(repo)
        actions = {"down": table.action_cursor_down, "up": table.action_cursor_up,
                   "page_down": table.action_page_down, "page_up": table.action_page_up,
                   "top": table.action_scroll_top, "bottom": table.action_scroll_bottom,
                   "select": table.action_select_cursor}
        actions[move]()

    def action_switch_tab(self, n: int) -> None:
        if 1 <= n <= len(self.repos):
            self.show_repo(self.repos[n - 1])

    def show_repo(self, repo: str) -> None:
        self._catch_up(repo)
        self.query_one("#repos", TabbedContent).active = pane_id(self.index[repo])

    def focus_task(self, repo: str, task_id: int) -> None:
        """Switch to the repo's tab and put the cursor on the task."""
        self.show_repo(repo)
        table = self.table(repo)
        table.select(task_id)
        self.call_after_refresh(table.select, task_id)
        self.refresh_detail()

    def action_task(self, action: str) -> None:
        """A task key, button or palette entry: the app carries it out on the selected task."""
        chosen = self.selected()
        if chosen is None:
            self.post_message(Say("no task selected", "warning"))
            return
        context = self._output if action == "answer" else []
        self.post_message(TaskAction(action, *chosen, context=context))

    def action_start_daemon(self) -> None:
        repo = self.active_repo
        if repo is not None:
            self.post_message(RepoAction("start_daemon", repo))
