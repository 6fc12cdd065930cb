"""The agent's session around its work: done reports, reworks typed into it, usage, stop and cancel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from cockpit.core import principals, sessions
from cockpit.core.agents import Usage
from cockpit.core.errors import CockpitError, RefusedError, TmuxError
from cockpit.core.events import EventType
from cockpit.core.execution_ops import clean_output, find_task_pane, record_stop
from cockpit.core.models import JSON, Task
from cockpit.core.ops import arg_int, arg_opt_str, arg_str
from cockpit.core.prompts import render_rework_prompt, typed_request
from cockpit.core.states import RUNNING, State
from cockpit.daemon.runs import TERM_GRACE_S, ExecutorBase, Run

log = logging.getLogger("cockpit.daemon.execution")


class AgentSessions(ExecutorBase):
    """A run's live session: done reports, rework, usage, stop and cancel, re-run gates."""

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
