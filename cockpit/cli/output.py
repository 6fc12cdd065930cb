"""What a verb prints: one JSON object under `--json`, else the human form."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from cockpit.core.models import JSON
from cockpit.core.printable import printable


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
