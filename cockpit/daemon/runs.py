"""A run of an agent in its pane, and the state the executor's parts share (see `execution`).

The executor is one object made of parts by duty (launching, adoption, agent_signals, gating,
agent_sessions); each part is a class over `ExecutorBase`, which holds the shared state and names the
methods one part calls in another.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core.agents import ADAPTERS, Agent, AgentCommand, Setup
from cockpit.core.models import JSON, Event, GateResult, Task
from cockpit.core.needs_input import NeedsInputDetector
from cockpit.core.tmux import PaneRef, TmuxPanes
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


class ExecutorBase:
    """The executor's shared state; the methods below are defined by its parts (see `execution.Executor`)."""

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

    def panes(self) -> TmuxPanes:
        raise NotImplementedError

    def _lock(self, task_id: int) -> asyncio.Lock:
        raise NotImplementedError

    async def _locked(self, task_id: int, coro: Awaitable[None]) -> None:
        raise NotImplementedError

    def _end_session(self, run: Run) -> None:
        raise NotImplementedError

    async def _sweep(self, run: Run) -> None:
        raise NotImplementedError

    def kick(self) -> None:
        raise NotImplementedError

    async def _events_of(self, task_id: int, types: Sequence[str], limit: int) -> list[Event]:
        raise NotImplementedError

    async def _run_context(self, task_id: int) -> dict[str, Any]:
        raise NotImplementedError

    def _backend(self, task: Task) -> str:
        raise NotImplementedError

    def _setup(self, task: Task, backend: str, worktree: Path, prompt_file: Path, fix: bool) -> Setup:
        raise NotImplementedError

    async def _command(
        self, task: Task, backend: str, worktree: Path, prompt_file: Path, fix: bool
    ) -> tuple[AgentCommand, Setup]:
        raise NotImplementedError

    @staticmethod
    def _write(path: Path, text: str) -> None:
        raise NotImplementedError

    async def _fail_quietly(self, task_id: int, reason: str) -> None:
        raise NotImplementedError

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
        raise NotImplementedError

    def _detector(self, agent: str) -> NeedsInputDetector:
        raise NotImplementedError

    async def _pending_request(self, task_id: int) -> Event | None:
        raise NotImplementedError

    async def _adopt_session(self, task: Task) -> None:
        raise NotImplementedError

    async def _watch_signals(self, armed: asyncio.Event) -> None:
        raise NotImplementedError

    def _spawn_died(self, run: Run, *, closed: bool = False) -> None:
        raise NotImplementedError

    async def _watch_logs(self, armed: asyncio.Event) -> None:
        raise NotImplementedError

    def _want_capture(self, run: Run, delay: float | None = None) -> None:
        raise NotImplementedError

    async def _died(self, run: Run, *, closed: bool = False) -> None:
        raise NotImplementedError

    async def _agent_exited(self, run: Run, code: int | None) -> None:
        raise NotImplementedError

    async def _gate(self, task_id: int, fix_round: int, gates_only: bool) -> None:
        raise NotImplementedError

    async def _live_run(self, task_id: int) -> Run | None:
        raise NotImplementedError

    async def _type_into(self, run: Run, typed: str, data: JSON) -> None:
        raise NotImplementedError

    async def _before_gates(self, task_id: int) -> str | None:
        raise NotImplementedError

    async def _continue(self, task_id: int, prompt: str) -> None:
        raise NotImplementedError

    async def _on_done(self, task_id: int) -> None:
        raise NotImplementedError

    async def _rework(self, task_id: int, message: str) -> None:
        raise NotImplementedError

    async def _record_usage(self, run: Run, hint: JSON) -> None:
        raise NotImplementedError
