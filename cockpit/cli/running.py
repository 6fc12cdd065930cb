"""How a verb reaches its repo: the repo it names, the daemon or the store, and the event loop."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from cockpit.core.backend import Backend, backend_for
from cockpit.core.paths import RepoPaths

T = TypeVar("T")


def repo_paths(args: argparse.Namespace) -> RepoPaths:
    return RepoPaths.find(Path(args.repo) if getattr(args, "repo", None) else None)


def run_async(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def with_backend(args: argparse.Namespace, body: Callable[[Backend], Awaitable[int]]) -> int:
    """Run `body` against the repo as the person (the command line is the person's own terminal)."""
    paths = repo_paths(args)
    async with backend_for(paths, person=True) as backend:
        return await body(backend)
