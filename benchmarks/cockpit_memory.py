"""Benchmark: the cockpit's memory with 25,000 tasks across 50 repos, loaded and every tab drawn.

Run from the repo root: `.venv/bin/python benchmarks/cockpit_memory.py [--repos 50] [--tasks-per-repo 500]`.
Prints one JSON object.

50 real repos, 500 tasks each (seeded in their stores in a mix of states), their daemons running; the cockpit
runs headless at 160x48 in this process. Measured from `/proc/self/status` (the cockpit's process; the daemons
are others): RSS once every repo's tasks are loaded (`loaded_rss_mb`), after every tab was shown once and its
rows drawn (`rss_mb`, the value), and the peak (`peak_rss_mb`, VmHWM); `gc_objects` is the number of objects
the garbage collector tracks then.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cockpit.tui  # noqa: F401  (first: it sets the frame rate textual reads when imported, as the CLI does)

# isort: split
from cockpit.tui.app import AppConfig, CockpitApp, resolve_target
from cockpit_testkit.many_repos import build

REPOS = 50
TASKS_PER_REPO = 500
SIZE = (160, 48)


def proc_status() -> dict[str, float]:
    fields: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


async def measure(workspace: Path) -> dict[str, object]:
    app = CockpitApp(resolve_target(workspace), AppConfig(clock=False, toasts=False, cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        started = time.monotonic()
        while not all(m.loaded for m in app.models.values()):
            if time.monotonic() - started > 180:
                raise SystemExit("cockpit_memory: the repos did not load")
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        load_s = time.monotonic() - started
        loaded = proc_status()["VmRSS"]
        for repo in app.models:  # every tab once, its rows drawn
            app.main.show_repo(repo)
            await pilot.pause(0.05)
        await pilot.pause(0.5)
        gc.collect()
        after = proc_status()
        tasks = sum(len(m.tasks) for m in app.models.values())
        objects = len(gc.get_objects()) + gc.get_freeze_count()  # the app freezes its settled tasks
    return {"rss_mb": after["VmRSS"], "loaded_rss_mb": loaded, "peak_rss_mb": after["VmHWM"],
            "gc_objects": objects, "tasks_loaded": tasks, "load_s": round(load_s, 2)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=REPOS)
    parser.add_argument("--tasks-per-repo", type=int, default=TASKS_PER_REPO)
    args = parser.parse_args()
    workspace = build(args.repos, tasks_per_repo=args.tasks_per_repo)
    try:
        workspace.start()
        result = asyncio.run(measure(workspace.root))
    finally:
        workspace.remove()
    print(json.dumps({
        "name": "cockpit_memory",
        "value": result["rss_mb"],
        "unit": "MB",
        "params": {"repos": args.repos, "tasks": args.repos * args.tasks_per_repo, "size": list(SIZE),
                   "python": sys.version.split()[0]},
        "goal": "rss < 300 MB",
        **result,
    }))


if __name__ == "__main__":
    main()
