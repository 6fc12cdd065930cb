"""CLI verbs for workspaces, cross-repo delegation and the MCP server.

    cockpit workspace init [DIR] | add NAME PATH | add NAME --host HOST --path PATH [--trust] | list
    cockpit token accept --from ORIGIN   (a token on stdin: what `workspace add --trust` runs on the host)
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
import stat
import sys
import time
from pathlib import Path
from typing import Any

from cockpit.cli.args import ArgParser, read_text_arg, seconds_arg, state_arg, task_id
from cockpit.cli.output import out, say
from cockpit.cli.repo import init_repo
from cockpit.cli.running import repo_paths, run_async, with_backend
from cockpit.core import daemonfile, git
from cockpit.core.backend import Backend, backend_for
from cockpit.core.delegation.peers import repo_status
from cockpit.core.delegation.sender import DEFAULT_WAIT_CLASSIFIED_S
from cockpit.core.errors import CockpitError, ConfigError, DaemonUnavailable, RefusedError, UsageError
from cockpit.core.excludes import ensure_excluded
from cockpit.core.mcp_config import SERVER_NAME, shared_server_entry
from cockpit.core.models import JSON
from cockpit.core.paths import RepoPaths
from cockpit.core.workspace import Workspace

MCP_SERVER_NAME = SERVER_NAME
MCP_FILE = ".mcp.json"


# -- workspace -----------------------------------------------------------------------------------------------

def _workspace_start(args: argparse.Namespace) -> Path | None:
    where = getattr(args, "workspace", None) or getattr(args, "repo", None)
    return Path(where).expanduser().resolve() if where else None


def cmd_workspace_init(args: argparse.Namespace) -> int:
    directory = Path(args.dir or ".").expanduser().resolve()
    workspace, created = Workspace.init(directory)
    repos = {k: str(v) for k, v in workspace.repos.items()}
    data = {"file": str(workspace.file), "created": created, "repos": repos}
    out(args, data, lambda: say(
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
            init_repo(paths)
            initialised = did_init = True
    data: JSON = {"file": str(workspace.file), "name": args.name, "path": str(path),
                  "initialised": initialised, "init_done": did_init,
                  "repos": {k: str(v) for k, v in workspace.repos.items()}}
    if not initialised:
        data["hint"] = (f"{args.name} has no .cockpit/ yet: `cockpit init --repo {path}` (or `cockpit daemon "
                        f"start --repo {path}`) sets it up; until then peers cannot delegate to it")

    def human() -> None:
        say(args, f"added {args.name} ({path}) to {workspace.file}")
        if did_init:
            say(args, f"initialised {paths.cockpit}")
        elif not initialised:
            say(args, str(data["hint"]))

    out(args, data, human)
    return 0


def _workspace_add_hosted(args: argparse.Namespace, workspace: Workspace) -> int:
    """Add a repo on another host, once cockpit answers there and the path is a git repo."""
    from cockpit.core.remote.daemons import HostedRepo, local_version, remote_version, trust_host
    from cockpit.core.remote.ssh import SshHost

    where = args.path_opt or args.path
    if not where:
        raise UsageError(f"give the repo's path on {args.host}: --path /srv/{args.name}")
    host = SshHost(args.host)
    # Checked before anything is written: a bad name or path fails here without a round trip. The same entry
    # added again with --trust is how a person trusts a host added before.
    again = (args.trust and workspace.host_of(args.name) == args.host
             and str(workspace.repos.get(args.name)) == where)
    if not again:
        workspace.check_new_name(args.name)
    if sys.stdin.isatty() and not args.json:
        # A person at a terminal may have to unlock a key or type a password once: the shared master keeps it.
        host.ensure_master(batch=False)
    version = remote_version(host)
    hosted = HostedRepo(args.name, host, where)
    status = hosted.status()
    # The person's token goes to the host only now, when they asked for it; never without --trust.
    trusted = trust_host(host) if args.trust else None
    workspace = workspace.add_hosted(args.name, args.host, where, trust=args.trust, replace=again)
    data: JSON = {"file": str(workspace.file), "name": args.name, "host": args.host, "path": where,
                  "remote_version": version, "local_version": local_version(), "trust": args.trust,
                  "daemon": "up" if status.get("running") else "down",
                  "repos": {k: str(v) for k, v in workspace.repos.items()},
                  "hosts": dict(workspace.hosts)}
    if trusted is not None:
        data["trusted_token_file"] = trusted.get("file")
    if version != local_version():
        data["warning"] = (f"{args.host} runs cockpit {version}, this machine {local_version()}; install the "
                           "same version on both if they disagree")

    def human() -> None:
        say(args, f"added {args.name} ({args.host}:{where}, cockpit {version}) to {workspace.file}")
        if data.get("warning"):
            from cockpit.render import esc

            say(args, f"[yellow]{esc(data['warning'])}[/yellow]", markup=True)
        if trusted is not None:
            say(args, f"{args.host} accepts you as the person now (your token is in "
                          f"{trusted.get('file')} there; remove that file to take it back)")
        else:
            say(args, f"this cockpit is a peer on {args.host}: approve its large tasks there, or add it "
                          "again with --trust")
        if not status.get("running"):
            say(args, f"its daemon is not running there; the cockpit starts it (D), or "
                          f"`ssh {args.host} cockpit daemon start --repo {where}`")

    out(args, data, human)
    return 0


def cmd_token_accept(args: argparse.Namespace) -> int:
    """Accept the person token on stdin as the person's here (run over ssh by `workspace add --trust`)."""
    from cockpit.core import principals

    if sys.stdin.isatty():
        raise UsageError("give the token on stdin (`workspace add --host THIS --trust` on the other machine "
                         "does it for you)")
    file, added = principals.accept_token(sys.stdin.read(4096), args.origin)
    data: JSON = {"file": str(file), "added": added, "from": args.origin}
    out(args, data, lambda: say(
        args, f"accepted the person token of {args.origin} ({file})" if added
        else f"the person token of {args.origin} was accepted already ({file})"))
    return 0


def cmd_workspace_list(args: argparse.Namespace) -> int:
    workspace = Workspace.locate(_workspace_start(args))

    async def body() -> int:
        repos = [await repo_status(name, path, workspace.host_of(name))
                 for name, path in workspace.repos.items()]
        data = {"file": str(workspace.file), "repos": repos}

        def human() -> None:
            from rich.table import Table

            from cockpit.render import console, esc, plain

            if not repos:
                console.print(f"{esc(workspace.file)}: no repos yet (`cockpit workspace add NAME PATH`)")
                return
            table = Table(box=None, pad_edge=False, header_style="bold")
            for col in ("repo", "daemon", "tasks", "path"):
                table.add_column(col)
            for r in repos:
                daemon = (f"[green]up[/green] (pid {r['pid']})" if r["daemon"] == "up"
                          else f"[dim]{esc(r['daemon'])}[/dim]")
                if r.get("host") and r["daemon"] != "up":
                    counts = "[dim]unknown while its daemon is down[/dim]"
                elif not r["initialised"]:
                    counts = "[dim]not initialised[/dim]"
                else:
                    counts = ", ".join(f"{n} {s}" for s, n in sorted(r["counts"].items())) or "none"
                where = f"{r['host']}:{r['path']}" if r.get("host") else r["path"]
                if r["daemon"] == "unreachable":
                    daemon, counts = f"[red]⊘ {esc(r['host'])} unreachable[/red]", "[dim]unknown[/dim]"
                table.add_row(plain(r["name"]), daemon, counts, plain(where))
            console.print(table)

        out(args, data, human)
        return 0

    return run_async(body())


# -- remote --------------------------------------------------------------------------------------------------

def _print_remote(args: argparse.Namespace, result: JSON, headline: str | None = None) -> None:
    def human() -> None:
        from cockpit.render import print_task

        if headline:
            say(args, headline)
        print_task(result["task"])
        from cockpit.render import esc

        say(args, f"[dim]{esc(result['hint'])}[/dim]", markup=True)

    out(args, result, human)


def cmd_remote_create(args: argparse.Namespace) -> int:
    text = read_text_arg(args.text)

    async def body(b: Backend) -> int:
        payload: dict[str, Any] = {"repo": args.peer, "text": text, "force": args.force,
                                   "wait_classified_s": args.wait_classified}
        if args.task is not None:
            payload["source_task_id"] = args.task
        result = await b.call("create_remote_task", payload)
        _print_remote(args, result, str(result.get("message") or ""))
        return 0

    return run_async(with_backend(args, body))


def cmd_remote_show(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        _print_remote(args, await b.call("get_remote_task", {"repo": args.peer, "id": args.id}))
        return 0

    return run_async(with_backend(args, body))


def cmd_remote_approve(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        result = await b.call("approve_remote_task", {"repo": args.peer, "id": args.id})
        out(args, result, lambda: say(
            args, f"{args.peer}#{args.id} is {result['state']} (approved by {result.get('approved_by')})"
            + (f"; {result['message']}" if result.get("message") else "")))
        return 0

    return run_async(with_backend(args, body))


def cmd_remote_wait(args: argparse.Namespace) -> int:
    until = [s for group in args.until or [] for s in group]

    async def body() -> int:
        paths = repo_paths(args)
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                async with backend_for(paths) as b:
                    result = await b.call("wait_remote_task", {"repo": args.peer, "id": args.id,
                                                               "until": until, "timeout_s": remaining})
                break
            except CockpitError as exc:
                # This repo's daemon stopped during the wait (the connection dropped, or the call failed
                # inside it as it shut down): wait on, from its store.
                if not isinstance(exc, DaemonUnavailable) and (
                        exc.code != "internal" or daemonfile.read_live(paths.daemon_json)):
                    raise
        if result.get("timed_out"):
            if args.json:
                out(args, {"error": {"code": "timeout", "message": f"{result['status']} (timed out)"},
                               **result})
            else:
                print(f"cockpit: timed out: {result['status']}", file=sys.stderr)
            return 1
        out(args, result, lambda: say(args, result["status"]))
        return 0

    return run_async(body())


# -- mcp -----------------------------------------------------------------------------------------------------

def _local_entry() -> JSON:
    """The entry for a `.mcp.json` kept out of git: `cockpit` from PATH when it is there, else this install's
    own command (the file stays on this machine, so its path may too)."""
    if shutil.which("cockpit"):
        return shared_server_entry().to_json()
    script = Path(sys.executable).parent / "cockpit"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "cockpit"]
    return {"type": "stdio", "command": command[0], "args": [*command[1:], "mcp"], "env": {}}


def _tracked(root: Path, name: str) -> bool:
    return git.run_git(root, "ls-files", "--error-unmatch", "--", name, check=False).ok


def _uncommitted(root: Path, name: str) -> bool:
    return bool(git.run_git(root, "status", "--porcelain=v1", "--", name).stdout.strip())


def _write_keeping_mode(file: Path, text: str) -> None:
    """Replace `file` atomically, with the mode it had (a new file gets the umask's)."""
    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    try:
        if file.exists():
            os.chmod(tmp, stat.S_IMODE(file.stat().st_mode))
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


def install_mcp_json(root: Path, *, shared: bool = False) -> JSON:
    """Add (or update) the cockpit server in `<root>/.mcp.json`, keeping every other server and key.

    Nothing is left that blocks a merge (an untracked or modified file in the target's checkout): by default
    the file is this machine's and is listed in `.git/info/exclude`; with `shared`, it holds only the portable
    entry (`cockpit mcp`, no absolute paths) and is committed, that file alone.
    """
    file = root / MCP_FILE
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
    tracked = _tracked(root, MCP_FILE)
    if tracked and not shared:
        raise RefusedError(
            f"{file} is tracked in git: a local edit would leave an uncommitted change that blocks merges; "
            "run `cockpit mcp install --shared` to add the portable entry and commit it", code="tracked")
    if shared and _uncommitted(root, MCP_FILE) and tracked:
        raise RefusedError(f"{file} has uncommitted changes; commit or stash them first, nothing was changed",
                           code="dirty")
    entry = shared_server_entry().to_json() if shared else _local_entry()
    previous = servers.get(MCP_SERVER_NAME)
    if isinstance(previous, dict):
        # Keep what the person added (env, extra keys); the command is ours.
        entry = {**previous, **{k: v for k, v in entry.items() if k != "env"}}
        entry.setdefault("env", {})
    changed = previous != entry
    servers[MCP_SERVER_NAME] = entry
    if changed:
        _write_keeping_mode(file, json.dumps(data, indent=2) + "\n")
    excluded = False
    committed = None
    if shared:
        if _uncommitted(root, MCP_FILE):
            git.run_git(root, "add", "--", MCP_FILE)
            git.run_git_with_identity(root, "commit", "--quiet", "--no-verify", "-m",
                                      f"Add the {MCP_SERVER_NAME} MCP server to {MCP_FILE}", "--", MCP_FILE)
            committed = git.run_git(root, "rev-parse", "HEAD").stdout.strip()
    else:
        excluded = ensure_excluded(root, f"/{MCP_FILE}")
    return {"file": str(file), "server": MCP_SERVER_NAME, "entry": entry, "changed": changed,
            "updated": previous is not None and changed, "servers": sorted(servers), "shared": shared,
            "excluded_added": excluded, "committed": committed,
            "on_path": shutil.which(str(entry.get("command", ""))) is not None}


def cmd_mcp(args: argparse.Namespace) -> int:
    if args.action == "install":
        root = repo_paths(args).root
        result = install_mcp_json(root, shared=bool(args.shared))
        where = ("committed it" if result["committed"] else "it is shared: commit it") if result["shared"] \
            else "it stays on this machine (listed in .git/info/exclude)"
        line = (f"added the {MCP_SERVER_NAME} MCP server to {result['file']}" if result["changed"]
                else f"{result['file']} already has the {MCP_SERVER_NAME} MCP server")
        line += f"; {where}. Claude Code picks it up in this repo (approve it when asked)"
        if not result["on_path"]:
            line += f"; note: `{result['entry']['command']}` is not on PATH here"
        out(args, result, lambda: say(args, line))
        return 0
    if args.shared:
        raise UsageError("--shared goes with `cockpit mcp install`")
    from cockpit.mcp.server import serve

    start = Path(args.repo).expanduser() if args.repo else None
    asyncio.run(serve(start))
    return 0


# -- parser --------------------------------------------------------------------------------------------------

def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    ws = sub.add_parser("workspace", help="the set of repos that delegate to each other")
    wsub = ws.add_subparsers(dest="workspace_command", metavar="VERB", required=True,
                             parser_class=ArgParser)
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
                   help="with --host: install your person token on that host, so this cockpit acts for you "
                        "there (approve, answer, merge); without it the cockpit is a peer there")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--init", dest="init", action="store_true", default=None,
                       help="also create its .cockpit/ when it has none")
    group.add_argument("--no-init", dest="init", action="store_false", help="never ask to initialise it")
    p.set_defaults(func=cmd_workspace_add)
    p = wsub.add_parser("list", parents=[common], help="each repo: path, daemon up or down, tasks by state")
    p.set_defaults(func=cmd_workspace_list)

    tk = sub.add_parser("token", help="the person tokens this machine accepts")
    tksub = tk.add_subparsers(dest="token_command", metavar="VERB", required=True, parser_class=ArgParser)
    p = tksub.add_parser("accept", parents=[common],
                         help="accept the token on stdin as the person's (what `workspace add --trust` runs)")
    p.add_argument("--from", dest="origin", required=True, metavar="ORIGIN",
                   help="where the token comes from, e.g. me@laptop (kept beside it)")
    p.set_defaults(func=cmd_token_accept)

    rm = sub.add_parser("remote", help="tasks in a peer repo of the workspace")
    rsub = rm.add_subparsers(dest="remote_command", metavar="VERB", required=True, parser_class=ArgParser)
    p = rsub.add_parser("create", parents=[common], help="create a task in peer REPO (TEXT, or - for stdin)")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("text")
    p.add_argument("--wait-classified", type=seconds_arg, default=DEFAULT_WAIT_CLASSIFIED_S, metavar="S",
                   help="wait up to S seconds for the peer to classify it "
                        f"(default {DEFAULT_WAIT_CLASSIFIED_S:g})")
    p.add_argument("--task", type=task_id, metavar="ID",
                   help="the task in this repo it is delegated from")
    p.add_argument("--force", action="store_true", help="create it even if the peer has a similar task")
    p.set_defaults(func=cmd_remote_create)
    p = rsub.add_parser("show", parents=[common], help="show task ID of peer REPO")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=cmd_remote_show)
    p = rsub.add_parser("approve", parents=[common],
                        help="approve a peer's task, as far as its [task] remote_approval allows")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=cmd_remote_approve)
    p = rsub.add_parser("wait", parents=[common], help="block until a peer's task finishes")
    p.add_argument("peer", metavar="REPO")
    p.add_argument("id", type=task_id)
    p.add_argument("--timeout", type=seconds_arg, metavar="S")
    p.add_argument("--until", action="append", type=state_arg, nargs="+", metavar="STATE",
                   help="also stop at these states, e.g. awaiting_review (finished states always stop it)")
    p.set_defaults(func=cmd_remote_wait)

    p = sub.add_parser("mcp", parents=[common], help="serve the MCP tools over stdio, or `mcp install` them")
    p.add_argument("action", nargs="?", choices=["serve", "install"], default="serve",
                   help="install: add the server to the repo's .mcp.json for Claude Code")
    p.add_argument("--shared", action="store_true",
                   help="install: write the portable entry (`cockpit mcp`) and commit .mcp.json, for "
                        "everyone who clones the repo (default: a local file, kept out of git)")
    p.set_defaults(func=cmd_mcp)


__all__ = ["MCP_SERVER_NAME", "install_mcp_json", "register"]
