"""Shared set-up for the foundation benchmarks: a throwaway git repo with `.cockpit/`, and its real daemon."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cockpit.cli.repo import init_repo  # noqa: E402
from cockpit.core.config import set_value  # noqa: E402
from cockpit.core.paths import RepoPaths  # noqa: E402

IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


@dataclass(frozen=True)
class Served:
    repo: Path
    paths: RepoPaths
    socket: str
    pid: int


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    env = {**os.environ, **IDENTITY}
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "initial"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, env=env)
    return path


def cockpit(repo: Path, *args: str) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-m", "cockpit", *args, "--json", "--repo", str(repo)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"cockpit {' '.join(args)} failed: {proc.stdout}{proc.stderr}")
    result: dict[str, object] = json.loads(proc.stdout)
    return result


@contextlib.contextmanager
def repo_dir() -> Iterator[RepoPaths]:
    """An initialised repo (tmux kept on a private socket nobody serves), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="ck-bench-"))
    try:
        paths = RepoPaths(make_repo(base / "repo"))
        init_repo(paths)
        set_value(paths.config, "tmux.socket_name", f"ck-bench-{base.name}")
        yield paths
    finally:
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def daemon(paths: RepoPaths) -> Iterator[Served]:
    """The repo's real daemon (`cockpit daemon start`), stopped afterwards."""
    info = cockpit(paths.root, "daemon", "start")
    try:
        yield Served(paths.root, paths, str(info["socket"]), int(str(info["pid"])))
    finally:
        cockpit(paths.root, "daemon", "stop")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]
