"""The built-in demo workspace: two real git repos whose daemons hold tasks in every interesting state.

Everything is real: git repositories, daemons on their sockets, a private tmux server, the script agent doing
the work and the gates judging it. No network and no LLM is needed; `agent="claude"` (or another backend)
uses that agent for new tasks instead.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core.workspace import WORKSPACE_FILE

BACKEND_FILES = {
    "README.md": "# backend\n\nA small HTTP API: reports and their export.\n",
    "app/__init__.py": "",
    "app/reports.py": textwrap.dedent('''\
        """Reports served by the API."""

        REPORTS = {1: {"title": "Q1 revenue", "rows": 12}, 2: {"title": "Q2 revenue", "rows": 15}}


        def get_report(report_id: int) -> dict[str, object]:
            return REPORTS[report_id]
        '''),
    "tests/__init__.py": "",
    "tests/test_reports.py": textwrap.dedent('''\
        import unittest

        from app.reports import get_report


        class ReportsTest(unittest.TestCase):
            def test_get_report(self) -> None:
                self.assertEqual(get_report(1)["rows"], 12)
        '''),
}

FRONTEND_FILES = {
    "README.md": "# frontend\n\nThe web client of the reports API.\n",
    "client/__init__.py": "",
    "client/api.py": textwrap.dedent('''\
        """A tiny client of the backend API."""


        def report_url(report_id: int) -> str:
            return f"/reports/{report_id}"
        '''),
    "tests/__init__.py": "",
    "tests/test_api.py": textwrap.dedent('''\
        import unittest

        from client.api import report_url


        class ApiTest(unittest.TestCase):
            def test_report_url(self) -> None:
                self.assertEqual(report_url(3), "/reports/3")
        '''),
}

TEST_GATE = f"{shlex.quote(sys.executable)} -m unittest discover -s tests -q"

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Demo Developer", "GIT_AUTHOR_EMAIL": "demo@example.com",
    "GIT_COMMITTER_NAME": "Demo Developer", "GIT_COMMITTER_EMAIL": "demo@example.com",
}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                   env={**os.environ, **GIT_IDENTITY})


def make_repo(path: Path, files: dict[str, str]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.name", "Demo Developer")
    _git(path, "config", "user.email", "demo@example.com")
    for name, content in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    _git(path, "add", "-A")
    _git(path, "commit", "-q", "-m", "initial commit")


def repo_config(agent: str, tmux_socket: str) -> str:
    return textwrap.dedent(f"""\
        # demo settings
        [task]
        auto_approve_small = false
        auto_approve_delegated_small = true
        remote_approval = "small"
        target_branch = "main"
        max_parallel = 3
        fix_attempts = 1

        [agent]
        backend = "{agent}"

        [tmux]
        socket_name = "{tmux_socket}"

        [merge]
        strategy = "merge"
        verify = true

        [[gates]]
        name = "tests"
        command = "{TEST_GATE.replace('"', '\\"')}"
        timeout_s = 120
        """)


@dataclass
class DemoWorkspace:
    root: Path
    tmux_socket: str
    repos: dict[str, Path] = field(default_factory=dict)

    @property
    def file(self) -> Path:
        return self.root / WORKSPACE_FILE


def build(root: Path, *, tmux_socket: str, agent: str = "script",
          progress: Callable[[str], None] | None = None) -> DemoWorkspace:
    """Create the workspace file, both repos and their `.cockpit/` settings under `root`."""
    say = progress or (lambda _msg: None)
    root.mkdir(parents=True, exist_ok=True)
    ws = DemoWorkspace(root=root, tmux_socket=tmux_socket)
    for name, files in (("backend", BACKEND_FILES), ("frontend", FRONTEND_FILES)):
        path = root / name
        if not (path / ".git").exists():
            say(f"creating repo {name}")
            make_repo(path, files)
        ws.repos[name] = path
        cockpit_dir = path / ".cockpit"
        cockpit_dir.mkdir(exist_ok=True)
        (cockpit_dir / "config.toml").write_text(repo_config(agent, tmux_socket))
    ws.file.write_text("".join(f'[repos.{n}]\npath = "{n}"\n\n' for n in ws.repos))
    return ws


def script(*steps: dict[str, Any], fix: list[dict[str, Any]] | None = None) -> str:
    """A script-agent TOML from step tables (each a one-key dict)."""
    import tomlkit

    doc = tomlkit.document()
    arr = tomlkit.aot()
    for step in steps:
        arr.append(tomlkit.item(step))
    doc["step"] = arr
    if fix:
        fix_arr = tomlkit.aot()
        for step in fix:
            fix_arr.append(tomlkit.item(step))
        doc["fix"] = fix_arr
    return tomlkit.dumps(doc)
