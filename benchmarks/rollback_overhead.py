"""Benchmark: the tool's rollback against the bare git commands that do the same.

Run from the repo root: `.venv/bin/python benchmarks/rollback_overhead.py [--files N] [--rounds R]
[--revert-rounds R]`. Prints one JSON object; `value` is the median over rounds of tool time / bare time for
the one-key undo of the latest merge by reset (goal: at most 1.3); `revert_ratio` the same for a revert
(goal: at most 1.5).

`main` is checked out in the repo's main checkout. Each round merges a task on both sides (untimed), then
times undoing it back to back, in alternating order, so both sides see the same machine load:

- tool: `cockpit.core.merge.rollback.rollback_task` in-process, on a real store (reset while the merge is the
  tip: compare-and-set with `reset --keep` in the checkout, merge.rolled_back recorded);
- bare: `git rev-parse refs/heads/main` (is the merge still the tip?), then
  `git reset --keep <rollback point>`.

The revert path (a later commit on main, so the merge is undone by a revert commit) is measured too, over
`--revert-rounds`, against `git revert --no-edit -m 1 <merge>` in the checkout, and reported as
`revert_ratio`: the tool builds the revert with plumbing (a three-way `merge-tree` whose base is the merge,
no checkout) so that a conflicting revert can never touch the person's checkout, then fast-forwards the
checkout to it: three git processes (merge-tree, commit-tree, merge --ff-only; on git 2.38/2.39 the
merge-tree is against a stand-in commit the tool writes itself) where bare git's in-place revert is one. The
plan of either (tip, trees, parents) is read from git's files, with no process, while they are loose.

`tool_git_processes` / `revert_tool_git_processes` are how many git processes one tool rollback started
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
from cockpit.core.merge.rollback import rollback_task
from cockpit.core.store import Store
from cockpit_testkit.tasks import commit_files, init_cockpit, reviewable_task

BARE_COMMANDS = ["git rev-parse refs/heads/main", "git reset --keep ROLLBACK_POINT"]
BARE_REVERT_COMMANDS = ["git revert --no-edit -m 1 MERGE"]


def bare_merge(root: Path, name: str) -> tuple[str, str]:
    """Merge a one-commit branch the bare way (untimed set-up); returns (rollback point, merge)."""
    worktree = root.parent / f"bare-{name}"
    branch = f"bare/{name}"
    bare_git(root, "worktree", "add", "-q", "-b", branch, str(worktree), "main")
    commit_files(worktree, {f"src/d2/bare-{name}.txt": f"bare {name}\n"}, f"bare {name}")
    tip = bare_git(root, "rev-parse", "refs/heads/main")
    tree = bare_git(root, "merge-tree", "--write-tree", "main", branch).split()[0]
    commit = bare_git(root, "commit-tree", tree, "-p", tip, "-p", branch, "-m", f"Merge {branch}")
    bare_git(root, "merge", "--ff-only", "-q", commit)
    bare_git(root, "worktree", "remove", str(worktree))
    return tip, commit


class Bench:
    def __init__(self, root: Path, ctx: MergeContext) -> None:
        self.root = root
        self.ctx = ctx
        self.n = 0
        self.processes: dict[str, int] = {}

    async def tool_merge(self, later: bool) -> int:
        self.n += 1
        change: dict[str, str | None] = {f"src/d1/tool-{self.n}.txt": f"tool {self.n}\n"}
        task = await reviewable_task(self.ctx.store, self.ctx.paths, change, title=f"tool {self.n}")
        await merge_task(self.ctx, task.id)
        if later:
            commit_files(self.root, {f"src/d3/later-{self.n}.txt": "later\n"}, "later work")
        return task.id

    async def tool_rollback(self, task_id: int, method: str) -> float:
        with counting_git() as processes:
            started = time.perf_counter()
            outcome = await rollback_task(self.ctx, task_id)
            elapsed = time.perf_counter() - started
        assert outcome.rollback["method"] == method, outcome.rollback
        self.processes[method] = len(processes)  # the last round's: no one-off probes of the first
        return elapsed

    def bare_reset(self) -> float:
        self.n += 1
        tip, merge = bare_merge(self.root, str(self.n))
        started = time.perf_counter()
        if bare_git(self.root, "rev-parse", "refs/heads/main") != merge:
            raise RuntimeError("main moved")
        bare_git(self.root, "reset", "--keep", "-q", tip)
        return time.perf_counter() - started

    def bare_revert(self) -> float:
        self.n += 1
        _tip, merge = bare_merge(self.root, str(self.n))
        commit_files(self.root, {f"src/d3/later-{self.n}.txt": "later\n"}, "later work")
        started = time.perf_counter()
        bare_git(self.root, "revert", "--no-edit", "-m", "1", merge)
        return time.perf_counter() - started

    async def paired(self, rounds: int, revert: bool) -> dict[str, Any]:
        tool_s: list[float] = []
        bare_s: list[float] = []
        ratios: list[float] = []
        method = "revert" if revert else "reset"
        for i in range(rounds + 1):  # round 0 warms caches and is not counted
            task_id = await self.tool_merge(later=revert)
            bare = self.bare_revert if revert else self.bare_reset
            if i % 2 == 0:
                t = await self.tool_rollback(task_id, method)
                b = bare()
            else:
                b = bare()
                t = await self.tool_rollback(task_id, method)
            if i == 0:
                continue
            tool_s.append(t)
            bare_s.append(b)
            ratios.append(t / b)
        return {"ratio": round(statistics.median(ratios), 3),
                "tool_ms": round(statistics.median(tool_s) * 1000, 1),
                "bare_ms": round(statistics.median(bare_s) * 1000, 1)}


async def measure(files: int, rounds: int, revert_rounds: int, tmp: Path) -> dict[str, Any]:
    root = make_big_repo(tmp / "repo", files)
    paths = init_cockpit(root)
    store = await Store.open(paths.db)
    settings = Settings()
    settings.values["merge.verify"] = False
    bench = Bench(root, MergeContext(store, paths, settings))
    try:
        reset = await bench.paired(rounds, revert=False)
        revert = await bench.paired(revert_rounds, revert=True) if revert_rounds > 0 else None
    finally:
        await store.close()
    result: dict[str, Any] = {"value": reset["ratio"], "tool_ms": reset["tool_ms"],
                              "bare_ms": reset["bare_ms"], "tool_git_processes": bench.processes["reset"],
                              "bare_git_processes": len(BARE_COMMANDS)}
    if revert is not None:
        result.update({"revert_ratio": revert["ratio"], "revert_tool_ms": revert["tool_ms"],
                       "revert_bare_ms": revert["bare_ms"], "revert_rounds": revert_rounds,
                       "revert_tool_git_processes": bench.processes["revert"],
                       "revert_bare_git_processes": len(BARE_REVERT_COMMANDS)})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--files", type=int, default=2000, help="files in the benchmark repo (default 2000)")
    parser.add_argument("--rounds", type=int, default=15, help="timed reset rollbacks per side (default 15)")
    parser.add_argument("--revert-rounds", type=int, default=3, help="timed reverts per side (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ck-bench-") as tmp, isolated_env(Path(tmp)):
        result = asyncio.run(measure(args.files, args.rounds, args.revert_rounds, Path(tmp)))
    print(json.dumps({
        "name": "rollback_overhead",
        "value": result.pop("value"),
        "unit": "ratio (tool / bare git, median of paired rounds; rollback by reset)",
        "goal": 1.3,
        "revert_goal": 1.5,
        "files": args.files,
        "rounds": args.rounds,
        "target_checked_out": True,
        **result,
        "bare_commands": BARE_COMMANDS,
        "bare_revert_commands": BARE_REVERT_COMMANDS,
        "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "git": subprocess.run(["git", "--version"], capture_output=True, text=True).stdout.strip(),
    }))


if __name__ == "__main__":
    main()
