"""The event store: append-only events, projections written in the same transaction, idempotency keys, and a
replay that rebuilds every projection exactly (checked with hypothesis over random operation sequences)."""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cockpit.core.errors import CockpitError, NotFoundError, TransitionError
from cockpit.core.models import Event
from cockpit.core.projection import EVENT_STATE
from cockpit.core.states import REENTRANT, TRANSITIONS, State
from cockpit.core.store import PROJECTION_TABLES, SCHEMA_VERSION, Store
from cockpit_testkit.waiting import async_wait_until


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "index.db")
    yield s
    await s.close()


async def create(store: Store, text: str = "add a health endpoint") -> int:
    async with store.tx() as tx:
        task_id = await tx.next_task_id()
        await tx.append(task_id, "task.created", {"description": text})
    return task_id


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return [tuple(r) for r in db.execute(sql).fetchall()]


async def test_open_creates_the_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "index.db"
    store = await Store.open(path)
    try:
        assert await store.schema_version() == SCHEMA_VERSION
        async with store.db.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone()) == ("wal",)
        assert await store.last_seq() == 0 and await store.list_tasks() == []
    finally:
        await store.close()
    tables = {r[0] for r in rows(path, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"events", "meta", *PROJECTION_TABLES} <= tables
    # Opening again (a second writer, a restart) keeps what is there.
    again = await Store.open(path)
    await again.close()


async def test_open_without_create_and_on_a_non_database(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="cockpit init"):
        await Store.open(tmp_path / "missing.db", create=False)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CockpitError, match="not a usable cockpit store") as info:
        await Store.open(junk)
    assert info.value.code == "store"


async def test_an_append_writes_the_event_and_the_projection_together(store: Store) -> None:
    task_id = await create(store, "add a health endpoint to the api")
    event, task = await store.append(task_id, "task.classified", {
        "scope": "large", "reason": "r", "title": "Health endpoint", "state": "pending", "plan": [
            {"n": 1, "verb": "add", "description": "the route"},
            {"n": 2, "verb": "delegate", "description": "client", "peer": "frontend", "depends_on": [1]}]})
    assert task is not None and task.state is State.PENDING and task.title == "Health endpoint"
    assert event.seq == 2 and event.task_id == task_id and event.type == "task.classified"
    assert rows(store.path, "SELECT task_id, n, verb, peer, depends_on FROM steps ORDER BY n") == [
        (task_id, 1, "add", None, "[]"), (task_id, 2, "delegate", "frontend", "[1]")]
    assert rows(store.path, "SELECT id, state, title, scope FROM tasks") == [
        (task_id, "pending", "Health endpoint", "large")]
    assert [e.type for e in await store.task_events(task_id)] == ["task.created", "task.classified"]
    assert [e.seq for e in await store.events_since(1)] == [2]


async def test_a_failing_transaction_leaves_nothing(store: Store) -> None:
    task_id = await create(store)
    before = (await store.last_seq(), rows(store.path, "SELECT * FROM tasks"))
    with pytest.raises(RuntimeError):
        async with store.tx() as tx:
            await tx.append(task_id, "task.clarification_requested", {"questions": ["which?"]})
            await tx.append(None, "note", {})
            raise RuntimeError("crash between appends")
    assert (await store.last_seq(), rows(store.path, "SELECT * FROM tasks")) == before
    # Nothing is left half-open: the next transaction works.
    await store.append(task_id, "task.clarification_requested", {"questions": ["which?"]})


async def test_events_are_never_rewritten(store: Store) -> None:
    task_id = await create(store)
    first = await store.events_since(0)
    await store.append(task_id, "task.approved", {"by": "person"})
    await store.append(task_id, "task.cancelled", {"reason": "later"})
    again = await store.events_since(0)
    assert again[: len(first)] == first and [e.seq for e in again] == [1, 2, 3]


async def test_idempotency_keys(store: Store) -> None:
    task_id = await create(store)
    e1, _ = await store.append(task_id, "agent.progress", {"text": "one"}, key="k-1")
    e2, task = await store.append(task_id, "agent.progress", {"text": "two"}, key="k-1")
    assert e2 == e1 and task is not None and task.progress == "one"
    assert [e.type for e in await store.task_events(task_id)] == ["task.created", "agent.progress"]
    # Appending a known key inside a transaction is a clear error, and the transaction rolls back.
    with pytest.raises(CockpitError) as info:
        async with store.tx() as tx:
            await tx.append(task_id, "agent.progress", {"text": "three"})
            await tx.append(task_id, "agent.progress", {"text": "four"}, key="k-1")
    assert info.value.code == "duplicate_key"
    assert (await store.get_task(task_id)).progress == "one" and await store.last_seq() == 2


async def test_a_task_is_created_once(store: Store) -> None:
    task_id = await create(store)
    with pytest.raises(CockpitError, match="already exists") as info:
        await store.append(task_id, "task.created", {"description": "again"})
    assert info.value.code == "exists"
    assert (await store.get_task(task_id)).description == "add a health endpoint"


async def test_unknown_task_and_taskless_events(store: Store) -> None:
    with pytest.raises(NotFoundError, match="no task 9"):
        await store.append(9, "task.approved", {})
    with pytest.raises(NotFoundError):
        await store.get_task(9)
    event, task = await store.append(None, "repo.note", {"text": "hello"})
    assert task is None and event.task_id is None and await store.list_tasks() == []
    assert await store.replay_differences() == []


async def test_listeners_get_each_committed_transaction_and_nothing_rolled_back(store: Store) -> None:
    seen: list[list[int]] = []

    def listener(events: Sequence[Event]) -> None:
        seen.append([e.seq for e in events])

    store.add_listener(listener)
    async with store.tx() as tx:
        task_id = await tx.next_task_id()
        await tx.append(task_id, "task.created", {"description": "x"})
        await tx.append(task_id, "task.approved", {})
    with pytest.raises(TransitionError):
        await store.append(task_id, "task.awaiting_review", {})
    await store.append(task_id, "agent.progress", {"text": "p"})
    store.remove_listener(listener)
    await store.append(task_id, "agent.progress", {"text": "q"})
    assert seen == [[1, 2], [3]]


async def test_a_failing_listener_does_not_undo_or_fail_the_commit(store: Store) -> None:
    seen: list[int] = []

    def broken(events: Sequence[Event]) -> None:
        raise RuntimeError("listener bug")

    store.add_listener(broken)
    store.add_listener(lambda events: seen.extend(e.seq for e in events))
    task_id = await create(store)
    assert seen == [1] and (await store.get_task(task_id)).state is State.CREATED


async def test_event_data_is_what_a_replay_reads_back(store: Store) -> None:
    task_id = await create(store)
    got: list[Event] = []
    store.add_listener(got.extend)
    event, task = await store.append(task_id, "task.clarification_requested", {"questions": ("a", "b")})
    assert event.data == {"questions": ["a", "b"]} and got[0].data == event.data
    assert (await store.events_since(1))[0].data == event.data
    assert task is not None and task.questions == ["a", "b"]


async def test_replay_differences_finds_a_tampered_projection_and_rebuild_repairs_it(store: Store) -> None:
    task_id = await create(store)
    await store.append(task_id, "task.classified", {"scope": "small", "state": "pending", "plan": [
        {"n": 1, "verb": "modify", "description": "it"}]})
    assert await store.replay_differences() == []
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE tasks SET state = 'done' WHERE id = ?", (task_id,))
        db.execute("DELETE FROM steps")
    problems = await store.replay_differences()
    assert len(problems) == 2 and "projection tasks differs" in problems[0]
    assert "projection steps differs" in problems[1]
    assert await store.rebuild() == 1
    assert await store.replay_differences() == []
    assert (await store.get_task(task_id)).state is State.PENDING


async def test_two_connections_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    a = await Store.open(tmp_path / "index.db")
    b = await Store.open(tmp_path / "index.db")
    try:
        async def writer(store: Store, n: int) -> None:
            for _ in range(n):
                await create(store)

        await asyncio.gather(writer(a, 25), writer(b, 25))
        tasks = await a.list_tasks()
        assert [t.id for t in tasks] == list(range(1, 51))
        assert [e.seq for e in await b.events_since(0)] == list(range(1, 51))
        assert await a.replay_differences() == []
    finally:
        await a.close()
        await b.close()


async def test_a_write_cancelled_while_its_transaction_begins_leaves_the_store_writable(store: Store) -> None:
    """aiosqlite runs a statement in its thread even when the awaiting coroutine is cancelled: a BEGIN that
    lands after the cancel must not leave the connection inside a transaction nobody ends."""
    task_id = await create(store)
    seen: list[str] = []
    store.add_listener(lambda events: seen.extend(e.type for e in events))
    blocker = sqlite3.connect(store.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the store's BEGIN waits in aiosqlite's thread
    try:
        writer = asyncio.ensure_future(store.append(task_id, "agent.progress", {"text": "cancelled"}))
        # The writer holds the store's lock once its BEGIN is queued to the connection's thread.
        await async_wait_until(store._lock.locked, timeout=5, message="the write should be under way")
        writer.cancel()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await store.append(task_id, "agent.progress", {"text": "after"})
    texts = [e.data.get("text") for e in await store.events_since(0) if e.type == "agent.progress"]
    assert texts == ["after"] and seen == ["agent.progress"]


# -- replay equals projections after random operation sequences ----------------------------------------

words = st.sampled_from(["api", "login", "docs", "cache", "retry", "export", "ui", "db"])
texts = st.lists(words, min_size=1, max_size=4).map(" ".join)
maybe_text = st.none() | texts
state_values = st.sampled_from([s.value for s in State if s is not State.CREATED])

plan_steps = st.lists(
    st.builds(lambda n, verb, peer, text: {"n": n, "verb": verb, "description": text, "peer": peer,
                                           "depends_on": [] if n == 1 else [n - 1]},
              st.integers(1, 3), st.sampled_from(["add", "modify", "delegate", "test"]),
              st.none() | st.sampled_from(["frontend", "docs"]), texts),
    max_size=3, unique_by=lambda s: s["n"])


def classification(scope: str, state: str, plan: list[Any], title: str | None,
                   fallback: str | None) -> dict[str, Any]:
    return {"scope": scope, "reason": "why", "title": title or "", "plan": plan, "state": state,
            "questions": ["which?"] if scope == "ambiguous" else [], "classifier": "heuristic",
            "fallback_reason": fallback}


classifications = st.builds(classification, st.sampled_from(["small", "large", "ambiguous", "reject"]),
                            state_values, plan_steps, maybe_text, st.none() | st.just("timeout"))

sha = st.sampled_from(["a" * 40, "b" * 40, None])
merge_data = st.fixed_dictionaries({"target": st.sampled_from(["main", "dev"])},
                                   optional={"merge_sha": sha, "rollback_sha": sha,
                                             "strategy": st.sampled_from(["merge", "squash"])})
gate = st.fixed_dictionaries({
    "name": st.sampled_from(["tests", "lint", "clean-tree"]), "status": st.sampled_from(["passed", "failed"]),
    "exit_code": st.none() | st.integers(0, 2), "duration_s": st.floats(0, 10),
    "log_tail": st.lists(texts, max_size=2)})

EVENTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "task.classified": classifications,
    "task.clarification_requested": st.fixed_dictionaries({"questions": st.lists(texts, max_size=2)}),
    "task.clarified": st.builds(lambda c, a: {**c, "answers": a}, classifications,
                                st.lists(texts, max_size=2)),
    "task.approved": st.fixed_dictionaries({}, optional={"by": st.just("person"), "retry": st.booleans(),
                                                         "fresh": st.booleans()}),
    "task.rejected": st.fixed_dictionaries({"reason": maybe_text}),
    "task.cancelled": st.fixed_dictionaries({"reason": maybe_text}),
    "task.failed": st.fixed_dictionaries({"reason": maybe_text}),
    "task.interrupted": st.fixed_dictionaries({"reason": maybe_text}),
    "task.executing": st.fixed_dictionaries({}, optional={
        "branch": maybe_text, "worktree": maybe_text, "base_sha": sha, "agent": st.just("script"),
        "attempt": st.integers(1, 3), "gates_only": st.booleans()}),
    "task.pane": st.fixed_dictionaries({"pane": maybe_text}),
    "agent.progress": st.fixed_dictionaries({"text": texts}),
    "agent.needs_input": st.fixed_dictionaries({"line": texts}),
    "agent.input_resolved": st.just({}),
    "agent.exited": st.fixed_dictionaries({"code": st.none() | st.integers(0, 1)}),
    "task.gating": st.just({}),
    "gate.finished": gate,
    "task.awaiting_review": st.just({}),
    "merge.preflight": merge_data,
    "merge.started": merge_data,
    "merge.finished": st.builds(lambda d, kept: {**d, "worktree_kept": kept}, merge_data, maybe_text),
    "merge.refused": st.fixed_dictionaries({"reason": texts}),
    "merge.needs_attention": st.fixed_dictionaries({"reason": texts}),
    "merge.rolled_back": st.fixed_dictionaries({"method": st.sampled_from(["ref", "revert"])}),
    "merge.rebased": st.fixed_dictionaries({"base_sha": sha}),
    "worktree.removed": st.just({}),
    "step.updated": st.fixed_dictionaries({"n": st.integers(1, 3)}, optional={
        "status": st.sampled_from(["running", "done", "failed"]), "detail": maybe_text,
        "peer_task_id": st.none() | st.integers(1, 9), "peer_state": st.none() | state_values}),
    "delegation.sent": st.fixed_dictionaries({"repo": st.sampled_from(["frontend", "docs"]),
                                              "id": st.integers(1, 5)}, optional={"step": st.integers(1, 3)}),
    "delegation.finished": st.fixed_dictionaries({"ok": st.booleans(), "state": state_values},
                                                 optional={"step": st.integers(1, 3), "reason": maybe_text}),
    "task.done": st.just({}),
    "agent.turn_ended": st.fixed_dictionaries({}, optional={"message": maybe_text, "source": maybe_text}),
    "agent.done": st.fixed_dictionaries({}, optional={"message": maybe_text, "by": st.just("agent")}),
    "agent.usage": st.fixed_dictionaries({"run": st.integers(1, 3), "input_tokens": st.integers(0, 10**6),
                                          "output_tokens": st.integers(0, 10**5)},
                                         optional={"cost_usd": st.none() | st.floats(0, 5)}),
    "task.rework_requested": st.fixed_dictionaries({"message": texts}),
    "task.stopped": st.fixed_dictionaries({"how": st.sampled_from(["exit", "term", "kill"])},
                                          optional={"reason": maybe_text}),
}



def classifications_to(states: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(classification, st.sampled_from(["small", "large", "ambiguous", "reject"]),
                     st.sampled_from(states), plan_steps, maybe_text, st.none() | st.just("timeout"))


PROGRESS = [State.APPROVED, State.EXECUTING, State.GATING, State.AWAITING_REVIEW, State.MERGING, State.DONE,
            State.ROLLED_BACK, State.PENDING, State.PENDING_CLARIFICATION, State.FAILED, State.INTERRUPTED,
            State.REJECTED, State.CANCELLED]


def event_choice(draw: st.DataObject, state: State) -> tuple[str, dict[str, Any]]:
    """An event for a task in `state`: mostly one that moves it on as the state machine allows (so sequences
    get far), often one that leaves the state alone, sometimes any event at all (refused when invalid)."""
    roll = draw.draw(st.integers(0, 9), label="kind of event")
    allowed = {s.value for s in TRANSITIONS[state]} | ({state.value} if state in REENTRANT else set())
    # Forward progress first: hypothesis leans towards early choices, and dead ends end a sequence's interest.
    moving = sorted((t for t in EVENT_STATE if EVENT_STATE[t].value in allowed),
                    key=lambda t: (EVENT_STATE[t] is state, PROGRESS.index(EVENT_STATE[t])))
    if state in (State.CREATED, State.PENDING_CLARIFICATION):
        moving.append("task.classified" if state is State.CREATED else "task.clarified")
    if state is State.MERGING:
        moving.append("merge.refused")
    neutral = [t for t in sorted(EVENTS) if t not in EVENT_STATE and t not in ("task.classified",
                                                                              "task.clarified")]
    if roll == 0 or (not moving and roll < 8):
        type_ = draw.draw(st.sampled_from(sorted(EVENTS)), label="type")
        return type_, draw.draw(EVENTS[type_], label="data")
    type_ = draw.draw(st.sampled_from(moving if roll < 8 else neutral), label="type")
    if type_ in ("task.classified", "task.clarified") and roll != 0:
        data = draw.draw(classifications_to(sorted(allowed)), label="data")
        if type_ == "task.clarified":
            data["answers"] = draw.draw(st.lists(texts, max_size=2), label="answers")
        return type_, data
    return type_, draw.draw(EVENTS[type_], label="data")


async def state_of(store: Store) -> tuple[Any, ...]:
    async with store.db.execute("SELECT (SELECT MAX(seq) FROM events), (SELECT group_concat(doc) FROM tasks),"
                                " (SELECT COUNT(*) FROM steps)") as cur:
        row = await cur.fetchone()
    assert row is not None
    return tuple(row)


async def run_operations(path: Path, draw: st.DataObject) -> None:
    store = await Store.open(path)
    try:
        ids: list[int] = []
        for _ in range(draw.draw(st.integers(1, 30), label="length")):
            kind = draw.draw(st.sampled_from(["create", *["event"] * 6, "tx"]), label="op")
            if not ids or (kind == "create" and len(ids) >= 4):
                kind = "create" if not ids else "event"
            before = await state_of(store)
            try:
                if kind == "create":
                    text = draw.draw(texts, label="text")
                    source = draw.draw(st.none() | st.sampled_from(["frontend", "docs"]), label="source")
                    async with store.tx() as tx:
                        task_id = await tx.next_task_id()
                        data: dict[str, Any] = {"description": text, "title": text[:10]}
                        if source:
                            data.update(source_repo=source, source_task_id=len(ids) + 1)
                        await tx.append(task_id, "task.created", data)
                    ids.append(task_id)
                elif kind == "event":
                    task_id = draw.draw(st.sampled_from(ids), label="task")
                    type_, data = event_choice(draw, (await store.get_task(task_id)).state)
                    key = draw.draw(st.none() | st.sampled_from(["k1", "k2"]), label="key")
                    await store.append(task_id, type_, data, key=key)
                else:
                    async with store.tx() as tx:
                        for _ in range(draw.draw(st.integers(2, 4), label="tx length")):
                            task_id = draw.draw(st.sampled_from(ids), label="task")
                            type_, data = event_choice(draw, (await tx.get_task(task_id)).state)
                            await tx.append(task_id, type_, data)
            except TransitionError:
                # Refused: nothing may have changed.
                assert await state_of(store) == before
        assert await store.replay_differences() == []
        replayed = {i: t.to_json() for i, t in (await store.replay()).items()}
        stored = {t.id: t.to_json() for t in await store.list_tasks()}
        assert replayed == stored
        # The projection tables agree with the task documents.
        for task in stored.values():
            async with store.db.execute("SELECT n, verb, status FROM steps WHERE task_id = ? ORDER BY n",
                                        (task["id"],)) as cur:
                assert [tuple(r) for r in await cur.fetchall()] == [
                    (s["n"], s["verb"], s["status"]) for s in sorted(task["plan"], key=lambda s: s["n"])]
    finally:
        await store.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_replay_equals_projections_after_random_operations(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory(prefix="ck-replay-") as tmp:
        asyncio.run(run_operations(Path(tmp) / "index.db", data))
