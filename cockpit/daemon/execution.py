"""The daemon's execution component: scheduler, agent panes, needs-input watchdog, gates and the fix cycle.

How things are noticed (nothing polls):

- Scheduling reacts to committed events (`task.approved`, and any event that frees a slot): the daemon's bus
  calls `Executor._on_event` for every event, its own and other writers' alike. Approved tasks start oldest
  first, up to `[task] max_parallel` at once; a task holds its slot while executing and gating.
- An agent's exit: tmux runs the pane's `pane-died` hook, which writes the exit status into
  `.cockpit/signals/died/task-<id>.status`; the signals folder is watched with inotify (`core.filewatch`,
  10 ms debounce).
  The status itself is read back from tmux (`remain-on-exit` keeps the dead pane), never guessed. A pane that
  is closed outright (its window killed) makes the pane command's HUP trap write an `exited` signal with
  `closed: true`: that task becomes `interrupted`.
- Needs-input: agents' own hooks (`cockpit hook needs-input|resolved`) and the script agent write signal
  files; for every agent, a change of its log file (tmux pipe-pane output, watched with inotify) triggers a
  capture-pane (in a thread, at most one every 100 ms per pane) that feeds a `NeedsInputDetector`. When a
  capture shows a prompt that is not confirmed yet, one confirming capture is scheduled 250 ms later (a
  one-shot timer), because the detector flips only on two identical captures in a row.
- Progress: the script agent's `progress` signals become `agent.progress` one per step; for other agents the
  adapter picks the agent's own latest words from the captured screen (not its status bar), at most one event
  per second (the last one always lands).

Finishing and the session's life (docs/design.md, Agents). The agent is done when it exits 0 or reports done
(`agent.done`: a `done` signal from `$COCKPIT_HOOK done`, or the `done_task` op); either starts the gates. A
reported done leaves the session open: a failing gate's fix prompt is typed into it (an exited agent gets a
new run), and after the gates pass (`awaiting_review`) a reviewer's `rework_task` is typed into it too. An end
of turn (`turn_ended` signal from the agent's hooks) without a done report raises needs_input with the
agent's last message. Merge, reject and cancel end the session (the agent's exit, then TERM, then KILL, then
the window); `stop_task` ends the agent the same way and leaves the task interrupted, its pane kept to read.
Usage (`agent.usage`) is read from the agent's own files at each end of turn, done report and exit.

Restart: `adopt` (a daemon adopter) re-attaches to an executing task's live pane, or processes the exit of a
pane that died while the daemon was down; with no pane left the daemon sweeps the task to `interrupted`.
Tasks found in `gating` run their gates again; `approved` ones are scheduled.

Other layers hook into the executor `install` returns (joined in `daemon/assembly.py`): `review_guards` are
awaited after the gates pass and before `task.awaiting_review` (a returned string fails the task with that
reason). Delegation (`cockpit/daemon/delegation.py`) adds `prompt_shapers` (reshape the task a first run's
prompt is rendered from) and `before_gates` (awaited when an agent exits 0; may block, and may return the
prompt of a continuation run of the agent in the same worktree instead of going on to the gates).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import filewatch, principals, sandbox, sessions
from cockpit.core.agents import ADAPTERS, Agent, AgentCommand, Setup, Usage, adapter
from cockpit.core.errors import CockpitError, ConfigError, RefusedError, TmuxError, UsageError
from cockpit.core.events import EventType
from cockpit.core.execution_ops import (
    clean_output,
    died_signal_path,
    find_task_pane,
    panes_for,
    read_log_tail,
    record_stop,
    window_name,
)
from cockpit.core.gates import TddRule, run_gates
from cockpit.core.models import JSON, Event, GateResult, Task
from cockpit.core.needs_input import NeedsInputDetector, clean_lines
from cockpit.core.ops import arg_int, arg_opt_str, arg_str
from cockpit.core.projection import EVENT_STATE
from cockpit.core.prompts import render_fix_prompt, render_prompt, render_rework_prompt, typed_request
from cockpit.core.signals import Signal, read_signals
from cockpit.core.states import IN_EXECUTION, RUNNING, State
from cockpit.core.tmux import PaneRef, TmuxPanes, read_died_signal
from cockpit.core.worktrees import materialize, plan_worktree
from cockpit.daemon.server import Daemon

log = logging.getLogger("cockpit.daemon.execution")

HOOK_SCRIPT = Path(__file__).resolve().parent.parent / "hook.sh"

SIGNAL_DEBOUNCE_MS = 10
LOG_DEBOUNCE_MS = 20
CAPTURE_GAP_S = 0.1  # at most one capture-pane per pane this often
CONFIRM_DELAY_S = 0.25  # the one confirming capture after a first prompt match
CAPTURE_LINES = 60
PROGRESS_INTERVAL_S = 1.0
MAX_PROGRESS = 200
MAX_MESSAGE = 2000
FAIL_TAIL_LINES = 20
TERM_GRACE_S = 3.0
TURN_WAIT_S = 120.0  # typed work waits this long for the agent's running turn to end, then goes anyway
MAX_TYPED_LINE = 400  # longer requests are written to a file and the agent is told to read it
_TASK_LOG = re.compile(r"^task-(\d+)\.log$")
_DIED = re.compile(r"^task-(\d+)\.status$")

ReviewGuard = Callable[[int], Awaitable[str | None]]


@dataclass(eq=False)
class Run:
    """One run of an agent in its pane (a first run, a retry or a fix attempt)."""

    task_id: int
    attempt: int
    agent: str
    panes: TmuxPanes
    pane: PaneRef
    fix_round: int = 0
    detector: NeedsInputDetector | None = None
    exited: bool = False
    dying: bool = False  # an exit is being read
    exit_reason: str | None = None  # what the agent itself said when it exited (script agent)
    capturing: bool = False
    dirty: bool = False
    capture_at: float = 0.0  # loop time the pending capture fires
    capture_handle: asyncio.TimerHandle | None = None
    last_capture: float = -1e9
    progress_text: str | None = None
    progress_sent: str | None = None
    progress_at: float = -1e9
    progress_handle: asyncio.TimerHandle | None = None
    progress_busy: bool = False  # a screen progress event is being written
    extra: dict[str, Any] = field(default_factory=dict)
    setup: Setup | None = None
    done: bool = False  # the agent reported done for its current work (its session may still be open)
    log_offset: int = 0  # where this run's output starts in the task log (aider's usage lines)
    usage_sent: tuple[int, int, float | None] | None = None
    # Set when the agent's turn is over (its turn-ended hook): text typed into a composer while a turn still
    # runs is not submitted by Enter in some agents (Codex), so a fix or rework waits for it.
    turn_over: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def adapter(self) -> Agent:
        return ADAPTERS.get(self.agent) or ADAPTERS["custom"]

    def cancel_timers(self) -> None:
        for handle in (self.capture_handle, self.progress_handle):
            if handle is not None:
                handle.cancel()
        self.capture_handle = self.progress_handle = None


def pane_command(agent_shell: str, signals_dir: Path, task_id: int, attempt: int) -> str:
    """The agent's command line, with a HUP/TERM trap that reports a pane closed under the running agent."""
    report = shlex.join(
        [
            sys.executable,
            "-c",
            "import sys; from cockpit.hook import pane_closed; "
            "pane_closed(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))",
            str(signals_dir.absolute()),
            str(task_id),
            str(attempt),
        ]
    )
    return f"trap {shlex.quote(report + ' >/dev/null 2>&1; exit 129')} HUP TERM; {agent_shell}"


def _gate_summary(failed: Sequence[GateResult]) -> str:
    return "; ".join(f"{r.name} ({r.reason or 'failed'})" for r in failed)


class Executor:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.paths = daemon.paths
        self.store = daemon.store
        self.service = daemon.service
        # Awaited after the gates pass, before task.awaiting_review; a string is a failure reason.
        self.review_guards: list[ReviewGuard] = []
        # Delegation hooks (see the module docstring): the first run's prompt, and a hold before the gates.
        self.prompt_shapers: list[Callable[[Task], Task]] = []
        self.before_gates: list[Callable[[int], Awaitable[str | None]]] = []
        self.active: set[int] = set()  # tasks holding an execution slot (starting, executing or gating)
        self.runs: dict[int, Run] = {}
        self._gating: dict[int, asyncio.Task[Any]] = {}  # the task running a task's gates (a stop cancels it)
        self._git_dir: Path | None = None
        self._plain_cancel: Callable[[dict[str, Any]], Awaitable[JSON]] | None = None
        self._locks: dict[int, asyncio.Lock] = {}
        self._panes: dict[str | None, TmuxPanes] = {}
        self._kick_pending = False
        self._schedule_lock = asyncio.Lock()
        self._started = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    async def start(self) -> None:
        for folder in (
            self.paths.worktrees,
            self.paths.logs,
            self.paths.signals,
            self.paths.signals / "died",
            self.paths.prompts,
            self.paths.scripts,
        ):
            folder.mkdir(parents=True, exist_ok=True)
        armed = asyncio.Event()
        self.daemon.spawn(self._watch_signals(armed), "execution-signals")
        await armed.wait()
        logs_armed = asyncio.Event()
        self.daemon.spawn(self._watch_logs(logs_armed), "execution-logs")
        await logs_armed.wait()
        self._started = True
        for task in await self.store.list_tasks([State.AWAITING_REVIEW]):
            await self._adopt_session(task)
        for task in await self.store.list_tasks([State.GATING]):
            if task.id in self.active:
                continue
            self.active.add(task.id)
            context = await self._run_context(task.id)
            self.daemon.spawn(
                self._locked(
                    task.id,
                    self._gate(task.id, int(context.get("fix_round", 0)), bool(context.get("gates_only"))),
                ),
                f"gates-{task.id}",
            )
        self.kick()

    async def stop(self) -> None:
        self._stopped = True
        for run in self.runs.values():
            run.cancel_timers()

    def panes(self) -> TmuxPanes:
        """The repo's panes on the configured tmux server (a run keeps the server it started on)."""
        key = self.service.settings.tmux_socket
        if key not in self._panes:
            self._panes[key] = panes_for(self.service)
        return self._panes[key]

    def _lock(self, task_id: int) -> asyncio.Lock:
        return self._locks.setdefault(task_id, asyncio.Lock())

    async def _locked(self, task_id: int, coro: Awaitable[None]) -> None:
        async with self._lock(task_id):
            await coro

    # -- events and scheduling -------------------------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        try:
            self._handle_event(event)
        except Exception:  # never break the bus's delivery to others
            log.exception("execution: event %s not handled", event.type)

    def _handle_event(self, event: Event) -> None:
        task_id = event.task_id
        if task_id is None:
            return
        if event.type == EventType.TASK_APPROVED:
            run = self.runs.get(task_id)
            if run is not None:
                # A fresh run or a retry of a reviewed task: its open session ends first.
                self.runs.pop(task_id, None)
                self._end_session(run)
            self.kick()
            return
        if event.type == EventType.AGENT_DONE:
            self.daemon.spawn(self._locked(task_id, self._on_done(task_id)), f"done-{task_id}")
            return
        if event.type == EventType.TASK_REWORK_REQUESTED:
            self.active.add(task_id)  # a rework holds a slot like any run (it may exceed max_parallel)
            self.daemon.spawn(
                self._locked(task_id, self._rework(task_id, str(event.data.get("message", "")))),
                f"rework-{task_id}",
            )
            return
        if event.type == EventType.TASK_STOPPED:
            self.active.discard(task_id)
            self.runs.pop(task_id, None)
            self.kick()
            return
        target = EVENT_STATE.get(event.type)
        held = task_id in self.active or task_id in self.runs
        if target is not None and target not in IN_EXECUTION and held:
            self._release(task_id, target)
        if event.type == EventType.AGENT_INPUT_RESOLVED and event.data.get("source") != "pattern":
            run = self.runs.get(task_id)
            if run is not None:
                run.turn_over.clear()  # a person's answer or the agent's own hook: a turn is running
            if run is not None and run.detector is not None:
                # The person answered: forget the prompt the detector was tracking.
                run.detector = self._detector(run.agent)

    def _release(self, task_id: int, target: State) -> None:
        self.active.discard(task_id)
        if target is State.AWAITING_REVIEW and task_id in self.runs:
            # The session lives on through review: a rework is typed into it; merge or reject end it.
            self.runs[task_id].cancel_timers()
            self.kick()
            return
        run = self.runs.pop(task_id, None)
        if run is not None and not run.exited:
            # The task is over (merged, rejected, cancelled, failed) while its agent still runs: end it.
            self._end_session(run)
        self.kick()

    def _end_session(self, run: Run) -> None:
        """End a run's agent gracefully (its exit, TERM, KILL) and close its window."""
        run.exited = True
        run.cancel_timers()

        async def end() -> None:
            try:
                await self._end_agent(run, graceful=True)
            finally:
                with contextlib.suppress(TmuxError):
                    await asyncio.to_thread(run.panes.kill_window, run.pane.window)

        self.daemon.spawn(end(), f"end-{run.task_id}")

    async def _end_agent(self, run: Run, *, graceful: bool) -> str:
        agent = run.adapter
        marker = agent.marker(run.setup) if run.setup is not None else None
        grace = self.service.settings.stop_grace_s
        try:
            return await sessions.end_agent(
                run.panes,
                run.pane,
                exit_text=agent.exit_text,
                marker=marker,
                grace_s=grace,
                term_s=min(TERM_GRACE_S, max(grace, 0.5)),
                graceful=graceful,
                log_path=self.paths.task_log(run.task_id),
                composer=agent.composer,
            )
        except (TmuxError, OSError) as exc:
            log.warning("ending the agent of task %d: %s", run.task_id, exc)
            return "gone"

    async def _sweep(self, run: Run) -> None:
        try:
            await sessions.end_agent(run.panes, run.pane, exit_text=None, graceful=False,
                                     term_s=min(TERM_GRACE_S, max(self.service.settings.stop_grace_s, 0.5)))
        except (TmuxError, OSError) as exc:
            log.warning("ending what the agent of task %d left running: %s", run.task_id, exc)

    def kick(self) -> None:
        """Start approved tasks while slots are free (coalesced: one scheduling pass at a time)."""
        if not self._started or self._stopped or self._kick_pending:
            return
        self._kick_pending = True
        self.daemon.spawn(self._schedule(), "schedule")

    async def _schedule(self) -> None:
        async with self._schedule_lock:
            self._kick_pending = False
            limit = self.service.settings.max_parallel
            if len(self.active) >= limit:
                return
            for task in await self.store.list_tasks([State.APPROVED]):
                if len(self.active) >= limit:
                    break
                if task.id in self.active:
                    continue
                self.active.add(task.id)
                self.daemon.spawn(self._locked(task.id, self._launch(task.id)), f"launch-{task.id}")

    # -- reading the event log -------------------------------------------------------------------------------

    async def _events_of(self, task_id: int, types: Sequence[str], limit: int) -> list[Event]:
        marks = ",".join("?" * len(types))
        rows = await self.store.query(
            f"SELECT seq, ts, task_id, type, data, key FROM events WHERE task_id = ? AND type IN ({marks}) "
            "ORDER BY seq DESC LIMIT ?",
            (task_id, *types, limit),
        )
        return [
            Event(seq=r[0], ts=r[1], task_id=r[2], type=r[3], data=json.loads(r[4]), key=r[5]) for r in rows
        ]

    async def _run_context(self, task_id: int) -> dict[str, Any]:
        """The data of the task's last task.executing event (fix_round, gates_only, attempt...)."""
        events = await self._events_of(task_id, [EventType.TASK_EXECUTING], 1)
        return dict(events[0].data) if events else {}

    # -- starting a run --------------------------------------------------------------------------------------

    async def _launch(self, task_id: int) -> None:
        try:
            task = await self.store.get_task(task_id)
            if task.state is not State.APPROVED:
                self.active.discard(task_id)
                self.kick()
                return
            approvals = await self._events_of(task_id, [EventType.TASK_APPROVED], 1)
            if approvals and approvals[0].data.get("gates_only"):
                if not task.worktree or not await asyncio.to_thread(Path(task.worktree).is_dir):
                    await self._fail_start(
                        task_id,
                        task.agent or self._backend(task),
                        task.attempt,
                        "the gates cannot run again: the task's worktree is gone",
                    )
                    return
                await self.store.append(
                    task_id,
                    EventType.TASK_EXECUTING,
                    {"attempt": task.attempt, "gates_only": True, "agent": task.agent},
                )
                await self._gate(task_id, 0, True)
                return
            await self._start_agent(task)
        except Exception as exc:
            log.exception("starting task %d failed", task_id)
            await self._fail_quietly(task_id, f"cockpit could not start the task: {exc}")

    def _backend(self, task: Task) -> str:
        return "script" if task.script else self.service.settings.agent_backend

    def agent_home(self, task_id: int) -> Path:
        """The task's own folder for agent files (hooks, MCP config, a per-task agent home)."""
        return self.paths.cockpit / "agents" / f"task-{task_id}"

    def _repo_git_dir(self) -> Path:
        """The main repo's git directory (where a worktree's commits write). Blocks."""
        if self._git_dir is None:
            from cockpit.core import git

            dot_git = self.paths.root / ".git"
            if dot_git.is_dir():
                self._git_dir = dot_git.resolve()
            else:
                result = git.run_git(
                    self.paths.root, "rev-parse", "--path-format=absolute", "--git-common-dir"
                )
                self._git_dir = Path(result.stdout.strip()) if result.ok else dot_git
        return self._git_dir

    def _setup(self, task: Task, backend: str, worktree: Path, prompt_file: Path, fix: bool) -> Setup:
        """The adapter's view of a run. Blocks (writes the task's script file)."""
        script_file: Path | None = None
        if backend == "script" and task.script:
            script_file = self.paths.scripts / f"task-{task.id}.toml"
            script_file.parent.mkdir(parents=True, exist_ok=True)
            script_file.write_text(task.script)
        plan_file = self.paths.plan_file(task.id)
        return Setup(
            task_id=task.id,
            worktree=worktree.absolute(),
            prompt_file=prompt_file.absolute(),
            repo_root=self.paths.root.absolute(),
            home=self.agent_home(task.id).absolute(),
            signals_dir=self.paths.signals.absolute(),
            git_dir=self._repo_git_dir(),
            hook=shlex.join(["sh", str(HOOK_SCRIPT)]),
            python=sys.executable,
            custom_command=self.service.settings.agent_command,
            script_file=script_file,
            plan_file=plan_file if plan_file.exists() else None,
            fix=fix,
            sandbox=self._sandbox_used(),
        )

    def _sandbox_used(self) -> str:
        """The sandbox a run gets, for the adapter to prepare for. Blocks (probes bubblewrap once)."""
        try:
            return sandbox.resolve(self.service.settings.agent_sandbox)
        except ConfigError:
            return "none"  # the pane's start fails with the reason

    def _require(self, task: Task, backend: str, worktree: Path, prompt_file: Path) -> None:
        """Raise CockpitError when the agent is not installed (or its custom command is bad). Blocks."""
        adapter(backend).require(self._setup(task, backend, worktree, prompt_file, False))

    async def _command(
        self, task: Task, backend: str, worktree: Path, prompt_file: Path, fix: bool
    ) -> tuple[AgentCommand, Setup]:
        """The agent's command for this run, with its per-task preparation done (in a thread)."""

        def build() -> tuple[AgentCommand, Setup]:
            setup = self._setup(task, backend, worktree, prompt_file, fix)
            agent = adapter(backend)
            agent.require(setup)
            if setup.home is not None:
                setup.home.mkdir(parents=True, exist_ok=True)
            return agent.launch(setup), setup

        return await asyncio.to_thread(build)

    async def _start_agent(self, task: Task) -> None:
        settings = self.service.settings
        backend = self._backend(task)
        attempt = task.attempt + 1
        started = time.monotonic()
        try:
            plan = await asyncio.to_thread(plan_worktree, self.paths.root, self.paths.worktrees, task)
        except CockpitError as exc:
            await self._fail_start(task.id, backend, attempt, f"cannot prepare the worktree: {exc.message}")
            return
        prompt_file = self.paths.prompts / f"task-{task.id}-{attempt}.md"
        try:
            # Before any worktree is made: a missing agent fails the task at once.
            await asyncio.to_thread(self._require, task, backend, plan.path, prompt_file)
        except CockpitError as exc:
            await self._fail_start(task.id, backend, attempt, exc.message)
            return
        try:
            base_sha = await asyncio.to_thread(materialize, self.paths.root, plan, settings.target_branch)
        except CockpitError as exc:
            await self._fail_start(task.id, backend, attempt, f"cannot create the worktree: {exc.message}")
            return
        try:
            # Prepared once the worktree exists (Codex needs its git directory).
            command, setup = await self._command(task, backend, plan.path, prompt_file, fix=False)
        except CockpitError as exc:
            await self._fail_start(task.id, backend, attempt, exc.message)
            return
        worktree_s = time.monotonic() - started
        prompted = dataclasses.replace(task, branch=plan.branch, worktree=str(plan.path))
        for shape in self.prompt_shapers:
            try:
                prompted = shape(prompted)
            except Exception:  # a broken shaper must not stop the run: the unshaped prompt is complete
                log.exception("a prompt shaper failed for task %d", task.id)
        text = render_prompt(
            prompted,
            settings.gates,
            repo_name=self.service.repo_name,
            worktree=plan.path,
            target_branch=settings.target_branch,
        )
        await asyncio.to_thread(self._write, prompt_file, text)
        await self.store.append(
            task.id,
            EventType.TASK_EXECUTING,
            {
                "branch": plan.branch,
                "worktree": str(plan.path),
                "base_sha": base_sha,
                "agent": backend,
                "attempt": attempt,
                "reused": plan.reuse,
                "worktree_s": round(worktree_s, 4),
                "prompt_file": str(prompt_file),
            },
        )
        await self._open_pane(task.id, attempt, backend, command, plan.path, fix_round=0, setup=setup)

    @staticmethod
    def _write(path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    async def _fail_start(self, task_id: int, backend: str, attempt: int, reason: str) -> None:
        """Fail an approved task before its agent ran (approved -> executing -> failed, one transaction)."""
        async with self.store.tx() as tx:
            task = await tx.get_task(task_id)
            if task.state is State.APPROVED:
                await tx.append(task_id, EventType.TASK_EXECUTING, {"agent": backend, "attempt": attempt})
                task = await tx.get_task(task_id)
            if task.state is State.EXECUTING:
                await tx.append(task_id, EventType.TASK_FAILED, {"reason": reason, "stage": "start"})
        self.active.discard(task_id)
        self.kick()

    async def _fail_quietly(self, task_id: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            async with self.store.tx() as tx:
                task = await tx.get_task(task_id)
                if task.state is State.APPROVED:
                    await tx.append(task_id, EventType.TASK_EXECUTING, {"attempt": task.attempt + 1})
                    task = await tx.get_task(task_id)
                if task.state in RUNNING:
                    await tx.append(task_id, EventType.TASK_FAILED, {"reason": reason})
        self.active.discard(task_id)
        self.kick()

    async def _open_pane(
        self,
        task_id: int,
        attempt: int,
        backend: str,
        command: AgentCommand,
        worktree: Path,
        *,
        fix_round: int,
        setup: Setup | None = None,
    ) -> None:
        """Start the agent's window, record task.pane, watch it (failing the task if it cannot start)."""
        panes = self.panes()
        log_path = self.paths.task_log(task_id)
        label = f"fix attempt {fix_round}, " if fix_round else ""
        header = (
            f"\n===== cockpit: task {task_id}, {label}attempt {attempt}, agent {backend}, "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')} =====\n"
        )
        env = {
            "COCKPIT_REPO": str(self.paths.root),
            "COCKPIT_TASK_ID": str(task_id),
            "COCKPIT_SIGNALS": str(self.paths.signals.absolute()),
            "COCKPIT_WORKTREE": str(worktree),
            # `$COCKPIT_HOOK needs-input`: the agents' hooks' fast path (plain sh; see cockpit/hook.sh).
            "COCKPIT_HOOK": shlex.join(["sh", str(HOOK_SCRIPT)]),
            "COCKPIT_PYTHON": sys.executable,
            **command.env,
        }
        mode = self.service.settings.agent_sandbox
        used = "none"
        offset = 0

        def start() -> PaneRef:
            nonlocal used, offset
            shell, used = sandbox.wrap(command.shell, sandbox.for_task(self.paths, task_id, worktree), mode)
            line = pane_command(shell, self.paths.signals, task_id, attempt)
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(header)
                offset = fh.tell()
            return panes.start_window(
                window_name(task_id),
                worktree,
                line,
                env=env,
                log_path=log_path,
                died_signal=died_signal_path(self.paths.signals, task_id),
            )

        try:
            pane = await asyncio.to_thread(start)
        except (CockpitError, OSError) as exc:
            message = exc.message if isinstance(exc, CockpitError) else str(exc)
            await self.store.append(
                task_id,
                EventType.TASK_FAILED,
                {"reason": f"cannot start the agent's tmux pane: {message}", "stage": "pane"},
            )
            return
        run = Run(
            task_id=task_id,
            attempt=attempt,
            agent=backend,
            panes=panes,
            pane=pane,
            fix_round=fix_round,
            detector=self._detector(backend),
            setup=setup,
            log_offset=offset,
        )
        self.runs[task_id] = run
        await self.store.append(
            task_id,
            EventType.TASK_PANE,
            {
                "pane": pane.target,
                "pane_id": pane.pane_id,
                "socket_name": panes.socket_name,
                "attempt": attempt,
                "sandbox": used,
            },
        )
        if died_signal_path(self.paths.signals, task_id).exists():
            self._spawn_died(run)  # it exited before the run was registered
        # No capture yet: the agent's first output reaches the log, and the log watch takes it from there.

    def _detector(self, agent: str) -> NeedsInputDetector:
        group = ADAPTERS[agent].patterns if agent in ADAPTERS else agent
        try:
            return NeedsInputDetector(group, self.service.settings.needs_input_patterns)
        except UsageError as exc:
            log.error("needs_input_patterns ignored: %s", exc.message)
            return NeedsInputDetector(group)

    # -- recovery --------------------------------------------------------------------------------------------

    async def adopt(self, task_id: int) -> bool:
        """Adopter: claim an executing task whose pane is still there (alive, or dead with its status)."""
        try:
            task = await self.store.get_task(task_id)
            if task.worktree is None:
                return False
            panes = self.panes()
            pane = await asyncio.to_thread(find_task_pane, panes, task_id)
            pending = await self._pending_request(task_id)
            reworked = pending is not None and pending.type == EventType.TASK_REWORK_REQUESTED
            if reworked and (pane is None or not await asyncio.to_thread(panes.pane_alive, pane)):
                # Changes were requested while the daemon was down and the session is gone: a new run.
                assert pending is not None
                self.active.add(task_id)
                message = str(pending.data.get("message", ""))
                self.daemon.spawn(self._locked(task_id, self._rework(task_id, message)), f"rework-{task_id}")
                return True
            if pane is None:
                return False
            context = await self._run_context(task_id)
            if context.get("gates_only"):
                return False
            if not await self._pane_is_this_runs(task_id, pane):
                return False
            alive = await asyncio.to_thread(panes.pane_alive, pane)
            code: int | None = None
            if not alive:
                code = await asyncio.to_thread(panes.exit_status, pane)
                if code is None:
                    code = read_died_signal(died_signal_path(self.paths.signals, task_id))
                if code is None:
                    return False
        except (CockpitError, OSError) as exc:
            log.warning("cannot re-adopt task %d: %s", task_id, exc)
            return False
        agent = task.agent or self._backend(task)
        run = Run(
            task_id=task_id,
            attempt=task.attempt,
            agent=agent,
            panes=panes,
            pane=pane,
            fix_round=int(context.get("fix_round", 0)),
            detector=self._detector(agent),
            setup=await self._adopted_setup(task, agent, context),
            done=task.agent_status == "done",
        )
        self.active.add(task_id)
        self.runs[task_id] = run
        log.info(
            "re-adopted task %d (pane %s, %s)",
            task_id,
            pane.pane_id,
            "running" if alive else f"exited with {code}",
        )
        if alive:
            self._want_capture(run)
            # What was asked while the daemon was down: a done report, or a reviewer's request for changes.
            if pending is not None and pending.type == EventType.AGENT_DONE:
                self.daemon.spawn(self._locked(task_id, self._on_done(task_id)), f"done-{task_id}")
            elif pending is not None:
                message = str(pending.data.get("message", ""))
                self.daemon.spawn(self._locked(task_id, self._rework(task_id, message)), f"rework-{task_id}")
        else:
            self.daemon.spawn(self._locked(task_id, self._agent_exited(run, code)), f"exit-{task_id}")
        return True

    async def _adopted_setup(self, task: Task, agent: str, context: dict[str, Any]) -> Setup | None:
        if not task.worktree:
            return None
        prompt = Path(str(context.get("prompt_file") or self.paths.prompts / f"task-{task.id}.md"))
        try:
            return await asyncio.to_thread(self._setup, task, agent, Path(task.worktree), prompt, False)
        except OSError:
            return None

    async def _pending_request(self, task_id: int) -> Event | None:
        """A done report or rework request recorded after the current run started and not acted on yet."""
        events = await self._events_of(
            task_id, [EventType.TASK_EXECUTING, EventType.AGENT_DONE, EventType.TASK_REWORK_REQUESTED,
                      EventType.TASK_GATING], 1
        )
        if events and events[0].type in (EventType.AGENT_DONE, EventType.TASK_REWORK_REQUESTED):
            return events[0]
        return None

    async def _adopt_session(self, task: Task) -> None:
        """A reviewed task whose agent's session is still open: keep it, for a rework or to end it later."""
        try:
            panes = self.panes()
            pane = await asyncio.to_thread(find_task_pane, panes, task.id)
            if pane is None or not await asyncio.to_thread(panes.pane_alive, pane):
                return
        except (CockpitError, OSError):
            return
        agent = task.agent or self._backend(task)
        context = await self._run_context(task.id)
        self.runs[task.id] = Run(
            task_id=task.id,
            attempt=task.attempt,
            agent=agent,
            panes=panes,
            pane=pane,
            fix_round=int(context.get("fix_round", 0)),
            detector=self._detector(agent),
            setup=await self._adopted_setup(task, agent, context),
            done=True,
        )

    async def _pane_is_this_runs(self, task_id: int, pane: PaneRef) -> bool:
        """Whether the pane found is the current run's (not a dead pane of an earlier attempt)."""
        events = await self._events_of(task_id, [EventType.TASK_EXECUTING, EventType.TASK_PANE], 50)
        after: Event | None = None
        before: Event | None = None
        seen_executing = False
        for event in events:  # newest first
            if event.type == EventType.TASK_EXECUTING and event.data.get("in_session"):
                continue  # a fix or rework typed into the same session started no pane
            if event.type == EventType.TASK_EXECUTING:
                if seen_executing:
                    break
                seen_executing = True
                continue
            if not seen_executing and after is None:
                after = event
            elif seen_executing and before is None:
                before = event
        if after is not None:
            return bool(after.data.get("pane_id") == pane.pane_id)
        # The daemon stopped between starting the pane and recording it: accept any but the last run's pane.
        return before is None or before.data.get("pane_id") != pane.pane_id

    # -- signals ---------------------------------------------------------------------------------------------

    async def _watch_signals(self, armed: asyncio.Event) -> None:
        def interesting(change: filewatch.Change, path: str) -> bool:
            name = Path(path).name
            return (
                change != filewatch.Change.deleted and not name.startswith(".") and not name.endswith(".tmp")
            )

        changes = filewatch.awatch(self.paths.signals, watch_filter=interesting,
                                   stop_event=self.daemon.stopping,
                                   debounce=SIGNAL_DEBOUNCE_MS, recursive=True)
        nxt = asyncio.ensure_future(changes.__anext__())
        await asyncio.sleep(0)  # the watcher is armed once awatch reaches its first wait
        armed.set()
        try:
            await self._drain_signals()  # what was written while nobody watched
            while True:
                try:
                    await nxt
                except StopAsyncIteration:
                    return
                nxt = asyncio.ensure_future(changes.__anext__())
                await self._drain_signals()
        finally:
            await filewatch.close_watch(nxt, changes)

    async def _drain_signals(self) -> None:
        signals, died = await asyncio.to_thread(self._read_signal_files)
        for signal in signals:
            try:
                await self._on_signal(signal)
            except Exception:
                log.exception("signal %s of task %d not handled", signal.kind, signal.task_id)
        for task_id in died:
            run = self.runs.get(task_id)
            if run is not None and not run.exited:
                self._spawn_died(run)
            elif task_id not in self.active:
                # Stale: that run was settled already (a task being set up keeps its file for _open_pane).
                died_signal_path(self.paths.signals, task_id).unlink(missing_ok=True)

    def _read_signal_files(self) -> tuple[list[Signal], list[int]]:
        signals = read_signals(self.paths.signals)
        died: list[int] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in (self.paths.signals / "died").iterdir():
                match = _DIED.match(entry.name)
                if match is not None:
                    died.append(int(match.group(1)))
        return signals, died

    def _spawn_died(self, run: Run, *, closed: bool = False) -> None:
        if run.dying or run.exited:
            return
        run.dying = True
        self.daemon.spawn(self._died(run, closed=closed), f"died-{run.task_id}")

    async def _on_signal(self, signal: Signal) -> None:
        task_id, data = signal.task_id, signal.data
        run = self.runs.get(task_id)
        if signal.kind == "needs_input":
            source = "hook" if data.get("source") == "hook" else "agent"
            await self.set_needs_input(task_id, {**data, "source": source, "signal_ts": signal.ts})
        elif signal.kind == "resolved":
            if run is not None:
                run.turn_over.clear()  # the agent's hooks (a prompt submitted, a tool ran): it is mid-turn
            source = "hook" if data.get("source") == "hook" else "agent"
            await self.clear_needs_input(task_id, {**data, "source": source})
        elif signal.kind == "progress":
            if run is None or run.exited:
                return
            text = str(data.get("text", ""))
            if data.get("step") is not None and data.get("total") is not None:
                text = f"[{data['step']}/{data['total']}] {text}"
            await self._progress_event(
                run, text[:MAX_PROGRESS], {k: data[k] for k in ("step", "total", "phase") if k in data}
            )
        elif signal.kind == "exited":
            if run is None or run.exited:
                return
            if data.get("closed"):
                self._spawn_died(run, closed=True)
            elif isinstance(data.get("reason"), str):
                run.exit_reason = data["reason"]
        elif signal.kind == "done":
            await self.report_done(task_id, data)
        elif signal.kind == "turn_ended":
            await self._turn_ended(task_id, data)

    async def report_done(self, task_id: int, data: JSON) -> bool:
        """The agent says its work is done: record agent.done (the gates follow, see _on_done)."""
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return False
            if task.state is not State.EXECUTING or task.agent_status == "done":
                return False
            event: JSON = {"by": "agent", "attempt": task.attempt, "source": data.get("source", "hook")}
            if data.get("message"):
                event["message"] = str(data["message"])[:MAX_MESSAGE]
            await tx.append(task_id, EventType.AGENT_DONE, event)
        # Straight to the gates (the bus's copy of the event finds the task gating and does nothing).
        self.daemon.spawn(self._locked(task_id, self._on_done(task_id)), f"done-{task_id}")
        return True

    async def _turn_ended(self, task_id: int, data: JSON) -> None:
        """An agent's turn is over: without a done report it now waits for a person (needs_input)."""
        run = self.runs.get(task_id)
        if run is not None:
            run.turn_over.set()
            self.daemon.spawn(self._record_usage(run, data), f"usage-{task_id}")
        if data.get("event") == "SessionEnd":
            return  # the agent is exiting; its exit settles the run
        message = str(data.get("message") or "").strip()[:MAX_MESSAGE]
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return
            if task.state is not State.EXECUTING or task.agent_status in ("done", "exited"):
                return
            turn: JSON = {"attempt": task.attempt, "source": data.get("source", "hook")}
            for key in ("message", "event"):
                if data.get(key):
                    turn[key] = message if key == "message" else data[key]
            await tx.append(task_id, EventType.AGENT_TURN_ENDED, turn)
            if not task.needs_input:
                reason = message or "the agent ended its turn without reporting done"
                await tx.append(
                    task_id,
                    EventType.AGENT_NEEDS_INPUT,
                    {"source": "turn_ended", "message": reason, "event": data.get("event")},
                )

    async def set_needs_input(self, task_id: int, data: JSON) -> bool:
        """Raise the needs_input flag (once); False when it was up already or the agent is not running."""
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return False
            over = task.agent_status in ("exited", "done")
            if task.state is not State.EXECUTING or task.needs_input or over:
                return False
            await tx.append(task_id, EventType.AGENT_NEEDS_INPUT, data)
        return True

    async def clear_needs_input(self, task_id: int, data: JSON) -> bool:
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return False
            if not task.needs_input or task.state is not State.EXECUTING:
                return False
            await tx.append(task_id, EventType.AGENT_INPUT_RESOLVED, data)
        return True

    # -- the panes' output -----------------------------------------------------------------------------------

    async def _watch_logs(self, armed: asyncio.Event) -> None:
        def interesting(change: filewatch.Change, path: str) -> bool:
            return change != filewatch.Change.deleted and _TASK_LOG.match(Path(path).name) is not None

        changes = filewatch.awatch(self.paths.logs, watch_filter=interesting, stop_event=self.daemon.stopping,
                                   debounce=LOG_DEBOUNCE_MS)
        nxt = asyncio.ensure_future(changes.__anext__())
        await asyncio.sleep(0)
        armed.set()
        try:
            while True:
                try:
                    batch = await nxt
                except StopAsyncIteration:
                    return
                nxt = asyncio.ensure_future(changes.__anext__())
                for _change, path in batch:
                    match = _TASK_LOG.match(Path(path).name)
                    run = self.runs.get(int(match.group(1))) if match else None
                    if run is not None and not run.exited:
                        self._want_capture(run)
        finally:
            await filewatch.close_watch(nxt, changes)

    def _want_capture(self, run: Run, delay: float | None = None) -> None:
        """Capture the pane soon: at most one capture in flight and one every CAPTURE_GAP_S per pane."""
        if run.exited or self._stopped:
            return
        if run.capturing:
            run.dirty = True
            if delay is None:
                return
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = max(0.0, run.last_capture + CAPTURE_GAP_S - now) if delay is None else delay
        if run.capture_handle is not None:
            if run.capture_at <= now + wait:
                return  # an earlier capture is already due
            run.capture_handle.cancel()
        run.capture_at = now + wait
        run.capture_handle = loop.call_later(wait, self._capture_due, run)

    def _capture_due(self, run: Run) -> None:
        run.capture_handle = None
        if run.exited or self._stopped:
            return
        if run.capturing:
            run.dirty = True
            return
        run.capturing = True
        self.daemon.spawn(self._capture(run), f"capture-{run.task_id}")

    async def _capture(self, run: Run) -> None:
        try:
            lines = await asyncio.to_thread(run.panes.capture, run.pane, CAPTURE_LINES)
        except (TmuxError, OSError):
            lines = None
        finally:
            run.capturing = False
            run.last_capture = asyncio.get_running_loop().time()
        if run.exited or lines is None or run.detector is None:
            return
        detector = run.detector
        verdict = detector.feed(lines)
        if verdict is True:
            await self.set_needs_input(run.task_id, {"source": "pattern", "line": detector.last_match})
        elif verdict is False:
            await self.clear_needs_input(run.task_id, {"source": "pattern"})
        elif detector.last_match is not None and not detector.waiting:
            self._want_capture(run, CONFIRM_DELAY_S)  # one confirming look
        if run.dirty:
            run.dirty = False
            self._want_capture(run)
        words = run.adapter.progress(clean_lines(lines, CAPTURE_LINES))
        if words:
            self._progress_line(run, words.strip()[:MAX_PROGRESS])

    def _progress_line(self, run: Run, text: str) -> None:
        """Latest output line as agent.progress, at most one per PROGRESS_INTERVAL_S (the last one lands)."""
        if not text or text == run.progress_sent:
            return
        run.progress_text = text
        if run.progress_handle is not None or run.progress_busy:
            return  # the one due (or the write in flight) takes the latest text
        loop = asyncio.get_running_loop()
        wait = run.progress_at + PROGRESS_INTERVAL_S - loop.time()
        if wait <= 0:
            self._flush_progress(run)
        else:
            run.progress_handle = loop.call_later(wait, self._flush_progress, run)

    def _flush_progress(self, run: Run) -> None:
        run.progress_handle = None
        text = run.progress_text
        if run.exited or text is None or text == run.progress_sent:
            return
        run.progress_sent = text
        run.progress_busy = True
        self.daemon.spawn(self._screen_progress(run, text), f"progress-{run.task_id}")

    async def _screen_progress(self, run: Run, text: str) -> None:
        try:
            await self._progress_event(run, text, {"source": "screen"})
        finally:
            # The interval counts from the write: a slow store never lets two events land closer together.
            run.progress_busy = False
            loop = asyncio.get_running_loop()
            run.progress_at = loop.time()
            if not run.exited and run.progress_text not in (None, run.progress_sent):
                run.progress_handle = loop.call_later(PROGRESS_INTERVAL_S, self._flush_progress, run)

    async def _progress_event(self, run: Run, text: str, extra: JSON) -> None:
        async with self.store.tx() as tx:
            task = await tx.get_task(run.task_id)
            if task.state is State.EXECUTING and not run.exited:
                await tx.append(run.task_id, EventType.AGENT_PROGRESS, {"text": text, **extra})

    # -- exits -----------------------------------------------------------------------------------------------

    async def _died(self, run: Run, *, closed: bool = False) -> None:
        """The pane-died hook (or the HUP trap) fired: read the status from tmux and settle the run."""
        try:
            alive = await asyncio.to_thread(run.panes.pane_alive, run.pane)
            if alive:
                return  # a stale signal of an earlier run
            code = await asyncio.to_thread(run.panes.exit_status, run.pane)
            if code is None and not closed:
                code = read_died_signal(died_signal_path(self.paths.signals, run.task_id))
        except (TmuxError, OSError) as exc:
            log.warning("cannot read the exit of task %d: %s", run.task_id, exc)
            code = None
        async with self._lock(run.task_id):
            await self._agent_exited(run, code)

    async def _agent_exited(self, run: Run, code: int | None) -> None:
        """Settle a run: gates on exit 0, failed on any other status, interrupted when the pane is gone."""
        if run.exited or self.runs.get(run.task_id) is not run:
            return
        run.exited = True
        run.cancel_timers()
        self.runs.pop(run.task_id, None)
        died_signal_path(self.paths.signals, run.task_id).unlink(missing_ok=True)
        # What the agent left running in its pane's session ends with it (TERM, then KILL); the window stays
        # for reading. Off the exit-to-gates path.
        self.daemon.spawn(self._sweep(run), f"sweep-{run.task_id}")
        task_id = run.task_id
        await self._record_usage(run, {})
        try:
            task = await self.store.get_task(task_id)
            exited: JSON = {"code": code, "attempt": run.attempt, "reason": run.exit_reason}
            if task.state is not State.EXECUTING:
                if task.state in (State.GATING, State.AWAITING_REVIEW):
                    # The agent left after reporting done (on its own, or a person ended it): for the record.
                    await self.store.append(task_id, EventType.AGENT_EXITED, exited)
                return
            pane_gone = code is None and not await asyncio.to_thread(self._pane_exists, run)
            await self.store.append(task_id, EventType.AGENT_EXITED, exited)
            if code == 0 or task.agent_status == "done":
                continuation = await self._before_gates(task_id)
                if continuation is not None:
                    await self._continue(task_id, continuation)
                    return
                await self._gate(task_id, run.fix_round, False)
                return
            if pane_gone:
                await self.store.append(
                    task_id,
                    EventType.TASK_INTERRUPTED,
                    {
                        "reason": "the agent's pane was closed before the agent finished; the worktree and "
                        "branch "
                        f"are kept: `cockpit task retry {task_id}` runs it again"
                    },
                )
                return
            tail = await asyncio.to_thread(self._exit_tail, run)
            what = (
                f"the agent exited with code {code}"
                if code is not None
                else "the agent's exit status is unknown"
            )
            reason = what + (f": {run.exit_reason}" if run.exit_reason else "")
            if tail:
                reason += "\nlast lines of its output:\n" + "\n".join(tail)
            await self.store.append(
                task_id,
                EventType.TASK_FAILED,
                {"reason": reason, "exit_code": code, "log_tail": tail, "stage": "agent"},
            )
        except CockpitError as exc:
            log.warning("task %d: exit of attempt %d not recorded: %s", task_id, run.attempt, exc.message)

    @staticmethod
    def _pane_exists(run: Run) -> bool:
        try:
            return run.panes.find_pane(run.pane.window) is not None
        except TmuxError:
            return False

    def _exit_tail(self, run: Run) -> list[str]:
        try:
            lines = run.panes.capture(run.pane, FAIL_TAIL_LINES * 3)
        except TmuxError:
            lines = read_log_tail(self.paths.task_log(run.task_id), FAIL_TAIL_LINES * 3)
        lines = [line.rstrip() for line in lines]
        while lines and not lines[-1]:
            lines.pop()
        return lines[-FAIL_TAIL_LINES:]

    # -- gates and the fix cycle -----------------------------------------------------------------------------

    async def _gate(self, task_id: int, fix_round: int, gates_only: bool) -> None:
        """Run the gates in the task's worktree; review, a fix attempt, or failure follows."""
        current = asyncio.current_task()
        if current is not None:
            self._gating[task_id] = current
        try:
            await self._run_gates(task_id, fix_round, gates_only)
        finally:
            if self._gating.get(task_id) is current:
                self._gating.pop(task_id, None)

    async def _run_gates(self, task_id: int, fix_round: int, gates_only: bool) -> None:
        settings = self.service.settings
        try:
            task = await self.store.get_task(task_id)
            if task.state not in RUNNING:
                return
            # (Re-)entering gating clears the previous results.
            await self.store.append(
                task_id,
                EventType.TASK_GATING,
                {"attempt": task.attempt, "fix_round": fix_round, "gates_only": gates_only},
            )
            worktree = Path(task.worktree) if task.worktree else None
            if worktree is None:
                await self.store.append(
                    task_id, EventType.TASK_FAILED, {"reason": "the task has no worktree to check",
                                                     "stage": "gates"}
                )
                return
            base_sha = task.base_sha
            if not base_sha:
                base_sha = await asyncio.to_thread(self._base_sha, worktree)
            rule = TddRule.from_settings(
                settings.tdd_enabled, settings["tdd.source_patterns"], settings["tdd.test_patterns"]
            )

            async def started(name: str) -> None:
                await self.store.append(task_id, EventType.GATE_STARTED, {"name": name,
                                                                          "attempt": task.attempt})

            async def finished(result: GateResult) -> None:
                await self.store.append(
                    task_id, EventType.GATE_FINISHED, {**result.to_json(), "attempt": task.attempt}
                )

            # The commit the gates check: a merge takes exactly it (a later commit needs the gates again).
            gated_sha = await asyncio.to_thread(self._head, worktree)
            results = await run_gates(
                worktree,
                base_sha,
                settings.gates,
                tdd=rule,
                log_path=self.paths.gate_log(task_id),
                on_started=started,
                on_finished=finished,
            )
            failed = [r for r in results if r.status != "passed"]
            if not failed:
                reason = await self._review_guards(task_id)
                if reason is not None:
                    await self.store.append(
                        task_id, EventType.TASK_FAILED, {"reason": reason, "stage": "review_guard"}
                    )
                else:
                    await self.store.append(
                        task_id, EventType.TASK_AWAITING_REVIEW, {"attempt": task.attempt,
                                                                  "gated_sha": gated_sha}
                    )
                return
            if not gates_only and fix_round < settings.fix_attempts:
                await self._start_fix(task_id, failed, fix_round + 1)
                return
            reason = f"gates failed: {_gate_summary(failed)}"
            if fix_round:
                reason += f" (after {fix_round} fix attempt{'s' if fix_round != 1 else ''})"
            await self.store.append(
                task_id,
                EventType.TASK_FAILED,
                {"reason": reason, "stage": "gates", "failed_gates": [r.name for r in failed]},
            )
        except CockpitError as exc:
            log.warning("task %d: gates not recorded: %s", task_id, exc.message)
        except Exception as exc:
            log.exception("task %d: running the gates crashed", task_id)
            await self._fail_quietly(task_id, f"running the gates crashed: {exc}")

    def _head(self, worktree: Path) -> str | None:
        from cockpit.core import git

        return git.head_sha(worktree)

    def _base_sha(self, worktree: Path) -> str:
        from cockpit.core import git

        target = self.service.settings.target_branch
        head = git.head_sha(worktree) or "HEAD"
        base = git.merge_base(self.paths.root, git.branch_ref(target), head)
        return base or (git.ref_sha(self.paths.root, target) or head)

    async def _review_guards(self, task_id: int) -> str | None:
        for guard in list(self.review_guards):
            try:
                reason = await guard(task_id)
            except Exception as exc:  # fail closed
                log.exception("review guard failed for task %d", task_id)
                return f"a review check crashed: {exc}"
            if reason:
                return reason
        return None

    async def _start_fix(self, task_id: int, failed: list[GateResult], fix_round: int) -> None:
        """Send the agent back into the same worktree with the fixer prompt (gating -> executing)."""
        settings = self.service.settings
        task = await self.store.get_task(task_id)
        backend = self._backend(task)
        attempt = task.attempt + 1
        worktree = Path(task.worktree or "")
        prompt_file = self.paths.prompts / f"task-{task_id}-{attempt}-fix.md"
        text = render_fix_prompt(
            task,
            failed,
            settings.gates,
            repo_name=self.service.repo_name,
            worktree=worktree,
            target_branch=settings.target_branch,
        )
        fix_data: JSON = {
            "agent": backend,
            "attempt": attempt,
            "fix": True,
            "fix_round": fix_round,
            "failed_gates": [r.name for r in failed],
            "prompt_file": str(prompt_file),
        }
        live = await self._live_run(task_id)
        if live is not None:
            # The agent's session is still open: the fix prompt goes into the same conversation.
            await asyncio.to_thread(self._write, prompt_file, text)
            live.fix_round = fix_round
            await self._type_into(live, typed_request("fix", prompt_file), fix_data)
            return
        try:
            command, setup = await self._command(task, backend, worktree, prompt_file, fix=True)
        except CockpitError as exc:
            await self.store.append(
                task_id,
                EventType.TASK_FAILED,
                {
                    "reason": f"gates failed: {_gate_summary(failed)}; "
                    f"the fix attempt could not start: {exc.message}",
                    "stage": "fix",
                },
            )
            return
        await asyncio.to_thread(self._write, prompt_file, text)
        await self.store.append(task_id, EventType.TASK_EXECUTING, fix_data)
        await self._open_pane(task_id, attempt, backend, command, worktree, fix_round=fix_round, setup=setup)

    async def _live_run(self, task_id: int) -> Run | None:
        """The task's run whose agent session is still open (its pane alive), else None."""
        run = self.runs.get(task_id)
        if run is None or run.exited:
            return None
        try:
            alive = await asyncio.to_thread(run.panes.pane_alive, run.pane)
        except TmuxError:
            alive = False
        return run if alive else None

    async def _type_into(self, run: Run, typed: str, data: JSON) -> None:
        """A new piece of work for a live session: record it (task.executing, in_session), then type it
        once the agent's turn is over (at once for agents without turn hooks)."""
        run.done = False
        run.detector = self._detector(run.agent)
        await self.store.append(run.task_id, EventType.TASK_EXECUTING, {**data, "in_session": True})
        self.daemon.spawn(self._deliver(run, typed), f"type-{run.task_id}")

    async def _deliver(self, run: Run, typed: str) -> None:
        if run.adapter.turn_hooks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.turn_over.wait(), TURN_WAIT_S)
        if run.exited or self.runs.get(run.task_id) is not run:
            return
        run.turn_over.clear()
        try:
            await sessions.submit(
                run.panes, run.pane, typed, run.adapter.submit, log_path=self.paths.task_log(run.task_id),
                composer=run.adapter.composer,
            )  # fmt: skip
        except TmuxError as exc:
            log.warning("task %d: typing into the agent's session failed: %s", run.task_id, exc.message)
        self._want_capture(run)

    async def _before_gates(self, task_id: int) -> str | None:
        if not self.before_gates:
            return None
        task = await self.store.get_task(task_id)
        # A task with delegate steps may wait here for peers' work for as long as a person there takes: its
        # agent has exited, so it gives its slot back meanwhile (a peer's request back into this repo must
        # be able to run, or two repos could wait on each other for ever). It takes the slot again after,
        # even when that means more than max_parallel for a while.
        waits = any(step.verb == "delegate" for step in task.plan) or bool(task.children)
        if waits and task_id in self.active:
            self.active.discard(task_id)
            self.kick()
        try:
            for hook in list(self.before_gates):
                try:
                    prompt = await hook(task_id)
                except Exception:  # the review guards still stop a task that is not ready
                    log.exception("a before_gates hook failed for task %d", task_id)
                    continue
                if prompt is not None:
                    return prompt
            return None
        finally:
            if waits and (await self.store.get_task(task_id)).state is State.EXECUTING:
                self.active.add(task_id)

    async def _continue(self, task_id: int, prompt: str) -> None:
        """A continuation run: the agent again in the same worktree, on a prompt from a before_gates hook."""
        task = await self.store.get_task(task_id)
        if task.state is not State.EXECUTING:
            return
        backend = self._backend(task)
        attempt = task.attempt + 1
        worktree = Path(task.worktree or "")
        prompt_file = self.paths.prompts / f"task-{task_id}-{attempt}-continue.md"
        live = await self._live_run(task_id)
        if live is not None:
            await asyncio.to_thread(self._write, prompt_file, prompt)
            typed = f"Cockpit has more for you: read {prompt_file} and follow it; report done again after."
            data: JSON = {
                "agent": backend, "attempt": attempt, "continuation": True, "prompt_file": str(prompt_file)
            }
            await self._type_into(live, typed, data)
            return
        try:
            command, setup = await self._command(task, backend, worktree, prompt_file, fix=False)
        except CockpitError as exc:
            await self.store.append(
                task_id,
                EventType.TASK_FAILED,
                {"reason": f"the continuation run could not start: {exc.message}", "stage": "continue"},
            )
            return
        await asyncio.to_thread(self._write, prompt_file, prompt)
        await self.store.append(
            task_id,
            EventType.TASK_EXECUTING,
            {"agent": backend, "attempt": attempt, "continuation": True, "prompt_file": str(prompt_file)},
        )
        await self._open_pane(task_id, attempt, backend, command, worktree, fix_round=0, setup=setup)

    # -- done, rework, usage ---------------------------------------------------------------------------------

    async def _on_done(self, task_id: int) -> None:
        """The agent reported done: the gates run, with its session still open."""
        try:
            task = await self.store.get_task(task_id)
        except CockpitError:
            return
        if task.state is not State.EXECUTING or task.agent_status != "done":
            return
        run = self.runs.get(task_id)
        if run is not None:
            run.done = True
            run.cancel_timers()
            self.daemon.spawn(self._record_usage(run, {}), f"usage-{task_id}")  # not on the way to the gates
            fix_round = run.fix_round
        else:
            fix_round = int((await self._run_context(task_id)).get("fix_round", 0))
        self.active.add(task_id)
        try:
            continuation = await self._before_gates(task_id)
            if continuation is not None:
                await self._continue(task_id, continuation)
                return
            await self._gate(task_id, fix_round, False)
        except CockpitError as exc:
            log.warning("task %d: done not processed: %s", task_id, exc.message)

    async def _rework(self, task_id: int, message: str) -> None:
        """A reviewer's request for changes: typed into the live session, or a new run in the worktree."""
        try:
            task = await self.store.get_task(task_id)
            pending = await self._pending_request(task_id)
            asked = pending is not None and pending.type == EventType.TASK_REWORK_REQUESTED
            if not asked or task.state is not State.EXECUTING:
                return
            settings = self.service.settings
            backend = task.agent or self._backend(task)
            attempt = task.attempt + 1
            worktree = Path(task.worktree or "")
            prompt_file = self.paths.prompts / f"task-{task_id}-{attempt}-rework.md"
            text = render_rework_prompt(
                task, message, repo_name=self.service.repo_name, worktree=worktree,
                target_branch=settings.target_branch,
            )  # fmt: skip
            await asyncio.to_thread(self._write, prompt_file, text)
            data: JSON = {
                "agent": backend, "attempt": attempt, "rework": True, "prompt_file": str(prompt_file)
            }
            live = await self._live_run(task_id)
            if live is not None:
                await self._type_into(live, typed_request("rework", prompt_file, message), data)
                return
            try:
                command, setup = await self._command(task, backend, worktree, prompt_file, fix=False)
            except CockpitError as exc:
                await self.store.append(
                    task_id, EventType.TASK_FAILED,
                    {"reason": f"the requested changes could not start: {exc.message}", "stage": "rework"},
                )  # fmt: skip
                return
            await self.store.append(task_id, EventType.TASK_EXECUTING, data)
            await self._open_pane(task_id, attempt, backend, command, worktree, fix_round=0, setup=setup)
        except CockpitError as exc:
            log.warning("task %d: rework not started: %s", task_id, exc.message)
        except Exception as exc:
            log.exception("task %d: rework crashed", task_id)
            await self._fail_quietly(task_id, f"the requested changes could not start: {exc}")

    async def _record_usage(self, run: Run, hint: JSON) -> None:
        """Read the agent's token usage from its own files; record agent.usage when it changed."""
        for key in ("transcript_path", "session_id"):
            if isinstance(hint.get(key), str) and hint[key]:
                run.extra[key] = hint[key]
        setup = run.setup
        if setup is None:
            return
        agent = run.adapter
        log_path = self.paths.task_log(run.task_id)

        def read() -> Usage | None:
            text = ""
            if agent.reads_log:
                try:
                    with open(log_path, "rb") as fh:
                        fh.seek(run.log_offset)
                        text = "\n".join(clean_output(fh.read().decode("utf-8", errors="replace")))
                except OSError:
                    text = ""
            return agent.usage(setup, dict(run.extra), text)

        try:
            usage = await asyncio.to_thread(read)
        except Exception:  # a usage file in a shape we do not know must never break the run
            log.exception("task %d: reading the agent's usage failed", run.task_id)
            return
        if usage is None:
            return
        seen = (usage.input_tokens, usage.output_tokens, usage.cost_usd)
        if seen == run.usage_sent:
            return
        run.usage_sent = seen
        with contextlib.suppress(CockpitError):
            await self.store.append(run.task_id, EventType.AGENT_USAGE, usage.to_json(run.attempt))

    # -- stop and cancel -------------------------------------------------------------------------------------

    async def _stop_agent(self, task: Task) -> str:
        """End the task's agent now (exit, TERM, KILL) and cancel its gates; return how it ended."""
        gate = self._gating.pop(task.id, None)
        if gate is not None and gate is not asyncio.current_task():
            gate.cancel()
        run = self.runs.pop(task.id, None)
        if run is None:
            panes = self.panes()
            pane = await asyncio.to_thread(find_task_pane, panes, task.id)
            if pane is None:
                return "gone"
            agent = task.agent or "custom"
            run = Run(task_id=task.id, attempt=task.attempt, agent=agent, panes=panes, pane=pane)
        run.exited = True
        run.cancel_timers()
        await self._record_usage(run, {})
        return await self._end_agent(run, graceful=True)

    async def op_stop_task(self, args: dict[str, Any]) -> JSON:
        """`stop_task {id, reason?}`: end the agent gracefully, then TERM, then KILL; task interrupted."""
        task_id = arg_int(args, "id")
        by = arg_str(args, "by", "person")
        reason = arg_str(args, "reason", "")
        task = await self.store.get_task(task_id)
        if task.state not in RUNNING:
            raise RefusedError(
                f"task {task_id} is {task.state.value}; only an executing or gating task can be stopped",
                code="not_running",
            )
        how = await self._stop_agent(task)
        after = await record_stop(self.service, task_id, by=by, reason=reason, how=how)
        return await self.daemon.ops.task_json(after)

    async def op_cancel_task(self, args: dict[str, Any]) -> JSON:
        """`cancel_task` of an executing or gating task stops its agent first, then cancels."""
        task_id = arg_int(args, "id")
        task = await self.store.get_task(task_id)
        if task.state not in RUNNING:
            assert self._plain_cancel is not None
            return await self._plain_cancel(args)
        by = arg_str(args, "by", "person")
        how = await self._stop_agent(task)
        reason = arg_opt_str(args, "reason") or ""
        after = await record_stop(self.service, task_id, by=by, reason=reason, how=how, cancel=True)
        return await self.daemon.ops.task_json(after)

    # -- the daemon-only op ----------------------------------------------------------------------------------

    async def op_run_gates(self, args: dict[str, Any]) -> JSON:
        """`run_gates {id}`: check a finished task's worktree again (approved -> executing -> gating)."""
        task_id = arg_int(args, "id")
        by = principals.by_label(arg_opt_str(args, "by"))
        task = await self.store.get_task(task_id)
        if task.state is State.EXECUTING:
            raise CockpitError(
                f"task {task_id} is executing: its gates run when its agent finishes", code="refused"
            )
        if task.state in (State.GATING, State.APPROVED):
            raise CockpitError(
                f"task {task_id} is {task.state.value}: its gates are about to run already", code="refused"
            )
        if task.state not in (State.AWAITING_REVIEW, State.FAILED, State.INTERRUPTED):
            raise CockpitError(
                f"task {task_id} is {task.state.value}; gates re-run only for awaiting_review, "
                "failed or interrupted tasks",
                code="refused",
            )
        if not task.worktree or not await asyncio.to_thread(Path(task.worktree).is_dir):
            raise CockpitError(
                f"task {task_id} has no worktree any more; run it again with `cockpit task retry {task_id}`",
                code="refused",
            )
        _, after = await self.store.append(
            task_id, EventType.TASK_APPROVED, {"by": by, "gates_only": True}, action="re-run the gates of"
        )
        assert after is not None
        return await self.daemon.ops.task_json(after)


def install(daemon: Daemon) -> Executor:
    executor = Executor(daemon)
    daemon.components.append(executor)
    daemon.adopters.append(executor.adopt)
    # Every committed event, including other writers' (caught up from the store by the bus).
    daemon.bus.waiters.add(executor._on_event)
    daemon.ops.handlers["run_gates"] = executor.op_run_gates
    executor._plain_cancel = daemon.ops.handlers["cancel_task"]
    daemon.ops.handlers["stop_task"] = executor.op_stop_task
    daemon.ops.handlers["cancel_task"] = executor.op_cancel_task
    # The executor ends a rejected task's session itself (its exit first), on the task.rejected event.
    daemon.ops.handlers["reject_task"] = daemon.ops.reject_task
    return executor
