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

The parts, by duty: `launching`, `adoption`, `agent_signals`, `gating`, `agent_sessions`, over the shared
state in `runs` (`ExecutorBase`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from cockpit.core.events import EventType
from cockpit.core.execution_ops import panes_for
from cockpit.core.models import Event
from cockpit.core.projection import EVENT_STATE
from cockpit.core.states import IN_EXECUTION, State
from cockpit.core.tmux import TmuxPanes
from cockpit.daemon.adoption import Adoption
from cockpit.daemon.agent_sessions import AgentSessions
from cockpit.daemon.agent_signals import AgentSignals
from cockpit.daemon.gating import Gating
from cockpit.daemon.launching import Launching
from cockpit.daemon.runs import Run, pane_command
from cockpit.daemon.server import Daemon

log = logging.getLogger("cockpit.daemon.execution")

__all__ = ["Executor", "Run", "install", "pane_command"]


class Executor(AgentSessions, Gating, AgentSignals, Adoption, Launching):
    """Scheduler, panes, signals, gates and sessions of the repo's tasks (the parts are in their modules)."""

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
