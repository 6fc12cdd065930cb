"""`.cockpit/daemon.json`: who serves this repo, where, and since when. A file naming a dead pid is stale."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from cockpit.core.protocol import PROTOCOL_VERSION


@dataclass(frozen=True)
class DaemonInfo:
    pid: int
    socket: str
    protocol: int
    started_at: float
    repo: str
    root: str

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes: it answers kill 0 but serves nothing.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def read(path: Path) -> DaemonInfo | None:
    try:
        data = json.loads(path.read_text())
        return DaemonInfo(
            pid=int(data["pid"]), socket=str(data["socket"]), protocol=int(data["protocol"]),
            started_at=float(data["started_at"]), repo=str(data["repo"]), root=str(data["root"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def serving(socket_path: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections on the daemon's socket. Blocks (at most `timeout`)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(socket_path)
        except OSError:
            return False
    return True


def read_live(path: Path) -> DaemonInfo | None:
    """The daemon's info if its process is alive, else None.

    Inside an agent's sandbox (a pid namespace of its own) the daemon's pid is not visible at all: there the
    daemon lives if its socket takes a connection (a stale file's socket refuses one at once).
    """
    info = read(path)
    if info is None:
        return None
    return info if pid_alive(info.pid) or serving(info.socket) else None


def write(path: Path, *, socket: Path, repo: str, root: Path) -> DaemonInfo:
    info = DaemonInfo(pid=os.getpid(), socket=str(socket), protocol=PROTOCOL_VERSION, started_at=time.time(),
                      repo=repo, root=str(root))
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2) + "\n")
    os.replace(tmp, path)
    return info


def remove_if_mine(path: Path) -> None:
    info = read(path)
    if info is not None and info.pid == os.getpid():
        path.unlink(missing_ok=True)


def lock_path(daemon_json: Path) -> Path:
    return daemon_json.with_name("daemon.lock")


def acquire_lock(daemon_json: Path) -> int | None:
    """Take the repo's daemon lock, held for the daemon's whole life and released by the kernel when it dies
    (even by kill -9). Returns the lock's fd, or None when another process holds it: one daemon per repo, even
    when two starts race."""
    path = lock_path(daemon_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(daemon_json: Path) -> int | None:
    """The pid written by the process that holds (or last held) the daemon lock."""
    with contextlib.suppress(OSError, ValueError):
        return int(lock_path(daemon_json).read_text().strip())
    return None


def release_lock(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)
