"""The task state machine (DESIGN section 4): every transition validated in one place.

The table is pinned here from DESIGN (gating -> executing is the fix cycle; executing/gating -> cancelled goes
through a stop, awaiting_review -> executing is a rework in the same session).
Every (state, target) pair is tried through the real store: a valid one moves the task, an invalid one is
refused with a message naming the current state and the allowed next states, and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.errors import TransitionError, UsageError
from cockpit.core.projection import target_state
from cockpit.core.states import (
    REENTRANT,
    SETTLED,
    TRANSITIONS,
    State,
    check_reachable,
    check_transition,
    parse_state,
    reachable,
)
from cockpit.core.store import Store

S = State

# DESIGN section 4, "leaves to", plus gating -> executing (the fix cycle documented in states.py).
DESIGN_TABLE: dict[State, set[State]] = {
    S.CREATED: {S.PENDING, S.PENDING_CLARIFICATION, S.APPROVED, S.REJECTED},
    S.PENDING: {S.APPROVED, S.REJECTED, S.CANCELLED},
    S.PENDING_CLARIFICATION: {S.PENDING, S.APPROVED, S.REJECTED, S.CANCELLED},
    S.APPROVED: {S.EXECUTING, S.CANCELLED},
    S.EXECUTING: {S.GATING, S.FAILED, S.INTERRUPTED, S.CANCELLED},
    S.GATING: {S.AWAITING_REVIEW, S.FAILED, S.EXECUTING, S.INTERRUPTED, S.CANCELLED},
    S.AWAITING_REVIEW: {S.MERGING, S.REJECTED, S.APPROVED, S.EXECUTING},
    S.MERGING: {S.DONE, S.AWAITING_REVIEW},
    S.DONE: {S.ROLLED_BACK},
    S.FAILED: {S.APPROVED, S.CANCELLED},
    S.INTERRUPTED: {S.APPROVED, S.CANCELLED},
    S.REJECTED: set(),
    S.CANCELLED: set(),
    S.ROLLED_BACK: {S.APPROVED},
}


def classified(state: State) -> dict[str, Any]:
    scope = {S.PENDING_CLARIFICATION: "ambiguous", S.REJECTED: "reject"}.get(state, "small")
    return {"scope": scope, "reason": "test", "title": "", "classifier": "heuristic", "fallback_reason": None,
            "plan": [{"n": 1, "verb": "modify", "description": "change it"}],
            "questions": ["which one?"] if scope == "ambiguous" else [], "state": state.value}


# One event that moves a task into each state (the store derives the target from the event).
ENTER: dict[State, tuple[str, dict[str, Any]]] = {
    S.PENDING: ("task.classified", classified(S.PENDING)),
    S.PENDING_CLARIFICATION: ("task.clarification_requested", {"questions": ["which file?"]}),
    S.APPROVED: ("task.approved", {"by": "person"}),
    S.EXECUTING: ("task.executing", {"branch": "cockpit/task-x", "worktree": "/tmp/wt", "agent": "script"}),
    S.GATING: ("task.gating", {}),
    S.AWAITING_REVIEW: ("task.awaiting_review", {}),
    S.MERGING: ("merge.started", {"target": "main", "merge_sha": "a" * 40, "rollback_sha": "b" * 40}),
    S.DONE: ("merge.finished", {"target": "main", "merge_sha": "a" * 40, "rollback_sha": "b" * 40}),
    S.FAILED: ("task.failed", {"reason": "boom"}),
    S.INTERRUPTED: ("task.interrupted", {"reason": "pane died"}),
    S.REJECTED: ("task.rejected", {"reason": "no"}),
    S.CANCELLED: ("task.cancelled", {"reason": "not needed"}),
    S.ROLLED_BACK: ("merge.rolled_back", {"method": "ref"}),
}

# A path of states from created to each state.
PATH: dict[State, list[State]] = {
    S.CREATED: [],
    S.PENDING: [S.PENDING],
    S.PENDING_CLARIFICATION: [S.PENDING_CLARIFICATION],
    S.APPROVED: [S.PENDING, S.APPROVED],
    S.EXECUTING: [S.PENDING, S.APPROVED, S.EXECUTING],
    S.GATING: [S.PENDING, S.APPROVED, S.EXECUTING, S.GATING],
    S.AWAITING_REVIEW: [S.PENDING, S.APPROVED, S.EXECUTING, S.GATING, S.AWAITING_REVIEW],
    S.MERGING: [S.PENDING, S.APPROVED, S.EXECUTING, S.GATING, S.AWAITING_REVIEW, S.MERGING],
    S.DONE: [S.PENDING, S.APPROVED, S.EXECUTING, S.GATING, S.AWAITING_REVIEW, S.MERGING, S.DONE],
    S.FAILED: [S.PENDING, S.APPROVED, S.EXECUTING, S.FAILED],
    S.INTERRUPTED: [S.PENDING, S.APPROVED, S.EXECUTING, S.INTERRUPTED],
    S.REJECTED: [S.PENDING, S.REJECTED],
    S.CANCELLED: [S.PENDING, S.CANCELLED],
    S.ROLLED_BACK: [S.PENDING, S.APPROVED, S.EXECUTING, S.GATING, S.AWAITING_REVIEW, S.MERGING, S.DONE,
                    S.ROLLED_BACK],
}


def test_the_table_is_the_design_table() -> None:
    assert set(TRANSITIONS) == set(State)
    assert {s: set(t) for s, t in TRANSITIONS.items()} == DESIGN_TABLE
    # Only the rejected and cancelled states are terminal; every other state can be left.
    assert {s for s, t in TRANSITIONS.items() if not t} == {S.REJECTED, S.CANCELLED}


@pytest.mark.parametrize("current", list(State))
def test_check_transition_refuses_every_pair_outside_the_table(current: State) -> None:
    for target in State:
        allowed = target in DESIGN_TABLE[current] or (target is current and current in REENTRANT)
        if allowed:
            check_transition(7, current, target, "move")
            continue
        with pytest.raises(TransitionError) as info:
            check_transition(7, current, target, "move")
        message = info.value.message
        assert info.value.code == "invalid_transition" and info.value.exit_code == 1
        assert f"cannot move task 7: it is {current.value}" in message
        for nxt in DESIGN_TABLE[current]:
            assert nxt.value in message
        if not DESIGN_TABLE[current]:
            assert "none (terminal)" in message


def test_only_work_in_progress_states_may_be_re_entered() -> None:
    # Re-entering a finished or waiting state (a second reject, a second rollback) is refused.
    assert {S.REJECTED, S.CANCELLED, S.DONE, S.ROLLED_BACK, S.APPROVED, S.PENDING}.isdisjoint(REENTRANT)
    with pytest.raises(TransitionError, match="it is rejected, which can only move to: none"):
        check_transition(1, S.REJECTED, S.REJECTED, "reject")


def test_reachable_and_waiting_for_an_unreachable_state() -> None:
    assert reachable(S.REJECTED) == {S.REJECTED}
    assert reachable(S.CANCELLED) == {S.CANCELLED}
    assert reachable(S.CREATED) == set(State)
    assert S.PENDING not in reachable(S.APPROVED)
    check_reachable(3, S.PENDING, [S.DONE])
    with pytest.raises(TransitionError, match="task 3 is rejected and can never reach done") as info:
        check_reachable(3, S.REJECTED, [S.DONE])
    assert info.value.code == "unreachable"
    # task wait's default set is reachable from anywhere that is not already in it.
    for state in State:
        assert state in SETTLED or SETTLED & reachable(state)


def test_parse_state_is_a_usage_error() -> None:
    assert parse_state("awaiting_review") is S.AWAITING_REVIEW
    with pytest.raises(UsageError, match="unknown state 'bogus'; states are: created, pending"):
        parse_state("bogus")


def test_each_enter_event_targets_its_state() -> None:
    from cockpit.core.models import Task

    for state, (type_, data) in ENTER.items():
        assert target_state(Task(1, "t", "t", state=S.MERGING), type_, data) is state
    # merge.refused returns a merging task to review and leaves others where they are.
    assert target_state(Task(1, "t", "t", state=S.MERGING), "merge.refused", {}) is S.AWAITING_REVIEW
    assert target_state(Task(1, "t", "t", state=S.AWAITING_REVIEW), "merge.refused", {}) is None


# -- through the store --------------------------------------------------------------------------------

@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "index.db")
    yield s
    await s.close()


async def task_in(store: Store, state: State) -> int:
    async with store.tx() as tx:
        task_id = await tx.next_task_id()
        await tx.append(task_id, "task.created", {"description": f"task {task_id} heading for {state.value}"})
        for step in PATH[state]:
            type_, data = ENTER[step]
            await tx.append(task_id, type_, data)
        assert (await tx.get_task(task_id)).state is state
    return task_id


async def snapshot(store: Store, task_id: int) -> tuple[int, dict[str, Any], list[Any]]:
    async with store.db.execute("SELECT * FROM steps WHERE task_id = ? ORDER BY n", (task_id,)) as cur:
        steps = [tuple(r) for r in await cur.fetchall()]
    return await store.last_seq(), (await store.get_task(task_id)).to_json(), steps


async def test_every_pair_through_the_store(store: Store) -> None:
    refused = moved = 0
    for current in State:
        task_id = await task_in(store, current)
        for target in State:
            if target is S.CREATED:
                continue  # no event leads back to created
            type_, data = ENTER[target]
            allowed = target in DESIGN_TABLE[current] or (target is current and current in REENTRANT)
            if allowed:
                fresh = await task_in(store, current)
                _, after = await store.append(fresh, type_, data)
                assert after is not None and after.state is target, (current, target)
                moved += 1
                continue
            before = await snapshot(store, task_id)
            with pytest.raises(TransitionError) as info:
                await store.append(task_id, type_, data)
            assert f"it is {current.value}, which can only move to: " in info.value.message, (current, target)
            for nxt in DESIGN_TABLE[current]:
                assert nxt.value in info.value.message
            assert await snapshot(store, task_id) == before, f"refused {current}->{target} changed something"
            refused += 1
    assert moved == sum(len(t) for t in DESIGN_TABLE.values()) + len(REENTRANT)
    assert refused == 13 * 14 - moved
    assert await store.replay_differences() == []


async def test_a_refused_event_inside_a_transaction_rolls_back_the_whole_transaction(store: Store) -> None:
    task_id = await task_in(store, S.PENDING)
    before = await snapshot(store, task_id)
    with pytest.raises(TransitionError):
        async with store.tx() as tx:
            await tx.append(task_id, "task.approved", {"by": "person"})
            await tx.append(task_id, "task.rejected", {})  # approved -> rejected is not allowed
    assert await snapshot(store, task_id) == before


async def test_clarification_may_ask_again(store: Store) -> None:
    task_id = await task_in(store, S.PENDING_CLARIFICATION)
    _, after = await store.append(task_id, "task.clarified",
                                  {**classified(S.PENDING_CLARIFICATION), "answers": ["the api"]})
    assert after is not None and after.state is S.PENDING_CLARIFICATION and after.answers == ["the api"]
