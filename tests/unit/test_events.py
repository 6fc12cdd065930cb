"""The event vocabulary: every type written once, folded by the projection, and anything else refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cockpit.core.errors import UsageError
from cockpit.core.events import EventType, event_type
from cockpit.core.models import Event, Task
from cockpit.core.projection import FOLDS, apply
from cockpit.core.store import Store

# The types docs/design.md lists (and the shared design before it), real agents' included.
DESIGNED = {
    "task.created", "task.classified", "task.approved", "task.rejected", "task.cancelled",
    "task.clarification_requested", "task.clarified", "task.executing", "agent.progress", "agent.needs_input",
    "agent.input_resolved", "task.interrupted", "task.failed", "gate.started", "gate.finished",
    "task.awaiting_review", "merge.preflight", "merge.started", "merge.finished", "merge.refused",
    "merge.rolled_back", "delegation.sent", "delegation.finished", "task.done", "agent.turn_ended",
    "agent.done", "agent.usage", "task.rework_requested", "task.stopped",
}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "cockpit.db")
    yield s
    await s.close()


def test_the_vocabulary_holds_every_designed_type_and_each_has_a_fold() -> None:
    assert {t.value for t in EventType} >= DESIGNED
    assert set(FOLDS) | {EventType.TASK_CREATED} == set(EventType)
    assert event_type("agent.usage") is EventType.AGENT_USAGE
    assert str(EventType.TASK_FAILED) == "task.failed"


def test_a_misspelt_type_is_refused_by_name() -> None:
    with pytest.raises(UsageError, match=r"unknown event type 'task\.faild'") as info:
        event_type("task.faild")
    assert info.value.code == "bad_request"


def test_the_fold_refuses_an_unknown_type_about_a_task() -> None:
    tasks = {1: Task(1, "t", "t")}
    with pytest.raises(UsageError, match=r"unknown event type 'task\.faild'"):
        apply(tasks, Event(seq=2, ts=0.0, task_id=1, type="task.faild", data={}))
    assert apply(tasks, Event(seq=3, ts=0.0, task_id=None, type="repo.note", data={})) is None


async def test_the_store_refuses_an_unknown_type_and_writes_nothing(store: Store) -> None:
    _, task = await store.append(1, "task.created", {"description": "add a health endpoint"})
    assert task is not None
    before = await store.last_seq()
    with pytest.raises(UsageError, match=r"unknown event type 'task\.aproved'"):
        await store.append(1, "task.aproved", {})
    assert await store.last_seq() == before
    assert (await store.get_task(1)).state == task.state
    # Every member folds through the real store and replays to the same projection.
    await store.append(1, EventType.AGENT_PROGRESS, {"text": "reading"})
    assert (await store.get_task(1)).progress == "reading"
    assert await store.replay_differences() == []
