"""Benchmark: an event committed by a daemon on another host to its arrival at a subscriber here, over ssh.

Run from the repo root as root: `.venv/bin/python benchmarks/remote_push_latency.py`. Prints one JSON object.

The daemon runs on a host in a network namespace (sshd on its own address, see `_remote_bench.py`). One
subscriber at a time follows it: on the daemon's own socket (the local figure), or through the ssh
stream-local forward over the shared ControlMaster (the remote figure); the two alternate in rounds so both
see the same machine load. A writer on the daemon's socket sends one `create_task` at a time (two commits)
and waits until the subscriber holds both events. Per event: its `ts` (taken just before its INSERT) to the
moment the subscriber has read and decoded its line, on the same clock. `value` is the added p99, remote p99
minus local p99; p50 likewise, and the ratio of the p99s.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _foundation_bench import percentile
from _remote_bench import RemoteSetup, hosted_repo

from cockpit.core.client import DaemonClient

ROUNDS = 10
CREATES_PER_ROUND = 25
WARMUP = 10


async def arrivals(client: DaemonClient, since: int, into: dict[int, float], got: asyncio.Event) -> None:
    await client.call("subscribe", {"since": since})
    while True:
        event = await client.events.get()
        if event is None:
            return
        into[event.seq] = time.time()
        got.set()


async def one_round(setup: RemoteSetup, writer: DaemonClient, forwarded: bool, creates: int,
                    into: list[float]) -> None:
    subscriber = await (setup.repo.connect() if forwarded else DaemonClient.connect(setup.socket))
    since = int((await writer.call("status"))["last_seq"])
    seen: dict[int, float] = {}
    got = asyncio.Event()
    task = asyncio.ensure_future(arrivals(subscriber, since, seen, got))
    try:
        for n in range(creates):
            await writer.call("create_task", {"text": f"remote push probe {n}", "force": True})
            for event in (await writer.call("events", {"since": since}))["events"]:
                seq = int(event["seq"])
                while seq not in seen:
                    got.clear()
                    await asyncio.wait_for(got.wait(), 10)
                since = seq
                into.append((seen[seq] - float(event["ts"])) * 1000)
    finally:
        task.cancel()
        await subscriber.close()


async def measure(setup: RemoteSetup) -> dict[str, list[float]]:
    writer = await DaemonClient.connect(setup.socket)
    local: list[float] = []
    remote: list[float] = []
    try:
        await one_round(setup, writer, False, WARMUP, [])
        await one_round(setup, writer, True, WARMUP, [])
        for n in range(ROUNDS):
            forwarded_first = n % 2 == 1
            for forwarded in (forwarded_first, not forwarded_first):
                await one_round(setup, writer, forwarded, CREATES_PER_ROUND, remote if forwarded else local)
    finally:
        await writer.close()
    return {"local": local, "remote": remote}


def main() -> None:
    with hosted_repo() as setup:
        r = asyncio.run(measure(setup))
    local, remote = r["local"], r["remote"]
    p50_local, p99_local = percentile(local, 0.50), percentile(local, 0.99)
    p50_remote, p99_remote = percentile(remote, 0.50), percentile(remote, 0.99)
    print(json.dumps({
        "name": "remote_push_latency",
        "value": round(p99_remote - p99_local, 3),
        "unit": "ms (p99 added by ssh: remote p99 minus local p99, event ts to the subscriber reading it)",
        "params": {"events_each": len(remote), "rounds": ROUNDS, "creates_per_round": CREATES_PER_ROUND,
                   "transport": "ssh stream-local forward over a ControlMaster, sshd in a network namespace",
                   "python": sys.version.split()[0]},
        "p50_ms": round(p50_remote, 3),
        "p99_ms": round(p99_remote, 3),
        "max_ms": round(max(remote), 3),
        "local_p50_ms": round(p50_local, 3),
        "local_p99_ms": round(p99_local, 3),
        "local_max_ms": round(max(local), 3),
        "added_p50_ms": round(p50_remote - p50_local, 3),
        "added_p99_ms": round(p99_remote - p99_local, 3),
        "ratio_p50": round(p50_remote / p50_local, 2) if p50_local else None,
        "ratio_p99": round(p99_remote / p99_local, 2) if p99_local else None,
        "goal_added_p99_ms": 5.0,
    }))


if __name__ == "__main__":
    main()
