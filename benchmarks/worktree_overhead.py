"""Benchmark: creating a task's worktree through the daemon vs a bare `git worktree add`, on 5,000 files.

Run from the repo root: `.venv/bin/python benchmarks/worktree_overhead.py`. Prints one JSON object.

Daemon: the time from sending `approve_task` over the socket to the commit of `task.executing` (which the
daemon records once the worktree and its branch exist), so it includes the approval itself, the scheduler
and the git calls the daemon makes around `git worktree add`. Bare: the wall time of one
`git worktree add -b BRANCH PATH main` process on the same repo. Value: median(daemon) / median(bare).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _exec_bench import SETTLED, Bench, Session, bench_repo

FILES = 5_000
ROUNDS = 7


def bare_add(root: Path, n: int) -> float:
    path = root.parent / f"bare-{n}"
    started = time.perf_counter()
    subprocess.run(
        ["git", "worktree", "add", "-q", "-b", f"bare-{n}", str(path), "main"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    elapsed = time.perf_counter() - started
    subprocess.run(
        ["git", "worktree", "remove", "--force", str(path)], cwd=root, check=True, capture_output=True
    )
    return elapsed


def main() -> None:
    # The agent exits at once: only the worktree matters here.
    with bench_repo(FILES, **{"agent.backend": "custom", "agent.command": "true"}) as bench:
        bare_add(bench.root, 999)  # warm the page cache and git's index code
        bare: list[float] = []
        daemon: list[float] = []
        inner: list[float] = []
        for n in range(ROUNDS):  # interleaved, so drift in the machine's load hits both alike
            bare.append(bare_add(bench.root, n))
            totals, inside = asyncio.run(_one(bench, n))
            daemon += totals
            inner += inside
    ratio = statistics.median(daemon) / statistics.median(bare)
    print(
        json.dumps(
            {
                "name": "worktree_overhead",
                "value": round(ratio, 3),
                "unit": "ratio",
                "goal": "<= 1.3",
                "params": {"files": FILES, "rounds": ROUNDS, "python": sys.version.split()[0]},
                "daemon_median_ms": round(statistics.median(daemon) * 1000, 1),
                "daemon_worktree_step_median_ms": round(statistics.median(inner) * 1000, 1),
                "bare_median_ms": round(statistics.median(bare) * 1000, 1),
                "daemon_ms": [round(x * 1000, 1) for x in daemon],
                "bare_ms": [round(x * 1000, 1) for x in bare],
            }
        )
    )


async def _one(bench: Bench, n: int) -> tuple[list[float], list[float]]:
    """One daemon round: a task created, approved, timed to task.executing; then its worktree is removed
    (keeping the checkouts from piling up, so each round sees the repo the bare one sees)."""
    paths = bench.paths
    session = await Session.open(paths)
    try:
        task_id = await session.create(f"Benchmark worktree number {n}")
        started = time.time()
        await session.call("approve_task", {"id": task_id})
        executing = await session.wait_event(task_id, {"task.executing"})
        await session.wait_event(task_id, SETTLED)
        remove = ["git", "worktree", "remove", "--force", str(executing.data["worktree"])]
        await asyncio.to_thread(subprocess.run, remove, cwd=paths.root, capture_output=True, check=False)
        return [executing.ts - started], [float(executing.data.get("worktree_s", 0.0))]
    finally:
        await session.close()


if __name__ == "__main__":
    main()
