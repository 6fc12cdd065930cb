"""Workspace entries on another host: the file format, and `cockpit workspace add --host` checking it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core import principals
from cockpit.core.errors import ConfigError, UsageError
from cockpit.core.workspace import Workspace
from cockpit_testkit.daemons import cli
from cockpit_testkit.gitrepos import make_repo
from cockpit_testkit.sshhosts import SshLab


def test_hosted_entries_load_with_their_host_and_remote_path(short_tmp: Path) -> None:
    make_repo(short_tmp / "web")
    (short_tmp / "cockpit-workspace.toml").write_text(
        '[repos.web]\npath = "web"\n[repos.api]\nhost = "build-box"\npath = "/srv/api"\ntrust = true\n')
    ws = Workspace.load(short_tmp / "cockpit-workspace.toml")
    assert ws.host_of("api") == "build-box" and ws.host_of("web") is None
    assert str(ws.repos["api"]) == "/srv/api" and "api" in ws.trusted
    # A hosted path never names a repo of this machine, even when the same path exists here.
    assert ws.name_of(Path("/srv/api")) is None and ws.name_of(short_tmp / "web") == "web"
    (short_tmp / "cockpit-workspace.toml").write_text('[repos.api]\nhost = "build-box"\npath = "srv/api"\n')
    with pytest.raises(ConfigError, match="must be absolute"):
        Workspace.load(short_tmp / "cockpit-workspace.toml")


def test_add_hosted_refuses_a_relative_path_and_keeps_comments(short_tmp: Path) -> None:
    ws, _ = Workspace.init(short_tmp)
    with pytest.raises(UsageError, match="must be absolute"):
        ws.add_hosted("api", "build-box", "srv/api")
    ws = ws.add_hosted("api", "build-box", "/srv/api")
    text = ws.file.read_text()
    assert text.startswith("# agent-cockpit workspace") and 'host = "build-box"' in text
    assert ws.hosts == {"api": "build-box"}


def test_workspace_add_checks_cockpit_on_the_host(short_tmp: Path, ssh_lab: SshLab) -> None:
    box = ssh_lab.add_host("build-box")
    remote = make_repo(ssh_lab.base / "srv" / "api")
    Workspace.init(short_tmp)
    result = cli("workspace", "add", "api", "--host", "build-box", "--path", str(remote), "--json",
                 cwd=short_tmp)
    assert result.code == 0, result.stderr + result.stdout
    data = result.json
    assert (data["host"], data["path"], data["daemon"]) == ("build-box", str(remote), "down")
    assert data["remote_version"] == data["local_version"]
    ws = Workspace.locate(short_tmp)
    assert ws.host_of("api") == "build-box" and str(ws.repos["api"]) == str(remote)
    assert data["trust"] is False and "trusted_token_file" not in data
    # Without --trust the person's token goes nowhere near the host.
    mine = principals.ensure_token().encode()
    assert not [p for p in box.dir.rglob("*") if p.is_file() and mine in p.read_bytes()]
    # One shared master for the host, its control socket private to this user.
    assert box.ssh.master_pid() is not None
    assert box.ssh.control_path.parent.stat().st_mode & 0o777 == 0o700


def test_workspace_add_says_how_to_install_cockpit_when_missing(short_tmp: Path, ssh_lab: SshLab) -> None:
    ssh_lab.add_host("bare-box", cockpit_on_path=False)
    Workspace.init(short_tmp)
    before = (short_tmp / "cockpit-workspace.toml").read_text()
    result = cli("workspace", "add", "api", "--host", "bare-box", "--path", "/srv/api", cwd=short_tmp)
    assert result.code != 0
    assert "cockpit is not installed on bare-box" in result.stderr and "pipx install" in result.stderr
    assert (short_tmp / "cockpit-workspace.toml").read_text() == before


def test_workspace_add_refuses_an_unreachable_host_or_a_path_that_is_no_repo(
        short_tmp: Path, ssh_lab: SshLab) -> None:
    box = ssh_lab.add_host("build-box")
    Workspace.init(short_tmp)
    before = (short_tmp / "cockpit-workspace.toml").read_text()
    result = cli("workspace", "add", "api", "--host", "build-box", "--path", "/nonexistent/api",
                 cwd=short_tmp)
    assert result.code != 0 and "build-box" in result.stderr, result.stderr
    box.down()
    box.ssh.stop_master()
    result = cli("workspace", "add", "api", "--host", "build-box", "--path", "/srv/api", cwd=short_tmp)
    assert result.code != 0 and "build-box unreachable" in result.stderr, result.stderr
    assert (short_tmp / "cockpit-workspace.toml").read_text() == before
