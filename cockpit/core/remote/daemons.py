"""A repo on another host: its daemon started and found over ssh, and a client through a forwarded socket.

The daemon runs on its own host (`cockpit daemon start` there, over the shared master); a client reaches its
Unix socket through an ssh stream-local forward to a socket under this machine's runtime dir, so the
protocol, `subscribe since` and `wait_task` are the daemon's own. The remote daemon's SO_PEERCRED check sees
the ssh user, as for any local client of that user.

The person's token goes to a host only for a repo the person trusted (`workspace add --host ... --trust`,
which installs it there with `trust_host`), and only from the person's own clients (`connect(person=True)`:
the cockpit). A daemon reaching a hosted peer (delegation) never presents it: there it is a peer, so it can
never approve work on another host for a person.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path

from cockpit import __version__
from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError, DaemonUnavailable, RefusedError
from cockpit.core.models import JSON
from cockpit.core.remote.ssh import HostUnreachable, SshHost

REMOTE_COCKPIT = "cockpit"


def install_hint(host: str) -> str:
    return (f"install agent-cockpit on {host} so that `cockpit` is on the PATH of a non-interactive ssh "
            f"session there (e.g. `ssh {host} pipx install agent-cockpit`, or `pip install .` from a "
            f"checkout), then check with `ssh {host} cockpit --version`")


def _json_line(text: str) -> JSON | None:
    for line in reversed(text.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def remote_version(host: SshHost) -> str:
    """`cockpit --version` on the host; a CockpitError saying how to install it when it is missing."""
    result = host.run([REMOTE_COCKPIT, "--version"])
    if result.returncode != 0:
        why = result.stderr.strip().splitlines()
        raise CockpitError(f"cockpit is not installed on {host.destination} "
                           f"({why[-1] if why else f'exit {result.returncode}'}); "
                           + install_hint(host.destination), code="not_installed")
    return result.stdout.strip().split()[-1] if result.stdout.strip() else "unknown"


@dataclass
class HostedRepo:
    """Repo `name` at `root` on `host`, with the remote socket once seen (reconnects skip asking)."""

    name: str
    host: SshHost
    root: str
    remote_socket: str | None = field(default=None, compare=False)
    trust: bool = field(default=False, compare=False)  # the person's token may be presented there

    @property
    def where(self) -> str:
        return f"{self.host.destination}:{self.root}"

    def _cockpit(self, *argv: str) -> JSON:
        result = self.host.run([REMOTE_COCKPIT, *argv, "--repo", self.root, "--json"])
        data = _json_line(result.stdout)
        if data is None:
            if result.returncode == 127:
                raise CockpitError(f"cockpit is not installed on {self.host.destination}; "
                                   + install_hint(self.host.destination), code="not_installed")
            why = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            raise CockpitError(f"`cockpit {' '.join(argv)}` on {self.host.destination} failed: {why}",
                               code="remote_failed")
        error = data.get("error")
        if isinstance(error, dict):
            raise CockpitError(f"{self.host.destination}: {error.get('message')}",
                               code=str(error.get("code", "error")))
        return data

    def status(self) -> JSON:
        """`cockpit daemon status` there: {"running": bool, "socket": ..., "pid": ...}."""
        data = self._cockpit("daemon", "status")
        if data.get("running"):
            self.remote_socket = str(data["socket"])
        return data

    def start(self) -> JSON:
        """`cockpit daemon start` there (idempotent); returns its daemon info."""
        data = self._cockpit("daemon", "start")
        self.remote_socket = str(data["socket"])
        return data

    def stop(self) -> JSON:
        return self._cockpit("daemon", "stop")

    def local_socket(self) -> Path:
        """The local end of the forward to the daemon's socket; raises DaemonUnavailable when it is down."""
        if self.remote_socket is None:
            status = self.status()
            if not status.get("running"):
                raise DaemonUnavailable(
                    f"{self.name}'s daemon on {self.host.destination} is not running; start it with "
                    f"`ssh {self.host.destination} cockpit daemon start --repo {self.root}` (or D in the "
                    "cockpit)", code="remote_daemon_down")
        assert self.remote_socket is not None
        return self.host.forward(self.remote_socket)

    async def connect(self, timeout: float = 5.0, *,  # noqa: ASYNC109 - as DaemonClient.connect
                      person: bool = False) -> DaemonClient:
        """A client of the daemon through the forward. Tries the socket seen last before asking the host.

        With `person` (the person's own client asking) and a trusted repo, the person's token is presented, so
        the connection is the person's there; otherwise it is a peer's."""
        speak = person and self.trust
        known = self.remote_socket is not None
        local = await asyncio.to_thread(self.local_socket)
        try:
            return await DaemonClient.connect(local, timeout, person=speak)
        except DaemonUnavailable:
            if not known:
                raise
        # The daemon may have restarted on another socket (or stopped): ask the host once more.
        self.remote_socket = None
        local = await asyncio.to_thread(self.local_socket)
        try:
            return await DaemonClient.connect(local, timeout, person=speak)
        except DaemonUnavailable:
            raise DaemonUnavailable(
                f"{self.name}'s daemon on {self.host.destination} does not answer through ssh (running? "
                "does that sshd allow forwarding: AllowStreamLocalForwarding, AllowTcpForwarding?)",
                code="remote_daemon_down") from None


def local_version() -> str:
    return __version__


def trust_host(host: SshHost) -> JSON:
    """Install this machine's person token among the tokens `host` accepts as the person (0600, beside the
    host user's own token, which stays as it is), over ssh: the token goes on stdin, never on a command line.
    Returns the host's answer ({"file": ..., "added": bool})."""
    import getpass
    import socket

    from cockpit.core import principals

    token = principals.ensure_token()
    origin = f"{getpass.getuser()}@{socket.gethostname()}"
    result = host.run([REMOTE_COCKPIT, "token", "accept", "--from", origin, "--json"], stdin=token + "\n")
    data = _json_line(result.stdout)
    if data is None or isinstance(data.get("error"), dict) or result.returncode != 0:
        why = (data or {}).get("error") or {}
        detail = why.get("message") if isinstance(why, dict) and why.get("message") else (
            (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1])
        raise CockpitError(f"could not trust {host.destination}: {detail}; nothing was added to the "
                           "workspace", code="trust_failed")
    return data


def gate_refusal(repo: HostedRepo, exc: CockpitError, task_id: int) -> CockpitError:
    """A hosted peer's `human_gate` refusal of a remote approval, with where the person approves it."""
    if exc.code != "human_gate":
        return exc
    where = repo.host.destination
    return RefusedError(
        f"{exc.message} ({repo.name} is on {where}: `ssh {where} cockpit task approve {task_id} --repo "
        f"{repo.root}`, or the cockpit's {repo.name} tab once {where} is trusted with `cockpit workspace add "
        f"{repo.name} --host {where} --path {repo.root} --trust`)", code=exc.code, details=exc.details)


_PERSON_VERBS = {"approve_task": "approve", "send_input": "send", "merge_task": "merge",
                 "rollback_task": "rollback", "retry_task": "retry", "rework_task": "rework"}


def person_refusal(repo: HostedRepo, exc: CockpitError, op: str = "",
                   task_id: object = None) -> CockpitError:
    """A hosted daemon's `person_required` refusal, said for the person at this cockpit: where to do it."""
    if exc.code != "person_required" or repo.trust:
        return exc
    where = repo.host.destination
    verb = _PERSON_VERBS.get(op, "")
    there = (f"`ssh {where} cockpit task {verb} {task_id} --repo {repo.root}`"
             if verb and task_id is not None else f"`ssh {where} cockpit task ... --repo {repo.root}`")
    return RefusedError(
        f"{repo.name} is on {where}, where this cockpit is a peer, and this needs a person: do it on {where} "
        f"({there}), or re-add the repo with `cockpit workspace add {repo.name} --host {where} --path "
        f"{repo.root} --trust` so this cockpit acts for you there", code=exc.code, details=exc.details)


__all__ = ["HostUnreachable", "HostedRepo", "connect_peer", "gate_refusal", "hosted_repo", "hosted_status",
           "install_hint", "local_version", "person_refusal", "remote_version", "trust_host"]


# One HostedRepo per (host, path) in a process, so the remote socket seen once is reused by every later op.
_HOSTED: dict[tuple[str, str], HostedRepo] = {}


def hosted_repo(name: str, host: str, root: str, *, trust: bool = False) -> HostedRepo:
    key = (host, root)
    found = _HOSTED.get(key)
    if found is None:
        found = _HOSTED[key] = HostedRepo(name, SshHost(host), root)
    if trust:  # only the person's own clients ask for the token to be presented (`connect(person=True)`)
        found.trust = True
    return found


async def connect_peer(repo: HostedRepo, timeout: float = 5.0) -> DaemonClient:  # noqa: ASYNC109
    """A client of a hosted peer's daemon for a delegation op; refuses clearly when it cannot be reached.

    A hosted repo has no store this machine can write, so there is no fallback: the sender is told that
    nothing was sent and why.
    """
    try:
        return await repo.connect(timeout)
    except HostUnreachable as exc:
        raise HostUnreachable(
            f"{repo.name} is on {repo.host.destination}, which does not answer ({exc.message}); nothing was "
            "sent: try again once the host is back", code="peer_unreachable") from None
    except DaemonUnavailable as exc:
        raise DaemonUnavailable(
            f"{exc.message}; nothing was sent ({repo.name} is on {repo.host.destination}, whose store this "
            "machine cannot write)", code="peer_unreachable") from None


async def hosted_status(repo: HostedRepo, timeout: float = 5.0) -> JSON:  # noqa: ASYNC109
    """For `workspace list` and `list_peers`: host, path, daemon up / down / unreachable, task counts."""
    data: JSON = {"name": repo.name, "host": repo.host.destination, "path": repo.root, "exists": None,
                  "initialised": None, "daemon": "unreachable", "pid": None, "counts": {}}
    try:
        client = await repo.connect(timeout)
    except HostUnreachable as exc:
        data["detail"] = exc.message
        return data
    except CockpitError as exc:
        data["daemon"] = "down"
        data["detail"] = exc.message
        return data
    try:
        status = await client.call("status", timeout=timeout)
    finally:
        await client.close()
    data.update(exists=True, initialised=True, daemon="up", pid=client.hello.get("pid"),
                counts=status.get("counts", {}))
    return data
