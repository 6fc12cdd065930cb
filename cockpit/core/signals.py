"""A file-based signal channel from agents (and their pane wrappers) to the daemon.

It works when the daemon's socket is unreachable (the daemon restarting, a peer's daemon down): a signal is
one small JSON file in `.cockpit/signals/`, which the daemon watches (`core.filewatch`) and consumes in order.

File names are `<time_ns>-<pid>-task<id>-<kind>.json`: zero-padded so that a plain sort is the order they were
written in, unique per process (the time is forced to increase within a process), and self-describing in `ls`.
A writer creates `.<name>.tmp` first and renames it into place, so a reader never sees half a file; readers
ignore dot files and `*.tmp`.

The daemon watches the directory with `filewatch.awatch(signals_dir, watch_filter=watch_filter)` and calls
`read_signals` on each wake-up (and once at start, for signals written while it was down).

From a shell (a pane wrapper reporting that the agent exited, for instance)::

    python -m cockpit.core.signals --dir .cockpit/signals --task 7 --kind exited --data '{"code": 0}'
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core.errors import UsageError

KINDS: tuple[str, ...] = ("needs_input", "resolved", "progress", "exited", "done", "turn_ended")

_NAME = re.compile(r"^(?P<ns>\d{20})-(?P<pid>\d+)-task(?P<task>\d+)-(?P<kind>[a-z_]+)\.json$")
# A temporary file older than this was left by a writer that died mid-write: a consuming reader removes it.
STALE_TMP_S = 60.0

_clock_lock = threading.Lock()
_last_ns = 0


@dataclass(frozen=True)
class Signal:
    task_id: int
    kind: str
    data: dict[str, Any]
    path: Path
    ts: float


def _next_ns() -> int:
    """time.time_ns(), forced to increase strictly within this process so names stay unique and ordered."""
    global _last_ns
    with _clock_lock:
        now = max(time.time_ns(), _last_ns + 1)
        _last_ns = now
        return now


def write_signal(signals_dir: Path, task_id: int, kind: str, data: dict[str, Any] | None = None) -> Path:
    """Write one signal atomically (temporary file, then rename) and return its final path."""
    if kind not in KINDS:
        raise UsageError(f"unknown signal kind {kind!r}: expected one of {', '.join(KINDS)}")
    if isinstance(task_id, bool) or not isinstance(task_id, int) or task_id < 0:
        raise UsageError(f"signal task id must be a non-negative integer, not {task_id!r}")
    payload = dict(data or {})
    ts = time.time()
    body = json.dumps({"task_id": task_id, "kind": kind, "ts": ts, "data": payload}, sort_keys=True)
    signals_dir.mkdir(parents=True, exist_ok=True)
    name = f"{_next_ns():020d}-{os.getpid()}-task{task_id}-{kind}.json"
    final = signals_dir / name
    tmp = signals_dir / f".{name}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def _parse(path: Path, match: re.Match[str]) -> Signal | None:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    task_id, kind, data, ts = raw.get("task_id"), raw.get("kind"), raw.get("data"), raw.get("ts")
    if (
        not isinstance(task_id, int)
        or isinstance(task_id, bool)
        or task_id != int(match["task"])
        or kind != match["kind"]
        or kind not in KINDS
        or not isinstance(data, dict)
        or not isinstance(ts, (int, float))
        or isinstance(ts, bool)
    ):
        return None
    return Signal(task_id=task_id, kind=kind, data=data, path=path, ts=float(ts))


def read_signals(signals_dir: Path, *, consume: bool = True) -> list[Signal]:
    """Every complete signal in `signals_dir`, oldest first.

    With `consume`, returned signals are deleted, garbage files (names or contents that are not a signal) are
    deleted too, and so are temporary files abandoned by a dead writer. A signal another consumer deleted
    first is not returned, so two readers never both act on one signal. Nothing is logged.
    """
    try:
        entries = list(os.scandir(signals_dir))
    except FileNotFoundError:
        return []
    found: list[tuple[int, int, str, Path, re.Match[str]]] = []
    now = time.time()
    for entry in entries:
        name = entry.name
        path = Path(entry.path)
        if name.startswith(".") or name.endswith(".tmp"):
            if consume and name.endswith(".tmp"):
                try:
                    if now - entry.stat().st_mtime > STALE_TMP_S:
                        path.unlink(missing_ok=True)
                except OSError:
                    pass
            continue
        match = _NAME.match(name)
        if match is None or not entry.is_file(follow_symlinks=False):
            if consume and match is None and entry.is_file(follow_symlinks=False):
                path.unlink(missing_ok=True)
            continue
        found.append((int(match["ns"]), int(match["pid"]), name, path, match))
    found.sort(key=lambda item: (item[0], item[1], item[2]))
    signals: list[Signal] = []
    for _ns, _pid, _name, path, match in found:
        signal = _parse(path, match)
        if not consume:
            if signal is not None:
                signals.append(signal)
            continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue  # another reader consumed it
        except OSError:
            pass
        if signal is not None:
            signals.append(signal)
    return signals


def is_signal_path(path: str | Path) -> bool:
    """True for a complete signal file's path (not a temporary file, not garbage)."""
    return _NAME.match(Path(path).name) is not None


def watch_filter(change: Any, path: str) -> bool:
    """A `watch_filter` for `filewatch.awatch(signals_dir, ...)`: signal files that appeared or changed.

    Temporary files and deletions (consuming a signal deletes it) do not wake the watcher.
    """
    return getattr(change, "name", "") != "deleted" and is_signal_path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cockpit.core.signals", description="Write one signal file."
    )
    parser.add_argument("--dir", required=True, type=Path, help="the signals directory (.cockpit/signals)")
    parser.add_argument("--task", required=True, type=int, help="the task id")
    parser.add_argument("--kind", required=True, choices=KINDS)
    parser.add_argument("--data", default="{}", help="a JSON object with the signal's data")
    args = parser.parse_args(argv)
    try:
        data = json.loads(args.data)
    except ValueError as exc:
        print(f"--data is not valid JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(data, dict):
        print("--data must be a JSON object", file=sys.stderr)
        return 2
    try:
        print(write_signal(args.dir, args.task, args.kind, data))
    except UsageError as exc:
        print(exc.message, file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot write signal in {args.dir}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
