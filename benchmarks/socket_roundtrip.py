"""Benchmark: a `get_task` request to its reply over the daemon's Unix socket.

Run from the repo root: `.venv/bin/python benchmarks/socket_roundtrip.py`. Prints one JSON object.

A real daemon serves a repo holding 100 tasks. One connection sends `get_task` for a random task and waits for
the reply before sending the next: the time is the client's view of one request (write, the daemon's read,
dispatch, an SQLite read, JSON encoding, the reply line). Measured twice: on a bare JSON-lines connection (the
wire alone) and through `cockpit.core.client.DaemonClient` (what the CLI, the TUI and peers use).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

from _foundation_bench import daemon, percentile, repo_dir

from cockpit.core.client import DaemonClient

TASKS = 100
REQUESTS = 2000
WARMUP = 200


async def bare(socket: str, ids: list[int]) -> list[float]:
    reader, writer = await asyncio.open_unix_connection(socket, limit=16 * 1024 * 1024)
    await reader.readline()  # hello
    timings = []
    try:
        for n, task_id in enumerate(ids):
            line = json.dumps({"id": n, "op": "get_task", "args": {"id": task_id}}).encode() + b"\n"
            t0 = time.perf_counter()
            writer.write(line)
            reply = await reader.readline()
            timings.append((time.perf_counter() - t0) * 1000)
            assert json.loads(reply)["result"]["id"] == task_id
    finally:
        writer.close()
        await writer.wait_closed()
    return timings[WARMUP:]


async def client(socket: str, ids: list[int]) -> list[float]:
    timings = []
    async with await DaemonClient.connect(socket) as c:
        for task_id in ids:
            t0 = time.perf_counter()
            task = await c.call("get_task", {"id": task_id})
            timings.append((time.perf_counter() - t0) * 1000)
            assert task["id"] == task_id
    return timings[WARMUP:]


async def seed(socket: str) -> None:
    async with await DaemonClient.connect(socket) as c:
        for i in range(TASKS):
            await c.call("create_task", {"text": f"benchmark task number {i}", "force": True,
                                         "no_wait": True})


def main() -> None:
    rng = random.Random(3)
    ids = [rng.randint(1, TASKS) for _ in range(REQUESTS + WARMUP)]
    with repo_dir() as paths, daemon(paths) as served:
        asyncio.run(seed(served.socket))
        wire = asyncio.run(bare(served.socket, ids))
        via_client = asyncio.run(client(served.socket, ids))
    print(json.dumps({
        "name": "socket_roundtrip",
        "value": round(percentile(wire, 0.99), 3),
        "unit": "ms (p99, get_task request to reply)",
        "params": {"requests": REQUESTS, "warmup": WARMUP, "tasks": TASKS, "connections": 1,
                   "python": sys.version.split()[0]},
        "p50_ms": round(percentile(wire, 0.50), 3),
        "p99_ms": round(percentile(wire, 0.99), 3),
        "max_ms": round(max(wire), 3),
        "client_p50_ms": round(percentile(via_client, 0.50), 3),
        "client_p99_ms": round(percentile(via_client, 0.99), 3),
        "requests_per_s": round(len(wire) / (sum(wire) / 1000), 1),
    }))


if __name__ == "__main__":
    main()
