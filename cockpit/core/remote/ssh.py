"""One ssh host: a shared ControlMaster, commands run through it, and stream-local forwards of Unix sockets.

Everything goes through the person's own OpenSSH (their `~/.ssh/config`, keys, agent, ProxyJump). The master
is started once per host and kept with ControlPersist; every command and forward multiplexes over it, so a
second connection to the same host costs no handshake. Control sockets and forwarded local sockets live in
`<runtime dir>/ssh/`, mode 0700: nothing listens on TCP.

`COCKPIT_SSH_CONFIG`, when set, is passed to ssh as `-F FILE` (ssh reads `~/.ssh/config` from the passwd home
directory, not `$HOME`, so a test or a second setup needs it).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import DaemonUnavailable
from cockpit.core.paths import runtime_dir

SSH = "ssh"
CONFIG_ENV = "COCKPIT_SSH_CONFIG"
PERSIST_S = 600
CONNECT_TIMEOUT_S = 5
COMMAND_TIMEOUT_S = 60.0


class HostUnreachable(DaemonUnavailable):
    """ssh could not reach the host (down, refused, no route, authentication failed)."""

    code = "host_unreachable"


def ssh_dir() -> Path:
    path = runtime_dir() / "ssh"
    path.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


_LOCKS: dict[Path, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()


def _master_lock(control: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(control, threading.Lock())


@dataclass(frozen=True)
class RunResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class SshHost:
    """An ssh destination as the person's ssh config knows it, e.g. `build-box` or `me@build-box`."""

    destination: str

    @property
    def config(self) -> str | None:
        return os.environ.get(CONFIG_ENV) or None

    @property
    def _key(self) -> str:
        return _digest(f"{self.destination}\0{self.config or ''}")

    @property
    def control_path(self) -> Path:
        return ssh_dir() / f"{self._key}.ctl"

    def local_socket(self, remote_socket: str) -> Path:
        """Where the forward of `remote_socket` on this host listens here."""
        return ssh_dir() / f"{self._key}-{_digest(remote_socket)}.sock"

    def options(self, *, batch: bool = True) -> list[str]:
        argv = [SSH]
        if self.config:
            argv += ["-F", self.config]
        argv += ["-o", f"ControlPath={self.control_path}", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                 "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        if batch:
            argv += ["-o", "BatchMode=yes"]
        return argv

    # -- the master ------------------------------------------------------------------------------------------

    def master_alive(self) -> bool:
        if not self.control_path.exists():
            return False
        proc = subprocess.run([*self.options(), "-O", "check", self.destination], stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)
        return proc.returncode == 0

    def master_pid(self) -> int | None:
        """The master's pid (from `ssh -O check`), or None when there is none."""
        if not self.control_path.exists():
            return None
        proc = subprocess.run([*self.options(), "-O", "check", self.destination], stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False)
        text = proc.stderr + proc.stdout
        if proc.returncode != 0 or "pid=" not in text:
            return None
        with contextlib.suppress(ValueError):
            return int(text.split("pid=", 1)[1].split(")", 1)[0])
        return None

    def ensure_master(self, *, batch: bool = True) -> None:
        """Start the shared connection unless one is up; raises HostUnreachable when ssh cannot connect."""
        if self.master_alive():
            return
        # One start at a time per host in this process: a second would unlink the first's fresh socket.
        with _master_lock(self.control_path):
            if self.master_alive():
                return
            self._start_master(batch=batch)

    def _start_master(self, *, batch: bool) -> None:
        # A control socket left by a killed master would make ssh run without multiplexing at all.
        with contextlib.suppress(FileNotFoundError):
            self.control_path.unlink()
        # The master forks into the background holding its stdio, so its errors go to a file, not a pipe.
        with tempfile.TemporaryFile() as err:
            argv = [*self.options(batch=batch), "-o", "ControlMaster=auto",
                    "-o", f"ControlPersist={PERSIST_S}", "-o", "StreamLocalBindUnlink=yes",
                    "-o", "StreamLocalBindMask=0177", "-fN",
                    self.destination]
            try:
                proc = subprocess.run(argv, stdin=None if not batch else subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=err, timeout=COMMAND_TIMEOUT_S,
                                      check=False)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = -1
            err.seek(0)
            detail = err.read().decode(errors="replace").strip().splitlines()
        if code == 0 and self.control_path.exists():
            return  # -f returns once authenticated, with the control socket already listening
        reason = detail[-1] if detail else f"ssh exited with status {code}"
        raise HostUnreachable(f"{self.destination} unreachable: {reason} "
                              f"(check `ssh {self.destination} true`)")

    def stop_master(self) -> None:
        if self.control_path.exists():
            subprocess.run([*self.options(), "-O", "exit", self.destination], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False)

    # -- commands and forwards -------------------------------------------------------------------------------

    def run(self, argv: list[str], *, timeout: float = COMMAND_TIMEOUT_S, batch: bool = True,
            stdin: str | None = None) -> RunResult:
        """Run `argv` on the host (through the master) and return its status and output. `stdin` is given to
        it on its standard input (a secret goes there, never in `argv`, which the host's `ps` shows)."""
        self.ensure_master(batch=batch)
        try:
            proc = subprocess.run([*self.options(batch=batch), self.destination, "--", shlex.join(argv)],
                                  input=stdin, stdin=subprocess.DEVNULL if stdin is None else None,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise HostUnreachable(f"{self.destination} did not answer `{shlex.join(argv)}` within "
                                  f"{timeout:.0f}s") from None
        if proc.returncode == 255:
            lines = proc.stderr.strip().splitlines()
            raise HostUnreachable(f"{self.destination} unreachable: {lines[-1] if lines else 'ssh failed'}")
        return RunResult(proc.returncode, proc.stdout, proc.stderr)

    def forward(self, remote_socket: str) -> Path:
        """Forward `remote_socket` on the host to a local socket (through the master); returns its path."""
        self.ensure_master()
        local = self.local_socket(remote_socket)
        proc = subprocess.run([*self.options(), "-O", "forward", "-L", f"{local}:{remote_socket}",
                               self.destination], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=False)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            raise HostUnreachable(f"{self.destination}: cannot forward {remote_socket}: "
                                  f"{lines[-1] if lines else 'ssh failed'}")
        return local

    def tty_argv(self, argv: list[str]) -> list[str]:
        """An ssh command line that runs `argv` on the host in this terminal (attach, shell)."""
        return [*self.options(batch=False), "-t", self.destination, "--", shlex.join(argv)]


__all__ = ["CONFIG_ENV", "HostUnreachable", "RunResult", "SshHost", "ssh_dir"]


def _digest(text: str) -> str:
    import hashlib  # here: it maps OpenSSL's libcrypto, megabytes a local-only daemon need not hold

    return hashlib.sha256(text.encode()).hexdigest()[:12]
