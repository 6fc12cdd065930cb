"""Benchmark: starting the cockpit to its first frame, with 50 repos and 25,000 tasks (median of several
starts).

Run from the repo root: `.venv/bin/python benchmarks/cold_start.py [--repos 50] [--tasks-per-repo 500]`.
Prints one JSON object.

50 real repos (500 tasks each) with their daemons running. Each start is a new Python process, timed from
just before it is spawned (so interpreter start-up and imports count) to the first frame the cockpit renders
(`App.post_display_hook`), headless at 160x48. Also reported: the time until every repo's tasks are loaded
and on screen (`loaded_*`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REPOS = 50
TASKS_PER_REPO = 500
STARTS = 7
SIZE = (160, 48)


def child(started: float, workspace: Path) -> None:
    """One start: report the first frame and the first frame with every repo loaded, in seconds."""
    import cockpit.tui  # noqa: F401  (first, as in the CLI: it sets the frame rate textual reads)
    from cockpit.tui.app import AppConfig, CockpitApp, Target, resolve_target

    marks: dict[str, float] = {}

    class Probe(CockpitApp):
        def __init__(self, target: Target, config: AppConfig) -> None:
            super().__init__(target, config)

        def post_display_hook(self) -> None:
            now = time.time()
            marks.setdefault("first_frame", now)
            if "loaded" not in marks and all(m.loaded for m in self.models.values()):
                marks["loaded"] = now
                self.exit()

    app = Probe(resolve_target(workspace), AppConfig(clock=False, toasts=False, cursor_blink=False))
    app.run(headless=True, size=SIZE)
    print(json.dumps({name: at - started for name, at in marks.items()}))


def one_start(workspace: Path) -> dict[str, float]:
    started = time.time()
    argv = [sys.executable, __file__, "--child", str(started), str(workspace)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=ROOT, check=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=STARTS)
    parser.add_argument("--repos", type=int, default=REPOS)
    parser.add_argument("--tasks-per-repo", type=int, default=TASKS_PER_REPO)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(float(args.child[0]), Path(args.child[1]))
        return
    from cockpit_testkit.many_repos import build

    workspace = build(args.repos, tasks_per_repo=args.tasks_per_repo)
    try:
        workspace.start()
        one_start(workspace.root)  # warm the OS file cache, as a second start of the day would be
        runs = [one_start(workspace.root) for _ in range(args.starts)]
    finally:
        workspace.remove()
    first = [r["first_frame"] * 1000 for r in runs]
    loaded = [r["loaded"] * 1000 for r in runs]
    print(json.dumps({
        "name": "cold_start",
        "value": round(statistics.median(first), 1),
        "unit": "ms",
        "params": {"repos": args.repos, "tasks_per_repo": args.tasks_per_repo, "starts": args.starts,
                   "size": list(SIZE), "python": sys.version.split()[0]},
        "goal": "median < 1000 ms",
        "first_frame_ms": [round(x, 1) for x in first],
        "loaded_median_ms": round(statistics.median(loaded), 1),
        "loaded_ms": [round(x, 1) for x in loaded],
    }))


if __name__ == "__main__":
    main()
