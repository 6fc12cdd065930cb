"""Benchmark: an event's commit to its arrival at 10 subscribers of the daemon's socket.

Run from the repo root: `.venv/bin/python benchmarks/event_push_latency.py`. Prints one JSON object.

A real daemon; ten subscribers, each on its own connection (`subscribe {since}`), read pushed events. A
writer on an eleventh connection sends one `create_task` at a time (two commits by the daemon: `task.created`,
then `task.classified`) and waits until all ten subscribers hold both events before sending the next. Timed
per event and subscriber: the event's `ts` to the moment the subscriber has read and decoded its line (same
clock, same machine). `ts` is taken just before the event's INSERT, so each figure also contains the rest of
the transaction: an upper bound on commit-to-arrival. `value` is the p99 over events of the time until the
LAST of the ten has it; the per-arrival figures are given too.

Extra figures time the other path: a write committed by another process straight into the store (a CLI with
the daemon down, a peer's fallback write), which the daemon notices through its file watch.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from _foundation_bench import daemon, percentile, repo_dir

from cockpit.core.store import Store

SUBSCRIBERS = 10
EVENTS = 500
WARMUP = 50
EXTERNAL_EVENTS = 100


class Subscriber:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.arrivals: dict[int, float] = {}
        self.got = asyncio.Event()

    async def run(self) -> None:
        while line := await self.reader.readline():
            arrived = time.time()
            message = json.loads(line)
            if "event" in message:
                self.arrivals[message["event"]["seq"]] = arrived
                self.got.set()


async def subscribe(socket: str, since: int) -> tuple[Subscriber, asyncio.Task[None]]:
    reader, writer = await asyncio.open_unix_connection(socket, limit=16 * 1024 * 1024)
    await reader.readline()  # hello
    writer.write(json.dumps({"id": 1, "op": "subscribe", "args": {"since": since}}).encode() + b"\n")
    await writer.drain()
    reply = json.loads(await reader.readline())
    assert reply["ok"], reply
    sub = Subscriber(reader, writer)
    return sub, asyncio.ensure_future(sub.run())


async def all_have(subs: list[Subscriber], seq: int) -> None:
    for sub in subs:
        while seq not in sub.arrivals:
            sub.got.clear()
            await asyncio.wait_for(sub.got.wait(), 10)


async def measure(served: Any) -> dict[str, Any]:
    reader, writer = await asyncio.open_unix_connection(served.socket, limit=16 * 1024 * 1024)
    await reader.readline()

    async def call(n: int, op: str, args: dict[str, Any]) -> dict[str, Any]:
        writer.write(json.dumps({"id": n, "op": op, "args": args}).encode() + b"\n")
        await writer.drain()
        reply: dict[str, Any] = json.loads(await reader.readline())
        assert reply["ok"], reply
        return reply

    since = (await call(0, "status", {}))["result"]["last_seq"]
    pairs = [await subscribe(served.socket, since) for _ in range(SUBSCRIBERS)]
    subs = [s for s, _ in pairs]
    per_arrival: list[float] = []
    last_of_ten: list[float] = []
    n = 0
    while len(last_of_ten) < EVENTS:
        n += 1
        # Two commits per create: task.created, then task.classified; the reply follows both.
        await call(n, "create_task", {"text": f"push latency probe {n}", "force": True})
        events = (await call(0, "events", {"since": since}))["result"]["events"]
        for event in events:
            await all_have(subs, event["seq"])
            since = event["seq"]
            if n <= WARMUP // 2:
                continue
            arrivals = [(sub.arrivals[event["seq"]] - event["ts"]) * 1000 for sub in subs]
            per_arrival.extend(arrivals)
            last_of_ten.append(max(arrivals))

    # The other path: commits by another writer, noticed through the daemon's watch of the store files.
    store = await Store.open(served.paths.db)
    external: list[float] = []
    try:
        for _ in range(EXTERNAL_EVENTS):
            event, _ = await store.append(None, "bench.note", {"text": "external"})
            committed = time.time()
            await all_have(subs, event.seq)
            external.append((max(sub.arrivals[event.seq] for sub in subs) - committed) * 1000)
    finally:
        await store.close()
    for sub, reader_task in pairs:
        sub.writer.close()
        reader_task.cancel()
    writer.close()
    return {"per_arrival": per_arrival, "last_of_ten": last_of_ten, "external": external}


def main() -> None:
    with repo_dir() as paths, daemon(paths) as served:
        r = asyncio.run(measure(served))
    last, each, ext = r["last_of_ten"], r["per_arrival"], r["external"]
    print(json.dumps({
        "name": "event_push_latency",
        "value": round(percentile(last, 0.99), 3),
        "unit": "ms (p99, event ts to the 10th subscriber reading it)",
        "params": {"subscribers": SUBSCRIBERS, "events": EVENTS, "warmup": WARMUP,
                   "writer": "create_task over the socket (2 commits each)",
                   "python": sys.version.split()[0]},
        "p50_ms": round(percentile(last, 0.50), 3),
        "p99_ms": round(percentile(last, 0.99), 3),
        "max_ms": round(max(last), 3),
        "per_arrival_p50_ms": round(percentile(each, 0.50), 3),
        "per_arrival_p99_ms": round(percentile(each, 0.99), 3),
        "goal_p99_ms": 5.0,
        "external_writer_p50_ms": round(percentile(ext, 0.50), 3),
        "external_writer_p99_ms": round(percentile(ext, 0.99), 3),
    }))


if __name__ == "__main__":
    main()
