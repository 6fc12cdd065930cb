"""The remote ops on behalf of one sender repo (`Delegation`): create, show, approve and wait on a peer's
task, recording the links in the sender's store."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

from cockpit.core.delegation.describe import describe, hint_for
from cockpit.core.delegation.peers import PeerRef, RemoteRepo, Sender, open_peer, repo_status
from cockpit.core.delegation.wait import OnChange, wait_peer_task
from cockpit.core.errors import (
    CockpitError,
    DuplicateError,
    NotFoundError,
    RefusedError,
)
from cockpit.core.events import EventType
from cockpit.core.models import JSON, Task
from cockpit.core.service import TaskService
from cockpit.core.states import FINISHED, State

# How long create_remote_task waits for the peer to classify the task before replying with it still `created`.
DEFAULT_WAIT_CLASSIFIED_S = 30.0


# Reading children's live states for display must never hold up a reply for long.
CHILD_STATE_TIMEOUT_S = 2.0


def _summary(ref: PeerRef, task: JSON, via: str) -> JSON:
    repo = ref.name
    return {"repo": repo, "id": task.get("id"), "state": task.get("state"), "scope": task.get("scope"),
            "title": task.get("title"), "plan": task.get("plan", []), "via": via, "task": task,
            "status": describe(repo, task), "hint": hint_for(repo, task, via=via, root=ref.paths.root)}


@dataclass
class Delegation:
    """The remote ops (docs/delegation.md) on behalf of one sender repo, recording the links in its store."""

    service: TaskService

    def sender(self) -> Sender:
        return Sender.of(self.service.paths.root)

    async def _record(self, task_id: int, type_: str, data: JSON, key: str) -> None:
        await self.service.store.append(task_id, type_, data, key=key)

    async def create(self, repo: str, text: str, *, source_task_id: int | None = None,
                     step: int | None = None, key: str | None = None, force: bool = False,
                     wait_classified_s: float | None = DEFAULT_WAIT_CLASSIFIED_S,
                     by: str | None = None, on_behalf_of: int | None = None) -> JSON:
        sender = self.sender()
        ref = sender.peer(repo)
        if source_task_id is not None:
            # A missing parent is an error, not a dangling link.
            parent = await self.service.store.get_task(source_task_id)
            if parent.state is not State.EXECUTING:
                # A child of a task nobody approved yet could run (auto-approved small) before its parent.
                raise RefusedError(
                    f"task {source_task_id} is {parent.state.value}: only an executing task can delegate "
                    f"(approve it first, and delegate from its run)", code="not_executing")
        if key is None and source_task_id is not None and step is not None:
            key = f"delegation:{sender.name}#{source_task_id}:step-{step}"
        existing = False
        async with open_peer(ref) as remote:
            try:
                task = await remote.create(text, source_repo=sender.name, source_task_id=source_task_id,
                                           key=key, force=force)
            except CockpitError as exc:
                # Over the socket a duplicate comes back as a CockpitError with code "duplicate".
                if exc.code != DuplicateError.code:
                    raise
                task = await self._own_duplicate(remote, exc, sender.name, source_task_id)
                existing = True
            via = remote.via
            if source_task_id is not None:
                sent: JSON = {"step": step, "repo": repo, "id": task["id"]}
                if by is not None:
                    sent["by"] = by
                if on_behalf_of is not None:
                    sent["on_behalf_of"] = on_behalf_of
                await self._record(source_task_id, EventType.DELEGATION_SENT, sent,
                                   key=f"delegation.sent:{repo}#{task['id']}")
            if via == "daemon" and task.get("state") == State.CREATED.value and (wait_classified_s or 0) > 0:
                # Classification runs in the peer's daemon: wait for it there, on the same connection.
                task = await remote.wait_classified(int(task["id"]), float(wait_classified_s or 0)) or task
        result = _summary(ref, task, via)
        result["fallback"] = via == "store"
        result["existing"] = existing
        if via == "store":
            result["message"] = (f"{repo}'s daemon is down: task {repo}#{task['id']} was written straight "
                                 f"into its store in state {task['state']}; {repo} classifies it when its "
                                 f"daemon starts (`cockpit daemon start --repo {ref.paths.root}`)")
        elif existing:
            result["message"] = f"already delegated: {describe(repo, task)}"
        else:
            result["message"] = f"created {describe(repo, task)}"
        return result

    async def _own_duplicate(self, remote: RemoteRepo, exc: CockpitError, sender: str,
                             source_task_id: int | None) -> JSON:
        """A request re-sent by the same parent gets the task it made before; other duplicates are refused."""
        dup = exc.details.get("duplicate")
        dup_id = dup.get("task_id") if isinstance(dup, dict) else None
        if isinstance(dup_id, int):
            task = await remote.get(dup_id)
            if source_task_id is not None and task.get("source_repo") == sender \
                    and task.get("source_task_id") == source_task_id:
                return task
        raise exc

    async def show(self, repo: str, task_id: int) -> JSON:
        ref = self.sender().peer(repo)
        async with open_peer(ref) as remote:
            return _summary(ref, await remote.get(task_id), remote.via)

    async def approve(self, repo: str, task_id: int) -> JSON:
        sender = self.sender()
        ref = sender.peer(repo)
        async with open_peer(ref) as remote:
            current = await remote.get(task_id)
            if current.get("state") == State.CREATED.value:
                # Approving it now would skip its classification and plan altogether.
                raise RefusedError(
                    f"{repo}#{task_id} is not classified yet ({repo}'s daemon classifies it when it runs); "
                    "it can be approved once it has a plan", code="not_classified")
            task = await remote.approve(task_id, from_repo=sender.name)
            result = _summary(ref, task, remote.via)
        result["approved_by"] = task.get("approved_by")
        if remote.via == "store":
            result["message"] = (f"{repo}'s daemon is down: the approval was written into its store; the "
                                 "task runs when the daemon starts")
        return result

    async def wait(self, repo: str, task_id: int, *, until: Iterable[str] | None = None,
                   timeout_s: float | None = None, since_state: str | None = None,
                   on_change: OnChange | None = None) -> JSON:
        sender = self.sender()
        ref = sender.peer(repo)
        outcome = await wait_peer_task(ref, task_id, until=until, timeout_s=timeout_s,
                                       since_state=since_state, on_change=on_change)
        task = outcome.task
        if task.get("state") in {s.value for s in FINISHED}:
            await self.record_finished(sender.name, repo, task)
        result = _summary(ref, task, outcome.via)
        result.update(reached=outcome.reached, changed=outcome.changed, timed_out=outcome.timed_out)
        return result

    async def record_finished(self, sender: str, repo: str, task: JSON, *, step: int | None = None) -> None:
        """Mark the parent's link finished (and its delegate step done or failed), once per child state."""
        if task.get("source_repo") != sender or task.get("source_task_id") is None:
            return
        parent_id = int(task["source_task_id"])
        try:
            parent = await self.service.store.get_task(parent_id)
        except NotFoundError:
            return
        if step is None:
            step = next((s.n for s in parent.plan if s.verb == "delegate" and s.peer == repo
                         and s.peer_task_id == task.get("id")), None)
        state = str(task.get("state"))
        ok = state == State.DONE.value
        reason = None if ok else f"{repo}#{task.get('id')} {state}" + (
            f": {task['failure']}" if task.get("failure") else "")
        await self._record(parent_id, EventType.DELEGATION_FINISHED,
                           {"step": step, "repo": repo, "id": task.get("id"), "state": state, "ok": ok,
                            "reason": reason},
                           key=f"delegation.finished:{repo}#{task.get('id')}:{state}:{task.get('updated_at')}")

    async def list_peers(self) -> JSON:
        sender = self.sender()
        peers = [await repo_status(name, path, sender.workspace.host_of(name))
                 for name, path in sender.workspace.repos.items() if name != sender.name]
        return {"repo": sender.name, "workspace": str(sender.workspace.file), "peers": peers}

    async def child_states(self, task: Task, data: JSON) -> None:
        """Fill `children[].state` (and waiting delegate steps' `peer_state`) with the peers' live states."""
        if not task.children:
            return
        try:
            workspace = Sender.of(self.service.paths.root).workspace
        except CockpitError:
            return
        by_repo: dict[str, list[int]] = {}
        for child in task.children:
            by_repo.setdefault(child.repo, []).append(child.id)
        live: dict[tuple[str, int], str] = {}

        async def fetch(repo: str, ids: list[int]) -> None:
            with contextlib.suppress(CockpitError, OSError, TimeoutError):
                ref = PeerRef.resolve(workspace, repo)
                async with asyncio.timeout(CHILD_STATE_TIMEOUT_S), open_peer(ref) as remote:
                    for tid, state in (await remote.states(ids)).items():
                        live[(repo, tid)] = state

        await asyncio.gather(*(fetch(repo, ids) for repo, ids in by_repo.items()))
        for child in data.get("children", []):
            state = live.get((child["repo"], int(child["id"])))
            if state is not None:
                child["state"] = state
        for step in data.get("plan", []):
            if step.get("verb") == "delegate" and step.get("peer_task_id") is not None:
                state = live.get((str(step.get("peer")), int(step["peer_task_id"])))
                if state is not None and step.get("status") == "waiting":
                    step["peer_state"] = state
