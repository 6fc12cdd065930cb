"""RSS and thread count of an idle daemon, with an empty store and with 10,000 tasks in it.

The tasks are a history: each created and classified, every other one then rejected (finished), the rest
pending, so the daemon's start-up (recovery pass, dedup index) sees a realistic mix and nothing to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _foundation_bench import daemon, repo_dir

from cockpit.core.store import Store


def status(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {"rss_mb": round(fields["VmRSS"] / 1024, 1), "threads": fields["Threads"]}  # type: ignore[dict-item]


async def seed(db: Path, count: int) -> None:
    store = await Store.open(db)
    try:
        for start in range(0, count, 1000):
            async with store.tx() as tx:
                for i in range(start, min(count, start + 1000)):
                    text = f"Update module {i % 97} so that report {i} lists its totals"
                    await tx.append(i + 1, "task.created", {"description": text, "title": text})
                    await tx.append(i + 1, "task.classified", {
                        "scope": "small", "reason": "seeded", "title": "", "state": "pending",
                        "plan": [{"n": 1, "verb": "modify", "description": text}]})
                    if i % 2:
                        await tx.append(i + 1, "task.rejected", {"reason": "seeded history"})
    finally:
        await store.close()


def measure(tasks: int) -> dict[str, int]:
    with repo_dir() as paths:
        if tasks:
            asyncio.run(seed(paths.db, tasks))
        with daemon(paths) as served:
            time.sleep(2)  # after start-up (recovery pass, dedup index)
            return status(served.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    args = parser.parse_args()
    empty = measure(0)
    full = measure(args.tasks)
    print(json.dumps({"name": "daemon_memory", "value": empty["rss_mb"], "unit": "MB RSS (idle daemon)",
                      "params": {"tasks": args.tasks}, "idle": empty, "with_tasks": full,
                      "goal": {"rss_mb": 30}}))


if __name__ == "__main__":
    main()
