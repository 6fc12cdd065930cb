"""Hosts on this machine for the ssh tests: network namespaces, each running Debian's sshd on its own address.

A `SshLab` makes a private "lan" namespace holding a bridge, and for each host a namespace joined to it by a
veth pair, with an address in 10.213.0.0/24: that subnet exists only inside these namespaces. The ssh client
reaches a host through a ProxyCommand that runs inside the lan namespace (`ip netns exec`), so all traffic
stays inside namespaces the test made. Keys (client and host) are generated per lab, the ssh config lives in
a temporary HOME and is given to cockpit with `COCKPIT_SSH_CONFIG`. Each host's sessions get this checkout's
venv on their PATH (sshd `SetEnv`), so `cockpit` there is the code under test, and a config dir of their own
(the host user's person token is not this machine's).

Teardown kills every process in the host namespaces (sshd, its sessions, daemons started over ssh), ends
the ssh masters, and deletes the namespaces.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cockpit.core.remote.ssh import CONFIG_ENV, SshHost
from cockpit_testkit.waiting import wait_until

SSHD = "/usr/sbin/sshd"
SUBNET = "10.213.0"
RELAY = Path(__file__).with_name("netrelay.py")


def _ip(*args: str) -> None:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")


def _ns_pids(ns: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30,
                          check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


@dataclass
class LabHost:
    name: str
    ns: str
    address: str
    veth_lan: str
    veth_host: str
    dir: Path
    config: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def ssh(self) -> SshHost:
        return SshHost(self.name)

    @property
    def config_home(self) -> Path:
        """The host user's XDG_CONFIG_HOME (its person token, the tokens it trusts), removed with the lab."""
        return self.dir / "config"

    def start_sshd(self) -> None:
        pidfile = self.dir / "sshd.pid"
        pidfile.unlink(missing_ok=True)
        log = open(self.dir / "sshd.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, SSHD, "-D", "-e", "-f",
                                          str(self.config)], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        wait_until(lambda: pidfile.exists() or self.proc is None or self.proc.poll() is not None, 20,
                   message=f"sshd on {self.name} writes its pid file")
        if not pidfile.exists():
            raise RuntimeError(f"sshd on {self.name} did not start: "
                               f"{(self.dir / 'sshd.log').read_text(errors='replace')[-500:]}")

    lan: str = ""

    def on_host(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside the host (its namespace), not through ssh: what runs there regardless of us."""
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True, text=True,
                              timeout=timeout, env=env, check=False)

    def kill_master(self) -> int:
        """SIGKILL this machine's ssh master for the host: every forward through it drops at once."""
        pid = self.ssh.master_pid()
        assert pid is not None, f"no ssh master for {self.name}"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10)
        return pid

    def down(self) -> None:
        """The host goes away: every process in it dies (connections reset), then its link drops."""
        self.kill_all()
        _ip("-n", self.ns, "link", "set", self.veth_host, "down")

    def up(self) -> None:
        _ip("-n", self.ns, "link", "set", self.veth_host, "up")
        # The lan remembers the address as unreachable for a while; a host that is back answers at once.
        _ip("-n", self.lan, "neigh", "flush", "all")
        self.start_sshd()

    def kill_all(self) -> None:
        for _ in range(5):
            pids = _ns_pids(self.ns)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in pids:
                wait_until(lambda p=pid: not Path(f"/proc/{p}").exists() or _zombie(p), 10)  # type: ignore[misc]
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc = None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@dataclass
class SshLab:
    base: Path
    prefix: str
    lan: str
    home: Path
    ssh_config: Path
    hosts: dict[str, LabHost] = field(default_factory=dict)

    @property
    def key(self) -> Path:
        return self.home / ".ssh" / "id_ed25519"

    def add_host(self, name: str, *, cockpit_on_path: bool = True) -> LabHost:
        """A host running sshd; `cockpit_on_path=False` leaves this checkout's venv off its PATH."""
        index = len(self.hosts) + 1
        ns = f"{self.prefix}-h{index}"
        address = f"{SUBNET}.{10 + index}"
        veth_lan, veth_host = f"{self.prefix}l{index}", f"{self.prefix}h{index}"
        _ip("netns", "add", ns)
        host = LabHost(name, ns, address, veth_lan, veth_host, self.base / name,
                       self.base / name / "sshd_config", lan=self.lan)
        self.hosts[name] = host
        _ip("-n", self.lan, "link", "add", veth_lan, "type", "veth", "peer", "name", veth_host, "netns", ns)
        _ip("-n", self.lan, "link", "set", veth_lan, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", veth_host)
        _ip("-n", ns, "link", "set", veth_host, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        host.dir.mkdir(parents=True)
        host_key = host.dir / "ssh_host_ed25519_key"
        _keygen(host_key)
        runtime = host.dir / "run"  # the host's runtime dir, removed with the lab
        runtime.mkdir(mode=0o700)
        venv_bin = f"{Path(sys.executable).parent}:" if cockpit_on_path else ""
        host.config.write_text(
            f"ListenAddress {address}\nPort 22\nHostKey {host_key}\nPidFile {host.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.base / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "AllowStreamLocalForwarding yes\nX11Forwarding no\nPrintMotd no\n"
            "LogLevel ERROR\n"
            f"SetEnv PATH={venv_bin}/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin "
            f"XDG_RUNTIME_DIR={runtime} XDG_CONFIG_HOME={host.config_home} {CONFIG_ENV}={self.ssh_config}\n")
        public = (host_key.with_suffix(".pub")).read_text().split()
        with (self.home / ".ssh" / "known_hosts").open("a") as fh:
            fh.write(f"{address} {public[0]} {public[1]}\n")
        with self.ssh_config.open("a") as fh:
            fh.write(f"\nHost {name}\n  HostName {address}\n  User root\n  IdentityFile {self.key}\n"
                     "  IdentitiesOnly yes\n"
                     f"  UserKnownHostsFile {self.home / '.ssh' / 'known_hosts'}\n"
                     "  StrictHostKeyChecking yes\n"
                     f"  ProxyCommand ip netns exec {self.lan} {sys.executable} -S -I {RELAY} "
                     "--fdpass %h %p\n"
                     "  ProxyUseFdpass yes\n")
        host.start_sshd()
        return host

    def close(self) -> None:
        for host in self.hosts.values():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                host.ssh.stop_master()
        for host in self.hosts.values():
            host.kill_all()
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True, timeout=30, check=False)
        for pid in _ns_pids(self.lan):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.lan], capture_output=True, timeout=30, check=False)


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   capture_output=True, timeout=30)


def make_lab(base: Path) -> SshLab:
    """A lab with its lan namespace and client key; fails (never skips) when namespaces cannot be made."""
    if shutil.which("ip") is None or not Path(SSHD).exists() or shutil.which("ssh") is None:
        pytest.fail("the ssh tests need iproute2, openssh-server and openssh-client: run scripts/test, which "
                    "installs them", pytrace=False)
    prefix = f"ck{uuid.uuid4().hex[:6]}"
    lan = f"{prefix}-lan"
    probe = subprocess.run(["ip", "netns", "add", lan], capture_output=True, text=True, timeout=30,
                           check=False)
    if probe.returncode != 0:
        pytest.fail(f"cannot make network namespaces here (`ip netns add`: {probe.stderr.strip()}); the ssh "
                    "tests need root with CAP_SYS_ADMIN", pytrace=False)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation directory
    home = base / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    lab = SshLab(base, prefix, lan, home, home / ".ssh" / "config")
    try:
        _ip("-n", lan, "link", "set", "lo", "up")
        _ip("-n", lan, "link", "add", "br0", "type", "bridge")
        _ip("-n", lan, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
        _ip("-n", lan, "link", "set", "br0", "up")
        _keygen(lab.key)
        shutil.copy(lab.key.with_suffix(".pub"), base / "authorized_keys")
        lab.ssh_config.write_text("# made by the test\n")
    except BaseException:
        lab.close()
        raise
    return lab


@pytest.fixture
def ssh_lab(monkeypatch: pytest.MonkeyPatch) -> Iterator[SshLab]:
    """A lab whose ssh config and runtime dir this process (and the CLIs it runs) use; torn down after."""
    base = Path(tempfile.mkdtemp(prefix="cklab-"))
    runtime = Path(tempfile.mkdtemp(prefix="ckrt-"))
    lab = make_lab(base)
    monkeypatch.setenv(CONFIG_ENV, str(lab.ssh_config))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        yield lab
    finally:
        lab.close()
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
