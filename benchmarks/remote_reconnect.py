"""Benchmark: the ssh connection to a hosted daemon killed mid-subscribe, to resubscribed with nothing missed.

Run from the repo root as root: `.venv/bin/python benchmarks/remote_reconnect.py`. Prints one JSON object.

A subscriber follows the hosted daemon through `cockpit.core.remote.follow` (ssh stream-local forward over
the shared ControlMaster, reconnect with backoff, resume from the last seq). Each round: SIGKILL the master,
commit one task on the host while the link is down (through the daemon's own socket), and time from the
kill until the subscriber holds that task's events (a new master, the forward, `subscribe since`, the
replay). Every round checks the subscriber saw every seq exactly once. `value` is the p99 of that time.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time

from _foundation_bench import percentile
from _remote_bench import RemoteSetup, hosted_repo

from cockpit.core.client import DaemonClient
from cockpit.core.remote.follow import follow

ROUNDS = 20


async def measure(setup: RemoteSetup) -> dict[str, list[float]]:
    writer = await DaemonClient.connect(setup.socket)
    seen: list[int] = []
    live_at: list[float] = []
    got = asyncio.Event()

    def state(name: str, detail: str) -> None:
        if name == "live":
            live_at.append(time.monotonic())

    async def consume() -> None:
        async for event in follow(setup.repo, int((await writer.call("status"))["last_seq"]),
                                  on_state=state):
            seen.append(event.seq)
            got.set()

    async def until_seen(seq: int) -> None:
        while not seen or seen[-1] < seq:
            got.clear()
            await asyncio.wait_for(got.wait(), 30)

    consumer = asyncio.ensure_future(consume())
    recovered: list[float] = []
    resubscribed: list[float] = []
    try:
        await writer.call("create_task", {"text": "warm-up", "force": True})
        await until_seen(int((await writer.call("status"))["last_seq"]))
        first = seen[0]
        for n in range(ROUNDS):
            pid = await asyncio.to_thread(setup.repo.host.master_pid)
            assert pid is not None
            lives = len(live_at)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            await writer.call("create_task", {"text": f"written while the link is down {n}", "force": True})
            last = int((await writer.call("status"))["last_seq"])
            await until_seen(last)
            recovered.append((time.monotonic() - killed) * 1000)
            resubscribed.append((live_at[lives] - killed) * 1000 if len(live_at) > lives else float("nan"))
            assert seen == list(range(first, last + 1)), "an event was missed or doubled"
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await writer.close()
    return {"recovered": recovered, "resubscribed": resubscribed}


def main() -> None:
    with hosted_repo() as setup:
        r = asyncio.run(measure(setup))
    rec, sub = r["recovered"], r["resubscribed"]
    print(json.dumps({
        "name": "remote_reconnect",
        "value": round(percentile(rec, 0.99), 1),
        "unit": "ms (p99, ssh master SIGKILLed to the event written meanwhile received, none missed)",
        "params": {"rounds": ROUNDS, "backoff_s": [0.05, 2.0], "python": sys.version.split()[0]},
        "p50_ms": round(percentile(rec, 0.50), 1),
        "p99_ms": round(percentile(rec, 0.99), 1),
        "max_ms": round(max(rec), 1),
        "resubscribed_p50_ms": round(percentile(sub, 0.50), 1),
        "resubscribed_p99_ms": round(percentile(sub, 0.99), 1),
        "missed": 0,
        "doubled": 0,
        "goal_p99_ms": 2000,
    }))


if __name__ == "__main__":
    main()
