"""The workspace file: init, add, find by walking up, names unique, comments kept; worktree paths map home."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from cockpit.cli.remote import install_mcp_json
from cockpit.core.delegation.peers import Sender, main_repo_of
from cockpit.core.errors import CockpitError, ConfigError, NotFoundError, RefusedError, UsageError
from cockpit.core.workspace import WORKSPACE_FILE, Workspace, repo_identity
from cockpit_testkit.daemons import cli
from cockpit_testkit.gitrepos import make_repo


def test_init_creates_the_file_once(short_tmp: Path) -> None:
    ws, created = Workspace.init(short_tmp)
    assert created and ws.file == (short_tmp / WORKSPACE_FILE).resolve() and ws.repos == {}
    (short_tmp / WORKSPACE_FILE).write_text((short_tmp / WORKSPACE_FILE).read_text() + "# mine\n")
    again, created_again = Workspace.init(short_tmp)
    assert not created_again and again.file == ws.file
    assert "# mine" in (short_tmp / WORKSPACE_FILE).read_text()


def test_init_refuses_a_missing_directory(short_tmp: Path) -> None:
    with pytest.raises(UsageError, match="not a directory"):
        Workspace.init(short_tmp / "nope")


def test_add_relative_and_absolute_paths_and_find_walks_up(
        short_tmp: Path, repo_factory: Callable[..., Path], tmp_path: Path) -> None:
    backend = repo_factory("backend")
    elsewhere = make_repo(tmp_path / "mobile")
    ws, _ = Workspace.init(short_tmp)
    ws = ws.add("backend", backend).add("mobile", elsewhere)
    text = (short_tmp / WORKSPACE_FILE).read_text()
    assert '[repos.backend]\npath = "backend"' in text
    assert f'path = "{elsewhere.resolve()}"' in text
    found = Workspace.find(backend)
    assert found is not None and found.repos == {"backend": backend.resolve(), "mobile": elsewhere.resolve()}
    assert found.name_of(backend) == "backend" and found.peers_of(backend) == ["mobile"]
    name, peers, _ = repo_identity(backend)
    assert (name, peers) == ("backend", ["mobile"])
    # A repo outside the workspace directory is named by the workspace key too, found from the file.
    assert Workspace.load(found.file).path_of("mobile") == elsewhere.resolve()


def test_find_walks_up_from_a_subdirectory(short_tmp: Path, repo_factory: Callable[..., Path]) -> None:
    backend = repo_factory("backend", {"src/app.py": "x = 1\n"})
    Workspace.init(short_tmp)[0].add("backend", backend)
    found = Workspace.find(backend / "src")
    assert found is not None and found.file.parent == short_tmp.resolve()


def test_names_and_paths_are_unique(short_tmp: Path, repo_factory: Callable[..., Path]) -> None:
    ws = Workspace.init(short_tmp)[0].add("backend", repo_factory("backend"))
    with pytest.raises(RefusedError, match="already has a repo named 'backend'"):
        ws.add("backend", repo_factory("other"))
    with pytest.raises(RefusedError, match="already in the workspace as 'backend'"):
        ws.add("api", short_tmp / "backend")
    with pytest.raises(UsageError, match="repo name"):
        ws.add("bad name", repo_factory("third"))
    with pytest.raises(UsageError, match="not the root of a git repository"):
        (short_tmp / "plain").mkdir()
        ws.add("plain", short_tmp / "plain")
    assert Workspace.load(ws.file).repos.keys() == {"backend"}


def test_add_keeps_comments_and_other_tables(short_tmp: Path, repo_factory: Callable[..., Path]) -> None:
    file = short_tmp / WORKSPACE_FILE
    file.write_text('# our repos\n[repos.backend]\npath = "backend"  # the API\n')
    repo_factory("backend")
    Workspace.load(file).add("frontend", repo_factory("frontend"))
    text = file.read_text()
    assert "# our repos" in text and "# the API" in text and "[repos.frontend]" in text
    assert Workspace.load(file).repos.keys() == {"backend", "frontend"}


def test_a_repo_can_join_before_it_has_cockpit_files(
        short_tmp: Path, repo_factory: Callable[..., Path]) -> None:
    ws = Workspace.init(short_tmp)[0].add("docs", repo_factory("docs"))
    assert not (ws.repos["docs"] / ".cockpit").exists()


def test_locate_and_load_errors(short_tmp: Path) -> None:
    with pytest.raises(NotFoundError, match="workspace init"):
        Workspace.locate(short_tmp)
    (short_tmp / WORKSPACE_FILE).write_text("[repos.backend]\npath = 3\n")
    with pytest.raises(ConfigError, match="needs path"):
        Workspace.locate(short_tmp)
    (short_tmp / WORKSPACE_FILE).write_text("[repos\n")
    with pytest.raises(ConfigError, match=WORKSPACE_FILE):
        Workspace.load(short_tmp / WORKSPACE_FILE)
    ws = Workspace(file=short_tmp / WORKSPACE_FILE, repos={})
    with pytest.raises(NotFoundError, match="no repo named 'x'"):
        ws.path_of("x")


def test_sender_must_be_in_the_workspace(short_tmp: Path, repo_factory: Callable[..., Path]) -> None:
    backend = repo_factory("backend")
    with pytest.raises(CockpitError, match="in no workspace") as no_ws:
        Sender.of(backend)
    assert no_ws.value.code == "no_workspace"
    ws = Workspace.init(short_tmp)[0]
    with pytest.raises(CockpitError, match="workspace add") as outside:
        Sender.of(backend)
    assert outside.value.code == "not_in_workspace"
    ws = ws.add("backend", backend).add("frontend", repo_factory("frontend"))
    sender = Sender.of(backend)
    assert sender.name == "backend" and sender.peer("frontend").paths.root == ws.repos["frontend"]
    with pytest.raises(UsageError, match="is this repo"):
        sender.peer("backend")


def test_main_repo_of_a_task_worktree(repo_factory: Callable[..., Path]) -> None:
    backend = repo_factory("backend")
    worktree = backend / ".cockpit" / "worktrees" / "task-12-add-export"
    (worktree / "src").mkdir(parents=True)
    assert main_repo_of(worktree / "src") == (backend.resolve(), 12)
    assert main_repo_of(backend) == (backend.resolve(), None)


def test_workspace_cli(short_tmp: Path, repo_factory: Callable[..., Path]) -> None:
    backend, frontend = repo_factory("backend"), repo_factory("frontend")
    init = cli("workspace", "init", str(short_tmp), "--json")
    assert init.code == 0 and init.json["created"] is True
    added = cli("workspace", "add", "backend", str(backend), "--init", "--json", cwd=short_tmp)
    assert added.code == 0, added.stderr
    assert added.json["initialised"] is True and (backend / ".cockpit" / "index.db").exists()
    added = cli("workspace", "add", "frontend", "frontend", "--json", cwd=short_tmp)
    assert added.code == 0 and added.json["initialised"] is False and "cockpit init" in added.json["hint"]
    dup = cli("workspace", "add", "frontend", str(backend), "--json", cwd=short_tmp)
    assert dup.code == 1 and dup.json["error"]["code"] == "duplicate_name"
    listed = cli("workspace", "list", "--json", cwd=backend)
    assert listed.code == 0
    rows = {r["name"]: r for r in listed.json["repos"]}
    assert rows["backend"]["daemon"] == "down" and rows["backend"]["initialised"] is True
    assert rows["frontend"]["initialised"] is False and rows["frontend"]["path"] == str(frontend.resolve())
    human = cli("workspace", "list", cwd=short_tmp)
    assert "backend" in human.stdout and "not initialised" in human.stdout
    nowhere = cli("workspace", "list", "--json", cwd=short_tmp.parent)
    if not (short_tmp.parent / WORKSPACE_FILE).exists():
        assert nowhere.code == 1 and nowhere.json["error"]["code"] == "no_workspace"


def test_mcp_install_merges_with_what_is_there(repo_factory: Callable[..., Path]) -> None:
    backend = repo_factory("backend")
    file = backend / ".mcp.json"
    file.write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}, "extra": 1}))
    first = install_mcp_json(backend)
    data = json.loads(file.read_text())
    assert first["changed"] and data["extra"] == 1
    assert data["mcpServers"]["other"] == {"command": "other-server"}
    entry = data["mcpServers"]["cockpit"]
    # No path of this checkout in the file: the server finds the repo from the directory it starts in.
    assert entry["args"][-1] == "mcp" and entry["type"] == "stdio" and str(backend) not in file.read_text()
    # A person's own env for the server survives a re-install, and a re-install changes nothing else.
    entry["env"] = {"COCKPIT_MCP_HEARTBEAT_S": "5"}
    file.write_text(json.dumps(data))
    second = install_mcp_json(backend)
    assert not second["changed"]
    assert json.loads(file.read_text())["mcpServers"]["cockpit"]["env"] == {"COCKPIT_MCP_HEARTBEAT_S": "5"}
    file.write_text("{not json")
    with pytest.raises(ConfigError, match="nothing was changed"):
        install_mcp_json(backend)
    assert file.read_text() == "{not json"


def test_mcp_install_cli_creates_the_file(repo_factory: Callable[..., Path]) -> None:
    backend = repo_factory("backend")
    result = cli("mcp", "install", "--json", repo=backend)
    assert result.code == 0, result.stderr
    assert json.loads((backend / ".mcp.json").read_text())["mcpServers"]["cockpit"]["command"]
