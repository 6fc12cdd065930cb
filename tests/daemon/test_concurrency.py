"""Eight processes creating tasks at the same moment, through the daemon's socket and, with the daemon
stopped, straight into the store: every task is present exactly once, dedup and idempotency keys hold under
the race, and the projections still equal a replay of the events."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.core.config import DEFAULT_CONFIG
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.daemons import cli_json
from cockpit_testkit.tasks import init_cockpit

PROCESSES = 8
PER_PROCESS = 5

# Each worker connects the way the CLI does (the daemon's socket when one is up, else the store), reports
# ready, waits for "go" so all eight start at once, then races: one text every worker files, one request
# every worker sends with the same idempotency key, then its own distinct tasks.
WORKER = """
import asyncio, json, sys
from pathlib import Path
from cockpit.core.backend import open_backend
from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths

async def main(repo, worker, shared, key, texts):
    backend = await open_backend(RepoPaths(Path(repo)))
    print(json.dumps({"via": backend.via}), flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    results = []
    for args in ({"text": shared}, {"text": key + " keyed", "key": key, "force": True},
                 *({"text": t, "force": True} for t in texts)):
        try:
            task = await backend.call("create_task", args)
            results.append({"id": task["id"], "text": args["text"]})
        except CockpitError as exc:
            results.append({"error": exc.code, "text": args["text"]})
    await backend.close()
    print(json.dumps(results), flush=True)

asyncio.run(main(*json.loads(sys.argv[1])))
"""

SUBJECTS = ["login form", "export endpoint", "billing webhook", "rate limiter", "settings page",
            "search index", "upload handler", "audit log"]
SHARED = {"socket": "migrate the analytics database to postgres 16",
          "store": "replace the image resizer with libvips"}
ACTIONS = ["add retries to the", "write tests for the", "document the", "profile the",
           "fix the timeout in the"]


def race(repo: Path, round_name: str) -> tuple[list[str], list[list[dict[str, Any]]]]:
    """Start the workers, release them together, return (how each connected, what each got)."""
    workers = []
    for w in range(PROCESSES):
        texts = [f"{ACTIONS[i]} {SUBJECTS[w]} ({round_name} {w}.{i})" for i in range(PER_PROCESS)]
        argv = json.dumps([str(repo), w, SHARED[round_name],
                           f"key-{round_name}", texts])
        workers.append(subprocess.Popen([sys.executable, "-c", WORKER, argv], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        vias = []
        for proc in workers:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            vias.append(json.loads(line)["via"])
        for proc in workers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in workers:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
        return vias, results
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def check_round(results: list[list[dict[str, Any]]], round_name: str) -> set[int]:
    shared = [r[0] for r in results]
    # Dedup runs inside the insert transaction: exactly one of eight identical requests creates the task.
    assert sorted(("id" in r, r.get("error")) for r in shared) == [(False, "duplicate")] * 7 + [(True, None)]
    # One idempotency key, eight requests: one task, and every caller is told its id.
    keyed = {r[1]["id"] for r in results}
    assert len(keyed) == 1
    distinct = [r for worker in results for r in worker[2:]]
    assert all("id" in r for r in distinct), distinct
    ids = [r["id"] for r in distinct]
    assert len(set(ids)) == len(ids) == PROCESSES * PER_PROCESS
    return {*(r["id"] for r in shared if "id" in r), *keyed, *ids}


def test_eight_processes_at_once_through_the_socket_and_into_the_store(
        repo: Path, daemons: Callable[[Path], dict[str, Any]]) -> None:
    init_cockpit(repo, config=DEFAULT_CONFIG.replace('socket_name = ""', f'socket_name = "ck-none-{repo}"'))
    daemons(repo)
    vias, results = race(repo, "socket")
    assert vias == ["daemon"] * PROCESSES
    first = check_round(results, "socket")

    cli_json("daemon", "stop", repo=repo)
    vias, results = race(repo, "store")
    assert vias == ["store"] * PROCESSES
    second = check_round(results, "store")

    per_round = 1 + 1 + PROCESSES * PER_PROCESS
    assert len(first) == len(second) == per_round and not first & second

    async def check_store() -> None:
        store = await Store.open(RepoPaths(repo).db)
        try:
            tasks = await store.list_tasks()
            assert [t.id for t in tasks] == list(range(1, 2 * per_round + 1))
            assert {t.id for t in tasks} == first | second
            texts = Counter(t.description for t in tasks)
            assert max(texts.values()) == 1, "every task exactly once"
            created = Counter(e.task_id for e in await store.events_since(0) if e.type == "task.created")
            assert set(created) == first | second and set(created.values()) == {1}
            assert await store.replay_differences() == []
        finally:
            await store.close()

    asyncio.run(check_store())
