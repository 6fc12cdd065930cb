"""Wake-ups of an idle daemon (no task executing) and of the cockpit on 20 idle repos.

Counted from the kernel: the sum over all of the process's threads of voluntary + involuntary context
switches (`/proc/PID/task/*/status`), read before and after an idle window. Each wake-up of a sleeping
thread is one voluntary switch, so this counts polling exactly, whatever the library that polls.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _foundation_bench import ROOT, cockpit, daemon, repo_dir


def switches(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
    return total


def rate(pid: int, seconds: float) -> float:
    before = switches(pid)
    time.sleep(seconds)
    return (switches(pid) - before) / seconds


@contextlib.contextmanager
def workspace(count: int) -> Iterator[Path]:
    """`count` initialised repos in one workspace, each with its daemon up; all stopped afterwards."""
    base = Path(tempfile.mkdtemp(prefix="ck-idle-"))
    started: list[Path] = []
    try:
        lines = []
        for i in range(count):
            repo = base / f"r{i:02d}"
            repo.mkdir()
            for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "initial"]):
                subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                               env={**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
                                    "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"})
            cockpit(repo, "init")
            cockpit(repo, "config", "set", "tmux.socket_name", f"ck-idle-{base.name}")
            cockpit(repo, "daemon", "start")
            started.append(repo)
            lines.append(f'[repos.r{i:02d}]\npath = "r{i:02d}"\n')
        (base / "cockpit-workspace.toml").write_text("\n".join(lines))
        yield base
    finally:
        for repo in started:
            with contextlib.suppress(Exception):
                cockpit(repo, "daemon", "stop")
        shutil.rmtree(base, ignore_errors=True)


def cockpit_rate(base: Path, seconds: float) -> float:
    """The cockpit in a detached tmux pane (a real terminal), idle after its first frame."""
    socket = f"ck-idle-ui-{os.getpid()}"
    cmd = f"{sys.executable} -m cockpit"
    subprocess.run(["tmux", "-L", socket, "new-session", "-d", "-x", "160", "-y", "45", "-c", str(base), cmd],
                   check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        pid = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not pid:
            out = subprocess.run(["tmux", "-L", socket, "list-panes", "-F", "#{pane_pid}"],
                                 capture_output=True, text=True).stdout.split()
            pid = int(out[0]) if out else 0
        screen = ""
        while time.monotonic() < deadline and "r19" not in screen:
            screen = subprocess.run(["tmux", "-L", socket, "capture-pane", "-p"],
                                    capture_output=True, text=True).stdout
        time.sleep(3)  # let the first frames and the initial loads settle before counting
        return rate(pid, seconds)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repos", type=int, default=20)
    args = parser.parse_args()
    with repo_dir() as paths, daemon(paths) as served:
        time.sleep(2)  # start-up work (recovery pass, first watches) is not idle
        daemon_rate = rate(served.pid, args.seconds)
    with workspace(args.repos) as base:
        ui_rate = cockpit_rate(base, args.seconds)
    print(json.dumps({
        "name": "idle_wakeups", "value": round(daemon_rate, 2), "unit": "wake-ups/s (idle daemon)",
        "params": {"seconds": args.seconds, "repos": args.repos},
        "daemon_per_s": round(daemon_rate, 2), "cockpit_per_s": round(ui_rate, 2),
        "goal": {"daemon_per_s": 1.0, "cockpit_per_s": "15 beyond Textual's input loop"},
    }))


if __name__ == "__main__":
    main()
