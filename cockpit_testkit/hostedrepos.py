"""A workspace spanning hosts for the ssh tests: local repos here, hosted repos on lab hosts, real daemons.

The hosted repo lives under the lab's directory (the lab's hosts are this machine), with a workspace file of
its own on "its host" naming the local repos as hosted on `laptop`, as the person would write it there.
Its daemon is started over ssh, so it runs inside the host's network namespace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cockpit.core.remote.daemons import HostedRepo, hosted_repo
from cockpit.core.workspace import Workspace
from cockpit_testkit.gitrepos import make_repo
from cockpit_testkit.sshhosts import LabHost, SshLab
from cockpit_testkit.tasks import init_cockpit
from cockpit_testkit.workspaces import Settings, build_workspace, configure, create_store


@dataclass
class Spanning:
    workspace: Path  # the local workspace directory
    local: dict[str, Path]
    hosted: dict[str, HostedRepo]
    hosts: dict[str, LabHost]

    def remote_root(self, name: str) -> Path:
        return Path(self.hosted[name].root)


def spanning_workspace(base: Path, lab: SshLab, *, local: list[str], hosted: dict[str, str],
                       settings: Settings | None = None, start: bool = True) -> Spanning:
    """Local repos `local` under `base`; `hosted` maps repo name -> lab host name (hosts made on demand)."""
    repos = build_workspace(base, local, settings=settings)
    ws = Workspace.locate(base)
    hosts: dict[str, LabHost] = {}
    made: dict[str, HostedRepo] = {}
    for name, host_name in hosted.items():
        host = lab.hosts.get(host_name) or lab.add_host(host_name)
        hosts[host_name] = host
        there = host.dir / "srv"
        there.mkdir(exist_ok=True)
        remote_ws = Workspace.init(there)[0]
        root = make_repo(there / name)
        init_cockpit(root)
        create_store(root)
        configure(root, settings or {})
        remote_ws = remote_ws.add(name, root)
        for other in local:
            remote_ws = remote_ws.add_hosted(other, "laptop", str(repos[other]))
        ws = ws.add_hosted(name, host_name, str(root))
        repo = hosted_repo(name, host_name, str(root))
        if start:
            repo.start()
        made[name] = repo
    return Spanning(base, repos, made, hosts)
