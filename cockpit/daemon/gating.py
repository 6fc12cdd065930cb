"""From an agent's exit to review: the before-gates hold, continuation runs, the gates and the fix cycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from cockpit.core import sessions
from cockpit.core.errors import CockpitError, TmuxError
from cockpit.core.events import EventType
from cockpit.core.execution_ops import died_signal_path, read_log_tail
from cockpit.core.gates import TddRule, run_gates
from cockpit.core.models import JSON, GateResult
from cockpit.core.prompts import render_fix_prompt, typed_request
from cockpit.core.states import RUNNING, State
from cockpit.core.tmux import read_died_signal
from cockpit.daemon.runs import FAIL_TAIL_LINES, TURN_WAIT_S, ExecutorBase, Run, _gate_summary

log = logging.getLogger("cockpit.daemon.execution")


class Gating(ExecutorBase):
    """An agent's exit, the hold before the gates, the gates, and the fix cycle."""

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
