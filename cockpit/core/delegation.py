"""Cross-repo delegation: creating, showing, approving and waiting on tasks in a peer repo of the workspace.

A peer is reached through its daemon's socket when the daemon is up, and otherwise straight through its store
with the very same core code (`TaskService` over the peer's paths), so both paths share dedup and the human
gate. A fallback create lands in state `created` and the peer's daemon classifies it when it starts.

A wait blocks server-side in the peer's daemon (`wait_task`); with the daemon down it blocks on a file watch
of the peer's store and its `daemon.json`, and switches to the socket the moment the daemon comes up (and back
to the store if the daemon goes away). Nothing polls.

`install_ops(ops)` adds the sender-side socket ops (`create_remote_task`, `get_remote_task`,
`approve_remote_task`, `wait_remote_task`, `list_peers`), the peer-side `task_states`, and a task decorator
that fills in the live states of a task's delegated children.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core import daemonfile, filewatch, limits
from cockpit.core.client import DaemonClient
from cockpit.core.errors import (
    CockpitError,
    DaemonUnavailable,
    DuplicateError,
    NotFoundError,
    RefusedError,
    UsageError,
)
from cockpit.core.models import JSON, Task
from cockpit.core.ops import Ops, arg_bool, arg_int, arg_opt_str
from cockpit.core.paths import RepoPaths, find_repo_root
from cockpit.core.remote.daemons import HostedRepo, connect_peer, hosted_repo, hosted_status
from cockpit.core.remote.follow import open_hosted_for_wait
from cockpit.core.service import TaskService
from cockpit.core.states import FINISHED, State, parse_state
from cockpit.core.store import Store
from cockpit.core.workspace import Workspace, repo_identity

# How long create_remote_task waits for the peer to classify the task before replying with it still `created`.
DEFAULT_WAIT_CLASSIFIED_S = 30.0
CONNECT_TIMEOUT_S = 5.0
# Reading children's live states for display must never hold up a reply for long.
CHILD_STATE_TIMEOUT_S = 2.0
WATCHED_FILES = frozenset({"index.db", "index.db-wal", "daemon.json"})
WORKTREE_RE = re.compile(r"^task-(\d+)(?:-|$)")

OnChange = Callable[[JSON], Awaitable[None]]


# -- where am I ----------------------------------------------------------------------------------------------

def main_repo_of(start: Path | None = None) -> tuple[Path, int | None]:
    """The repo around `start`, seen through a task worktree: (repo root, the worktree's task id or None).

    An agent runs in `.cockpit/worktrees/task-<id>-<slug>/`; its git root is the worktree, but its repo is the
    one holding `.cockpit/`, and its task is `<id>`.
    """
    here = (start or Path.cwd()).resolve()
    parts = here.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == "worktrees" and parts[i - 1] == ".cockpit" and i + 1 < len(parts):
            match = WORKTREE_RE.match(parts[i + 1])
            return Path(*parts[: i - 1]), int(match.group(1)) if match else None
    return find_repo_root(here), None


# -- peers ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeerRef:
    """A peer repo of the workspace, by name and paths."""

    name: str
    paths: RepoPaths
    # A repo on another host: reached only through its daemon over ssh (its store is not on this machine).
    hosted: HostedRepo | None = None

    @classmethod
    def resolve(cls, workspace: Workspace, name: str, *, sender: str | None = None) -> PeerRef:
        if sender is not None and name == sender:
            raise UsageError(f"{name} is this repo; create the task here with `cockpit task create` instead")
        path = workspace.path_of(name)
        host = workspace.host_of(name)
        return cls(name, RepoPaths(path), hosted_repo(name, host, str(path)) if host is not None else None)


@dataclass
class Sender:
    """The repo a remote op is made on behalf of: its name in the workspace, and the workspace."""

    name: str
    root: Path
    workspace: Workspace

    @classmethod
    def of(cls, root: Path) -> Sender:
        name, _, workspace = repo_identity(root)
        if workspace is None:
            raise NotFoundError(f"{root} is in no workspace, so it has no peers; create one with "
                                "`cockpit workspace init DIR` and add the repos with `cockpit workspace add`",
                                code="no_workspace")
        if workspace.name_of(root) is None:
            raise NotFoundError(f"{root} is not a repo of {workspace.file}; add it with "
                                f"`cockpit workspace add NAME {root}`", code="not_in_workspace")
        return cls(name, root.resolve(), workspace)

    def peer(self, name: str) -> PeerRef:
        return PeerRef.resolve(self.workspace, name, sender=self.name)


class RemoteRepo:
    """One open line to a peer: its daemon's socket, or (daemon down) its store with a TaskService over it."""

    def __init__(self, ref: PeerRef, *, client: DaemonClient | None = None, store: Store | None = None,
                 service: TaskService | None = None) -> None:
        self.ref = ref
        self.client = client
        self.store = store
        self.service = service

    @property
    def via(self) -> str:
        return "daemon" if self.client is not None else "store"

    @classmethod
    async def open(cls, ref: PeerRef, *, prefer_daemon: bool = True) -> RemoteRepo:
        if ref.hosted is not None:
            return cls(ref, client=await connect_peer(ref.hosted, CONNECT_TIMEOUT_S))
        if prefer_daemon:
            client = await DaemonClient.for_repo(ref.paths, timeout=CONNECT_TIMEOUT_S)
            if client is not None:
                return cls(ref, client=client)
        if not ref.paths.root.is_dir():
            raise NotFoundError(
                f"{ref.name}'s path {ref.paths.root} does not exist (moved or deleted?); point the workspace "
                f"at it again with `cockpit workspace add {ref.name} PATH`", code="peer_missing")
        if not ref.paths.db.exists():
            raise NotFoundError(
                f"{ref.name} ({ref.paths.root}) is not set up for cockpit (no store, no daemon); a person "
                f"sets it up with `cockpit init --repo {ref.paths.root}` (or `cockpit daemon start` there)",
                code="not_initialised")
        store = await Store.open(ref.paths.db, create=False)
        try:
            service = TaskService(ref.paths, store)
        except CockpitError:
            await store.close()
            raise
        return cls(ref, store=store, service=service)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.store is not None:
            await self.store.close()

    async def __aenter__(self) -> RemoteRepo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _svc(self) -> TaskService:
        assert self.service is not None
        return self.service

    async def create(self, text: str, *, source_repo: str, source_task_id: int | None, key: str | None,
                     force: bool = False) -> JSON:
        """Record the task at `created`; the peer's daemon classifies it (now, or when it starts)."""
        limits.check_text(text)
        by = f"remote:{source_repo}"
        if self.client is not None:
            return await self.client.call("create_task", {
                "text": text, "source_repo": source_repo, "source_task_id": source_task_id, "key": key,
                "no_wait": True, "force": force, "by": by})
        task = await self._svc().create_task(text, source_repo=source_repo, source_task_id=source_task_id,
                                             key=key, force=force, classify=False, by=by)
        return task.to_json()

    async def wait_classified(self, task_id: int, timeout_s: float) -> JSON | None:
        """Over the socket: the task once its daemon has classified it; None when time runs out first."""
        assert self.client is not None
        states = [s.value for s in State if s is not State.CREATED]
        try:
            result = await self.client.call("wait_task",
                                            {"id": task_id, "states": states, "timeout_s": timeout_s})
            if result.get("timed_out"):
                return None
            # Read it once more: the daemon's own reads can see its classification transaction half-way
            # (classified, not yet auto-approved), since they share its one SQLite connection.
            return await self.get(task_id)
        except DaemonUnavailable:
            return None  # it went away: the task is in its store and is classified when it starts again

    async def get(self, task_id: int) -> JSON:
        with self.naming_the_peer(task_id):
            if self.client is not None:
                return await self.client.call("get_task", {"id": task_id})
            return (await self._svc().store.get_task(task_id)).to_json()

    @contextlib.contextmanager
    def naming_the_peer(self, task_id: int) -> Iterator[None]:
        """A missing task is named as the peer's (`frontend#9`), not as "this repo"'s."""
        try:
            yield
        except CockpitError as exc:
            if exc.code != NotFoundError.code:
                raise
            raise NotFoundError(f"{self.ref.name} has no task {task_id} (the id is {self.ref.name}'s own: "
                                f"`cockpit task list` there shows them)") from None

    async def approve(self, task_id: int, *, from_repo: str) -> JSON:
        with self.naming_the_peer(task_id):
            if self.client is not None:
                return await self.client.call("approve_task", {"id": task_id, "from_repo": from_repo})
            return (await self._svc().approve_remote(task_id, from_repo=from_repo)).to_json()

    async def states(self, ids: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(ids))
        if self.client is not None:
            result = await self.client.call("task_states", {"ids": wanted})
            return {int(k): str(v) for k, v in result.get("states", {}).items()}
        return await _store_states(self._svc().store, wanted)


async def _store_states(store: Store, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    marks = ",".join("?" * len(ids))
    rows = await store.query(f"SELECT id, state FROM tasks WHERE id IN ({marks})", ids)
    return {int(r[0]): str(r[1]) for r in rows}


@contextlib.asynccontextmanager
async def open_peer(ref: PeerRef) -> AsyncIterator[RemoteRepo]:
    remote = await RemoteRepo.open(ref)
    try:
        yield remote
    finally:
        await remote.close()


# -- describing a peer task ----------------------------------------------------------------------------------

def describe(repo: str, task: JSON) -> str:
    """One line for a person (or the sender's pane): `peer task frontend#4 pending, awaiting approval`."""
    state = str(task.get("state"))
    where = f"peer task {repo}#{task.get('id')} {state}"
    reason = task.get("failure") or ""
    extra = {
        "created": "not classified yet",
        "pending": "awaiting approval",
        "pending_clarification": f"waiting for a person in {repo} to answer its questions",
        "approved": "waiting for an execution slot",
        "executing": "the agent is working" + (" and needs input" if task.get("needs_input") else ""),
        "gating": "running its gates",
        "awaiting_review": f"awaiting review by a person in {repo}",
        "merging": "its merge is under way",
        "done": "merged",
        "failed": str(reason) or "failed",
        "interrupted": str(reason) or "its agent stopped",
        "rejected": str(reason) or f"rejected in {repo}",
        "cancelled": str(reason) or f"cancelled in {repo}",
        "rolled_back": "its merge was rolled back",
    }.get(state, "")
    return f"{where}, {extra}" if extra else where


def hint_for(repo: str, task: JSON, *, via: str, root: Path | None = None) -> str:
    """What the sender (a person or a model) should do next about this peer task."""
    tid, state = task.get("id"), str(task.get("state"))
    wait = (f"wait_remote_task(repo={repo!r}, id={tid}) (`cockpit remote wait {repo} {tid}`) blocks until it "
            "finishes")
    approve_there = (f"a person must approve it in the {repo} tab of the cockpit (or "
                     f"`cockpit task approve {tid}` in {repo})")
    if state == "created":
        if via == "store":
            return (f"{repo}'s daemon is down: the task waits in `created` and is classified when the daemon "
                    f"starts (`cockpit daemon start --repo {root or repo}`); {wait}")
        return f"{repo} is still classifying it; get_remote_task shows the plan when it is ready; {wait}"
    if state == "pending":
        scope = task.get("scope") or "unclassified"
        return (f"{repo}#{tid} is {scope} and pending: {approve_there}. approve_remote_task works only where "
                f"{repo}'s remote_approval allows it; {wait}")
    if state == "pending_clarification":
        return (f"{repo}#{tid} has questions for a person in {repo} (`cockpit task clarify {tid}` there); "
                f"{wait}")
    if state in ("approved", "executing", "gating", "merging"):
        return f"{repo}#{tid} is under way; {wait}"
    if state == "awaiting_review":
        return f"{repo}#{tid} awaits review by a person in {repo}, who merges it; {wait}"
    if state == "done":
        return f"{repo}#{tid} is merged in {repo}: carry on with the steps that depend on it"
    if state in ("failed", "interrupted", "rolled_back"):
        return (f"{repo}#{tid} is {state}: a person in {repo} can retry it (`cockpit task retry {tid}` "
                "there); do not build on it")
    return f"{repo}#{tid} is {state} and will not be done; tell the person and do not build on it"


# -- waiting -------------------------------------------------------------------------------------------------

@dataclass
class WaitOutcome:
    task: JSON
    reached: bool  # the task is in one of the states waited for
    changed: bool  # it left `since_state` (when one was given)
    timed_out: bool
    via: str

    def to_json(self) -> JSON:
        return {"task": self.task, "state": self.task.get("state"), "reached": self.reached,
                "changed": self.changed, "timed_out": self.timed_out, "via": self.via}


@dataclass
class _Waiting:
    task_id: int
    until: frozenset[str]
    deadline: float | None
    since_state: str | None
    on_change: OnChange | None
    last: str | None = None
    task: JSON = field(default_factory=dict)

    def remaining(self) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def wake_states(self) -> list[str]:
        """The states the peer's server-side wait returns on: the targets, and any change when watched."""
        if self.on_change is None and self.since_state is None:
            return sorted(self.until)
        return sorted(s.value for s in State if s.value != self.last or s.value in self.until)

    async def observe(self, task: JSON, via: str) -> WaitOutcome | None:
        self.task = task
        state = str(task.get("state"))
        if state != self.last:
            self.last = state
            if self.on_change is not None:
                await self.on_change(task)
        if state in self.until:
            return WaitOutcome(task, True, state != self.since_state, False, via)
        if self.since_state is not None and state != self.since_state:
            return WaitOutcome(task, False, True, False, via)
        return None

    def timeout(self, via: str) -> WaitOutcome:
        return WaitOutcome(self.task, False, False, True, via)


def wait_states(until: Iterable[str | State] | None) -> frozenset[str]:
    """The states a remote wait stops on: the ones asked for, and always the finished ones."""
    wanted = {parse_state(str(s)).value for s in until or ()}
    return frozenset(wanted | {s.value for s in FINISHED})


async def wait_peer_task(ref: PeerRef, task_id: int, *, until: Iterable[str | State] | None = None,
                         timeout_s: float | None = None, since_state: str | None = None,
                         on_change: OnChange | None = None) -> WaitOutcome:
    """Block until the peer task is in `until` (default: finished), leaves `since_state`, or time is up.

    Over the socket while the peer's daemon is up, on a file watch of its store while it is down, switching
    either way as the daemon comes and goes. `on_change` sees every state the task is observed in.
    """
    timeout_s = limits.seconds(timeout_s, "timeout_s")
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waiting = _Waiting(task_id, wait_states(until), deadline, since_state, on_change, last=since_state)
    while True:
        if ref.hosted is not None:
            hosted = await open_hosted_for_wait(ref.hosted, waiting.remaining)
            if hosted is None:
                return waiting.timeout("daemon")
            remote = RemoteRepo(ref, client=hosted)
        else:
            remote = await RemoteRepo.open(ref)
        try:
            with remote.naming_the_peer(task_id):
                if remote.client is not None:
                    outcome = await _wait_socket(remote, waiting)
                else:
                    outcome = await _wait_store(remote, waiting)
        finally:
            await remote.close()
        if outcome is not None:
            return outcome
        # The transport went away or a better one came up: go round and open whichever is there now.


async def _wait_socket(remote: RemoteRepo, waiting: _Waiting) -> WaitOutcome | None:
    assert remote.client is not None
    while True:
        remaining = waiting.remaining()
        try:
            result = await remote.client.call(
                "wait_task", {"id": waiting.task_id, "states": waiting.wake_states(), "timeout_s": remaining})
        except DaemonUnavailable:
            return None  # the daemon stopped: carry on from its store
        outcome = await waiting.observe(result["task"], "daemon")
        if outcome is not None:
            return outcome
        if result.get("timed_out") or remaining == 0:
            return waiting.timeout("daemon")


def _store_file(change: filewatch.Change, path: str) -> bool:
    return Path(path).name in WATCHED_FILES


async def _wait_store(remote: RemoteRepo, waiting: _Waiting) -> WaitOutcome | None:
    assert remote.service is not None
    paths = remote.ref.paths
    store = remote.service.store
    stop = asyncio.Event()
    # Not recursive: `.cockpit/worktrees/` holds whole checkouts and none of it matters here.
    changes = filewatch.awatch(paths.cockpit, watch_filter=_store_file, stop_event=stop, debounce=5)
    pending: asyncio.Future[Any] = asyncio.ensure_future(changes.__anext__())
    await asyncio.sleep(0)  # let awatch build its watcher: it watches from then on, so no write is missed
    try:
        while True:
            if daemonfile.read_live(paths.daemon_json) is not None:
                client = await DaemonClient.for_repo(paths, timeout=CONNECT_TIMEOUT_S)
                if client is not None:
                    await client.close()
                    return None  # the daemon is up: wait over its socket instead
            outcome = await waiting.observe((await store.get_task(waiting.task_id)).to_json(), "store")
            if outcome is not None:
                return outcome
            remaining = waiting.remaining()
            if remaining == 0:
                return waiting.timeout("store")
            done, _ = await asyncio.wait({pending}, timeout=remaining)
            if not done:
                return waiting.timeout("store")
            pending = asyncio.ensure_future(changes.__anext__())
    finally:
        stop.set()
        await filewatch.close_watch(pending, changes)


# -- the remote operations on behalf of a sender -------------------------------------------------------------

def _summary(ref: PeerRef, task: JSON, via: str) -> JSON:
    repo = ref.name
    return {"repo": repo, "id": task.get("id"), "state": task.get("state"), "scope": task.get("scope"),
            "title": task.get("title"), "plan": task.get("plan", []), "via": via, "task": task,
            "status": describe(repo, task), "hint": hint_for(repo, task, via=via, root=ref.paths.root)}


@dataclass
class Delegation:
    """The remote ops of DESIGN section 1 on behalf of one sender repo, recording the links in its store."""

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
                await self._record(source_task_id, "delegation.sent", sent,
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
        await self._record(parent_id, "delegation.finished",
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


async def repo_status(name: str, root: Path, host: str | None = None) -> JSON:
    """A repo of the workspace: its path, whether its daemon is up, and its task counts by state."""
    if host is not None:
        return await hosted_status(hosted_repo(name, host, str(root)), CONNECT_TIMEOUT_S)
    paths = RepoPaths(root)
    info = daemonfile.read_live(paths.daemon_json)
    initialised = paths.db.exists()
    # One stat each: not worth a thread.
    data: JSON = {"name": name, "path": str(root), "exists": root.is_dir(),  # noqa: ASYNC240
                  "initialised": initialised, "daemon": "down", "pid": None, "counts": {}}
    if info is not None:
        data["pid"] = info.pid
        with contextlib.suppress(CockpitError, OSError, TimeoutError):
            client = await DaemonClient.connect(info.socket, timeout=CONNECT_TIMEOUT_S)
            try:
                status = await client.call("status", timeout=CONNECT_TIMEOUT_S)
            finally:
                await client.close()
            data["daemon"] = "up"
            data["counts"] = status.get("counts", {})
            return data
        data["daemon"] = "not answering"
    if initialised:
        with contextlib.suppress(CockpitError, OSError):
            store = await Store.open(paths.db, create=False)
            try:
                data["counts"] = await store.counts()
            finally:
                await store.close()
    return data


# -- socket ops ----------------------------------------------------------------------------------------------

def _arg_float(args: dict[str, Any], name: str, default: float | None) -> float | None:
    return limits.seconds(args.get(name), name, default)


def _arg_opt_int(args: dict[str, Any], name: str) -> int | None:
    return arg_int(args, name) if args.get(name) is not None else None


def _arg_states(args: dict[str, Any], name: str) -> list[str]:
    value = args.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise UsageError(f"{name} must be a state or a list of states", code="bad_request")
    return [parse_state(x).value for x in value]


def _arg_repo(args: dict[str, Any]) -> str:
    repo = args.get("repo")
    if not isinstance(repo, str) or not repo:
        raise UsageError("repo must name a peer repo of the workspace (list_peers shows them)",
                         code="bad_request")
    return repo


def install_ops(ops: Ops) -> None:
    delegation = Delegation(ops.service)

    async def create_remote_task(args: dict[str, Any]) -> JSON:
        text = args.get("text", args.get("description"))
        if not isinstance(text, str) or not text.strip():
            raise UsageError("create_remote_task needs text: what the peer repo should do",
                             code="bad_request")
        return await delegation.create(
            _arg_repo(args), text, source_task_id=_arg_opt_int(args, "source_task_id"),
            step=_arg_opt_int(args, "step"), key=arg_opt_str(args, "key"), force=arg_bool(args, "force"),
            wait_classified_s=_arg_float(args, "wait_classified_s", DEFAULT_WAIT_CLASSIFIED_S),
            by=arg_opt_str(args, "by"), on_behalf_of=_arg_opt_int(args, "on_behalf_of"))

    async def get_remote_task(args: dict[str, Any]) -> JSON:
        return await delegation.show(_arg_repo(args), arg_int(args, "id"))

    async def approve_remote_task(args: dict[str, Any]) -> JSON:
        return await delegation.approve(_arg_repo(args), arg_int(args, "id"))

    async def wait_remote_task(args: dict[str, Any]) -> JSON:
        since = arg_opt_str(args, "since_state")
        return await delegation.wait(
            _arg_repo(args), arg_int(args, "id"), until=_arg_states(args, "until"),
            timeout_s=_arg_float(args, "timeout_s", None),
            since_state=parse_state(since).value if since is not None else None)

    async def list_peers(args: dict[str, Any]) -> JSON:
        return await delegation.list_peers()

    async def child_finished(args: dict[str, Any]) -> JSON:
        """A child's repo says the child finished: read its state back from there and record it."""
        parent_id, repo, child_id = arg_int(args, "id"), _arg_repo(args), arg_int(args, "child")
        parent = await ops.service.store.get_task(parent_id)
        if all((c.repo, c.id) != (repo, child_id) for c in parent.children):
            raise NotFoundError(f"{repo}#{child_id} is not a child of task {parent_id}")
        shown = await delegation.show(repo, child_id)
        if shown["state"] in {s.value for s in FINISHED}:
            await delegation.record_finished(delegation.sender().name, repo, shown["task"])
        return {"id": parent_id, "child": {"repo": repo, "id": child_id, "state": shown["state"]}}

    async def task_states(args: dict[str, Any]) -> JSON:
        ids = args.get("ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise UsageError("ids must be a list of task ids", code="bad_request")
        states = await _store_states(ops.service.store, sorted(set(ids)))
        return {"states": {str(k): v for k, v in states.items()}}

    ops.handlers.update({
        "create_remote_task": create_remote_task,
        "get_remote_task": get_remote_task,
        "approve_remote_task": approve_remote_task,
        "wait_remote_task": wait_remote_task,
        "list_peers": list_peers,
        "task_states": task_states,
        "child_finished": child_finished,
    })
    ops.task_decorators.append(delegation.child_states)


__all__ = [
    "DEFAULT_WAIT_CLASSIFIED_S", "Delegation", "PeerRef", "RemoteRepo", "Sender", "WaitOutcome",
    "describe", "hint_for", "install_ops", "main_repo_of", "open_peer", "repo_status", "wait_peer_task",
]
