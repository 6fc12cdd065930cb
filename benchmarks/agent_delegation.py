"""Benchmark: the agent's path through the MCP tools, as a coding agent drives it, through real daemons.

Run from the repo root: `.venv/bin/python benchmarks/agent_delegation.py`. Prints one JSON object.

Two repos in a workspace, both daemons up. The "agent" is the MCP SDK's `ClientSession` over stdio against a
real `cockpit mcp` process started the way an agent adapter's per-task config starts it
(`cockpit.core.mcp_config.task_server_entry`: env `COCKPIT_REPO`, `COCKPIT_TASK_ID`), speaking for an
executing task of backend.

- create: `create_remote_task {repo: frontend, text, source_task_id}` tool call to its result, which carries
  the peer's classification (MCP server -> backend's daemon -> frontend's daemon, which classifies with the
  built-in heuristic -> back). Each sample delegates from a fresh executing task of backend, as one agent's
  task does; after the sample a person in frontend cancels the child and the parent fails (both are followed
  to the end before the next sample, so the open children do not pile up). Distinct realistic texts, so dedup
  runs in full; frontend does not auto-approve delegated small tasks, so nothing executes.
- wake: a task awaiting review in frontend; the agent calls `wait_remote_task {repo: frontend, id}`; once the
  wait is in place (its first progress notification, then 50 ms), the task is merged for real through
  frontend's socket. Timed: the `done` event's commit timestamp to the moment the agent has the tool result.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from cockpit.core import daemonctl
from cockpit.core.client import DaemonClient
from cockpit.core.errors import CockpitError
from cockpit.core.mcp_config import HEARTBEAT_ENV, REPO_ENV, task_server_entry
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store
from cockpit_testkit.dedup_pairs import distractor_tasks
from cockpit_testkit.tasks import reviewable_task
from cockpit_testkit.workspaces import build_workspace

CREATE_SAMPLES = 100
WAKE_SAMPLES = 40
WARMUP = 5
ARM_S = 0.05
GOAL_P99_MS = 50.0


def percentile(sorted_ms: list[float], q: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return sorted_ms[index]


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"p50_ms": round(percentile(ordered, 0.50), 3), "p99_ms": round(percentile(ordered, 0.99), 3),
            "mean_ms": round(statistics.fmean(ordered), 3), "max_ms": round(ordered[-1], 3)}


async def wait_once(agent: ClientSession, task_id: int, armed: asyncio.Event) -> tuple[dict[str, Any], float]:
    """One wait_remote_task call; `armed` is set by its first progress notification."""

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        armed.set()

    result = await agent.call_tool("wait_remote_task", {"repo": "frontend", "id": task_id, "timeout_s": 50},
                                   progress_callback=on_progress)
    return result.structured_content or {}, time.time()


async def executing_parent(store: Store, title: str) -> int:
    """A backend task recorded as executing (its agent's run started), which may delegate."""
    async with store.tx() as tx:
        task_id = await tx.next_task_id()
        await tx.append(task_id, "task.created", {"description": title, "title": title, "by": "bench"})
        await tx.append(task_id, "task.classified", {
            "state": "pending", "scope": "large", "reason": "bench", "title": title,
            "plan": [{"n": 1, "verb": "modify", "description": title}], "classifier": "bench"})
        await tx.append(task_id, "task.approved", {"by": "bench"})
        await tx.append(task_id, "task.executing", {"attempt": 1, "agent": "bench"})
    return task_id


async def measure(backend: RepoPaths, frontend: RepoPaths,
                  texts: list[str]) -> tuple[list[float], list[float], dict[str, int]]:
    # The per-task entry's repo; each sample names its own parent task (an agent's server names one).
    entry = task_server_entry(backend.root, 1)
    env = {REPO_ENV: entry.env[REPO_ENV], HEARTBEAT_ENV: "10"}
    params = StdioServerParameters(command=entry.command, args=entry.args, env=env, cwd=Path("/"))
    create_ms: list[float] = []
    wake_ms: list[float] = []
    scopes: dict[str, int] = {}
    peer = await DaemonClient.connect(str(frontend.socket))
    sender = await DaemonClient.connect(str(backend.socket))
    store = await Store.open(frontend.db)
    sender_store = await Store.open(backend.db)
    try:
        async with stdio_client(params) as (read, write), ClientSession(read, write) as agent:
            await agent.initialize()
            for i, text in enumerate(texts[: CREATE_SAMPLES + WARMUP]):
                parent = await executing_parent(sender_store, f"bench parent {i}")
                started = time.perf_counter()
                result = await agent.call_tool("create_remote_task", {"repo": "frontend", "text": text,
                                                                      "source_task_id": parent})
                elapsed = (time.perf_counter() - started) * 1000.0
                data = result.structured_content or {}
                if result.is_error:
                    if data.get("error", {}).get("code") == "duplicate":
                        continue
                    raise RuntimeError(f"create_remote_task failed: {data}")
                assert data["state"] != "created", data  # the result carries the classification
                await peer.call("cancel_task", {"id": data["id"], "reason": "bench"})
                failed = await sender.call("wait_task", {"id": parent, "states": ["failed"], "timeout_s": 30})
                assert failed["task"]["state"] == "failed", failed
                if i >= WARMUP:
                    create_ms.append(elapsed)
                    scopes[str(data["scope"])] = scopes.get(str(data["scope"]), 0) + 1

            for i in range(WAKE_SAMPLES + WARMUP):
                task = await reviewable_task(store, frontend, {f"src/agent_{i}.txt": f"{i}\n"},
                                             title=f"agent bench change {i}")
                armed = asyncio.Event()
                waiting = asyncio.ensure_future(wait_once(agent, task.id, armed))
                await asyncio.wait_for(armed.wait(), 30)
                await asyncio.sleep(ARM_S)
                await peer.call("merge_task", {"id": task.id})
                data, returned_at = await asyncio.wait_for(waiting, 60)
                assert data.get("state") == "done" and not data.get("timed_out"), data
                done_at = float((await store.get_task(task.id)).updated_at)
                if i >= WARMUP:
                    wake_ms.append((returned_at - done_at) * 1000.0)
    finally:
        await peer.close()
        await sender.close()
        await store.close()
        await sender_store.close()
    return create_ms, wake_ms, scopes


def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="ck-bench-"))
    repos = build_workspace(base, ["backend", "frontend"],
                            per_repo={"frontend": {"task.auto_approve_delegated_small": "false",
                                                   "merge.verify": "false"}})
    backend, frontend = RepoPaths(repos["backend"]), RepoPaths(repos["frontend"])
    texts = list(dict.fromkeys(distractor_tasks(4 * (CREATE_SAMPLES + WARMUP), seed=7171)))
    try:
        daemonctl.start(frontend)
        daemonctl.start(backend)
        create_ms, wake_ms, scopes = asyncio.run(measure(backend, frontend, texts))
    finally:
        for paths in (backend, frontend):
            try:
                daemonctl.stop(paths)
            except CockpitError as exc:
                print(f"warning: {exc.message}", file=sys.stderr)
        shutil.rmtree(base, ignore_errors=True)
    create, wake = summary(create_ms), summary(wake_ms)
    print(json.dumps({
        "name": "agent_delegation",
        "value": create["p99_ms"],
        "unit": "ms",
        "params": {
            "client": "mcp ClientSession over stdio -> cockpit mcp (per-task env) -> sender daemon -> peer "
                      "daemon",
            "create": "create_remote_task call -> result with the peer's classification (built-in heuristic)",
            "wake": "merge.finished commit timestamp -> wait_remote_task result in the agent",
            "create_samples": len(create_ms),
            "wake_samples": len(wake_ms),
            "warmup": WARMUP,
            "scopes": scopes,
            "python": sys.version.split()[0],
        },
        "create_p50_ms": create["p50_ms"],
        "create_p99_ms": create["p99_ms"],
        "create_max_ms": create["max_ms"],
        "wake_p50_ms": wake["p50_ms"],
        "wake_p99_ms": wake["p99_ms"],
        "wake_max_ms": wake["max_ms"],
        "goal": f"create and wake p99 < {GOAL_P99_MS:g} ms",
        "meets_goal": create["p99_ms"] < GOAL_P99_MS and wake["p99_ms"] < GOAL_P99_MS,
    }))


if __name__ == "__main__":
    main()
