"""Shared set-up for the ssh benchmarks: a host in a network namespace running sshd, a hosted repo there.

The host is this machine seen through a private namespace (as in tests/remote): sshd on an address that
exists only inside the namespaces made here, reached through a ProxyCommand run inside them, keys made for
the run. The hosted repo's daemon is started over ssh, so it runs inside the host's namespace. Needs root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from _foundation_bench import ROOT, make_repo

from cockpit.cli.repo import init_repo
from cockpit.core.config import set_value
from cockpit.core.paths import RepoPaths
from cockpit.core.remote.daemons import HostedRepo
from cockpit.core.remote.ssh import CONFIG_ENV
from cockpit_testkit.sshhosts import LabHost, make_lab

assert ROOT.is_dir()


@dataclass
class RemoteSetup:
    host: LabHost
    repo: HostedRepo
    paths: RepoPaths  # the hosted repo's paths (the host is this machine: the benchmark writes directly)
    socket: str  # the hosted daemon's own socket, on the host


@contextlib.contextmanager
def hosted_repo() -> Iterator[RemoteSetup]:
    base = Path(tempfile.mkdtemp(prefix="ck-rb-"))
    runtime = Path(tempfile.mkdtemp(prefix="ck-rt-"))
    saved = {k: os.environ.get(k) for k in (CONFIG_ENV, "XDG_RUNTIME_DIR")}
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    lab = make_lab(base)
    os.environ[CONFIG_ENV] = str(lab.ssh_config)
    try:
        host = lab.add_host("build-box")
        paths = RepoPaths(make_repo(host.dir / "srv" / "api"))
        init_repo(paths)
        set_value(paths.config, "tmux.socket_name", f"ck-bench-{base.name}")
        repo = HostedRepo("api", host.ssh, str(paths.root))
        info = repo.start()
        yield RemoteSetup(host, repo, paths, str(info["socket"]))
        repo.stop()
    finally:
        lab.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(base, ignore_errors=True)
        shutil.rmtree(runtime, ignore_errors=True)
