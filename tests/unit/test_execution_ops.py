"""Execution ops' log tail: terminal output cleaned, the partial last line reported."""

from __future__ import annotations

from pathlib import Path

from cockpit.core.execution_ops import clean_output, log_tail


def test_log_tail_cleans_terminal_output_and_reports_the_partial_line(tmp_path: Path) -> None:
    log = tmp_path / "task-1.log"
    log.write_bytes(b"\x1b[1mbold\x1b[0m line\r\nprogress 10%\rprogress 100%\nprompt [y/n]: ")
    lines, size, complete, partial = log_tail(log, 10)
    assert lines == ["bold line", "progress 100%", "prompt [y/n]:"]
    assert size == log.stat().st_size and complete == size - len(b"prompt [y/n]: ") and partial
    assert clean_output("a\x07b") == ["ab"]
    assert log_tail(tmp_path / "none.log", 5) == ([], 0, 0, False)
