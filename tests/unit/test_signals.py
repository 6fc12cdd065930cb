"""The file-based signal channel: atomic writes, ordered reads, garbage ignored and cleaned."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cockpit.core.errors import UsageError
from cockpit.core.signals import KINDS, STALE_TMP_S, is_signal_path, read_signals, watch_filter, write_signal


def test_round_trip_in_order_and_consumed(tmp_path: Path) -> None:
    signals_dir = tmp_path / "signals"  # created by the first write
    written = [
        write_signal(signals_dir, 3, "progress", {"step": 1, "total": 2, "text": "write a.py"}),
        write_signal(signals_dir, 3, "needs_input", {"question": "go on? (y/n)"}),
        write_signal(signals_dir, 4, "resolved"),
        write_signal(signals_dir, 3, "exited", {"code": 0}),
    ]
    assert all(p.parent == signals_dir and p.exists() for p in written)
    assert written[0].name.endswith("-task3-progress.json")
    assert f"-{os.getpid()}-" in written[0].name

    peeked = read_signals(signals_dir, consume=False)
    assert [(s.task_id, s.kind) for s in peeked] == [
        (3, "progress"),
        (3, "needs_input"),
        (4, "resolved"),
        (3, "exited"),
    ]
    assert all(p.exists() for p in written), "consume=False must leave the files"

    got = read_signals(signals_dir)
    assert [s.kind for s in got] == ["progress", "needs_input", "resolved", "exited"]
    assert got[0].data == {"step": 1, "total": 2, "text": "write a.py"}
    assert got[2].data == {}
    assert got[0].path == written[0]
    assert abs(got[0].ts - time.time()) < 60
    assert list(signals_dir.iterdir()) == [], "consumed signals are deleted"
    assert read_signals(signals_dir) == []


def test_names_are_unique_and_sort_in_write_order(tmp_path: Path) -> None:
    paths = [write_signal(tmp_path, 1, "progress", {"i": i}) for i in range(200)]
    assert len({p.name for p in paths}) == 200
    assert sorted(p.name for p in paths) == [p.name for p in paths]
    assert [s.data["i"] for s in read_signals(tmp_path)] == list(range(200))


def test_no_temporary_file_is_left_behind(tmp_path: Path) -> None:
    write_signal(tmp_path, 1, "exited", {"code": 0})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_garbage_is_ignored_and_deleted_when_consuming(tmp_path: Path) -> None:
    good = write_signal(tmp_path, 9, "progress", {"step": 1})
    (tmp_path / "notes.txt").write_text("hello")
    bad_json = tmp_path / "00000000000000000001-1-task9-progress.json"
    bad_json.write_text("{not json")
    mismatch = tmp_path / "00000000000000000002-1-task9-exited.json"
    mismatch.write_text(json.dumps({"task_id": 8, "kind": "exited", "ts": 1.0, "data": {}}))
    unknown_kind = tmp_path / "00000000000000000003-1-task9-explode.json"
    unknown_kind.write_text(json.dumps({"task_id": 9, "kind": "explode", "ts": 1.0, "data": {}}))
    not_object = tmp_path / "00000000000000000004-1-task9-resolved.json"
    not_object.write_text("[1, 2]")
    in_flight = tmp_path / ".00000000000000000005-1-task9-resolved.json.tmp"
    in_flight.write_text('{"partial": ')

    peeked = read_signals(tmp_path, consume=False)
    assert [s.path for s in peeked] == [good]
    assert bad_json.exists() and (tmp_path / "notes.txt").exists(), "peeking deletes nothing"

    got = read_signals(tmp_path)
    assert [(s.task_id, s.kind, s.data) for s in got] == [(9, "progress", {"step": 1})]
    remaining = sorted(p.name for p in tmp_path.iterdir())
    assert remaining == [in_flight.name], "garbage deleted; a fresh temporary file is a writer at work"


def test_stale_temporary_files_are_cleaned(tmp_path: Path) -> None:
    stale = tmp_path / ".00000000000000000001-1-task1-progress.json.tmp"
    stale.write_text("{")
    old = time.time() - STALE_TMP_S - 10
    os.utime(stale, (old, old))
    assert read_signals(tmp_path) == []
    assert not stale.exists()


def test_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    assert read_signals(tmp_path / "nope") == []


@pytest.mark.parametrize("kind", ["", "finished", "PROGRESS"])
def test_unknown_kind_is_refused(tmp_path: Path, kind: str) -> None:
    with pytest.raises(UsageError, match="unknown signal kind"):
        write_signal(tmp_path, 1, kind)
    assert list(tmp_path.iterdir()) == []


def test_bad_task_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="task id"):
        write_signal(tmp_path, -1, "progress")


def test_command_line_writer_from_other_processes(tmp_path: Path) -> None:
    signals_dir = tmp_path / "sig"
    procs = [
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cockpit.core.signals",
                "--dir",
                str(signals_dir),
                "--task",
                str(task),
                "--kind",
                "exited",
                "--data",
                json.dumps({"code": task}),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        for task in (1, 2, 3)
    ]
    assert [p.returncode for p in procs] == [0, 0, 0], [p.stderr for p in procs]
    got = read_signals(signals_dir)
    assert [(s.task_id, s.kind, s.data["code"]) for s in got] == [
        (1, "exited", 1),
        (2, "exited", 2),
        (3, "exited", 3),
    ]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "cockpit.core.signals",
            "--dir",
            str(signals_dir),
            "--task",
            "1",
            "--kind",
            "progress",
            "--data",
            "[1]",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "JSON object" in bad.stderr
    assert read_signals(signals_dir) == []


def test_kinds_are_the_documented_ones() -> None:
    assert KINDS == ("needs_input", "resolved", "progress", "exited", "done", "turn_ended")


def test_watch_filter_accepts_only_complete_signal_files(tmp_path: Path) -> None:
    from watchfiles import Change

    final = write_signal(tmp_path, 1, "progress")
    assert is_signal_path(final) and watch_filter(Change.added, str(final))
    assert not watch_filter(Change.deleted, str(final))
    assert not watch_filter(Change.added, str(tmp_path / f".{final.name}.tmp"))
    assert not watch_filter(Change.added, str(tmp_path / "notes.txt"))


async def test_a_watcher_is_woken_by_a_signal(tmp_path: Path) -> None:
    from watchfiles import awatch

    signals_dir = tmp_path / "signals"
    signals_dir.mkdir()
    stop = asyncio.Event()
    seen: list[str] = []

    async def watch() -> None:
        async for changes in awatch(signals_dir, watch_filter=watch_filter, stop_event=stop, step=20):
            seen.extend(Path(p).name for _change, p in changes)
            if seen:
                return

    watcher = asyncio.create_task(watch())
    deadline = time.monotonic() + 20
    written: list[str] = []
    # The watcher may not be armed yet when the first signal lands: keep writing until it reports one.
    while not watcher.done() and time.monotonic() < deadline:
        written.append(write_signal(signals_dir, 5, "needs_input", {"n": len(written)}).name)
        await asyncio.wait({watcher}, timeout=0.2)
    stop.set()
    await asyncio.wait_for(watcher, timeout=10)
    assert seen and set(seen) <= set(written), "only final signal names are reported, never .tmp files"
    assert [s.data["n"] for s in read_signals(signals_dir)] == list(range(len(written)))
