"""The cockpit app and its factory, `make_app(path, config=...)`, shared by the CLI, tests and benchmarks.

The app owns one `RepoModel` and one `RepoLink` per repo. Links run as async workers on the app's loop and
post `TasksChanged` / `LinkChanged` / `AttentionNeeded`; actions send ops in workers and report back by
`OpFinished`, shown on the flash line (a daemon's refusal is information, not a crash or an error toast).
Blocking work (git, tmux, starting a daemon) runs in thread workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import App, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from cockpit.core import daemonctl
from cockpit.core.config import load_settings
from cockpit.core.errors import CockpitError, NotARepoError, UsageError
from cockpit.core.merge.rollback import rollback_method
from cockpit.core.models import JSON, Task
from cockpit.core.paths import find_repo_root
from cockpit.core.remote.daemons import hosted_repo
from cockpit.core.states import State
from cockpit.core.tmux import TmuxPanes, tmux_available
from cockpit.core.workspace import WORKSPACE_FILE, Workspace
from cockpit.tui.commands import CockpitCommands
from cockpit.tui.link import RepoLink
from cockpit.tui.messages import AgentOutput, AttentionNeeded, LinkChanged, OpFinished, TasksChanged
from cockpit.tui.notify import NotifySettings, desktop_notify, summary, terminal_sequences
from cockpit.tui.repo_model import OFFLINE, UNINITIALISED, Attention, RepoModel, attention_kind
from cockpit.tui.screens.cockpit import CockpitScreen
from cockpit.tui.screens.diff import DiffScreen
from cockpit.tui.screens.forms import (
    AnswerScreen,
    ClarifyScreen,
    ConfirmScreen,
    NewTask,
    NewTaskScreen,
    ReasonScreen,
)
from cockpit.tui.screens.keys import KeysScreen, binding_rows
from cockpit.tui.screens.log import LogScreen
from cockpit.tui.screens.merges import MergesScreen

TICK_S = 30.0
NOTIFY_BURST_S = 0.3  # notes arriving within this make one notification
LINK_STOP_S = 3.0
OUTPUT_LINES = 60
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# How each op's success reads on the flash line.
DONE_VERBS = {
    "approve_task": "approved",
    "reject_task": "rejected",
    "clarify_task": "answered",
    "cancel_task": "cancelled",
    "retry_task": "sent back to work",
    "create_task": "created",
    "send_input": "answer sent to",
    "run_gates": "gates started for",
    "merge_task": "merged",
    "rollback_task": "rolled back",
    "stop_task": "stopped",
    "done_task": "marked done:",
    "rework_task": "sent back with your comments:",
}


# What the flash line adds after an op's verb: what happens next (reported again when it happens).
AFTER_OP = {
    "approve_task": " · it starts when a slot is free",
    "run_gates": " · the result shows here when they finish",
    "retry_task": " · the agent starts again",
    "clarify_task": " · classifying it again",
}


def transition_note(repo: str, task: Task, before: State | None) -> tuple[str, str]:
    """The flash line for a watched task that moved: what happened, and what the person can do now."""
    where = f"{repo}#{task.id}"
    state = task.state
    if state is State.FAILED:
        failed = [g.name for g in task.gates if g.status != "passed"]
        why = f"gate {', '.join(failed)} failed" if failed else (task.failure or "the agent failed")
        retried = before in (State.APPROVED, State.EXECUTING, State.GATING) and task.attempt > 1
        again = " again" if retried else ""
        return f"{where} failed{again}: {why} · l shows the log, R retries", "warning"
    if state is State.AWAITING_REVIEW:
        return f"{where} passed its gates: awaiting review · d diff, m merge", "ok"
    if state is State.EXECUTING and before is State.GATING:
        return f"{where}: a gate failed, the agent is fixing it (attempt {task.attempt})", "warning"
    if state is State.EXECUTING:
        return f"{where} is executing (agent {task.agent or '?'})", "info"
    if state is State.GATING:
        return f"{where}: the agent finished, gates running", "info"
    if state is State.DONE:
        return f"{where} merged into {task.merge.target if task.merge else 'the target'}", "ok"
    if state is State.PENDING_CLARIFICATION:
        return f"{where} still needs answers: {len(task.questions)} question(s) · c answers", "warning"
    if state is State.PENDING:
        return f"{where} is planned ({task.scope}) and waits for approval · a approves", "warning"
    return f"{where} is {state.value}", "info"


def tmux_prefix(argv: list[str]) -> str:
    """The tmux prefix key of the server `argv` attaches to, as tmux writes it ("C-b" unless configured).

    Thread: it runs tmux."""
    try:
        at = argv.index("tmux")
    except ValueError:
        return "C-b"
    base = argv[: at + 1] + (argv[at + 1 : at + 3] if argv[at + 1 : at + 2] == ["-L"] else [])
    try:
        found = subprocess.run([*base, "show-options", "-gv", "prefix"], capture_output=True, text=True,
                               timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "C-b"
    return found.stdout.strip() or "C-b"


def with_hint(argv: list[str], hint: str) -> list[str]:
    """Have tmux show how to come back, on the status line, once the terminal is attached."""
    if "attach-session" not in argv and "switch-client" not in argv:
        return argv
    return [*argv, ";", "display-message", "-d", "6000", hint]


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


@dataclass(frozen=True)
class Flash:
    text: str = ""
    level: str = "info"  # info | ok | warning | error


@dataclass
class Problems:
    """What went wrong inside the app without stopping it: the test harness fails on any of these."""

    worker_errors: list[str] = field(default_factory=list)


def read_log_tail(path: Path, lines: int) -> list[str]:
    """The last lines of a pane log, without terminal escapes (when the daemon offers no `tail` op)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return []
    rows = [ANSI.sub("", row).split("\r")[-1].rstrip() for row in data.split("\n")]
    while rows and not rows[-1]:
        rows.pop()
    return rows[-lines:]


def preflight_report(result: JSON) -> tuple[RenderableType, bool]:
    """The daemon's dry-run merge answer as text for a person, and whether the merge may go ahead."""
    found = result.get("preflight")
    report: JSON = found if isinstance(found, dict) else result
    ok = bool(report.get("ok", True))
    target = str(report.get("target") or "the target")
    branch = str(report.get("branch") or "the task's branch")
    head = Text.assemble(("merge ", "bold"), (branch, "cyan"), (" into ", "bold"), (target, "cyan"))
    checks = Table.grid(padding=(0, 1))
    checks.add_column(width=1)
    checks.add_column(style="bold", no_wrap=True)
    checks.add_column()
    for check in report.get("checks") or []:
        if isinstance(check, dict):
            good = bool(check.get("ok"))
            checks.add_row(Text("✓" if good else "✗", style="green" if good else "bold red"),
                           str(check.get("name", "")).replace("_", " "), str(check.get("detail", "")))
    parts: list[RenderableType] = [head, checks]
    conflicts = report.get("conflicts") or []
    if conflicts:
        parts.append(Text(f"conflicts in: {', '.join(map(str, conflicts))}", style="red"))
    if report.get("target_moved"):
        parts.append(Text(f"{target} moved since the task started: the branch is rebased and the gates run "
                          "again before the merge", style="yellow"))
    parts.append(Text(""))
    parts.append(Text("A rollback point (the target's tip) is recorded before the target moves; u undoes it."
                      if ok else "The merge cannot go ahead: fix what failed above.",
                      style="dim" if ok else "bold red"))
    return Group(*parts), ok


def rollback_plan(repo: str, task: Task, method: str) -> tuple[RenderableType, bool]:
    m = task.merge
    assert m is not None
    merge_sha = (m.merge_sha or "?")[:10]
    rollback_sha = (m.rollback_sha or "?")[:10]
    head = Text.assemble(("roll back ", "bold"), f"{repo}#{task.id} ", (task.title, "italic"), "\n")
    if method == "reset":
        body = Text(
            f"{m.target} is still at the merge {merge_sha}: it will be reset to {rollback_sha}, its tip "
            "before the merge (a compare-and-set; uncommitted work is never touched)."
        )
    elif method == "remote":
        body = Text(
            f"{m.target} is moved back from the merge {merge_sha} on the repo's host: reset to "
            f"{rollback_sha} "
            "while the merge is still its tip, else a revert commit (uncommitted work is never touched)."
        )
    elif method == "revert":
        body = Text(
            f"{m.target} has commits after the merge {merge_sha}: a revert commit undoing it will be "
            f"created on top of {m.target} (history is kept)."
        )
    else:
        return Group(
            head,
            Text(
                f"the merge {merge_sha} is not in {m.target}'s history any more: nothing to roll back",
                style="bold red",
            ),
        ), False
    return Group(
        head,
        body,
        Text(""),
        Text("The task becomes rolled_back; its branch is kept, so it can be retried.", style="dim"),
    ), True


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
        self.main = CockpitScreen(list(self.models), self.config.title or target.title)
        self._focus_when_seen: tuple[str, int] | None = None
        self._settled = False
        # Tasks the person acted on, with the state last reported: their next moves go on the flash line.
        self._watched: dict[tuple[str, int], State | None] = {}
        self._inbox_at: tuple[str, int] | None = None  # what `!` showed last
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
        for link in self.links.values():
            link.stop()

    async def links_stopped(self) -> None:
        """Wait (a while) until every link has closed its store and sockets, before the app cancels them."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LINK_STOP_S):
                await asyncio.gather(*(link.stopped() for link in self.links.values()))

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
        for screen in self.screen_stack:
            if isinstance(screen, MergesScreen):
                screen.repo_changed(message.repo, ids)
            elif isinstance(screen, DiffScreen) and screen.repo == message.repo and screen.subject.id in ids:
                screen.task_changed()
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
            if task.state in (State.DONE, State.REJECTED, State.CANCELLED):
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

    # -- sending ops -----------------------------------------------------------------------------------------

    def run_op(self, repo: str, op: str, args: dict[str, Any], *, task_id: int | None = None) -> Worker[None]:
        return self.run_worker(
            self._op(repo, op, args, task_id), name=f"{op}:{repo}", group="ops", exit_on_error=False
        )

    async def _op(self, repo: str, op: str, args: dict[str, Any], task_id: int | None) -> None:
        try:
            result = await self.links[repo].call(op, args)
        except CockpitError as exc:
            self.post_message(OpFinished(repo, op, task_id, error=exc.message, code=exc.code))
            return
        self.post_message(OpFinished(repo, op, task_id, result=result))

    # -- the actions (the main screen, the merges screen and the palette call these) -------------------------

    def approve(self, repo: str, task: Task) -> None:
        if task.state is State.PENDING_CLARIFICATION:
            self._approve_anyway(repo, task)
            return
        self.say(f"approving {repo}#{task.id}…")
        self.run_op(repo, "approve_task", {"id": task.id, "by": "person"}, task_id=task.id)

    def _approve_anyway(self, repo: str, task: Task) -> None:
        """An ambiguous task is approved before its questions are answered only when the person says so."""
        body = Text.assemble(
            (f"{repo}#{task.id} is ambiguous: its questions are not answered yet.\n\n", "bold"),
            *((f" {i}. {q}\n", "yellow") for i, q in enumerate(task.questions, 1)),
            "\nc answers them (then it is planned again). Approving anyway hands the text to the agent as it "
            "is.",
        )

        def done(yes: bool | None) -> None:
            if yes:
                self.say(f"approving {repo}#{task.id} without answers…")
                self.run_op(repo, "approve_task", {"id": task.id, "by": "person"}, task_id=task.id)

        self.push_screen(
            ConfirmScreen(f"approve {repo}#{task.id} anyway?", body, confirm="Approve anyway",
                          cancel="Back"),
            done,
        )

    def reject(self, repo: str, task: Task) -> None:
        def done(reason: str | None) -> None:
            if reason is not None:
                self.run_op(
                    repo, "reject_task", {"id": task.id, "reason": reason, "by": "person"}, task_id=task.id
                )

        self.push_screen(ReasonScreen(f"{repo}#{task.id}", blink=self.config.cursor_blink), done)

    def clarify(self, repo: str, task: Task) -> None:
        if task.state is not State.PENDING_CLARIFICATION:
            self.say(
                f"{repo}#{task.id} is {task.state.value}: only a task in pending_clarification takes answers",
                "warning",
            )
            return

        def done(answers: list[str] | None) -> None:
            if answers:
                self.say(f"sending answers for {repo}#{task.id}; it is classified again…")
                self.run_op(
                    repo, "clarify_task", {"id": task.id, "answers": answers, "by": "person"}, task_id=task.id
                )

        self.push_screen(
            ClarifyScreen(f"{repo}#{task.id}", task.questions, blink=self.config.cursor_blink), done
        )

    def answer(self, repo: str, task: Task, context: list[str] | None = None) -> None:
        if task.state is not State.EXECUTING:
            self.say(f"{repo}#{task.id} is {task.state.value}: only a running agent takes input", "warning")
            return

        def done(text: str | None) -> None:
            if text is not None:
                self.run_op(repo, "send_input", {"id": task.id, "text": text}, task_id=task.id)

        self.push_screen(
            AnswerScreen(f"{repo}#{task.id}", context or [], blink=self.config.cursor_blink), done
        )

    def open_log(self, repo: str, task: Task) -> None:
        paths = self.links[repo].paths
        if task.gates or task.state is State.GATING:
            self.push_screen(LogScreen(f"{repo}#{task.id} gate log", paths.gate_log(task.id)))
        elif task.pane or task.agent or task.attempt:
            self.push_screen(LogScreen(f"{repo}#{task.id} agent log", paths.task_log(task.id)))
        else:
            self.say(f"{repo}#{task.id} has no log yet: nothing has run", "warning")

    def stop(self, repo: str, task: Task) -> None:
        if task.state not in (State.EXECUTING, State.GATING):
            self.say(f"{repo}#{task.id} is {task.state.value}: only an executing task can be stopped",
                     "warning")
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.say(f"stopping {repo}#{task.id}…")
                self.run_op(repo, "stop_task", {"id": task.id, "by": "person"}, task_id=task.id)

        self.push_screen(
            ConfirmScreen(
                f"stop {repo}#{task.id}",
                Text(f"Stop the agent of “{task.title}”? Its pane is closed and the task is cancelled; its "
                     "branch and worktree stay for a look."),
                confirm="Stop it",
                cancel="Keep it running",
                danger=True,
            ),
            done,
        )

    def rework(self, repo: str, task: Task, message: str) -> None:
        """Send the task back to its agent with the person's review comments."""
        self.say(f"sending {repo}#{task.id} back to the agent…")
        self.run_op(repo, "rework_task", {"id": task.id, "message": message, "by": "person"}, task_id=task.id)

    def mark_done(self, repo: str, task: Task) -> None:
        if task.state is not State.EXECUTING:
            self.say(f"{repo}#{task.id} is {task.state.value}: only an executing agent can be marked done",
                     "warning")
            return
        self.say(f"marking {repo}#{task.id} done; the gates run next…")
        self.run_op(repo, "done_task", {"id": task.id}, task_id=task.id)

    def cancel(self, repo: str, task: Task) -> None:
        if task.state in (State.EXECUTING, State.GATING):
            self.stop(repo, task)
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.run_op(repo, "cancel_task", {"id": task.id, "by": "person"}, task_id=task.id)

        self.push_screen(
            ConfirmScreen(
                f"cancel {repo}#{task.id}",
                Text(
                    f"Cancel “{task.title}”? It is {task.state.value}; a cancelled task is finished for good."
                ),
                confirm="Yes, cancel it",
                cancel="Keep it",
                danger=True,
            ),
            done,
        )

    def retry(self, repo: str, task: Task) -> None:
        self.run_op(repo, "retry_task", {"id": task.id, "by": "person"}, task_id=task.id)

    def run_gates(self, repo: str, task: Task) -> None:
        self.run_op(repo, "run_gates", {"id": task.id}, task_id=task.id)

    def start_daemon(self, repo: str) -> None:
        link = self.links[repo]
        if link.connected:
            self.say(f"{repo}'s daemon is already running", "ok")
            return
        self.say(f"starting {repo}'s daemon…")
        self._start_daemon(repo)

    @work(thread=True, exit_on_error=False, group="daemons")
    def _start_daemon(self, repo: str) -> None:
        link = self.links[repo]
        try:
            if link.hosted is not None:
                pid = link.hosted.start()["pid"]  # over ssh, on its host
            else:
                pid = daemonctl.start(link.paths).info.pid
        except CockpitError as exc:
            self.call_from_thread(self.say, f"{repo}: {exc.message}", "error")
            return
        self.call_from_thread(link.wake)
        self.call_from_thread(self.say, f"{repo}'s daemon is running (pid {pid})", "ok")

    def merge(self, repo: str, task: Task) -> None:
        if task.state is not State.AWAITING_REVIEW:
            self.say(
                f"{repo}#{task.id} is {task.state.value}: only a task awaiting review can be merged",
                "warning",
            )
            return
        self.say(f"preflight for {repo}#{task.id}…")
        self._merge_preflight(repo, task)

    @work(exit_on_error=False, group="merge")
    async def _merge_preflight(self, repo: str, task: Task) -> None:
        try:
            result = await self.links[repo].call("merge_task", {"id": task.id, "dry_run": True})
        except CockpitError as exc:
            self.post_message(OpFinished(repo, "merge_task", task.id, error=exc.message, code=exc.code))
            return
        body, ok = preflight_report(result)
        self.say("")

        def done(yes: bool | None) -> None:
            if yes:
                self.say(f"merging {repo}#{task.id}…")
                self.run_op(repo, "merge_task", {"id": task.id}, task_id=task.id)

        self.push_screen(ConfirmScreen(f"merge {repo}#{task.id}", body, confirm="Merge", allowed=ok), done)

    def rollback(self, repo: str, task: Task) -> None:
        if task.merge is None or task.merge.state != "merged" or not task.merge.merge_sha:
            self.say(f"{repo}#{task.id} has no merge to roll back", "warning")
            return
        self._rollback_plan(repo, task)

    @work(thread=True, exit_on_error=False, group="git")
    def _rollback_plan(self, repo: str, task: Task) -> None:
        merge = task.merge
        assert merge is not None and merge.merge_sha is not None
        try:
            if self.links[repo].hosted is not None:
                # Its git is on another host: the daemon there picks reset or revert when it rolls back.
                self.call_from_thread(self._confirm_rollback, repo, task, "remote")
                return
            method = rollback_method(self.links[repo].paths.root, merge.target, merge.merge_sha)
        except CockpitError as exc:
            self.call_from_thread(self.say, f"{repo}#{task.id}: {exc.message}", "error")
            return
        self.call_from_thread(self._confirm_rollback, repo, task, method)

    def _confirm_rollback(self, repo: str, task: Task, method: str) -> None:
        body, ok = rollback_plan(repo, task, method)

        def done(yes: bool | None) -> None:
            if yes:
                self.say(f"rolling back {repo}#{task.id}…")
                self.run_op(repo, "rollback_task", {"id": task.id}, task_id=task.id)

        self.push_screen(
            ConfirmScreen(f"roll back {repo}#{task.id}", body, confirm="Roll back", danger=True, allowed=ok),
            done,
        )

    def open_diff(self, repo: str, task: Task) -> None:
        if not task.branch:
            self.say(f"{repo}#{task.id} has no branch yet: nothing to diff", "warning")
            return
        link = self.links[repo]
        self.push_screen(DiffScreen(repo, link.paths.root, task,
                                    remote=link.call if link.hosted is not None else None))

    # -- tmux: attach to the agent, a shell in the worktree --------------------------------------------------

    def attach(self, repo: str, task: Task) -> None:
        if task.pane is None and task.state is not State.EXECUTING:
            self.say(f"{repo}#{task.id} has no agent pane", "warning")
            return
        self._attach_agent(repo, task)

    @work(exclusive=True, exit_on_error=False, group="attach")
    async def _attach_agent(self, repo: str, task: Task) -> None:
        try:
            info = await self.links[repo].call("attach_info", {"id": task.id})
        except CockpitError as exc:
            if exc.code != "unknown_op":
                self.say(f"{repo}#{task.id}: {exc.message}", "error")
                return
            info = {}
        given = info.get("argv")
        argv = [str(a) for a in given] if isinstance(given, list) else []
        hosted = self.links[repo].hosted
        if hosted is not None:
            # The pane is on the repo's host: attach there, in this terminal.
            if not argv:
                self.say(f"{repo}#{task.id}: its daemon on {hosted.host.destination} named no pane", "error")
                return
            self.run_attached(hosted.host.tty_argv(argv), f"{repo}#{task.id}'s agent on "
                                                          f"{hosted.host.destination}")
            return
        if not argv:
            try:
                argv = await asyncio.to_thread(self._agent_argv, repo, task, info)
            except CockpitError as exc:
                self.say(f"{repo}#{task.id}: {exc.message}", "error")
                return
        prefix = await asyncio.to_thread(tmux_prefix, argv)
        self.run_attached(with_hint(argv, f"{prefix} d comes back to the cockpit"),
                          f"{repo}#{task.id}'s agent", hint=f"{prefix} d (detach) comes back")

    def _agent_argv(self, repo: str, task: Task, info: JSON) -> list[str]:
        """Build the attach argv from what is known of the pane (thread: tmux calls block)."""
        panes = self._panes(repo, info)
        for window in (info.get("window"), f"task-{task.id}"):
            if isinstance(window, str):
                pane = panes.find_pane(window)
                if pane is not None:
                    return panes.attach_argv(pane)
        raise CockpitError(f"no tmux pane found for task {task.id} on {panes!r}")

    def _panes(self, repo: str, info: JSON) -> TmuxPanes:
        if not tmux_available():
            raise CockpitError("tmux is not installed; install it (apt-get install tmux)")
        socket = info.get("socket_name")
        if not isinstance(socket, str):
            socket = load_settings(self.links[repo].paths.config).tmux_socket
        session = info.get("session") if isinstance(info.get("session"), str) else f"cockpit-{repo}"
        return TmuxPanes(socket or None, str(session))

    def shell(self, repo: str, task: Task) -> None:
        hosted = self.links[repo].hosted
        if hosted is not None and task.worktree:
            self._remote_shell(repo, task)
            return
        if not task.worktree or not Path(task.worktree).is_dir():
            self.say(f"{repo}#{task.id} has no worktree", "warning")
            return
        self._shell(repo, task)

    @work(exclusive=True, exit_on_error=False, group="attach")
    async def _shell(self, repo: str, task: Task) -> None:
        info: JSON = {}
        try:
            info = await self.links[repo].call("attach_info", {"id": task.id})
        except CockpitError:
            info = {}
        worktree = Path(str(task.worktree))
        try:
            argv = await asyncio.to_thread(self._shell_argv, repo, task, worktree, info)
        except CockpitError as exc:
            self.say(f"{repo}#{task.id}: {exc.message}", "error")
            return
        if argv and argv[0] in ("tmux", "env"):
            prefix = await asyncio.to_thread(tmux_prefix, argv)
            hint = f"exit (or {prefix} d) comes back to the cockpit"
            argv = with_hint(argv, hint)
        else:
            hint = "exit comes back to the cockpit"
        self.run_attached(argv, f"the shell in {repo}#{task.id}'s worktree", cwd=worktree, hint=hint)

    @work(exclusive=True, exit_on_error=False, group="attach")
    async def _remote_shell(self, repo: str, task: Task) -> None:
        """A shell in the worktree on the repo's host: a tmux session there, opened or re-attached."""
        hosted = self.links[repo].hosted
        assert hosted is not None
        try:
            info = await self.links[repo].call("attach_info", {"id": task.id})
        except CockpitError:
            info = {}
        socket = info.get("socket_name")
        tmux = ["tmux", *(["-L", socket] if isinstance(socket, str) and socket else [])]
        argv = [*tmux, "new-session", "-A", "-s", f"cockpit-shell-{repo}-{task.id}", "-c", str(task.worktree)]
        self.run_attached(hosted.host.tty_argv(argv), f"the shell in {repo}#{task.id}'s worktree on "
                                                      f"{hosted.host.destination}")

    def _shell_argv(self, repo: str, task: Task, worktree: Path, info: JSON) -> list[str]:
        if not tmux_available():
            import os

            return [os.environ.get("SHELL") or "/bin/sh"]
        agents = self._panes(repo, info)
        # A session of its own: when the shell exits the session ends and the client comes back here,
        # instead of landing on the agent's (maybe dead) window.
        panes = TmuxPanes(agents.socket_name, f"{agents.session_name}-shell-{task.id}")
        pane = panes.open_shell(f"shell-{task.id}", worktree)
        return panes.attach_argv(pane)

    def run_attached(self, argv: list[str], what: str, cwd: Path | None = None, hint: str = "") -> None:
        """Hand the terminal to `argv` (the app suspends) and come back when it ends (tmux: on detach)."""
        runner = self.config.attach
        self.say(f"opening {what}" + (f": {hint}" if hint else ""))
        try:
            if runner is not None:
                code = runner(argv)
            else:
                with self.suspend():
                    print(f"cockpit: opening {what}" + (f"; {hint}" if hint else ""), flush=True)
                    code = subprocess.call(argv, cwd=cwd)
        except SuspendNotSupported:
            self.say(f"this terminal cannot hand over to {what}; run: {shlex.join(argv)}", "error")
            return
        except OSError as exc:
            self.say(f"cannot run {argv[0]}: {exc.strerror}", "error")
            return
        self.say(f"back from {what}" + (f" (exit {code})" if code else ""), "ok" if not code else "warning")

    async def fetch_output(self, repo: str, task_id: int) -> AgentOutput:
        link = self.links[repo]
        try:
            result = await link.call("tail", {"id": task_id, "lines": OUTPUT_LINES})
        except CockpitError as exc:
            if exc.code != "unknown_op" or link.hosted is not None:  # a hosted repo's log is not here
                return AgentOutput(repo, task_id, [], exc.message)
            lines = await asyncio.to_thread(read_log_tail, link.paths.task_log(task_id), OUTPUT_LINES)
            return AgentOutput(repo, task_id, lines)
        raw = result.get("lines", result.get("tail", result.get("text", "")))
        lines = [str(x) for x in raw] if isinstance(raw, list) else str(raw).splitlines()
        return AgentOutput(repo, task_id, lines)

    # -- app-wide keys ---------------------------------------------------------------------------------------

    def _back_to_main(self) -> None:
        while self.screen is not self.main and len(self.screen_stack) > 1:
            self.pop_screen()

    def inbox(self) -> list[tuple[str, Task]]:
        """Everything that needs a person, across repos, the longest-waiting first."""
        waiting = [
            (task.updated_at, i, task.id, name, task)
            for i, (name, model) in enumerate(self.models.items())
            for task in model.waiting()
        ]
        return [(name, task) for _, _, _, name, task in sorted(waiting, key=lambda w: w[:3])]

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
                self.say(f"creating a task in {new.repo}…")
                self._create_task(new)

        self.push_screen(NewTaskScreen(repos, repo, blink=self.config.cursor_blink), done)

    @work(exit_on_error=False, group="ops")
    async def _create_task(self, new: NewTask) -> None:
        script = None
        if new.script is not None:
            try:
                script = await asyncio.to_thread(new.script.read_text)
            except OSError as exc:
                self.say(f"cannot read the script {new.script}: {exc.strerror}", "error")
                return
        await self._op(
            new.repo,
            "create_task",
            {"text": new.text, "script": script, "force": new.force, "by": "person"},
            None,
        )

    def action_merges(self) -> None:
        if not isinstance(self.screen, MergesScreen):
            self._back_to_main()
            self.push_screen(MergesScreen())

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
