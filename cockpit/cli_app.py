"""`cockpit [--workspace PATH]` and `cockpit ui [PATH]`: open the Textual cockpit.

Textual is imported only when the cockpit opens, so the other verbs stay quick to start.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def open_cockpit(args: argparse.Namespace) -> int:
    """Open the cockpit on `args.workspace` (or `args.path`), else on the workspace or repo around the cwd."""
    from cockpit.tui.app import make_app

    where = getattr(args, "path", None) or getattr(args, "workspace", None)
    app = make_app(Path(where) if where else Path.cwd())
    result = app.run()
    return int(result or 0)


def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("ui", help="open the cockpit (the same as `cockpit` alone)")
    p.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="a workspace (its directory or cockpit-workspace.toml) or a repo; default: around the cwd",
    )
    p.set_defaults(func=open_cockpit)
