"""Benchmark: task creations per second through the daemon's socket, with dedup against 1,000 and 10,000
active tasks.

Run from the repo root: `.venv/bin/python benchmarks/create_throughput.py`. Prints one JSON object.

For each size a fresh repo's store is seeded straight through `cockpit.core.store` in big transactions
(`task.created` + `task.classified` -> pending for every task, so all of them are active and take part in
dedup). Then the real daemon starts and one client sends `create_task` with distinct realistic texts the store
has not seen, `force` false, so every create runs the full path: dedup against all active tasks inside the
insert transaction (texts are picked so that dedup finds no match: the miss path, where every layer runs), the
heuristic classifier, the classification events and the plan file. One warm-up create (which builds the
daemon's dedup index from the store) is not timed. Should the daemon still refuse a text as a duplicate it is
counted (`refused_as_duplicate`); `value` is tasks created per second of the whole run.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from _foundation_bench import ROOT, daemon, repo_dir

from cockpit.core.client import DaemonClient
from cockpit.core.dedup import DedupIndex
from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store

sys.path.insert(0, str(ROOT))
from cockpit_testkit.dedup_pairs import distractor_tasks

SIZES = (1_000, 10_000)
CREATES = 300
BATCH = 1_000


async def seed(paths: RepoPaths, texts: list[str]) -> float:
    started = time.perf_counter()
    store = await Store.open(paths.db)
    try:
        for start in range(0, len(texts), BATCH):
            async with store.tx() as tx:
                for offset, text in enumerate(texts[start:start + BATCH]):
                    task_id = start + offset + 1
                    await tx.append(task_id, "task.created", {"description": text, "title": text[:80]})
                    await tx.append(task_id, "task.classified", {
                        "scope": "small", "reason": "seeded", "title": "", "state": "pending",
                        "plan": [{"n": 1, "verb": "modify", "description": text}]})
    finally:
        await store.close()
    return time.perf_counter() - started


async def create(socket: str, texts: list[str]) -> dict[str, Any]:
    async with await DaemonClient.connect(socket) as client:
        await client.call("create_task", {"text": texts[0], "force": False})  # warm-up: loads the dedup index
        created = duplicates = 0
        t0 = time.perf_counter()
        for text in texts[1:]:
            try:
                await client.call("create_task", {"text": text, "force": False})
                created += 1
            except CockpitError as exc:
                if exc.code != "duplicate":
                    raise
                duplicates += 1
        elapsed = time.perf_counter() - t0
    return {"elapsed_s": elapsed, "created": created, "duplicates": duplicates}


def fresh_texts(seeded: list[str], pool: list[str], count: int) -> list[str]:
    """`count` texts from `pool` that are new work: not duplicates of the seeded tasks or of each other (the
    generator's templates make some near-copies, which would measure refusals instead of creations)."""
    index = DedupIndex()
    for task_id, text in enumerate(seeded, 1):
        index.add(task_id, text)
    chosen: list[str] = []
    for text in pool:
        if index.find_duplicate(text) is None:
            chosen.append(text)
            index.add(len(seeded) + len(chosen), text)
            if len(chosen) == count:
                return chosen
    raise RuntimeError(f"only {len(chosen)} of {count} fresh texts in the pool")


def measure(size: int) -> dict[str, Any]:
    corpus = distractor_tasks(size + 4 * CREATES, seed=2024)
    seeded = corpus[:size]
    fresh = fresh_texts(seeded, corpus[size:], CREATES + 1)
    with repo_dir() as paths:
        seed_s = asyncio.run(seed(paths, seeded))
        with daemon(paths) as served:
            r = asyncio.run(create(served.socket, fresh))
        assert Path(paths.db).exists()
    answered = r["created"] + r["duplicates"]
    return {
        "requests_per_s": round(answered / r["elapsed_s"], 1),
        "created_per_s": round(r["created"] / r["elapsed_s"], 1),
        "ms_per_create": round(r["elapsed_s"] * 1000 / answered, 3),
        "refused_as_duplicate": r["duplicates"],
        "seed_s": round(seed_s, 2),
    }


def main() -> None:
    results = {size: measure(size) for size in SIZES}
    small, large = results[SIZES[0]], results[SIZES[1]]
    print(json.dumps({
        "name": "create_throughput",
        "value": large["created_per_s"],
        "unit": "tasks created per s through the socket, dedup against 10,000 active tasks",
        "params": {"sizes": list(SIZES), "creates": CREATES, "force": False, "connections": 1,
                   "classifier": "heuristic", "python": sys.version.split()[0]},
        "goal_per_s_10k": 100,
        "per_s_1k": small["requests_per_s"],
        "per_s_10k": large["requests_per_s"],
        "created_per_s_1k": small["created_per_s"],
        "created_per_s_10k": large["created_per_s"],
        "ms_per_create_1k": small["ms_per_create"],
        "ms_per_create_10k": large["ms_per_create"],
        "refused_as_duplicate_1k": small["refused_as_duplicate"],
        "refused_as_duplicate_10k": large["refused_as_duplicate"],
        "seed_s_1k": small["seed_s"],
        "seed_s_10k": large["seed_s"],
    }))


if __name__ == "__main__":
    main()
