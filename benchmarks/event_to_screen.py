"""Benchmark: an event committed in a daemon to the cockpit frame that shows it, with 20 repos at 100 events/s.

Run from the repo root: `.venv/bin/python benchmarks/event_to_screen.py [--seconds 10]`. Prints one JSON object.

20 real repos with running daemons; a driver process (this script with --drive) sends ops to the daemons
over their sockets at a steady 100 ops/s round-robin, each op committing one event: `create_task` (no
classification: task.created, a new row), `classify_task` (task.classified) and `reject_task`
(task.rejected) in turn. The cockpit runs headless in this process. For each event, the latency is from its
commit time (the event's `ts`, the daemon's clock) to the first frame the cockpit renders after the UI thread
applied it (`App.post_display_hook`). `visible_*` counts only events of the repo in the active tab, whose row
is on screen; the others change a tab title.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.core import daemonfile  # noqa: E402
from cockpit.core.client import DaemonClient  # noqa: E402
from cockpit.core.paths import RepoPaths  # noqa: E402
from cockpit.tui.app import AppConfig, CockpitApp, resolve_target  # noqa: E402
from cockpit.tui.messages import TasksChanged  # noqa: E402
from tests.tui.many_repos import build  # noqa: E402

REPOS = 20
RATE = 100.0
WARMUP_S = 1.0
SIZE = (160, 48)


class Probe(CockpitApp):
    """The cockpit, timing each folded event to the next frame after the UI applied it."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.applied: list[tuple[bool, float]] = []  # (on screen, commit ts) applied, awaiting a frame
        self.samples: list[tuple[bool, float]] = []  # (on screen, ms)
        self.recording = False
        for model in self.models.values():
            model.trace = []

    def on_tasks_changed(self, message: TasksChanged) -> None:
        model = self.models[message.repo]
        stamps, model.trace = model.trace or [], []
        super().on_tasks_changed(message)
        if self.recording:
            visible = message.repo == self.main.active_repo
            self.applied.extend((visible, ts) for ts in stamps)

    def post_display_hook(self) -> None:
        if self.applied:
            now = time.time()
            self.samples.extend((visible, (now - ts) * 1000.0) for visible, ts in self.applied)
            self.applied.clear()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def drive(sockets: list[str], rate: float, seconds: float) -> int:
    """Send ops round-robin at `rate` per second for `seconds`; each op commits one event."""
    clients = [await DaemonClient.connect(path) for path in sockets]
    # Per repo: the next op of its current task (create -> classify -> reject), and that task's id.
    step = [0] * len(clients)
    current = [0] * len(clients)
    sent = 0
    start = time.monotonic()
    pending: set[asyncio.Task[object]] = set()

    async def one(i: int) -> None:
        client = clients[i]
        if step[i] == 0:
            task = await client.call("create_task", {"text": f"bench task {time.time_ns()} in repo {i}",
                                                     "force": True, "no_wait": True, "by": "bench"})
            current[i] = int(task["id"])
        elif step[i] == 1:
            await client.call("classify_task", {"id": current[i]})
        else:
            await client.call("reject_task", {"id": current[i], "reason": "bench", "by": "bench"})
        step[i] = (step[i] + 1) % 3

    busy = [asyncio.Lock() for _ in clients]

    async def paced(i: int) -> None:
        async with busy[i]:  # a repo's ops stay in order
            await one(i)

    while time.monotonic() - start < seconds:
        due = start + sent / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        job = asyncio.ensure_future(paced(sent % len(clients)))
        pending.add(job)
        job.add_done_callback(pending.discard)
        sent += 1
    await asyncio.gather(*pending)
    for client in clients:
        await client.close()
    return sent


async def measure(workspace: Path, rate: float, seconds: float) -> dict[str, object]:
    app = Probe(resolve_target(workspace), AppConfig(clock=False, toasts=False, cursor_blink=False))
    async with app.run_test(size=SIZE) as pilot:
        deadline = time.monotonic() + 60
        while not all(m.loaded for m in app.models.values()):
            if time.monotonic() > deadline:
                raise SystemExit("event_to_screen: the repos did not load")
            await pilot.pause(0.05)
        sockets = []
        for root in app.target.repos.values():
            info = daemonfile.read_live(RepoPaths(root).daemon_json)
            assert info is not None
            sockets.append(info.socket)
        driver = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--drive", json.dumps(sockets), "--rate", str(rate),
            "--seconds", str(seconds + WARMUP_S), stdout=subprocess.PIPE)
        await asyncio.sleep(WARMUP_S)
        app.recording = True
        out, _ = await driver.communicate()
        await pilot.pause(0.5)  # the last events reach the screen
        app.recording = False
        sent = int(json.loads(out)["sent"])
    every = [ms for _, ms in app.samples]
    visible = [ms for on_screen, ms in app.samples if on_screen]
    return {
        "p50_ms": round(percentile(every, 0.50), 2),
        "p99_ms": round(percentile(every, 0.99), 2),
        "max_ms": round(max(every), 2),
        "visible_p50_ms": round(percentile(visible, 0.50), 2) if visible else None,
        "visible_p99_ms": round(percentile(visible, 0.99), 2) if visible else None,
        "events": len(every),
        "visible_events": len(visible),
        "ops_sent": sent,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=RATE)
    parser.add_argument("--drive", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive:
        sent = asyncio.run(drive(json.loads(args.drive), args.rate, args.seconds))
        print(json.dumps({"sent": sent}))
        return
    workspace = build(REPOS)
    try:
        workspace.start()
        result = asyncio.run(measure(workspace.root, args.rate, args.seconds))
    finally:
        workspace.remove()
    print(json.dumps({
        "name": "event_to_screen",
        "value": result["p99_ms"],
        "unit": "ms",
        "params": {"repos": REPOS, "events_per_s": args.rate, "seconds": args.seconds, "size": list(SIZE),
                   "python": sys.version.split()[0]},
        "goal": "p99 < 25 ms",
        **result,
    }))


if __name__ == "__main__":
    main()
