"""Benchmark: create_remote_task to the classified reply, through real daemons, with the built-in classifier.

Run from the repo root: `.venv/bin/python benchmarks/delegation_roundtrip.py`. Prints one JSON object.

Two repos in a workspace, both daemons up. A client on the sender's (backend's) socket sends
`create_remote_task {repo: frontend, text}`: backend's daemon creates the task over frontend's socket (dedup
runs inside the insert transaction), frontend's daemon classifies it in the background with the built-in
heuristic, backend's daemon waits for that on the same connection and replies with the id, scope, state and
plan. Timed: request written to reply read, by the client. The texts are distinct, realistic task
descriptions, so dedup runs in full and lets them through; frontend does not auto-approve delegated small
tasks, so nothing executes.

Also timed, for comparison: the same op run in-process by a sender whose daemon is down (the CLI's path:
open the sender's store, then frontend's socket).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.core import daemonctl
from cockpit.core.backend import open_local
from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths
from cockpit_testkit.dedup_pairs import distractor_tasks
from cockpit_testkit.workspaces import build_workspace

SAMPLES = 300
IN_PROCESS_SAMPLES = 100
WARMUP = 20
GOAL_P50_MS = 100.0


def percentile(sorted_ms: list[float], q: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return sorted_ms[index]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(percentile(ordered, 0.50), 3), "p99_ms": round(percentile(ordered, 0.99), 3),
            "mean_ms": round(statistics.fmean(ordered), 3), "max_ms": round(ordered[-1], 3)}


async def via_sender_daemon(backend: RepoPaths, texts: list[str]) -> tuple[list[float], dict[str, int], int]:
    client = await DaemonClient.connect(str(backend.socket))
    timings: list[float] = []
    scopes: dict[str, int] = {}
    skipped = 0
    try:
        for i, text in enumerate(texts):
            started = time.perf_counter()
            try:
                result = await client.call("create_remote_task", {"repo": "frontend", "text": text})
            except CockpitError as exc:
                if exc.code != "duplicate":
                    raise
                skipped += 1
                continue
            elapsed = (time.perf_counter() - started) * 1000.0
            assert result["state"] != "created", result  # the reply carries the classification
            if i >= WARMUP:
                timings.append(elapsed)
                scopes[str(result["scope"])] = scopes.get(str(result["scope"]), 0) + 1
    finally:
        await client.close()
    return timings, scopes, skipped


async def in_process(backend: RepoPaths, texts: list[str]) -> list[float]:
    local = await open_local(backend)
    timings: list[float] = []
    try:
        for text in texts:
            started = time.perf_counter()
            try:
                await local.call("create_remote_task", {"repo": "frontend", "text": text})
            except CockpitError as exc:
                if exc.code != "duplicate":
                    raise
                continue
            timings.append((time.perf_counter() - started) * 1000.0)
    finally:
        await local.close()
    return timings


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="ck-bench-"))
    repos = build_workspace(base, ["backend", "frontend"],
                            per_repo={"frontend": {"task.auto_approve_delegated_small": "false"}})
    backend, frontend = RepoPaths(repos["backend"]), RepoPaths(repos["frontend"])
    texts = list(dict.fromkeys(distractor_tasks(4 * (SAMPLES + WARMUP + IN_PROCESS_SAMPLES), seed=4242)))
    try:
        daemonctl.start(frontend)
        daemonctl.start(backend)
        socket_ms, scopes, skipped = asyncio.run(via_sender_daemon(backend, texts[: SAMPLES + WARMUP]))
        rest = texts[SAMPLES + WARMUP:]
        local_ms = asyncio.run(in_process(backend, rest[:IN_PROCESS_SAMPLES]))
    finally:
        for paths in (backend, frontend):
            try:
                daemonctl.stop(paths)
            except CockpitError as exc:
                print(f"warning: {exc.message}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
    daemon_stats, local_stats = summary(socket_ms), summary(local_ms)
    print(json.dumps({
        "name": "delegation_roundtrip",
        "value": daemon_stats["p50_ms"],
        "unit": "ms",
        "params": {
            "path": "client -> sender daemon -> peer daemon (create, classify in the background, wait) "
                    "-> reply",
            "classifier": "built-in heuristic",
            "samples": len(socket_ms),
            "warmup": WARMUP,
            "duplicates_skipped": skipped,
            "scopes": scopes,
            "python": sys.version.split()[0],
        },
        "p50_ms": daemon_stats["p50_ms"],
        "p99_ms": daemon_stats["p99_ms"],
        "mean_ms": daemon_stats["mean_ms"],
        "max_ms": daemon_stats["max_ms"],
        "in_process_sender_p50_ms": local_stats["p50_ms"],
        "in_process_sender_p99_ms": local_stats["p99_ms"],
        "in_process_samples": len(local_ms),
        "goal": f"p50 < {GOAL_P50_MS:g} ms",
        "meets_goal": daemon_stats["p50_ms"] < GOAL_P50_MS,
    }))


if __name__ == "__main__":
    main()
