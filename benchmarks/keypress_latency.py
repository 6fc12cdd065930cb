"""Benchmark: a key press to the next rendered frame, with 25,000 tasks across 50 tabs.

Run from the repo root: `.venv/bin/python benchmarks/keypress_latency.py [--repos 50] [--tasks-per-repo 500]`.
Prints one JSON object, with the cockpit process's peak RSS (`rss_mb`).

50 real repos, 500 tasks each (seeded in their stores in a mix of states), their daemons running; the cockpit
runs headless at 160x48 and loads every task. Then keys are pressed one at a time, as a person would: moving
in the task list (down / up / j / k / page down / page up), switching tabs (1-9) and jumping to the inbox (!).
For each key the latency is from posting the key to the first frame rendered after it
(`App.post_display_hook`); the app is otherwise idle, so that frame is the key's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cockpit.tui  # noqa: F401  (first: it sets the frame rate textual reads when imported, as the CLI does)

# isort: split
from textual import events

from cockpit.tui.app import AppConfig, CockpitApp, Target, resolve_target
from cockpit_testkit.many_repos import build

REPOS = 50
TASKS_PER_REPO = 500
PRESSES = 400
SIZE = (160, 48)
# The keys and how often each is pressed (a session of reading the list and hopping between repos).
MIX = {"down": 40, "up": 15, "j": 10, "k": 5, "pagedown": 5, "pageup": 3, "digit": 20, "!": 2}
CHARS = {"j": "j", "k": "k", "!": "!"}


class Probe(CockpitApp):
    def __init__(self, target: Target, config: AppConfig) -> None:
        super().__init__(target, config)
        self.frames: list[float] = []
        self.framed = asyncio.Event()

    def post_display_hook(self) -> None:
        self.frames.append(time.perf_counter())
        self.framed.set()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def key_sequence(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    names = [k for k, w in MIX.items() for _ in range(w)]
    keys: list[str] = []
    for _ in range(count):
        key = rng.choice(names)
        keys.append(str(rng.randint(1, 9)) if key == "digit" else key)
    return keys


async def press(app: Probe, key: str) -> float | None:
    """Post one key and wait for the frame after it; the latency in ms (None if no frame came)."""
    mark = len(app.frames)
    name = "exclamation_mark" if key == "!" else key
    app.framed.clear()
    started = time.perf_counter()
    # As a terminal driver delivers keys (the path `Pilot.press` takes).
    app.post_message(events.Key(name, CHARS.get(key, key if len(key) == 1 else None)).set_sender(app))
    try:
        await asyncio.wait_for(app.framed.wait(), 2.0)
    except TimeoutError:
        return None
    latency = (app.frames[mark] - started) * 1000.0
    await asyncio.sleep(0.03)  # let the screen settle, as between a person's key presses
    return latency


async def measure(workspace: Path) -> dict[str, object]:
    app = Probe(resolve_target(workspace), AppConfig(clock=False, toasts=False, cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        started = time.monotonic()
        while not all(m.loaded for m in app.models.values()):
            if time.monotonic() - started > 120:
                raise SystemExit("keypress_latency: the repos did not load")
            await pilot.pause(0.05)
        load_s = time.monotonic() - started
        tasks = sum(len(m.tasks) for m in app.models.values())
        for digit in range(1, 10):  # every tab once: each table has taken its rows
            await pilot.press(str(digit))
        await pilot.pause(0.5)
        latencies: dict[str, list[float]] = {}
        missed = 0
        for key in key_sequence(PRESSES):
            latency = await press(app, key)
            if latency is None:
                missed += 1
                continue
            kind = "tab" if key.isdigit() else key
            latencies.setdefault(kind, []).append(latency)
    every = [ms for values in latencies.values() for ms in values]
    return {
        "p50_ms": round(percentile(every, 0.50), 2),
        "p99_ms": round(percentile(every, 0.99), 2),
        "max_ms": round(max(every), 2),
        "by_key_p99_ms": {k: round(percentile(v, 0.99), 2) for k, v in sorted(latencies.items())},
        "presses": len(every),
        "no_frame": missed,
        "tasks_loaded": tasks,
        "load_s": round(load_s, 2),
        # Peak resident memory of this process (the cockpit; the daemons are other processes).
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=REPOS)
    parser.add_argument("--tasks-per-repo", type=int, default=TASKS_PER_REPO)
    args = parser.parse_args()
    repos, per_repo = args.repos, args.tasks_per_repo
    workspace = build(repos, tasks_per_repo=per_repo)
    try:
        workspace.start()
        result = asyncio.run(measure(workspace.root))
    finally:
        workspace.remove()
    print(json.dumps({
        "name": "keypress_latency",
        "value": result["p99_ms"],
        "unit": "ms",
        "params": {"repos": repos, "tasks": repos * per_repo, "presses": PRESSES, "size": list(SIZE),
                   "key_mix": MIX, "python": sys.version.split()[0]},
        "goal": "p99 < 16 ms, rss < 300 MB",
        **result,
    }))


if __name__ == "__main__":
    main()
