"""`cockpit [--workspace PATH]` and `cockpit ui [PATH]`: open the Textual cockpit.

Textual is imported only when the cockpit opens, so the other verbs stay quick to start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

# The inbox's words, shortened for a status line.
SHORT_KINDS = {"needs input": "input", "pending approval": "approve", "needs answers": "answers",
               "awaiting review": "review", "failed": "failed"}
TMUX_NAMED = 2
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765  # `cockpit serve`


def open_cockpit(args: argparse.Namespace) -> int:
    """Open the cockpit on `args.workspace` (or `args.path`), else on the workspace or repo around the cwd."""
    from cockpit.tui.app import make_app

    where = getattr(args, "path", None) or getattr(args, "workspace", None)
    app = make_app(Path(where) if where else Path.cwd())
    result = app.run()
    return int(result or 0)


def status_repos(where: Path) -> dict[str, Path]:
    """The repos of the workspace around `where`, else the repo around it (no Textual: this runs often)."""
    from cockpit.core.errors import NotARepoError, UsageError
    from cockpit.core.paths import find_repo_root
    from cockpit.core.workspace import Workspace

    where = where.expanduser().resolve()
    ws = Workspace.find(where if where.is_dir() else where.parent)
    if ws is not None and ws.repos:
        return dict(ws.repos)
    try:
        root = find_repo_root(where if where.is_dir() else where.parent)
    except NotARepoError:
        raise UsageError(
            f"{where} is neither in a workspace nor in a git repository; pass a workspace or repo PATH"
        ) from None
    return {root.name: root}


async def waiting_tasks(repos: dict[str, Path], *, for_tmux: bool = False) -> list[dict[str, Any]]:
    """What needs a person in each repo's store, the longest-waiting first (read-only, no daemon needed)."""
    from cockpit.core.config import load_settings
    from cockpit.core.errors import CockpitError
    from cockpit.core.paths import RepoPaths
    from cockpit.core.states import State
    from cockpit.core.store import Store
    from cockpit.tui.repo_model import attention_kind

    states = [State.PENDING, State.PENDING_CLARIFICATION, State.AWAITING_REVIEW, State.FAILED,
              State.EXECUTING]
    found: list[dict[str, Any]] = []
    for name, root in repos.items():
        paths = RepoPaths(root)
        if not paths.db.exists():
            continue
        if for_tmux:
            try:
                if not load_settings(paths.config)["notify.tmux"]:
                    continue
            except CockpitError:
                pass
        store = await Store.open(paths.db, create=False)
        try:
            tasks = await store.list_tasks(states)
        finally:
            await store.close()
        for task in tasks:
            why = attention_kind(task)
            if why is not None:
                found.append({"repo": name, "id": task.id, "title": task.title, "state": task.state.value,
                              "why": why, "since": task.updated_at})
    found.sort(key=lambda t: (t["since"], t["repo"], t["id"]))
    return found


def tmux_segment(waiting: list[dict[str, Any]]) -> str:
    """`⚑ 3 backend#2 review · frontend#1 input +1`, or nothing when nothing waits."""
    if not waiting:
        return ""
    named = " · ".join(f"{t['repo']}#{t['id']} {SHORT_KINDS.get(t['why'], t['why'])}"
                       for t in waiting[:TMUX_NAMED])
    more = f" +{len(waiting) - TMUX_NAMED}" if len(waiting) > TMUX_NAMED else ""
    return f"⚑ {len(waiting)} {named}{more}"


def cmd_status(args: argparse.Namespace) -> int:
    where = getattr(args, "path", None) or getattr(args, "repo", None) or getattr(args, "workspace", None)
    repos = status_repos(Path(where) if where else Path.cwd())
    waiting = asyncio.run(waiting_tasks(repos, for_tmux=args.tmux))
    if args.tmux:
        sys.stdout.write(tmux_segment(waiting) + "\n")
    elif args.json:
        sys.stdout.write(json.dumps({"count": len(waiting), "waiting": waiting}) + "\n")
    elif not waiting:
        print("nothing needs you")
    else:
        print(f"{len(waiting)} need{'s' if len(waiting) == 1 else ''} you:")
        for t in waiting:
            print(f"  {t['repo']}#{t['id']} {t['why']}: {t['title']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the cockpit to a browser (textual-serve), on loopback unless --host says otherwise."""
    import ipaddress

    from cockpit.core.errors import UsageError

    where = Path(args.path or getattr(args, "workspace", None) or Path.cwd()).expanduser().resolve()
    if not where.exists():
        raise UsageError(f"{where} does not exist; pass a workspace directory or a git repository")
    status_repos(where)  # the same check the cockpit makes, before a browser sees a broken app
    if not 0 < args.port < 65536:
        raise UsageError(f"--port {args.port} is not a port; use 1-65535")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"cockpit: serving on {args.host}, beyond this machine: anyone who has the URL (its token) "
              "can drive the cockpit", file=sys.stderr)
    from cockpit.serve import serve

    serve(where, host=args.host, port=args.port)
    return 0


def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", help="the cockpit in a browser (a token in the URL; loopback by default)")
    p.add_argument("path", nargs="?", metavar="PATH", help="a workspace or a repo; default: around the cwd")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("status", parents=[common],
                       help="what needs you across the workspace (--tmux: a segment for tmux's status-right)")
    p.add_argument("--tmux", action="store_true", help="one short line for tmux's status-right")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="a workspace (its directory or its file) or a repo; default: around the cwd")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("ui", help="open the cockpit (the same as `cockpit` alone)")
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="a workspace (its directory or cockpit-workspace.toml) or a repo; default: around the cwd",
    )
    p.set_defaults(func=open_cockpit)
