"""`python -m cockpit.daemon --repo PATH [--ready-fd N]`: the daemon alone, without the command line's verbs.

`cockpit daemon start` runs this rather than `cockpit daemon run`, so a daemon that runs all day loads only
what it serves with (building the whole CLI parser imports every verb's module and what they import).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from cockpit.core.errors import CockpitError
from cockpit.core.paths import RepoPaths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cockpit.daemon", description=__doc__)
    parser.add_argument("--repo", required=True, type=Path, help="the repo root (initialised)")
    parser.add_argument("--ready-fd", type=int, default=None, help="write 'ready' here once serving")
    args = parser.parse_args(argv)
    from cockpit.daemon.server import run_until_stopped

    try:
        return run_until_stopped(RepoPaths(args.repo.resolve()), args.ready_fd)
    except CockpitError as exc:
        print(f"cockpit: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
