"""The socket's fallback directory and the client's check of who serves a socket: another user must not be
able to plant a directory or a fake daemon that the CLI believes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError, DaemonUnavailable
from cockpit.core.paths import runtime_dir


@pytest.fixture
def runtime_base(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="ck-rt-"))
    base.chmod(0o755)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_fallback_directory_is_created_private(runtime_base: Path) -> None:
    path = runtime_dir()
    assert path == runtime_base / f"cockpit-{os.getuid()}"
    assert (path.stat().st_mode & 0o777) == 0o700 and path.stat().st_uid == os.getuid()
    assert runtime_dir() == path  # and accepted again


def test_a_fallback_directory_open_to_others_is_refused(runtime_base: Path) -> None:
    planted = runtime_base / f"cockpit-{os.getuid()}"
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)
    with pytest.raises(CockpitError, match="0700") as info:
        runtime_dir()
    assert str(planted) in info.value.message
    assert (planted.stat().st_mode & 0o777) == 0o777, "nothing was changed"


def test_a_symlinked_fallback_directory_is_refused(runtime_base: Path, tmp_path: Path) -> None:
    (runtime_base / f"cockpit-{os.getuid()}").symlink_to(tmp_path)
    with pytest.raises(CockpitError, match="symbolic link"):
        runtime_dir()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a directory owned by another user")
def test_a_fallback_directory_owned_by_another_user_is_refused(runtime_base: Path) -> None:
    import pwd

    nobody = pwd.getpwnam("nobody")
    planted = runtime_base / f"cockpit-{os.getuid()}"
    planted.mkdir(mode=0o700)
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(CockpitError, match="owned by uid"):
        runtime_dir()


FAKE_DAEMON = """
import json, os, socket, sys
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o777)
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
hello = {"hello": {"protocol": 1, "repo": "fake", "root": "/", "pid": os.getpid()}}
conn.sendall(json.dumps(hello).encode() + b"\\n")
conn.recv(65536)
conn.sendall(b'{"id": 1, "ok": true, "result": {"pong": true}}\\n')
"""


@pytest.fixture
def fake_daemon_of_another_user() -> Iterator[Path]:
    """A socket that greets like a daemon, served by `nobody`."""
    if os.getuid() != 0:
        pytest.skip("needs root to run a server as another user")
    import pwd

    nobody = pwd.getpwnam("nobody")
    base = Path(tempfile.mkdtemp(prefix="ck-fake-"))
    base.chmod(0o777)
    sock = base / "daemon.sock"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    proc = subprocess.Popen([python, "-c", FAKE_DAEMON, str(sock)], stdout=subprocess.PIPE, text=True,
                            user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[], cwd="/")
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        yield sock
    finally:
        proc.kill()
        proc.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)


async def test_the_client_refuses_a_daemon_run_by_another_user(fake_daemon_of_another_user: Path) -> None:
    with pytest.raises(DaemonUnavailable, match="another user"):
        await DaemonClient.connect(fake_daemon_of_another_user, timeout=5)
