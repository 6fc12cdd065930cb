"""CLI verbs for workspaces, cross-repo delegation and the MCP server.

    cockpit workspace init [DIR] | add NAME PATH | add NAME --host HOST --path PATH [--trust] | list
    cockpit remote create REPO TEXT | show REPO ID | approve REPO ID | wait REPO ID
    cockpit mcp [install]

The remote verbs run the sender repo's ops (`--repo`, default: the repo around the current directory), through
its daemon when it is up, so the links land in its store either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from cockpit import cli
from cockpit.core.backend import Backend
from cockpit.core.delegation import DEFAULT_WAIT_CLASSIFIED_S, repo_status
from cockpit.core.errors import ConfigError, UsageError
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.core.workspace import Workspace

MCP_SERVER_NAME = "cockpit"


# -- workspace -----------------------------------------------------------------------------------------------

def _workspace_start(args: argparse.Namespace) -> Path | None:
    where = getattr(args, "workspace", None) or getattr(args, "repo", None)
    return Path(where).expanduser().resolve() if where else None


def cmd_workspace_init(args: argparse.Namespace) -> int:
    directory = Path(args.dir or ".").expanduser().resolve()
    workspace, created = Workspace.init(directory)
    repos = {k: str(v) for k, v in workspace.repos.items()}
    data = {"file": str(workspace.file), "created": created, "repos": repos}
    cli.out(args, data, lambda: cli.say(
        args, f"created {workspace.file}" if created else f"{workspace.file} already exists (kept)"))
    return 0


def _ask_init(path: Path) -> bool:
    if not sys.stdin.isatty():
        return False
    answer = input(f"{path} has no .cockpit/ yet; initialise it now? [Y/n] ").strip().lower()
    return answer in ("", "y", "yes")


def cmd_workspace_add(args: argparse.Namespace) -> int:
    workspace = Workspace.locate(_workspace_start(args))
    if args.host is not None:
        return _workspace_add_hosted(args, workspace)
    if args.trust:
        raise UsageError("--trust is for a repo on another host (with --host)")
    where = args.path or args.path_opt
    if not where:
        raise UsageError("give the repo's PATH: `cockpit workspace add NAME PATH`")
    path = Path(where).expanduser().resolve()
    workspace = workspace.add(args.name, path)
    paths = RepoPaths(path)
    initialised = paths.db.exists()
    did_init = False
    if not initialised:
        wants = args.init if args.init is not None else (not args.json and _ask_init(path))
        if wants:
            cli.init_repo(paths)
            initialised = did_init = True
    data: JSON = {"file": str(workspace.file), "name": args.name, "path": str(path),
                  "initialised": initialised, "init_done": did_init,
                  "repos": {k: str(v) for k, v in workspace.repos.items()}}
    if not initialised:
        data["hint"] = (f"{args.name} has no .cockpit/ yet: `cockpit init --repo {path}` (or `cockpit daemon "
                        f"start --repo {path}`) sets it up; until then peers cannot delegate to it")

    def human() -> None:
        cli.say(args, f"added {args.name} ({path}) to {workspace.file}")
        if did_init:
            cli.say(args, f"initialised {paths.cockpit}")
        elif not initialised:
            cli.say(args, str(data["hint"]))

    cli.out(args, data, human)
    return 0


def _workspace_add_hosted(args: argparse.Namespace, workspace: Workspace) -> int:
    """Add a repo on another host, once cockpit answers there and the path is a git repo."""
    from cockpit.core.remote.daemons import HostedRepo, local_version, remote_version
    from cockpit.core.remote.ssh import SshHost

    where = args.path_opt or args.path
    if not where:
        raise UsageError(f"give the repo's path on {args.host}: --path /srv/{args.name}")
    host = SshHost(args.host)
    # Checked before anything is written: a bad name or path fails here without a round trip.
    workspace.check_new_name(args.name)
    version = remote_version(host)
    hosted = HostedRepo(args.name, host, where)
    status = hosted.status()
    workspace = workspace.add_hosted(args.name, args.host, where, trust=args.trust)
    data: JSON = {"file": str(workspace.file), "name": args.name, "host": args.host, "path": where,
                  "remote_version": version, "local_version": local_version(), "trust": args.trust,
                  "daemon": "up" if status.get("running") else "down",
                  "repos": {k: str(v) for k, v in workspace.repos.items()},
                  "hosts": dict(workspace.hosts)}
    if version != local_version():
        data["warning"] = (f"{args.host} runs cockpit {version}, this machine {local_version()}; install the "
                           "same version on both if they disagree")

    def human() -> None:
        cli.say(args, f"added {args.name} ({args.host}:{where}, cockpit {version}) to {workspace.file}")
        if data.get("warning"):
            cli.say(args, f"[yellow]{data['warning']}[/yellow]")
        if not status.get("running"):
            cli.say(args, f"its daemon is not running there; the cockpit starts it (D), or "
                          f"`ssh {args.host} cockpit daemon start --repo {where}`")

    cli.out(args, data, human)
    return 0


def cmd_workspace_list(args: argparse.Namespace) -> int:
    workspace = Workspace.locate(_workspace_start(args))

    async def body() -> int:
        repos = [await repo_status(name, path, workspace.host_of(name))
                 for name, path in workspace.repos.items()]
        data = {"file": str(workspace.file), "repos": repos}

        def human() -> None:
            from rich.table import Table

            from cockpit.render import console

            if not repos:
                console.print(f"{workspace.file}: no repos yet (`cockpit workspace add NAME PATH`)")
                return
            table = Table(box=None, pad_edge=False, header_style="bold")
            for col in ("repo", "daemon", "tasks", "path"):
                table.add_column(col)
            for r in repos:
                daemon = (f"[green]up[/green] (pid {r['pid']})" if r["daemon"] == "up"
                          else f"[dim]{r['daemon']}[/dim]")
                if r.get("host") and r["daemon"] != "up":
                    counts = "[dim]unknown while its daemon is down[/dim]"
                elif not r["initialised"]:
                    counts = "[dim]not initialised[/dim]"
                else:
                    counts = ", ".join(f"{n} {s}" for s, n in sorted(r["counts"].items())) or "none"
                where = f"{r['host']}:{r['path']}" if r.get("host") else r["path"]
                if r["daemon"] == "unreachable":
                    daemon, counts = f"[red]⊘ {r['host']} unreachable[/red]", "[dim]unknown[/dim]"
                table.add_row(r["name"], daemon, counts, where)
            console.print(table)

        cli.out(args, data, human)
        return 0

    return cli.run_async(body())


# -- remote --------------------------------------------------------------------------------------------------

def _print_remote(args: argparse.Namespace, result: JSON, headline: str | None = None) -> None:
    def human() -> None:
        from cockpit.render import print_task

        if headline:
            cli.say(args, headline)
        print_task(result["task"])
        cli.say(args, f"[dim]{result['hint']}[/dim]")

    cli.out(args, result, human)


def cmd_remote_create(args: argparse.Namespace) -> int:
    text = cli.read_text_arg(args.text)

    async def body(b: Backend) -> int:
        payload: dict[str, Any] = {"repo": args.peer, "text": text, "force": args.force,
                                   "wait_classified_s": args.wait_classified}
        if args.task is not None:
            payload["source_task_id"] = args.task
        result = await b.call("create_remote_task", payload)
        _print_remote(args, result, str(result.get("message") or ""))
        return 0

    return cli.run_async(cli.with_backend(args, body))


def cmd_remote_show(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        _print_remote(args, await b.call("get_remote_task", {"repo": args.peer, "id": args.id}))
        return 0

    return cli.run_async(cli.with_backend(args, body))


def cmd_remote_approve(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        result = await b.call("approve_remote_task", {"repo": args.peer, "id": args.id})
        cli.out(args, result, lambda: cli.say(
            args, f"{args.peer}#{args.id} is {result['state']} (approved by {result.get('approved_by')})"
            + (f"; {result['message']}" if result.get("message") else "")))
        return 0

    return cli.run_async(cli.with_backend(args, body))


def cmd_remote_wait(args: argparse.Namespace) -> int:
    until = [s for group in args.until or [] for s in group]

    async def body(b: Backend) -> int:
        result = await b.call("wait_remote_task", {"repo": args.peer, "id": args.id, "until": until,
                                                   "timeout_s": args.timeout})
        if result.get("timed_out"):
            if args.json:
                cli.out(args, {"error": {"code": "timeout", "message": f"{result['status']} (timed out)"},
                               **result})
            else:
                print(f"cockpit: timed out: {result['status']}", file=sys.stderr)
            return 1
        cli.out(args, result, lambda: cli.say(args, result["status"]))
        return 0

    return cli.run_async(cli.with_backend(args, body))


# -- mcp -----------------------------------------------------------------------------------------------------

def _server_command(root: Path) -> JSON:
    """How Claude Code should start `cockpit mcp` for this repo."""
    script = Path(sys.executable).parent / "cockpit"
    if script.exists():
        return {"command": str(script), "args": ["mcp", "--repo", str(root)]}
    found = shutil.which("cockpit")
    if found:
        return {"command": found, "args": ["mcp", "--repo", str(root)]}
    return {"command": sys.executable, "args": ["-m", "cockpit", "mcp", "--repo", str(root)]}


def install_mcp_json(root: Path) -> JSON:
    """Add (or update) the cockpit server in `<root>/.mcp.json`, keeping every other server and key."""
    file = root / ".mcp.json"
    data: dict[str, Any] = {}
    if file.exists():
        try:
            loaded = json.loads(file.read_text() or "{}")
        except ValueError as exc:
            raise ConfigError(f"{file} is not valid JSON ({exc}); fix it first, nothing was changed") \
                from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file} must hold a JSON object; nothing was changed")
        data = loaded
    servers = data.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"{file}: mcpServers must be an object; nothing was changed")
    entry = {"type": "stdio", **_server_command(root), "env": {}}
    previous = servers.get(MCP_SERVER_NAME)
    if isinstance(previous, dict):
        entry = {**previous, **{k: v for k, v in entry.items() if k != "env"}}
        entry.setdefault("env", {})
    changed = previous != entry
    servers[MCP_SERVER_NAME] = entry
    if changed:
        tmp = file.with_name(f".mcp.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, file)
    return {"file": str(file), "server": MCP_SERVER_NAME, "entry": entry, "changed": changed,
            "updated": previous is not None and changed, "servers": sorted(servers)}


def cmd_mcp(args: argparse.Namespace) -> int:
    if args.action == "install":
        root = cli.repo_paths(args).root
        result = install_mcp_json(root)
        cli.out(args, result, lambda: cli.say(
            args, (f"added the {MCP_SERVER_NAME} MCP server to {result['file']}" if result["changed"]
                   else f"{result['file']} already has the {MCP_SERVER_NAME} MCP server")
            + "; Claude Code picks it up in this repo (approve it when asked)"))
        return 0
    from cockpit.mcp.server import serve

    start = Path(args.repo).expanduser().resolve() if args.repo else None
    asyncio.run(serve(start))
    return 0


# -- parser --------------------------------------------------------------------------------------------------

def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError("seconds must be 0 or more")
    return number


def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    ws = sub.add_parser("workspace", help="the set of repos that delegate to each other")
    wsub = ws.add_subparsers(dest="workspace_command", metavar="VERB", required=True,
                             parser_class=cli.ArgParser)
    p = wsub.add_parser("init", parents=[common], help="create cockpit-workspace.toml in DIR (default: here)")
    p.add_argument("dir", nargs="?")
    p.set_defaults(func=cmd_workspace_init)
    p = wsub.add_parser("add", parents=[common],
                        help="add the git repo at PATH as NAME (or at --path on another --host)")
    p.add_argument("name")
    p.add_argument("path", nargs="?")
    p.add_argument("--host", metavar="HOST",
                   help="the repo is on another machine: an ssh destination as ~/.ssh/config knows it")
    p.add_argument("--path", dest="path_opt", metavar="PATH", help="the repo's absolute path (on --host)")
    p.add_argument("--trust", action="store_true",
                   help="with --host: the person's credential may be presented to that host's daemon")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--init", dest="init", action="store_true", default=None,
                       help="also create its .cockpit/ when it has none")
    group.add_argument("--no-init", dest="init", action="store_false", help="never ask to initialise it")
    p.set_defaults(func=cmd_workspace_add)
    p = wsub.add_parser("list", parents=[common], help="each repo: path, daemon up or down, tasks by state")
    p.set_defaults(func=cmd_workspace_list)

    rm = sub.add_parser("remote", help="tasks in a peer repo of the workspace")
    rsub = rm.add_subparsers(dest="remote_command", metavar="VERB", required=True, parser_class=cli.ArgParser)
    p = rsub.add_parser("create", parents=[common], help="create a task in peer REPO (TEXT, or - for stdin)")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("text")
    p.add_argument("--wait-classified", type=_seconds, default=DEFAULT_WAIT_CLASSIFIED_S, metavar="S",
                   help="wait up to S seconds for the peer to classify it "
                        f"(default {DEFAULT_WAIT_CLASSIFIED_S:g})")
    p.add_argument("--task", type=cli.task_id, metavar="ID",
                   help="the task in this repo it is delegated from")
    p.add_argument("--force", action="store_true", help="create it even if the peer has a similar task")
    p.set_defaults(func=cmd_remote_create)
    p = rsub.add_parser("show", parents=[common], help="show task ID of peer REPO")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("id", type=cli.task_id)
    p.set_defaults(func=cmd_remote_show)
    p = rsub.add_parser("approve", parents=[common],
                        help="approve a peer's task, as far as its [task] remote_approval allows")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("id", type=cli.task_id)
    p.set_defaults(func=cmd_remote_approve)
    p = rsub.add_parser("wait", parents=[common], help="block until a peer's task finishes")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("id", type=cli.task_id)
    p.add_argument("--timeout", type=_seconds, metavar="S")
    p.add_argument("--until", action="append", type=cli.state_arg, nargs="+", metavar="STATE",
                   help="also stop at these states, e.g. awaiting_review (finished states always stop it)")
    p.set_defaults(func=cmd_remote_wait)

    p = sub.add_parser("mcp", parents=[common], help="serve the MCP tools over stdio, or `mcp install` them")
    p.add_argument("action", nargs="?", choices=["serve", "install"], default="serve",
                   help="install: add the server to the repo's .mcp.json for Claude Code")
    p.set_defaults(func=cmd_mcp)


__all__ = ["MCP_SERVER_NAME", "install_mcp_json", "register"]
