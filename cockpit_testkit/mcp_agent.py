"""A scripted coding agent that uses the cockpit MCP tools the way a real one does, for end-to-end tests.

Run as a `custom` agent backend: `PYTHON mcp_agent.py PLAN_FILE {task_id}`. It starts `cockpit mcp` the way an
agent adapter's per-task config does (`cockpit.core.mcp_config.task_server_entry`, over stdio with the SDK's
`ClientSession`), from the task's worktree, and runs the actions PLAN_FILE lists for its repo and task:

    {"<repo name>#<task id>": [
        {"tool": "create_remote_task", "args": {"repo": "frontend", "text": "..."}},
        {"commit": "path/in/worktree.txt"},
        {"exit": 0}
    ]}

Every tool result is appended as one JSON line to `PLAN_FILE.calls.jsonl` (`{"who", "tool", "args",
"result"}`), so a test can read what the agent saw. A task with no entry just commits one file and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from cockpit.core.mcp_config import REPO_ENV, TASK_ENV, task_server_entry
from cockpit.core.workspace import repo_identity


def commit(path: str, task_id: int) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(f"work of task {task_id}\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "agent", "GIT_AUTHOR_EMAIL": "agent@example.invalid",
           "GIT_COMMITTER_NAME": "agent", "GIT_COMMITTER_EMAIL": "agent@example.invalid"}
    subprocess.run(["git", "add", "-A"], check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", f"task {task_id}: {path}"], check=True, env=env)


async def run(plan_file: Path, task_id: int) -> int:
    root = Path(os.environ[REPO_ENV])
    who = f"{repo_identity(root)[0]}#{task_id}"
    plans: dict[str, list[dict[str, Any]]] = json.loads(plan_file.read_text())  # noqa: ASYNC240
    actions = plans.get(who, [{"commit": f"work/task-{task_id}.txt"}, {"exit": 0}])
    entry = task_server_entry(root, task_id)
    assert entry.env[TASK_ENV] == str(task_id)
    params = StdioServerParameters(command=entry.command, args=entry.args, env=entry.env, cwd=Path.cwd())
    log = plan_file.with_name(plan_file.name + ".calls.jsonl")
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for action in actions:
            if "tool" in action:
                result = await session.call_tool(action["tool"], action.get("args", {}))
                line = {"who": who, "tool": action["tool"], "args": action.get("args", {}),
                        "result": result.structured_content, "is_error": result.is_error}
                print(json.dumps(line), flush=True)
                with log.open("a") as fh:
                    fh.write(json.dumps(line) + "\n")
            elif "commit" in action:
                commit(str(action["commit"]), task_id)
            elif "exit" in action:
                return int(action["exit"])
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(run(Path(sys.argv[1]), int(sys.argv[2]))))
