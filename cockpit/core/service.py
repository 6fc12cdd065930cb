"""Task operations: the one place where creating, classifying, approving and the rest happen.

The daemon calls these for socket requests; the CLI calls the very same code against the store when no daemon
is up, and a peer's fallback write does too, so every path gets the same dedup, classification and rules.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from cockpit.core import classifier, limits, plans, principals
from cockpit.core.config import Settings, load_settings
from cockpit.core.dedup import DedupIndex
from cockpit.core.errors import DuplicateError, RefusedError, UsageError
from cockpit.core.events import EventType
from cockpit.core.models import Classification, Task
from cockpit.core.paths import RepoPaths
from cockpit.core.states import CLOSED, State
from cockpit.core.store import Store, Tx
from cockpit.core.titles import check_text
from cockpit.core.workspace import repo_identity

PEER_CREATES_PER_MINUTE = 60

@dataclass
class DedupSync:
    """The in-memory dedup index, kept in step with the store by reading events inside each create's
    transaction."""

    index: DedupIndex = field(default_factory=DedupIndex)
    seq: int = -1

    async def sync(self, tx: Tx) -> None:
        if self.seq < 0:
            rows = await tx.db.execute_fetchall(
                "SELECT id, state, json_extract(doc, '$.description') FROM tasks")
            last = list(await tx.db.execute_fetchall("SELECT COALESCE(MAX(seq), 0) FROM events"))
            for task_id, state, description in rows:
                if State(state) not in CLOSED:
                    self.index.add(int(task_id), str(description))
            self.seq = int(last[0][0]) if last else 0
            return
        events = await tx.events_since(self.seq)
        if not events:
            return
        ids = sorted({e.task_id for e in events if e.task_id is not None})
        self.seq = events[-1].seq
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        rows = await tx.db.execute_fetchall(
            f"SELECT id, state, json_extract(doc, '$.description') FROM tasks WHERE id IN ({marks})", ids)
        for task_id, state, description in rows:
            if State(state) in CLOSED:
                self.index.remove(int(task_id))
            else:
                self.index.add(int(task_id), str(description))

    def note(self, task_id: int, description: str, seq: int) -> None:
        """Record our own create so the next sync does not need to read it back."""
        self.index.add(task_id, description)
        self.seq = max(self.seq, seq)


class TaskService:
    def __init__(self, paths: RepoPaths, store: Store, settings: Settings | None = None, *,
                 repo_name: str | None = None, peers: list[str] | None = None) -> None:
        self.paths = paths
        self.store = store
        self.settings = settings if settings is not None else load_settings(paths.config)
        name, found_peers, _ = repo_identity(paths.root)
        self.repo_name = repo_name or name
        self.peers = peers if peers is not None else found_peers
        self.dedup = DedupSync()
        self._classifying: dict[int, asyncio.Future[Task]] = {}

    async def require_peer(self, name: str, what: str) -> None:
        """Refuse a `name` that is no peer repo of this workspace (read again once: repos may be new)."""
        if name in self.peers:
            return
        _, found, _ = await asyncio.to_thread(repo_identity, self.paths.root)
        self.peers = found
        if name not in found:
            known = ", ".join(found) or "none: this repo is in no workspace"
            raise RefusedError(f"{what} {name!r} is not a peer repo of this workspace (peers: {known})",
                               code="not_a_peer")

    def reload_settings(self) -> None:
        self.settings = load_settings(self.paths.config)

    # -- creation and classification ------------------------------------------------------------------------

    async def create_task(
        self, description: str, *, force: bool = False, script: str | None = None,
        source_repo: str | None = None, source_task_id: int | None = None, key: str | None = None,
        classify: bool = True, by: str = "person", on_behalf_of: int | None = None,
    ) -> Task:
        """Record a task (dedup checked inside the insert transaction), then classify it unless told not to.
        """
        description = limits.check_text(description).strip()
        if not description:
            raise UsageError("the task description is empty; say what should be done")
        check_text(description)
        if source_repo is not None and not principals.current().is_person:
            await self.require_peer(source_repo, "source_repo")
        if script is not None:
            limits.check_text(script, "the script")
            from cockpit.core.script_agent import parse_script

            parse_script(script, source="script")
        if source_repo is not None:
            await self._check_peer_rate(source_repo)
        async with self.store.tx() as tx:
            if key is not None:
                existing = await tx.event_for_key(key)
                if existing is not None and existing.task_id is not None:
                    return await tx.get_task(existing.task_id)
            await self.dedup.sync(tx)
            match = None if force else self.dedup.index.find_duplicate(description)
            if match is not None:
                dup = await tx.get_task(match.task_id)
                raise DuplicateError(
                    f"looks like a duplicate of task {dup.id} ({dup.title!r}, {dup.state.value}): "
                    f"{match.layer} similarity {match.score:.2f}; use --force to create it anyway",
                    details={"duplicate": {**match.to_json(), "title": dup.title, "state": dup.state.value}},
                )
            task_id = await tx.next_task_id()
            data: dict[str, Any] = {"description": description, "title": classifier.make_title(description),
                                    "by": by}
            if on_behalf_of is not None:
                # An agent's call: `by` is the agent, acting for this task of the repo.
                data["on_behalf_of"] = on_behalf_of
            if source_repo is not None:
                data["source_repo"] = source_repo
                data["source_task_id"] = source_task_id
            if script is not None:
                data["script"] = script
            event = await tx.append(task_id, EventType.TASK_CREATED, data, key=key)
            self.dedup.note(task_id, description, event.seq)
        task = await self.store.get_task(task_id)
        if classify:
            task = await self.classify_task(task_id)
        return task

    async def _check_peer_rate(self, source_repo: str) -> None:
        """A peer may create at most `PEER_CREATES_PER_MINUTE` tasks a minute here (counted in the store, so
        fallback writes count too): a flood from one peer cannot fill the repo."""
        recent = await self.store.recent_creates_from(source_repo, time.time() - 60)
        if recent >= PEER_CREATES_PER_MINUTE:
            raise RefusedError(
                f"{source_repo} sent {recent} tasks to {self.repo_name} in the last minute, the most a peer "
                f"may send per minute is {PEER_CREATES_PER_MINUTE}; wait a minute and send it again",
                code="rate_limited")

    async def _classify(self, task: Task, answers: list[str]) -> Classification:
        return await classifier.classify(
            task.description, self.peers, command=self.settings.classifier_command,
            timeout_s=self.settings.classifier_timeout_s, cwd=self.paths.root, answers=answers,
            repo_name=self.repo_name,
        )

    def _next_state(self, c: Classification) -> State:
        states = {"reject": State.REJECTED, "ambiguous": State.PENDING_CLARIFICATION}
        return states.get(c.scope, State.PENDING)

    def _auto_approver(self, task: Task, c: Classification) -> str | None:
        if c.scope != "small":
            return None
        if task.source_repo is not None:
            if not self.settings.auto_approve_delegated_small:
                return None
            return f"auto:delegated-small from {task.source_repo}"
        return "auto:small" if self.settings.auto_approve_small else None

    async def classify_task(self, task_id: int) -> Task:
        """Classify a task still in `created`. Callers asking for the same task at once (the daemon's
        background pass, a peer's intake, a person's `classify_task`) share one classifier run."""
        running = self._classifying.get(task_id)
        if running is None:
            running = asyncio.ensure_future(self._classify_created(task_id))
            self._classifying[task_id] = running
            running.add_done_callback(lambda _: self._classifying.pop(task_id, None))
        return await asyncio.shield(running)

    async def _classify_created(self, task_id: int) -> Task:
        task = await self.store.get_task(task_id)
        if task.state is not State.CREATED:
            return task
        c = await self._classify(task, [])
        return await self._record_classification(task_id, EventType.TASK_CLASSIFIED, c, {})

    async def _record_classification(self, task_id: int, type_: str, c: Classification,
                                     extra: dict[str, Any]) -> Task:
        async with self.store.tx() as tx:
            task = await tx.get_task(task_id)
            if type_ == EventType.TASK_CLASSIFIED and task.state is not State.CREATED:
                return task  # classified meanwhile by another writer
            await tx.append(task_id, type_, {**c.to_json(), **extra, "state": self._next_state(c).value})
            approver = self._auto_approver(task, c)
            if approver is not None:
                await tx.append(task_id, EventType.TASK_APPROVED, {"by": approver})
            task = await tx.get_task(task_id)
        # A file write (with fsync) is blocking: keep it off the daemon's loop.
        await asyncio.to_thread(
            plans.write_plan, self.paths.plans, task_id,
            plans.render_plan(task_id, task.title, task.description, c, answers=task.answers))
        return task

    async def classify_created(self) -> list[Task]:
        """Classify every task still in `created` (peers' fallback writes, a crash before classification)."""
        return [await self.classify_task(t.id) for t in await self.store.list_tasks([State.CREATED])]

    async def clarify(self, task_id: int, answers: list[str], *, by: str = "person") -> Task:
        answers = [limits.check_text(a, "an answer").strip() for a in answers if a.strip()]
        if not answers:
            raise UsageError("give at least one answer: --answer TEXT")
        task = await self.store.get_task(task_id)
        if task.state is not State.PENDING_CLARIFICATION:
            raise RefusedError(f"task {task_id} is {task.state.value}; only a task in pending_clarification "
                               "takes answers")
        c = await self._classify(task, [*task.answers, *answers])
        return await self._record_classification(task_id, EventType.TASK_CLARIFIED, c, {"answers": answers,
                                                                                        "by": by})

    # -- the human gate ------------------------------------------------------------------------------------

    async def approve(self, task_id: int, *, by: str = "person") -> Task:
        task = await self.store.get_task(task_id)
        if task.state is State.AWAITING_REVIEW:
            raise RefusedError(f"task {task_id} is awaiting review: merge it with "
                               f"`cockpit task merge {task_id}` or send it back with "
                               f"`cockpit task retry {task_id}`")
        if task.state in (State.FAILED, State.INTERRUPTED, State.ROLLED_BACK):
            raise RefusedError(f"task {task_id} is {task.state.value}: run it again with "
                               f"`cockpit task retry {task_id}`")
        if task.state is State.APPROVED:
            return task
        _, after = await self.store.append(task_id, EventType.TASK_APPROVED, {"by": by}, action="approve")
        assert after is not None
        return after

    async def approve_remote(self, task_id: int, *, from_repo: str) -> Task:
        """A peer's approve_remote_task: allowed only as far as this repo's `remote_approval` says."""
        await self.require_peer(from_repo, "from_repo")
        task = await self.store.get_task(task_id)
        policy = self.settings.remote_approval
        allowed = policy == "all" or (policy == "small" and task.scope == "small")
        if not allowed:
            what = "nothing" if policy == "none" else "only small tasks"
            raise RefusedError(
                f"task {task_id} in {self.repo_name} is {task.scope or 'unclassified'}; a peer may approve "
                f"{what} here (remote_approval = \"{policy}\"): a person must approve it in the "
                f"{self.repo_name} tab of the cockpit or with `cockpit task approve {task_id}` in "
                f"{self.repo_name}",
                code="human_gate",
            )
        return await self.approve(task_id, by=f"remote:{from_repo}")

    async def reject(self, task_id: int, *, reason: str = "", by: str = "person") -> Task:
        _, task = await self.store.append(task_id, EventType.TASK_REJECTED, {"by": by,
                                                                             "reason": reason or None},
                                          action="reject")
        assert task is not None
        return task

    async def cancel(self, task_id: int, *, by: str = "person", reason: str = "") -> Task:
        _, task = await self.store.append(task_id, EventType.TASK_CANCELLED, {"by": by,
                                                                              "reason": reason or None},
                                          action="cancel")
        assert task is not None
        return task

    async def retry(self, task_id: int, *, fresh: bool = False, by: str = "person") -> Task:
        task = await self.store.get_task(task_id)
        if task.state not in (State.FAILED, State.INTERRUPTED, State.ROLLED_BACK, State.AWAITING_REVIEW):
            raise RefusedError(f"task {task_id} is {task.state.value}; only failed, interrupted, rolled_back "
                               "or awaiting_review tasks can be retried")
        _, after = await self.store.append(task_id, EventType.TASK_APPROVED,
                                           {"by": by, "retry": True, "fresh": fresh}, action="retry")
        assert after is not None
        return after
