"""`python -m cockpit.daemon --repo PATH [--ready-fd N]`: the daemon alone, without the command line's verbs.

`cockpit daemon start` runs this rather than `cockpit daemon run`, so a daemon that runs all day loads only
what it serves with (building the whole CLI parser imports every verb's module and what they import).
"""

from __future__ import annotations

import sys

# The daemon speaks over a Unix socket only, never TLS; asyncio imports `ssl` all the same, which maps
# OpenSSL (about 4 MB of RSS for a process that runs all day). Marked absent, asyncio runs without it.
sys.modules.setdefault("ssl", None)  # type: ignore[arg-type]

import argparse  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from cockpit.core.errors import CockpitError  # noqa: E402
from cockpit.core.paths import RepoPaths  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cockpit.daemon", description=__doc__)
    parser.add_argument("--repo", required=True, type=Path, help="the repo root (initialised)")
    parser.add_argument("--ready-fd", type=int, default=None, help="write 'ready' here once serving")
    args = parser.parse_args(argv)
    from cockpit.daemon.assembly import run_until_stopped

    try:
        return run_until_stopped(RepoPaths(args.repo.resolve()), args.ready_fd)
    except CockpitError as exc:
        print(f"cockpit: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
