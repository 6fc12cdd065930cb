"""`cockpit mcp install`: nothing it leaves blocks a merge, no machine paths in a shared file, modes kept."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.gitrepos import git
from cockpit_testkit.tasks import make_reviewable_task
from cockpit_testkit.workspaces import build_workspace


def test_a_local_install_is_kept_out_of_git_and_the_merge_goes_through(short_tmp: Path) -> None:
    root = build_workspace(short_tmp, ["backend"], settings={"merge.verify": "false"})["backend"]
    mcp = root / ".mcp.json"
    mcp.write_text(json.dumps({"mcpServers": {"other": {"command": "other-server"}}, "extra": 1}))
    os.chmod(mcp, 0o600)
    installed = cli_json("mcp", "install", repo=root)
    assert installed["changed"] and installed["excluded_added"] and not installed["shared"]
    data = json.loads(mcp.read_text())
    assert data["extra"] == 1 and data["mcpServers"]["other"] == {"command": "other-server"}
    assert data["mcpServers"]["cockpit"]["args"][-1] == "mcp"
    assert stat.S_IMODE(mcp.stat().st_mode) == 0o600
    assert "/.mcp.json" in (root / ".git" / "info" / "exclude").read_text().splitlines()
    assert git(root, "status", "--porcelain") == ""
    again = cli_json("mcp", "install", repo=root)
    assert not again["changed"] and not again["excluded_added"]

    task = make_reviewable_task(root, {"src/app.txt": "app\n"})
    merged = cli_json("task", "merge", str(task.id), repo=root)
    assert merged["task"]["state"] == "done", merged
    assert json.loads(mcp.read_text())["mcpServers"]["cockpit"]  # untouched by the merge


def test_a_shared_install_is_portable_and_committed(short_tmp: Path) -> None:
    root = build_workspace(short_tmp, ["backend"], settings={"merge.verify": "false"})["backend"]
    installed = cli_json("mcp", "install", "--shared", repo=root)
    assert installed["shared"] and installed["committed"]
    text = (root / ".mcp.json").read_text()
    entry = json.loads(text)["mcpServers"]["cockpit"]
    assert entry == {"type": "stdio", "command": "cockpit", "args": ["mcp"], "env": {}}
    assert str(root) not in text and "/" not in entry["command"]  # nothing of this machine
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "log", "-1", "--format=%s") == "Add the cockpit MCP server to .mcp.json"
    assert git(root, "show", "--name-only", "--format=", "HEAD") == ".mcp.json"

    # Tracked now: a local install would leave an uncommitted change, so it is refused, nothing changed.
    before = (root / ".mcp.json").read_text()
    local = cli("mcp", "install", "--json", repo=root)
    assert local.code == 1 and local.json["error"]["code"] == "tracked", local.stdout
    assert (root / ".mcp.json").read_text() == before
    # Uncommitted edits of the person's own are not swept into a commit.
    (root / ".mcp.json").write_text(before.replace('"env": {}', '"env": {"X": "1"}'))
    dirty = cli("mcp", "install", "--shared", "--json", repo=root)
    assert dirty.code == 1 and dirty.json["error"]["code"] == "dirty"
    git(root, "checkout", "--", ".mcp.json")
    assert not cli_json("mcp", "install", "--shared", repo=root)["changed"]

    task = make_reviewable_task(root, {"src/app.txt": "app\n"})
    assert cli_json("task", "merge", str(task.id), repo=root)["task"]["state"] == "done"


def test_a_broken_mcp_json_is_refused_and_left_alone(short_tmp: Path) -> None:
    root = build_workspace(short_tmp, ["backend"])["backend"]
    (root / ".mcp.json").write_text("{not json")
    result = cli("mcp", "install", repo=root)
    assert result.code == 2 and "is not valid JSON" in result.stderr and len(result.stderr.splitlines()) == 1
    assert (root / ".mcp.json").read_text() == "{not json"
