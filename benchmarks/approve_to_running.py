"""Benchmark: from `approve_task` to the agent's own process running in its tmux pane (p50 ms).

Run from the repo root: `.venv/bin/python benchmarks/approve_to_running.py`. Prints one JSON object.

The agent is a custom backend whose first act is to write bash's `$EPOCHREALTIME` to a file, so "running" is
the moment the agent's command line executes inside the pane, after the pane's wrappers. The clock starts
just before the approval is sent over the socket. One task at a time on a small repo (so the checkout does
not dominate; `worktree_overhead` measures that), each task settled before the next is approved.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exec_bench import SETTLED, Bench, Session, bench_repo, summary

ROUNDS = 25
# Into the task's worktree: the one place the agent's sandbox is sure to let it write.
AGENT = "bash -c 'echo $EPOCHREALTIME > \"$COCKPIT_WORKTREE/.started\"'"


async def rounds(bench: Bench) -> dict[str, list[float]]:
    session = await Session.open(bench.paths)
    out: dict[str, list[float]] = {"running": [], "executing": [], "pane": []}
    try:
        for n in range(ROUNDS + 2):
            task_id = await session.create(f"Benchmark start number {n}")
            started = time.time()
            await session.call("approve_task", {"id": task_id})
            executing = await session.wait_event(task_id, {"task.executing"})
            pane = await session.wait_event(task_id, {"task.pane"})
            await session.wait_event(task_id, SETTLED)
            marker = Path(str(executing.data["worktree"])) / ".started"
            running = float(marker.read_text())
            if n < 2:
                continue  # warm-up: the tmux server and session start with the first task
            out["running"].append((running - started) * 1000)
            out["executing"].append((executing.ts - started) * 1000)
            out["pane"].append((pane.ts - started) * 1000)
    finally:
        await session.close()
    return out


def main() -> None:
    with bench_repo(1, **{"agent.backend": "custom", "agent.command": AGENT}) as bench:
        results = asyncio.run(rounds(bench))
    running = summary(results["running"])
    print(
        json.dumps(
            {
                "name": "approve_to_running",
                "value": running["p50_ms"],
                "unit": "ms",
                "params": {
                    "rounds": ROUNDS,
                    "repo_files": 2,
                    "agent": "custom (bash writes $EPOCHREALTIME)",
                    "python": sys.version.split()[0],
                },
                "running": running,
                "to_task_executing": summary(results["executing"]),
                "to_task_pane": summary(results["pane"]),
            }
        )
    )


if __name__ == "__main__":
    main()
