"""Starting runs: the scheduler, the worktree and prompt of a run, the agent's command and its tmux pane."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import shlex
import sys
import time
from pathlib import Path

from cockpit.core import sandbox
from cockpit.core.agents import ADAPTERS, AgentCommand, Setup, adapter
from cockpit.core.errors import CockpitError, ConfigError, UsageError
from cockpit.core.events import EventType
from cockpit.core.execution_ops import died_signal_path, window_name
from cockpit.core.models import Task
from cockpit.core.needs_input import NeedsInputDetector
from cockpit.core.prompts import render_prompt
from cockpit.core.states import RUNNING, State
from cockpit.core.tmux import PaneRef
from cockpit.core.worktrees import materialize, plan_worktree
from cockpit.daemon.runs import HOOK_SCRIPT, ExecutorBase, Run, pane_command

log = logging.getLogger("cockpit.daemon.execution")


class Launching(ExecutorBase):
    """Scheduling, and starting an agent's run in its tmux pane (worktree, prompt, command, pane)."""

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
