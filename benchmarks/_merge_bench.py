"""Shared by merge_overhead and rollback_overhead: a big repo, bare git, and the tool's git process count."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import git as gitpython

from cockpit_testkit.gitrepos import GIT_ENV, make_repo
from cockpit_testkit.tasks import commit_files


@contextlib.contextmanager
def counting_git() -> Iterator[list[str]]:
    """Count the git processes the tool starts (every one goes through GitPython's `Git.execute`)."""
    started: list[str] = []
    real = gitpython.Git.execute

    def execute(self: gitpython.Git, command: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(" ".join(command[1:3]))
        return real(self, command, *args, **kwargs)

    gitpython.Git.execute = execute  # type: ignore[method-assign]
    try:
        yield started
    finally:
        gitpython.Git.execute = real  # type: ignore[method-assign]


def bare_git(cwd: Path, *args: str) -> str:
    """One bare git command, as a shell would run it."""
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def isolated_env(tmp: Path) -> Iterator[None]:
    """No user or system git config (hooks, signing ...) and a fixed identity, for both sides alike."""
    saved = dict(os.environ)
    home = tmp / "home"
    home.mkdir()
    os.environ.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", **GIT_ENV})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def make_big_repo(path: Path, files: int, history: int = 20) -> Path:
    """A repo of `files` files in 40 directories with `history` commits, `main` checked out."""
    make_repo(path, {f"src/d{i % 40}/f{i}.txt": f"file {i}\n" * 10 for i in range(files)})
    for n in range(history):
        commit_files(path, {f"src/d{n % 40}/f{n}.txt": f"file {n} edited {n}\n"}, f"history {n}")
    return path
