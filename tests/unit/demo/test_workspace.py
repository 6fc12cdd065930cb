"""The demo workspace on disk: the repos' files come from the package data; `build` lays out real repos."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from cockpit.core import config as cfg
from cockpit.core.errors import UsageError
from cockpit.core.paths import RepoPaths
from cockpit.demo import workspace


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def test_the_repos_files_are_the_package_data() -> None:
    backend = workspace.repo_files("backend")
    assert sorted(backend) == ["README.md", "app/__init__.py", "app/pagination.py", "app/reports.py",
                               "tests/__init__.py", "tests/test_reports.py"]
    assert backend["app/__init__.py"] == ""
    # The seeded "off-by-one" task fixes this very line: the demo depends on it being wrong.
    assert "start = number * size" in backend["app/pagination.py"]
    frontend = workspace.repo_files("frontend")
    assert "pages/export.html" in frontend and "client/api.py" in frontend
    assert set(workspace.REPO_FILES) == set(workspace.REPO_NAMES)


def test_build_lays_out_both_repos_with_one_commit_of_their_files(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    ws = workspace.build(root, tmux_socket=workspace.new_tmux_socket())
    assert set(ws.repos) == set(workspace.REPO_NAMES)
    for name, path in ws.repos.items():
        files = workspace.repo_files(name)
        assert git(path, "ls-files").split() == sorted(files)
        assert git(path, "rev-list", "--count", "HEAD").strip() == "1"
        assert git(path, "status", "--porcelain") == ""  # .cockpit/ is excluded, nothing else is left over
        for rel, content in files.items():
            assert (path / rel).read_text() == content
        settings = cfg.load_settings(RepoPaths(path).config)
        assert settings["tmux.socket_name"] == ws.tmux_socket
        assert RepoPaths(path).db.exists()
    assert workspace.DemoWorkspace.load(ws.root).repos == ws.repos
    assert "[repos.backend]" in ws.file.read_text()


def test_build_refuses_a_directory_that_holds_something(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine\n")
    with pytest.raises(UsageError, match="not an empty directory"):
        workspace.build(tmp_path, tmux_socket=workspace.new_tmux_socket())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]
