"""Benchmark: the tool's merge (without the verify gates) against the bare git commands that do the same.

Run from the repo root: `.venv/bin/python benchmarks/merge_overhead.py [--files N] [--rounds R]`. Prints one
JSON object; `value` is the median over rounds of tool time / bare time (goal: at most 1.5).

Both sides merge a one-commit task branch into `main`, which is checked out in the repo's main checkout, and
remove the task's worktree afterwards (the branch is kept). The tool side is
`cockpit.core.merge.orchestrator.merge_task` in-process, on a real store (preflight, merge.preflight /
merge.started / merge.finished events, compare-and-set move, worktree removal). The bare side is the shortest
sequence of git commands with the same checks:

    git rev-parse refs/heads/main                  # the rollback point
    git status --porcelain                         # the target's checkout is clean
    git merge-tree --write-tree main <branch>      # no conflicts, and the merged tree
    git commit-tree <tree> -p <tip> -p <branch> -m ...
    git merge --ff-only <commit>                   # move main (and its checkout) to the merge
    git worktree remove <worktree>

Each round creates a fresh task on both sides (untimed) and then times the two merges back to back, in
alternating order, so both see the same machine load; the ratio of each round is taken, then the median.
The tool's task is created just before its merge, from main's tip at that moment: when bare git merges first,
a task made earlier would find main moved and be rebased and gated again (a different, much longer path that
bare git has no equivalent of). `tool_git_processes` is how many git processes the tool's merge started
(counted at GitPython's runner; the bare side starts one per command).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))


from _merge_bench import bare_git, counting_git, isolated_env, make_big_repo

from cockpit.core.config import Settings
from cockpit.core.merge.context import MergeContext
from cockpit.core.merge.orchestrator import merge_task
from cockpit.core.store import Store
from cockpit_testkit.tasks import commit_files, init_cockpit, reviewable_task

BARE_COMMANDS = [
    "git rev-parse refs/heads/main",
    "git status --porcelain",
    "git merge-tree --write-tree main BRANCH",
    "git commit-tree TREE -p TIP -p BRANCH -m MSG",
    "git merge --ff-only COMMIT",
    "git worktree remove WORKTREE",
]


def bare_merge(root: Path, branch: str, worktree: Path) -> None:
    tip = bare_git(root, "rev-parse", "refs/heads/main")
    if bare_git(root, "status", "--porcelain"):
        raise RuntimeError("the main checkout is dirty")
    tree = bare_git(root, "merge-tree", "--write-tree", "main", branch).split()[0]
    commit = bare_git(root, "commit-tree", tree, "-p", tip, "-p", branch, "-m", f"Merge {branch}")
    bare_git(root, "merge", "--ff-only", "-q", commit)
    bare_git(root, "worktree", "remove", str(worktree))


async def measure(files: int, rounds: int, tmp: Path) -> dict[str, Any]:
    root = make_big_repo(tmp / "repo", files)
    paths = init_cockpit(root)
    store = await Store.open(paths.db)
    settings = Settings()
    settings.values["merge.verify"] = False
    ctx = MergeContext(store, paths, settings)
    tool_s: list[float] = []
    bare_s: list[float] = []
    ratios: list[float] = []
    counts: list[int] = []
    try:
        for i in range(rounds + 1):  # round 0 warms caches and is not counted
            worktree = tmp / f"bare-{i}"
            branch = f"bare/{i}"
            bare_git(root, "worktree", "add", "-q", "-b", branch, str(worktree), "main")
            commit_files(worktree, {f"src/d2/bare{i}.txt": f"bare {i}\n"}, f"bare {i}")

            async def tool(i: int = i) -> float:
                # The task is made (untimed) from main's tip as it is now, so that main has not moved since
                # it branched: a moved target means a rebase and the gates again, which bare git never does.
                change: dict[str, str | None] = {f"src/d1/tool{i}.txt": f"tool {i}\n"}
                task = await reviewable_task(store, paths, change, title=f"tool {i}")
                with counting_git() as processes:
                    started = time.perf_counter()
                    outcome = await merge_task(ctx, task.id)
                    elapsed = time.perf_counter() - started
                assert outcome.task.state.value == "done" and not outcome.rebased
                counts.append(len(processes))
                return elapsed

            def bare(branch: str = branch, worktree: Path = worktree) -> float:
                started = time.perf_counter()
                bare_merge(root, branch, worktree)
                return time.perf_counter() - started

            if i % 2 == 0:
                t, b = await tool(), bare()
            else:
                b, t = bare(), await tool()
            if i == 0:
                continue
            tool_s.append(t)
            bare_s.append(b)
            ratios.append(t / b)
    finally:
        await store.close()
    return {
        "value": round(statistics.median(ratios), 3),
        "tool_ms": round(statistics.median(tool_s) * 1000, 1),
        "bare_ms": round(statistics.median(bare_s) * 1000, 1),
        "ratio_of_medians": round(statistics.median(tool_s) / statistics.median(bare_s), 3),
        "ratio_p90": round(sorted(ratios)[int(0.9 * (len(ratios) - 1))], 3),
        "tool_git_processes": counts[-1],
        "bare_git_processes": len(BARE_COMMANDS),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=2000, help="files in the benchmark repo (default 2000)")
    parser.add_argument("--rounds", type=int, default=15, help="timed merges per side (default 15)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp, isolated_env(Path(tmp)):
        result = asyncio.run(measure(args.files, args.rounds, Path(tmp)))
    print(json.dumps({
        "name": "merge_overhead",
        **{"value": result.pop("value")},
        "unit": "ratio (tool / bare git, median of paired rounds)",
        "goal": 1.5,
        "files": args.files,
        "rounds": args.rounds,
        "verify": False,
        "target_checked_out": True,
        **result,
        "bare_commands": BARE_COMMANDS,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
    }))


if __name__ == "__main__":
    main()
