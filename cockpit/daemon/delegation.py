"""The daemon's part in cross-repo delegation: intake of peers' requests, and the step executor.

Intake: a peer's request lands in this repo at `created` (through `create_task` with `no_wait`, or written
straight into the store while this daemon was down); the daemon classifies it in the background, so the
sender's connection never holds a classification, and a fallback write made while the daemon starts is not
missed.

The step executor: when a task whose plan has `delegate` steps starts executing, the daemon performs those
steps itself. Each becomes a task in the peer repo (the step's description, linked to this task), sent as soon
as the delegate steps it depends on are done, and followed until it finishes (over the peer's socket, or its
store while its daemon is down). Every change of the peer task is recorded on the step (`step.updated`), shown
as the task's progress and written to its log ("peer task frontend#4 pending, awaiting approval").

The agent's first run gets only the local steps that need no delegated work; local steps that depend on a
delegate step are held back (`deferred`). When the agent exits, the executor's `before_gates` hook waits for
the delegated children: a failed, rejected, cancelled or rolled-back child fails the task with the child's
reason (at once, even while the agent still runs); once all are done, the held-back steps get a continuation
run of the agent in the same worktree, and only then do the gates run. A review guard makes sure no task
reaches awaiting_review before its children are done.

Children an agent creates itself (`create_remote_task` through the MCP tools, linked to its task) hold the
task the same way: each is followed from the moment it is sent, a failed, rejected, cancelled, interrupted or
rolled-back one fails the task with the child named, and the gates wait until all of them are done.

Finishing children tell their parent: when a task that came from a peer finishes here, this daemon calls the
parent repo's `child_finished` op (its socket, or its store), which reads the child's state back and records
it, so a child that fails or is rolled back after its parent went to review or was merged still marks the
parent (`child_failure`, shown by `cockpit task show` and the cockpit).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from pathlib import Path

from cockpit.core.backend import backend_for
from cockpit.core.delegation.describe import describe
from cockpit.core.delegation.peers import PeerRef, Sender, open_peer
from cockpit.core.delegation.sender import Delegation
from cockpit.core.delegation.wait import wait_peer_task
from cockpit.core.errors import CockpitError
from cockpit.core.events import EventType
from cockpit.core.models import JSON, Event, Link, PlanStep, Task
from cockpit.core.prompts import render_prompt
from cockpit.core.states import FINISHED, RUNNING, State
from cockpit.core.workspace import repo_identity
from cockpit.daemon.execution import Executor
from cockpit.daemon.plan_shape import (
    agent_children,
    continuation_prompt,
    delegate_steps,
    failed_children,
    holds,
    open_children,
    ready_delegates,
    waits_on_delegates,
)
from cockpit.daemon.server import Daemon

log = logging.getLogger("cockpit.delegation")

DEFERRED = "deferred"
# A child's finish its parent hears of, from the child's side.
FINISH_EVENTS = frozenset({EventType.TASK_FAILED, EventType.TASK_REJECTED, EventType.TASK_CANCELLED,
                           EventType.TASK_INTERRUPTED, EventType.MERGE_ROLLED_BACK, EventType.MERGE_FINISHED,
                           EventType.TASK_DONE})
NOTIFY_TIMEOUT_S = 15.0


class RemoteIntake:
    """Classify tasks that peers record here at `created`; keep the repo's name and peers current."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self._classifying: set[int] = set()

    async def start(self) -> None:
        self.daemon.bus.waiters.add(self._on_event)
        # A fallback write that committed after the daemon's recovery pass, but before its file watch ran.
        for task in await self.daemon.store.list_tasks([State.CREATED]):
            self._classify_soon(task.id)

    async def stop(self) -> None:
        self.daemon.bus.waiters.discard(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type != EventType.TASK_CREATED or event.task_id is None:
            return
        self._refresh_identity()
        if str(event.data.get("by", "")).startswith("remote:"):
            self._classify_soon(event.task_id)

    def _refresh_identity(self) -> None:
        """The workspace may have changed since the daemon started: classify against its peers of now."""
        service = self.daemon.service
        try:
            name, peers, workspace = repo_identity(service.paths.root)
        except CockpitError as exc:
            log.warning("workspace not re-read: %s", exc.message)
            return
        if workspace is not None and workspace.name_of(service.paths.root) is not None:
            service.repo_name, service.peers = name, peers

    def _classify_soon(self, task_id: int) -> None:
        if task_id in self._classifying:
            return
        self._classifying.add(task_id)

        async def classify() -> None:
            try:
                await self.daemon.service.classify_task(task_id)
            except CockpitError as exc:
                log.warning("could not classify task %d from a peer: %s", task_id, exc.message)
            finally:
                self._classifying.discard(task_id)

        self.daemon.spawn(classify(), f"classify-{task_id}")


# -- the step executor -------------------------------------------------------------------------------------

@dataclasses.dataclass(eq=False)
class Runner:
    """The delegate steps of one task in flight: one coroutine per step, and the outcome all of them make."""

    task_id: int
    steps: dict[int, asyncio.Task[None]] = dataclasses.field(default_factory=dict)
    children: dict[tuple[str, int], asyncio.Task[None]] = dataclasses.field(default_factory=dict)
    # Children whose follower saw them finish (their finish is recorded by then).
    settled: set[tuple[str, int]] = dataclasses.field(default_factory=set)
    main: asyncio.Task[None] | None = None
    finished: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    # Set when the task's links change (a new child, a child's finish): the runner looks again.
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    failure: str | None = None


class StepExecutor:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.store = daemon.store
        self.service = daemon.service
        self.runners: dict[int, Runner] = {}
        # Local steps the first run of a task leaves out, decided when its prompt is shaped.
        self._held: dict[int, list[int]] = {}
        self._stopped = False

    # -- lifecycle and events -------------------------------------------------------------------------------

    async def start(self) -> None:
        self.daemon.bus.waiters.add(self._on_event)
        # Tasks that were executing or gating when the daemon stopped pick up their delegate steps again.
        for task in await self.store.list_tasks(list(RUNNING)):
            if delegate_steps(task) or open_children(task) or failed_children(task):
                self.ensure_runner(task.id)

    async def stop(self) -> None:
        self._stopped = True
        self.daemon.bus.waiters.discard(self._on_event)
        for runner in list(self.runners.values()):
            self._cancel(runner)

    def _on_event(self, event: Event) -> None:
        task_id = event.task_id
        if task_id is None or self._stopped:
            return
        if event.type == EventType.TASK_EXECUTING:
            held = self._held.pop(task_id, None)
            data = event.data
            first_run = not (data.get("fix") or data.get("continuation") or data.get("gates_only"))
            if first_run:
                self.daemon.spawn(self._first_run(task_id, held or []), f"delegate-{task_id}")
            return
        if event.type in (EventType.DELEGATION_SENT, EventType.DELEGATION_FINISHED):
            self.daemon.spawn(self._kick(task_id), f"delegate-kick-{task_id}")
            return
        if event.type in (EventType.TASK_FAILED, EventType.TASK_INTERRUPTED, EventType.TASK_CANCELLED,
                          EventType.TASK_REJECTED, EventType.TASK_AWAITING_REVIEW):
            runner = self.runners.get(task_id)
            if runner is not None and event.type != EventType.TASK_AWAITING_REVIEW:
                self._cancel(runner)

    async def _kick(self, task_id: int) -> None:
        """A link of the task changed: have its runner look again (starting one if needed)."""
        task = await self.store.get_task(task_id)
        if task.state not in RUNNING or not (delegate_steps(task) or agent_children(task)):
            return
        self.ensure_runner(task_id).wake.set()

    def _cancel(self, runner: Runner) -> None:
        for follower in runner.children.values():
            follower.cancel()
        for step in runner.steps.values():
            step.cancel()
        if runner.main is not None:
            runner.main.cancel()
        runner.finished.set()
        if self.runners.get(runner.task_id) is runner:
            del self.runners[runner.task_id]

    # -- hooks into the executor ----------------------------------------------------------------------------

    def shape_first_prompt(self, task: Task) -> Task:
        """The first run's prompt lists only the local steps that need no delegated work (prompt hook)."""
        held = waits_on_delegates(task)
        self._held[task.id] = [s.n for s in held]
        if not held:
            return task
        numbers = ", ".join(str(s.n) for s in held)
        note = (f"\n\nSteps {numbers} of the plan wait for work delegated to other repositories; they are "
                "left out here. Do only the steps listed below now; cockpit runs you again in this worktree "
                "for the rest once the delegated work is done.")
        skip = {s.n for s in held}
        return dataclasses.replace(task, description=task.description + note,
                                   plan=[s for s in task.plan if s.n not in skip])

    async def before_gates(self, task_id: int) -> str | None:
        """Hold an agent's successful exit until the delegated children are done (the executor's hook).

        Returns the prompt of a continuation run when held-back steps remain, else None (the gates run, or
        the task has already failed because a child did).
        """
        task = await self.store.get_task(task_id)
        if not delegate_steps(task) and not agent_children(task):
            return None
        if holds(task):
            runner = self.ensure_runner(task_id)
            await self._note(task_id, "the agent is done; waiting for the delegated work before the gates")
            await runner.finished.wait()
            task = await self.store.get_task(task_id)
            if task.state is not State.EXECUTING or holds(task):
                return None
        held = [s for s in task.plan if s.status == DEFERRED]
        if not held:
            return None
        async with self.store.tx() as tx:
            for s in held:
                await tx.append(task_id, EventType.STEP_UPDATED, {"n": s.n, "status": "pending",
                                                                  "detail": None})
        await self._note(task_id, f"delegated work done; running the agent again for step"
                                  f"{'s' if len(held) > 1 else ''} {', '.join(str(s.n) for s in held)}")
        settings = self.service.settings
        worktree = Path(task.worktree or self.service.paths.root)
        base = render_prompt(task, settings.gates, repo_name=self.service.repo_name, worktree=worktree,
                             target_branch=settings.target_branch)
        return continuation_prompt(task, held, base)

    async def review_guard(self, task_id: int) -> str | None:
        """No task reaches awaiting_review before its delegated children are done."""
        task = await self.store.get_task(task_id)
        open_steps = [s for s in delegate_steps(task) if s.status != "done"]
        if not open_steps:
            waiting = failed_children(task) + open_children(task)
            if waiting:
                c = waiting[0]
                return f"delegated task {c.repo}#{c.id} is {c.state or 'not finished'}"
            return None
        s = open_steps[0]
        child = (f"{s.peer}#{s.peer_task_id} is {s.peer_state or 'not finished'}" if s.peer_task_id
                 else "not sent yet")
        return f"delegated step {s.n} (to {s.peer}) is not done: {child}"

    # -- the runner -----------------------------------------------------------------------------------------

    async def _first_run(self, task_id: int, held: list[int]) -> None:
        task = await self.store.get_task(task_id)
        if not delegate_steps(task):
            if open_children(task) or failed_children(task):
                self.ensure_runner(task_id)  # a retry, while children its agent made are still under way
            return
        async with self.store.tx() as tx:
            current = await tx.get_task(task_id)
            for step in current.plan:
                if step.n in held and step.status not in ("done", DEFERRED):
                    await tx.append(task_id, EventType.STEP_UPDATED, {
                        "n": step.n, "status": DEFERRED, "detail": "waits for delegated work"})
                elif step.n not in held and step.status == DEFERRED:
                    # Held back in an earlier attempt, in this run's prompt now.
                    await tx.append(task_id, EventType.STEP_UPDATED,
                                    {"n": step.n, "status": "pending", "detail": None})
        self.ensure_runner(task_id)

    def ensure_runner(self, task_id: int) -> Runner:
        runner = self.runners.get(task_id)
        if runner is None or runner.finished.is_set():
            runner = Runner(task_id)
            self.runners[task_id] = runner
            runner.main = self.daemon.spawn(self._run(runner), f"delegate-steps-{task_id}")
        return runner

    async def _run(self, runner: Runner) -> None:
        task_id = runner.task_id
        try:
            while True:
                runner.wake.clear()
                task = await self.store.get_task(task_id)
                if task.state not in RUNNING:
                    return
                failed = [s for s in delegate_steps(task) if s.status == "failed"]
                if failed:
                    await self._fail_parent(task_id, failed[0])
                    return
                gone = failed_children(task)
                if gone:
                    await self._fail_for_child(task_id, gone[0])
                    return
                pending_children = open_children(task)
                if all(s.status == "done" for s in delegate_steps(task)) and not pending_children:
                    return
                for step in ready_delegates(task):
                    if step.n not in runner.steps:
                        runner.steps[step.n] = asyncio.ensure_future(self._step(task_id, step))
                for child in pending_children:
                    if (child.repo, child.id) in runner.settled:
                        # Seen finished, yet not recorded as such: never follow it round in circles.
                        await self._fail_parent_with(
                            task_id, f"cockpit could not record the finish of {child.repo}#{child.id} (it is "
                                     "not linked to this task there)", child=child)
                        return
                    if (child.repo, child.id) not in runner.children:
                        runner.children[(child.repo, child.id)] = asyncio.ensure_future(
                            self._follow_child(task_id, child))
                live = [t for t in [*runner.steps.values(), *runner.children.values()] if not t.done()]
                if not live:
                    # Nothing can move: delegate steps wait on each other in a cycle, or on a failed one.
                    stuck = [s for s in delegate_steps(task) if s.status != "done"]
                    await self._fail_parent(task_id, stuck[0], "its delegate steps depend on each other")
                    return
                waker = asyncio.ensure_future(runner.wake.wait())
                try:
                    await asyncio.wait([*live, waker], return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                for n, t in list(runner.steps.items()):
                    if t.done():
                        if not t.cancelled() and t.exception() is not None:
                            exc = t.exception()
                            await self._step_failed(task_id, n, f"cockpit could not delegate it: {exc}")
                        del runner.steps[n]
                for key, t in list(runner.children.items()):
                    if t.done():
                        del runner.children[key]
                        if not t.cancelled() and t.exception() is None:
                            runner.settled.add(key)
                        if not t.cancelled() and t.exception() is not None:
                            await self._fail_parent_with(
                                task_id, f"cockpit could not follow delegated task {key[0]}#{key[1]}: "
                                         f"{t.exception()}")
                            return
        finally:
            for t in [*runner.steps.values(), *runner.children.values()]:
                t.cancel()
            runner.finished.set()
            if self.runners.get(task_id) is runner:
                del self.runners[task_id]

    async def _step(self, task_id: int, step: PlanStep) -> None:
        """Send one delegate step to its peer (unless it was sent already) and follow the peer task."""
        delegation = Delegation(self.service)
        sender = Sender.of(self.service.paths.root)
        repo = str(step.peer)
        peer_id = step.peer_task_id
        if peer_id is None or step.status == "pending":
            sent_before = await self._times_sent(task_id, step.n)
            result = await delegation.create(
                repo, step.description, source_task_id=task_id, step=step.n,
                key=f"delegation:{sender.name}#{task_id}:step-{step.n}:{sent_before + 1}",
                force=sent_before > 0, wait_classified_s=0)
            peer_id = int(result["id"])
            line = f"step {step.n}: delegated to {repo} as {repo}#{peer_id}"
            if result.get("fallback"):
                line += f" ({repo}'s daemon is down: it is classified when that daemon starts)"
            await self._note(task_id, line)
        ref = PeerRef.resolve(sender.workspace, repo)

        async def changed(peer_task: JSON) -> None:
            await self._peer_changed(task_id, step.n, repo, peer_task)

        outcome = await wait_peer_task(ref, peer_id, on_change=changed)
        child = outcome.task
        await delegation.record_finished(sender.name, repo, child, step=step.n)
        if child.get("state") == State.DONE.value:
            await self._note(task_id, f"step {step.n}: {describe(repo, child)}")

    async def _follow_child(self, task_id: int, child: Link) -> None:
        """Follow a child the agent created until it finishes, and record its finish on the task."""
        delegation = Delegation(self.service)
        sender = Sender.of(self.service.paths.root)
        ref = PeerRef.resolve(sender.workspace, child.repo)

        async def changed(peer_task: JSON) -> None:
            await self._note(task_id, describe(child.repo, peer_task))

        outcome = await wait_peer_task(ref, child.id, on_change=changed)
        await delegation.record_finished(sender.name, child.repo, outcome.task)

    async def _fail_for_child(self, task_id: int, child: Link) -> None:
        events = await self.store.task_events(task_id)
        reason = next((str(e.data.get("reason")) for e in reversed(events)
                       if e.type == EventType.DELEGATION_FINISHED and (e.data.get("repo"), e.data.get("id"))
                       == (child.repo, child.id) and e.data.get("reason")),
                      f"{child.repo}#{child.id} {child.state}")
        await self._fail_parent_with(task_id, f"delegated task failed: {reason}", child=child)

    async def _fail_parent_with(self, task_id: int, message: str, *, child: Link | None = None) -> None:
        data: JSON = {"reason": message, "stage": "delegation"}
        if child is not None:
            data["child"] = {"repo": child.repo, "id": child.id, "state": child.state}
        async with self.store.tx() as tx:
            task = await tx.get_task(task_id)
            if task.state not in RUNNING:
                return
            await tx.append(task_id, EventType.TASK_FAILED, data)
        await self._note(task_id, message, progress=False)

    async def _times_sent(self, task_id: int, n: int) -> int:
        events = await self.store.task_events(task_id)
        return sum(1 for e in events if e.type == EventType.DELEGATION_SENT and e.data.get("step") == n)

    async def _peer_changed(self, task_id: int, n: int, repo: str, peer_task: JSON) -> None:
        line = describe(repo, peer_task)
        async with self.store.tx() as tx:
            task = await tx.get_task(task_id)
            step = next((s for s in task.plan if s.n == n), None)
            if step is None or step.status in ("done", "failed"):
                return
            await tx.append(task_id, EventType.STEP_UPDATED, {
                "n": n, "status": "waiting", "peer_task_id": peer_task.get("id"),
                "peer_state": peer_task.get("state"), "detail": line})
        await self._note(task_id, line)

    async def _step_failed(self, task_id: int, n: int, reason: str) -> None:
        with contextlib.suppress(CockpitError):
            await self.store.append(task_id, EventType.STEP_UPDATED, {"n": n, "status": "failed",
                                                                      "detail": reason})

    async def _fail_parent(self, task_id: int, step: PlanStep, why: str | None = None) -> None:
        reason = why or step.detail or "the delegated task did not finish"
        message = f"step {step.n} (delegate to {step.peer}) failed: {reason}"
        async with self.store.tx() as tx:
            task = await tx.get_task(task_id)
            if task.state not in RUNNING:
                return
            await tx.append(task_id, EventType.TASK_FAILED,
                            {"reason": message, "stage": "delegation", "step": step.n})
        await self._note(task_id, message, progress=False)

    async def _note(self, task_id: int, line: str, *, progress: bool = True) -> None:
        """Tell the person: the task's log (what its pane shows), the daemon log, and its progress line."""
        log.info("task %d: %s", task_id, line)
        stamp = time.strftime("%H:%M:%S")
        path = self.service.paths.task_log(task_id)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(f"[cockpit {stamp}] {line}\n")

        with contextlib.suppress(OSError):
            await asyncio.to_thread(write)
        if progress:
            async with self.store.tx() as tx:
                task = await tx.get_task(task_id)
                if task.state is State.EXECUTING:
                    await tx.append(task_id, EventType.AGENT_PROGRESS, {"text": line[:200],
                                                                        "source": "delegation"})


class ParentNotifier:
    """When a task that came from a peer finishes here, tell its parent's repo (which reads it back)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    async def start(self) -> None:
        self.daemon.bus.waiters.add(self._on_event)

    async def stop(self) -> None:
        self.daemon.bus.waiters.discard(self._on_event)

    def _on_event(self, event: Event) -> None:
        if event.type in FINISH_EVENTS and event.task_id is not None:
            self.daemon.spawn(self._notify(event.task_id), f"notify-parent-{event.task_id}")

    async def _notify(self, task_id: int) -> None:
        task = await self.daemon.store.get_task(task_id)
        if task.source_repo is None or task.source_task_id is None or task.state not in FINISHED:
            return
        try:
            sender = Sender.of(self.daemon.service.paths.root)
            ref = PeerRef.resolve(sender.workspace, task.source_repo)
        except CockpitError:
            return
        args: JSON = {"id": task.source_task_id, "repo": sender.name, "child": task_id}
        try:
            async with asyncio.timeout(NOTIFY_TIMEOUT_S):
                if ref.hosted is not None:
                    async with open_peer(ref) as remote:
                        assert remote.client is not None
                        await remote.client.call("child_finished", args)
                else:
                    async with backend_for(ref.paths) as backend:
                        await backend.call("child_finished", args)
        except (CockpitError, OSError, TimeoutError) as exc:
            # The parent's own follower (while it runs) or its next look at the child records it instead.
            log.info("could not tell %s#%s that task %d finished: %s", task.source_repo, task.source_task_id,
                     task_id, exc)


def install(daemon: Daemon, executor: Executor) -> StepExecutor:
    daemon.components.append(RemoteIntake(daemon))
    steps = StepExecutor(daemon)
    daemon.components.append(steps)
    daemon.components.append(ParentNotifier(daemon))
    executor.review_guards.append(steps.review_guard)
    executor.prompt_shapers.append(steps.shape_first_prompt)
    executor.before_gates.append(steps.before_gates)
    return steps


__all__ = ["ParentNotifier", "RemoteIntake", "StepExecutor", "agent_children", "continuation_prompt",
           "failed_children", "holds", "open_children", "ready_delegates", "waits_on_delegates"]
