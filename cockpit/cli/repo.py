"""Setting a repo up and checking it: `init`, `doctor` and `config`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

from cockpit.cli.output import out, say
from cockpit.cli.running import repo_paths, run_async
from cockpit.core import config as cfg
from cockpit.core import daemonfile
from cockpit.core.errors import CockpitError, UsageError
from cockpit.core.excludes import common_git_dir, ensure_excluded
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.core.store import Store, private_dir

# Agent CLIs `init` looks for, in order of preference.
AGENT_CLIS = ("claude", "codex", "aider", "gemini")


def current_branch(root: Path) -> str | None:
    """The branch checked out at `root` (also on an unborn branch); None on a detached HEAD."""
    from cockpit.core.git import run_git

    result = run_git(root, "symbolic-ref", "--short", "--quiet", "HEAD", check=False)
    return result.stdout if result.ok and result.stdout else None


def first_installed_agent() -> str | None:
    import shutil

    return next((name for name in AGENT_CLIS if shutil.which(name) is not None), None)


def init_repo(paths: RepoPaths) -> dict[str, Any]:
    private_dir(paths.cockpit)
    for d in (paths.plans, paths.worktrees, paths.logs, paths.signals):
        d.mkdir(parents=True, exist_ok=True)
    branch = current_branch(paths.root) or "main"
    agent = first_installed_agent()
    wrote_config = cfg.write_default(paths.config, target_branch=branch, backend=agent or "script")
    excluded = ensure_excluded(paths.root)
    # aider's chat history files (.aider*) stay untracked and out of `git status` (the clean-tree gate).
    from cockpit.core.agents.aider import exclude_aider_files

    exclude_aider_files(common_git_dir(paths.root))

    async def create_store() -> None:
        store = await Store.open(paths.db)
        await store.close()

    asyncio.run(create_store())
    settings = cfg.load_settings(paths.config)
    return {"root": str(paths.root), "cockpit": str(paths.cockpit), "config_created": wrote_config,
            "exclude_added": excluded, "db": str(paths.db), "target_branch": settings.target_branch,
            "backend": settings["agent.backend"]}


def cmd_init(args: argparse.Namespace) -> int:
    paths = repo_paths(args)
    result = init_repo(paths)

    def human() -> None:
        if not result["config_created"]:
            say(args, f"initialised {paths.cockpit} (config kept: target branch "
                      f"{result['target_branch']}, agent {result['backend']})")
            return
        say(args, f"initialised {paths.cockpit}")
        say(args, f"  target branch: {result['target_branch']} (the branch checked out now); change it with "
                  "`cockpit config set task.target_branch NAME`")
        if result["backend"] == "script":
            say(args, f"  agent: script, the built-in scripted agent (it only commits the plan): none of "
                      f"{', '.join(AGENT_CLIS)} is installed; install one, then "
                      "`cockpit config set agent.backend NAME`")
        else:
            say(args, f"  agent: {result['backend']} (the first installed of {', '.join(AGENT_CLIS)}); "
                      "change it with `cockpit config set agent.backend NAME`")

    out(args, result, human)
    return 0


def setup_problems(paths: RepoPaths, settings: cfg.Settings, checks: dict[str, Any]) -> list[str]:
    """What would make every task fail at its start: a target branch that does not exist, a missing agent."""
    from cockpit.core.agents import agent_command
    from cockpit.core.git import ref_sha

    problems: list[str] = []
    target = settings.target_branch
    try:
        found = ref_sha(paths.root, target) is not None
    except CockpitError as exc:
        found = False
        checks["target_branch"] = exc.message
    if found:
        checks["target_branch"] = f"{target} exists"
    else:
        branch = current_branch(paths.root)
        hint = f" (the current branch is {branch})" if branch and branch != target else ""
        checks.setdefault("target_branch", f"{target} does not exist")
        problems.append(f"target branch {target!r} does not exist{hint}; set it with "
                        "`cockpit config set task.target_branch NAME`")
    backend = settings["agent.backend"]
    try:
        agent_command(backend, prompt_file=paths.cockpit / "prompt.md", worktree=paths.root, task_id=0,
                      custom_command=settings["agent.command"])
        checks["backend"] = f"{backend} is installed"
    except CockpitError as exc:
        checks["backend"] = exc.message
        problems.append(exc.message)
    return problems


def integrity_check(db: Path) -> str:
    """SQLite's own integrity check of the store, read-only: "ok", or what it found wrong."""
    if db.stat().st_size == 0:
        return f"{db} is empty (0 bytes)"
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
            rows = conn.execute("PRAGMA integrity_check(20)").fetchall()
    except sqlite3.DatabaseError as exc:
        return f"the database cannot be read ({exc})"
    found = "; ".join(str(r[0]) for r in rows)
    return found or "unknown"


async def doctor_report(paths: RepoPaths) -> JSON:
    problems: list[str] = []
    checks: dict[str, Any] = {}
    if not paths.db.exists():
        return {"ok": False, "problems": [f"no store at {paths.db}; run `cockpit init`"], "checks": {}}
    try:
        settings = cfg.load_settings(paths.config)
        checks["config"] = "ok"
    except CockpitError as exc:
        checks["config"] = exc.message
        problems.append(exc.message)
    else:
        problems.extend(await asyncio.to_thread(setup_problems, paths, settings, checks))
    integrity = await asyncio.to_thread(integrity_check, paths.db)
    checks["integrity"] = integrity
    if integrity != "ok":
        problems.append(f"SQLite integrity check failed: {integrity}")
        problems.append(f"the store is damaged: stop the daemon (`cockpit daemon stop`), keep a copy of "
                        f"{paths.db}, then restore it from a backup, or recover what is readable with "
                        f"`sqlite3 {paths.db} .recover | sqlite3 recovered.db` and move that into its place")
        return {"ok": False, "problems": problems, "checks": checks}
    try:
        store = await Store.open(paths.db)
    except CockpitError as exc:
        problems.append(exc.message)
        return {"ok": False, "problems": problems, "checks": checks}
    try:
        version = await store.schema_version()
        checks["schema_version"] = version
        from cockpit.core.store import SCHEMA_VERSION

        if version != SCHEMA_VERSION:
            problems.append(f"schema version {version}, this cockpit expects {SCHEMA_VERSION}")
        differences = await store.replay_differences()
        checks["replay"] = differences or "ok"
        problems.extend(differences)
        if differences:
            problems.append("run `cockpit doctor --repair` to rebuild the projections from the events")
        checks["events"] = await store.last_seq()
        checks["tasks"] = await store.counts()
    finally:
        await store.close()
    info = daemonfile.read(paths.daemon_json)
    if info is None:
        checks["daemon"] = "not running"
    elif not daemonfile.pid_alive(info.pid):
        checks["daemon"] = f"stale daemon.json (pid {info.pid} is dead); the next start replaces it"
    else:
        from cockpit.core.client import DaemonClient

        try:
            client = await DaemonClient.connect(info.socket, timeout=3)
            await client.call("ping", timeout=3)
            await client.close()
            checks["daemon"] = f"running (pid {info.pid}, socket {info.socket})"
        except CockpitError as exc:
            checks["daemon"] = f"pid {info.pid} alive but not answering: {exc.message}"
            problems.append(checks["daemon"])
    return {"ok": not problems, "problems": problems, "checks": checks}


def cmd_doctor(args: argparse.Namespace) -> int:
    paths = repo_paths(args)

    async def body() -> int:
        if args.repair:
            store = await Store.open(paths.db, create=False)
            try:
                rebuilt = await store.rebuild()
            finally:
                await store.close()
            say(args, f"rebuilt the projections of {rebuilt} tasks from the events")
        report = await doctor_report(paths)

        def human() -> None:
            from cockpit.render import esc

            for name, value in report["checks"].items():
                say(args, f"{name}: {value}")
            for p in report["problems"]:
                say(args, f"[red]problem:[/red] {esc(p)}", markup=True)
            verdict = "[green]all good[/green]" if report["ok"] else "[red]problems found[/red]"
            say(args, verdict, markup=True)

        out(args, report, human)
        return 0 if report["ok"] else 1

    return run_async(body())


def cmd_config(args: argparse.Namespace) -> int:
    paths = repo_paths(args)
    if args.action == "list":
        settings = cfg.load_settings(paths.config)
        data: JSON = {**settings.values, "gates": [g.__dict__ for g in settings.gates]}

        def human() -> None:
            for key, value in settings.values.items():
                say(args, f"{key} = {json.dumps(value)}")

        out(args, data, human)
        return 0
    if not args.key:
        raise UsageError(f"config {args.action} needs a KEY such as task.auto_approve_small")
    if args.action == "get":
        value = cfg.get_value(cfg.load_settings(paths.config), args.key)
        out(args, {"key": args.key, "value": value}, lambda: say(args, json.dumps(value)))
        return 0
    if args.value is None:
        raise UsageError("config set needs a KEY and a VALUE")
    if not paths.cockpit.exists():
        init_repo(paths)
    value = cfg.set_value(paths.config, args.key, args.value)
    out(args, {"key": args.key, "value": value}, lambda: say(args, f"{args.key} = {json.dumps(value)}"))
    return 0
