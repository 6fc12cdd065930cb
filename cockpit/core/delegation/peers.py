"""A peer repo of the workspace by name (`PeerRef`), the sender (`Sender`), and the open line to a peer
(`RemoteRepo`): its daemon's socket when it is up, otherwise its store with the very same core code; the
status of a repo of the workspace."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cockpit.core import daemonfile, limits
from cockpit.core.client import DaemonClient
from cockpit.core.errors import (
    CockpitError,
    DaemonUnavailable,
    NotFoundError,
    UsageError,
)
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths, find_repo_root
from cockpit.core.remote.daemons import HostedRepo, connect_peer, gate_refusal, hosted_repo, hosted_status
from cockpit.core.service import TaskService
from cockpit.core.states import State
from cockpit.core.store import Store
from cockpit.core.workspace import Workspace, repo_identity

CONNECT_TIMEOUT_S = 5.0


WORKTREE_RE = re.compile(r"^task-(\d+)(?:-|$)")


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
                try:
                    return await self.client.call("approve_task", {"id": task_id, "from_repo": from_repo})
                except CockpitError as exc:
                    if self.ref.hosted is None:
                        raise
                    raise gate_refusal(self.ref.hosted, exc, task_id) from None
            return (await self._svc().approve_remote(task_id, from_repo=from_repo)).to_json()

    async def states(self, ids: Iterable[int]) -> dict[int, str]:
        wanted = sorted(set(ids))
        if self.client is not None:
            result = await self.client.call("task_states", {"ids": wanted})
            return {int(k): str(v) for k, v in result.get("states", {}).items()}
        return await store_states(self._svc().store, wanted)


async def store_states(store: Store, ids: list[int]) -> dict[int, str]:
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


# -- a repo's status -----------------------------------------------------------------------------------------

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
