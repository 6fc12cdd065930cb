"""Recovery after a restart: re-adopting an executing task's pane, or a reviewed task's open session."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from cockpit.core.agents import Setup
from cockpit.core.errors import CockpitError
from cockpit.core.events import EventType
from cockpit.core.execution_ops import died_signal_path, find_task_pane
from cockpit.core.models import Event, Task
from cockpit.core.tmux import PaneRef, read_died_signal
from cockpit.daemon.runs import ExecutorBase, Run

log = logging.getLogger("cockpit.daemon.execution")


class Adoption(ExecutorBase):
    """Re-attaching to runs a restarted daemon finds (live panes, exits while it was down, open sessions)."""

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
