"""Benchmark: an event committed by a daemon on another host to its arrival at a subscriber here, over ssh.

Run from the repo root as root: `.venv/bin/python benchmarks/remote_push_latency.py`. Prints one JSON object.

The daemon runs on a host in a network namespace (sshd on its own address, see `_remote_bench.py`). Two
subscribers follow it at once: one on the daemon's own socket (the local figure), one through the ssh
stream-local forward over the shared ControlMaster (the remote figure). A writer on the daemon's socket sends
one `create_task` at a time (two commits) and waits until both subscribers hold both events. Per event: its
`ts` (taken just before its INSERT) to the moment each subscriber has read and decoded its line, on the same
clock. `added` is the forwarded arrival minus the direct one for the same event: what ssh costs. `value` is
the p99 of `added`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from _foundation_bench import percentile
from _remote_bench import RemoteSetup, hosted_repo

from cockpit.core.client import DaemonClient

CREATES = 250
WARMUP = 25


async def arrivals(client: DaemonClient, since: int, into: dict[int, float], got: asyncio.Event) -> None:
    await client.call("subscribe", {"since": since})
    while True:
        event = await client.events.get()
        if event is None:
            return
        into[event.seq] = time.time()
        got.set()


async def measure(setup: RemoteSetup) -> dict[str, list[float]]:
    writer = await DaemonClient.connect(setup.socket)
    direct = await DaemonClient.connect(setup.socket)
    forwarded = await setup.repo.connect()
    since = int((await writer.call("status"))["last_seq"])
    seen_direct: dict[int, float] = {}
    seen_forwarded: dict[int, float] = {}
    got = asyncio.Event()
    tasks = [asyncio.ensure_future(arrivals(direct, since, seen_direct, got)),
             asyncio.ensure_future(arrivals(forwarded, since, seen_forwarded, got))]
    local: list[float] = []
    remote: list[float] = []
    added: list[float] = []
    try:
        for n in range(CREATES + WARMUP):
            await writer.call("create_task", {"text": f"remote push probe {n}", "force": True})
            events = (await writer.call("events", {"since": since}))["events"]
            for event in events:
                seq = int(event["seq"])
                while seq not in seen_direct or seq not in seen_forwarded:
                    got.clear()
                    await asyncio.wait_for(got.wait(), 10)
                since = seq
                if n < WARMUP:
                    continue
                ts = float(event["ts"])
                local.append((seen_direct[seq] - ts) * 1000)
                remote.append((seen_forwarded[seq] - ts) * 1000)
                added.append((seen_forwarded[seq] - seen_direct[seq]) * 1000)
    finally:
        for task in tasks:
            task.cancel()
        for client in (writer, direct, forwarded):
            await client.close()
    return {"local": local, "remote": remote, "added": added}


def main() -> None:
    with hosted_repo() as setup:
        r = asyncio.run(measure(setup))
    local, remote, added = r["local"], r["remote"], r["added"]
    p99_local, p99_remote = percentile(local, 0.99), percentile(remote, 0.99)
    print(json.dumps({
        "name": "remote_push_latency",
        "value": round(percentile(added, 0.99), 3),
        "unit": "ms (p99 added by ssh: forwarded arrival minus direct arrival of the same event)",
        "params": {"events": len(added), "warmup_creates": WARMUP,
                   "transport": "ssh stream-local forward over a ControlMaster, sshd in a network namespace",
                   "python": sys.version.split()[0]},
        "p50_ms": round(percentile(remote, 0.50), 3),
        "p99_ms": round(p99_remote, 3),
        "max_ms": round(max(remote), 3),
        "local_p50_ms": round(percentile(local, 0.50), 3),
        "local_p99_ms": round(p99_local, 3),
        "added_p50_ms": round(percentile(added, 0.50), 3),
        "added_p99_ms": round(percentile(added, 0.99), 3),
        "ratio_p99": round(p99_remote / p99_local, 2) if p99_local else None,
        "goal_added_p99_ms": 5.0,
    }))


if __name__ == "__main__":
    main()
