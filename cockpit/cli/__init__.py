"""The `cockpit` command line. Every verb is a thin call into core; `--json` prints one JSON object.

Exit codes: 0 done, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import sqlite3
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from cockpit import __version__
from cockpit.core import config as cfg
from cockpit.core import daemonctl, daemonfile
from cockpit.core.backend import Backend, backend_for
from cockpit.core.errors import CockpitError, UsageError
from cockpit.core.models import JSON
from cockpit.core.ops import all_tasks
from cockpit.core.paths import RepoPaths
from cockpit.core.printable import printable
from cockpit.core.states import State, parse_state
from cockpit.core.store import Store, private_dir

# Modules that add verbs (each has `register(sub, common)`); missing ones are skipped.
VERB_MODULES = ("cockpit.cli.execution", "cockpit.cli.merge", "cockpit.cli.remote", "cockpit.cli.app",
                "cockpit.cli.demo")

Runner = Callable[[argparse.Namespace], Awaitable[int] | int]


class ArgParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def out(args: argparse.Namespace, data: JSON, human: Callable[[], None] | None = None) -> None:
    """Print `data` as one JSON object under --json, else the human form."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, default=str) + "\n")
    elif human is not None:
        human()
    else:
        from cockpit.render import console

        console.print_json(json.dumps(data, default=str))


def say(args: argparse.Namespace, message: str, *, markup: bool = False) -> None:
    """Print one message for a person (not under --json). Literal text unless `markup`: then every value in
    it must come through `render.esc`. Escape sequences never reach the terminal either way."""
    if not getattr(args, "json", False):
        from cockpit.render import console

        console.print(message if markup else printable(message), markup=markup)


def repo_paths(args: argparse.Namespace) -> RepoPaths:
    return RepoPaths.find(Path(args.repo) if getattr(args, "repo", None) else None)


def run_async(coro: Awaitable[int]) -> int:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_backend(args: argparse.Namespace, body: Callable[[Backend], Awaitable[int]]) -> int:
    """Run `body` against the repo as the person (the command line is the person's own terminal)."""
    paths = repo_paths(args)
    async with backend_for(paths, person=True) as backend:
        return await body(backend)


# -- init, doctor --------------------------------------------------------------------------------------------

def ensure_excluded(root: Path, entry: str = ".cockpit/") -> bool:
    """List `entry` (default `.cockpit/`) in `.git/info/exclude`, never in a tracked file. True if added."""
    exclude = _git_dir(root) / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text() if exclude.exists() else ""
    bare = entry.strip("/")
    if any(line.strip() in (bare, f"{bare}/", f"/{bare}", f"/{bare}/") for line in existing.splitlines()):
        return False
    with exclude.open("a") as fh:
        if existing and not existing.endswith("\n"):
            fh.write("\n")
        fh.write(f"{entry}\n")
    return True


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


def _git_dir(root: Path) -> Path:
    """The repo's own git directory (the common one, for a linked worktree or submodule)."""
    git_dir = root / ".git"
    if git_dir.is_file():  # .git names the real dir
        text = git_dir.read_text().strip()
        if text.startswith("gitdir:"):
            git_dir = (root / text.split(":", 1)[1].strip()).resolve()
            common = git_dir / "commondir"
            if common.exists():
                git_dir = (git_dir / common.read_text().strip()).resolve()
    return git_dir


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

    exclude_aider_files(_git_dir(paths.root))

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


# -- daemon --------------------------------------------------------------------------------------------------

def cmd_daemon(args: argparse.Namespace) -> int:
    paths = repo_paths(args)
    action = args.action
    if action == "run":
        return daemon_run(paths, args.ready_fd)
    if action == "start":
        if not paths.db.exists():
            init_repo(paths)
        result = daemonctl.start(paths)
        data = {**result.info.to_json(), "already_running": result.already_running}
        msg = (f"a daemon is already running for {paths.root} (pid {result.info.pid})"
               if result.already_running
               else f"daemon started (pid {result.info.pid}, socket {result.info.socket})")
        out(args, data, lambda: say(args, msg))
        return 0
    if action == "stop":
        info = daemonctl.stop(paths)
        data = {"stopped": info is not None, "pid": info.pid if info else None}
        out(args, data, lambda: say(args, f"daemon stopped (pid {info.pid})" if info
                                    else "no daemon was running"))
        return 0
    info = daemonctl.status(paths)
    data = {"running": info is not None, **(info.to_json() if info else {})}
    out(args, data, lambda: say(args, f"running (pid {info.pid}, socket {info.socket})" if info
                                else "not running"))
    return 0 if info else 1


def daemon_run(paths: RepoPaths, ready_fd: int | None) -> int:
    from cockpit.daemon.assembly import run_until_stopped

    if not paths.db.exists():
        init_repo(paths)
    return run_until_stopped(paths, ready_fd)


# -- tasks ---------------------------------------------------------------------------------------------------

def read_text_arg(value: str) -> str:
    return sys.stdin.read() if value == "-" else value


def cmd_task_create(args: argparse.Namespace) -> int:
    text = read_text_arg(args.text)
    script = None
    if args.script:
        try:
            script = Path(args.script).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read script {args.script}: {exc.strerror}") from None

    async def body(b: Backend) -> int:
        task = await b.call("create_task", {"text": text, "force": args.force, "no_wait": args.no_wait,
                                            "script": script})

        def human() -> None:
            from cockpit.render import print_task

            print_task(task)

        out(args, task, human)
        return 0

    return run_async(with_backend(args, body))


def cmd_task_list(args: argparse.Namespace) -> int:
    states = [parse_state(s).value for s in args.state or []]

    async def body(b: Backend) -> int:
        result: dict[str, Any] = {"tasks": await all_tasks(b.call, {"all": args.all, "states": states})}
        # The repo's token usage (every task's agents), beside the list.
        first = await b.call("list_tasks", {"all": args.all, "states": states, "limit": 1})
        result["usage"] = first.get("usage")

        def human() -> None:
            from cockpit.render import console, task_table

            if result["tasks"]:
                console.print(task_table(result["tasks"]))
            else:
                console.print("no tasks" + ("" if args.all else " (--all includes finished ones)"))

        out(args, result, human)
        return 0

    return run_async(with_backend(args, body))


def task_op(op: str, extra: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
            message: str = "") -> Runner:
    """A verb that sends one op about one task and prints the task it returns."""

    def run(args: argparse.Namespace) -> int:
        async def body(b: Backend) -> int:
            payload = {"id": args.id, **(extra(args) if extra else {})}
            task = await b.call(op, payload)
            out(args, task, lambda: say(args, message.format(**task) if message else "")
                if message else _print(task))
            return 0

        return run_async(with_backend(args, body))

    return run


def cmd_task_show(args: argparse.Namespace) -> int:
    """The task, and where its agent's and its gates' logs are (the whole output, not just the tail)."""

    async def body(b: Backend) -> int:
        task = await b.call("get_task", {"id": args.id})
        logs = {name: str(path) for name, path in (("agent", b.paths.task_log(args.id)),
                                                   ("gates", b.paths.gate_log(args.id))) if path.exists()}

        def human() -> None:
            _print(task)
            failed = any(g.get("status") == "failed" for g in task.get("gates") or [])
            for name, path in logs.items():
                note = " (the failing gate's whole output)" if name == "gates" and failed else ""
                say(args, f"{name} log: {path}{note}")

        out(args, {**task, "logs": logs}, human)
        return 0

    return run_async(with_backend(args, body))


def cmd_task_approve(args: argparse.Namespace) -> int:
    """Approve; an ambiguous task only with --anyway, and with no daemon say that nothing runs yet."""

    async def body(b: Backend) -> int:
        if not args.anyway:
            current = await b.call("get_task", {"id": args.id})
            if current.get("state") == State.PENDING_CLARIFICATION.value:
                raise CockpitError(
                    f"task {args.id} is ambiguous and its questions are not answered yet: answer them with "
                    f"`cockpit task clarify {args.id} --answer TEXT`, or approve it as it is with --anyway",
                    code="needs_answers")
        task = await b.call("approve_task", {"id": args.id})
        data = {**task, "daemon_running": b.client is not None}

        def human() -> None:
            say(args, f"task {task['id']} is {task['state']}")
            if b.client is None and task.get("state") == State.APPROVED.value:
                say(args, "no daemon is running for this repo: nothing runs until one starts "
                          "(`cockpit daemon start`)")

        out(args, data, human)
        return 0

    return run_async(with_backend(args, body))


def _print(task: JSON) -> None:
    from cockpit.render import print_task

    print_task(task)


def cmd_task_wait(args: argparse.Namespace) -> int:
    states = [parse_state(s).value for s in args.state or []]

    async def body(b: Backend) -> int:
        result = await b.call("wait_task", {"id": args.id, "states": states, "timeout_s": args.timeout})
        task = result["task"]
        if result.get("timed_out"):
            if args.json:
                message = f"task {args.id} is still {task['state']}"
                out(args, {"error": {"code": "timeout", "message": message}, "task": task})
            else:
                print(f"cockpit: timed out: task {args.id} is still {task['state']}", file=sys.stderr)
            return 1
        out(args, task, lambda: say(args, f"task {task['id']} is {task['state']}"))
        return 0

    return run_async(with_backend(args, body))


def cmd_events(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        since = args.since
        if not args.follow or b.client is None:
            result = await b.call("events", {"since": since})
            for event in result["events"]:
                sys.stdout.write(json.dumps(event) + "\n")
            if not args.follow:
                return 0
            since = result["events"][-1]["seq"] if result["events"] else since
            from cockpit.core.storewatch import store_changes

            async for _ in store_changes(b.paths.cockpit):
                result = await b.call("events", {"since": since})
                for event in result["events"]:
                    sys.stdout.write(json.dumps(event) + "\n")
                    since = event["seq"]
                sys.stdout.flush()
            return 0
        async for event in b.client.subscribe(since):
            sys.stdout.write(json.dumps(event.to_json()) + "\n")
            sys.stdout.flush()
        return 0

    try:
        return run_async(with_backend(args, body))
    except KeyboardInterrupt:
        return 0


# -- config --------------------------------------------------------------------------------------------------

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


# -- parser --------------------------------------------------------------------------------------------------

def common_parser() -> ArgParser:
    common = ArgParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    common.add_argument("--repo", metavar="PATH",
                        help="the repository (default: the one around the current dir)")
    return common


def task_id(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"task id must be a whole number, not {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("task ids start at 1")
    return number


def seconds_arg(value: str) -> float:
    """A finite number of seconds, 0 or more: `nan` or `inf` never reach a timer."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, not {value!r}")
    return number


def state_arg(value: str) -> str:
    if value not in {s.value for s in State}:
        names = ", ".join(s.value for s in State)
        raise argparse.ArgumentTypeError(f"unknown state {value!r}; states: {names}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    parser = ArgParser(prog="cockpit", description="Supervise AI coding agents across git repositories.")
    parser.add_argument("--version", action="version", version=f"agent-cockpit {__version__}")
    parser.add_argument("--workspace", metavar="PATH", help="open the cockpit on this workspace or repo")
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgParser)

    p = sub.add_parser("init", parents=[common], help="create .cockpit/ in a repo")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("doctor", parents=[common], help="check the store, config and daemon")
    p.add_argument("--repair", action="store_true", help="rebuild the projections from the events first")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("daemon", parents=[common], help="start, stop or inspect the repo's daemon")
    p.add_argument("action", choices=["start", "stop", "status", "run"])
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_daemon)

    task = sub.add_parser("task", help="create and steer tasks")
    tsub = task.add_subparsers(dest="task_command", metavar="VERB", required=True, parser_class=ArgParser)
    p = tsub.add_parser("create", parents=[common], help="create a task (TEXT, or - to read stdin)")
    p.add_argument("text")
    p.add_argument("--no-wait", action="store_true", help="return at `created`, before classification")
    p.add_argument("--force", action="store_true", help="create it even if it looks like a duplicate")
    p.add_argument("--script", metavar="FILE", help="a TOML script for the script agent")
    p.set_defaults(func=cmd_task_create)

    p = tsub.add_parser("list", parents=[common], help="list tasks (active ones unless --all)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--state", action="append", type=state_arg, metavar="S")
    p.set_defaults(func=cmd_task_list)

    p = tsub.add_parser("show", parents=[common], help="show one task")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=cmd_task_show)

    p = tsub.add_parser("approve", parents=[common], help="approve a pending task")
    p.add_argument("id", type=task_id)
    p.add_argument("--anyway", action="store_true",
                   help="approve an ambiguous task before its questions are answered")
    p.set_defaults(func=cmd_task_approve)

    p = tsub.add_parser("reject", parents=[common], help="reject a task")
    p.add_argument("id", type=task_id)
    p.add_argument("--reason", default="")
    p.set_defaults(func=task_op("reject_task", lambda a: {"reason": a.reason}, "task {id} is {state}"))

    p = tsub.add_parser("cancel", parents=[common], help="cancel a task")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=task_op("cancel_task", message="task {id} is {state}"))

    p = tsub.add_parser("retry", parents=[common], help="run a failed, interrupted or rolled-back task again")
    p.add_argument("id", type=task_id)
    p.add_argument("--fresh", action="store_true", help="start a new worktree from the target's tip")
    p.set_defaults(func=task_op("retry_task", lambda a: {"fresh": a.fresh}, "task {id} is {state}"))

    p = tsub.add_parser("clarify", parents=[common], help="answer an ambiguous task's questions")
    p.add_argument("id", type=task_id)
    p.add_argument("--answer", action="append", required=True, metavar="TEXT", nargs="+")
    p.set_defaults(func=task_op("clarify_task",
                                lambda a: {"answers": [x for group in a.answer for x in group]},
                                "task {id} is {state}"))

    p = tsub.add_parser("wait", parents=[common], help="block until a task reaches a state")
    p.add_argument("id", type=task_id)
    p.add_argument("--state", action="append", type=state_arg, metavar="S", nargs="+")
    p.add_argument("--timeout", type=seconds_arg, metavar="S")
    p.set_defaults(func=lambda a: cmd_task_wait(_flatten_states(a)))

    p = sub.add_parser("events", parents=[common], help="print events as JSON lines")
    p.add_argument("--since", type=int, default=0, metavar="N")
    p.add_argument("--follow", action="store_true", help="keep printing new events as they commit")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("config", parents=[common], help="get, set or list settings")
    p.add_argument("action", choices=["get", "set", "list"])
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p.set_defaults(func=cmd_config)

    for name in VERB_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub, tsub, common)
    return parser


def _flatten_states(args: argparse.Namespace) -> argparse.Namespace:
    if args.state:
        args.state = [s for group in args.state for s in group]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.func is None:
            from cockpit.cli.app import open_cockpit  # type: ignore[import-not-found,unused-ignore]

            return int(open_cockpit(args))
        result = args.func(args)
        return int(result)
    except CockpitError as exc:
        if wants_json:
            sys.stdout.write(json.dumps({"error": exc.to_json()}) + "\n")
        else:
            print(f"cockpit: {printable(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # A bug or an unexpected OS error: the traceback for a report, and still one JSON object under --json.
        traceback.print_exc()
        message = f"internal error: {exc.__class__.__name__}: {exc}"
        if wants_json:
            sys.stdout.write(json.dumps({"error": {"code": "internal", "message": message}}) + "\n")
        else:
            print(f"cockpit: {printable(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
