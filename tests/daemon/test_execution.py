"""The pane command line: a closed pane reports itself, and never recreates a deleted repo."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from cockpit.core.signals import read_signals
from cockpit.daemon.execution import pane_command
from cockpit_testkit.waiting import wait_until


def _hang_up(line: str) -> int:
    """Run a pane command line, hang it up as a killed window does, and return its exit status."""
    proc = subprocess.Popen(["/bin/sh", "-c", line])
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        child = int(wait_until(lambda: children.read_text().split(), message="the agent started")[0])
        # Until it has exec'd, the child is still the shell with its trap: wait for the agent proper.
        wait_until(
            lambda: Path(f"/proc/{child}/cmdline").read_bytes().startswith(b"sleep"),
            message="the agent exec'd",
        )
        # A killed window hangs up the shell and the agent alike; the trap runs once the agent is gone.
        os.kill(proc.pid, signal.SIGHUP)
        os.kill(child, signal.SIGHUP)
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_pane_command_reports_a_closed_pane(tmp_path: Path) -> None:
    signals = tmp_path / "signals"
    signals.mkdir()


    assert _hang_up(pane_command("sleep 30", signals, 4, 1)) == 129


    [sig] = read_signals(signals)
    assert sig.kind == "exited" and sig.data["closed"] is True and sig.task_id == 4


def test_a_closed_pane_does_not_recreate_a_deleted_repo(tmp_path: Path) -> None:
    signals = tmp_path / "gone" / ".cockpit" / "signals"


    assert _hang_up(pane_command("sleep 30", signals, 4, 1)) == 129


    assert not (tmp_path / "gone").exists()
