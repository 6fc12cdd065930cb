"""A peer task in one line, and the hint of what the sender does next about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.delegation.describe import describe, hint_for


@pytest.mark.parametrize(("task", "line"), [
    ({"id": 4, "state": "pending"}, "peer task frontend#4 pending, awaiting approval"),
    ({"id": 4, "state": "executing"}, "peer task frontend#4 executing, the agent is working"),
    ({"id": 4, "state": "executing", "needs_input": True},
     "peer task frontend#4 executing, the agent is working and needs input"),
    ({"id": 4, "state": "failed", "failure": "the tests gate failed"},
     "peer task frontend#4 failed, the tests gate failed"),
    ({"id": 4, "state": "failed"}, "peer task frontend#4 failed, failed"),
    ({"id": 4, "state": "awaiting_review"},
     "peer task frontend#4 awaiting_review, awaiting review by a person in frontend"),
    ({"id": 4, "state": "no_such_state"}, "peer task frontend#4 no_such_state"),
])
def test_describe_says_the_state_and_what_it_means(task: dict[str, object], line: str) -> None:
    assert describe("frontend", task) == line


def test_a_task_waiting_in_a_stopped_daemons_store_says_how_to_start_it() -> None:
    hint = hint_for("frontend", {"id": 2, "state": "created"}, via="store", root=Path("/repos/frontend"))
    assert "daemon is down" in hint and "cockpit daemon start --repo /repos/frontend" in hint
    assert "wait_remote_task(repo='frontend', id=2)" in hint
    assert "still classifying" in hint_for("frontend", {"id": 2, "state": "created"}, via="socket")


def test_hints_follow_the_state() -> None:
    pending = hint_for("frontend", {"id": 2, "state": "pending", "scope": "large"}, via="socket")
    assert "frontend#2 is large and pending" in pending and "cockpit task approve 2" in pending
    assert "carry on" in hint_for("frontend", {"id": 2, "state": "done"}, via="socket")
    assert "cockpit task retry 2" in hint_for("frontend", {"id": 2, "state": "failed"}, via="socket")
    assert "will not be done" in hint_for("frontend", {"id": 2, "state": "rejected"}, via="socket")
    assert "under way" in hint_for("frontend", {"id": 2, "state": "gating"}, via="socket")
