"""The per-repo event store: an append-only `events` table and the projections folded from it (docs/design.md)

Every change is one transaction: `BEGIN IMMEDIATE`, read the task, validate the transition, append the event,
write the projection rows, commit. A daemon, a CLI and a peer writing at once are serialised by SQLite itself
(WAL plus a busy timeout), so none of them loses a row.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from cockpit.core.errors import CockpitError, NotFoundError
from cockpit.core.events import EventType, event_type
from cockpit.core.models import Event, Task
from cockpit.core.projection import apply, target_state
from cockpit.core.states import State, check_transition

log = logging.getLogger("cockpit.store")

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    task_id INTEGER,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    key TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS events_task ON events(task_id, seq);
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    title TEXT NOT NULL,
    scope TEXT,
    source_repo TEXT,
    source_task_id INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
CREATE TABLE IF NOT EXISTS steps (
    task_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    verb TEXT NOT NULL,
    description TEXT NOT NULL,
    peer TEXT,
    depends_on TEXT NOT NULL,
    status TEXT NOT NULL,
    peer_task_id INTEGER,
    PRIMARY KEY (task_id, n)
);
CREATE TABLE IF NOT EXISTS gates (
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    duration_s REAL NOT NULL,
    log_tail TEXT NOT NULL,
    PRIMARY KEY (task_id, name)
);
CREATE TABLE IF NOT EXISTS merges (
    task_id INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    target TEXT NOT NULL,
    merge_sha TEXT,
    rollback_sha TEXT,
    strategy TEXT NOT NULL,
    rollback_method TEXT,
    updated_at REAL NOT NULL
);
"""
PROJECTION_TABLES: dict[str, str] = {
    "tasks": "SELECT id, state, title, scope, source_repo, source_task_id, created_at, updated_at, doc "
    "FROM tasks ORDER BY id",
    "steps": "SELECT task_id, n, verb, description, peer, depends_on, status, peer_task_id "
    "FROM steps ORDER BY task_id, n",
    "gates": "SELECT task_id, name, status, exit_code, duration_s, log_tail "
    "FROM gates ORDER BY task_id, name",
    "merges": "SELECT task_id, state, target, merge_sha, rollback_sha, strategy, rollback_method, updated_at "
    "FROM merges ORDER BY task_id",
}

Listener = Callable[[Sequence[Event]], None]

# The verb a refused transition is named by, for events whose type does not read as one.
ACTIONS: dict[str, str] = {
    EventType.TASK_CLASSIFIED: "classify", EventType.TASK_CLARIFIED: "clarify",
    EventType.TASK_APPROVED: "approve", EventType.TASK_REJECTED: "reject", EventType.TASK_CANCELLED: "cancel",
    EventType.TASK_EXECUTING: "start", EventType.TASK_INTERRUPTED: "interrupt", EventType.TASK_FAILED: "fail",
    EventType.TASK_GATING: "run the gates of", EventType.TASK_AWAITING_REVIEW: "send to review",
    EventType.MERGE_STARTED: "merge", EventType.MERGE_FINISHED: "finish the merge of",
    EventType.MERGE_REFUSED: "refuse the merge of", EventType.MERGE_ROLLED_BACK: "roll back",
    EventType.TASK_DONE: "finish", EventType.TASK_CLARIFICATION_REQUESTED: "ask for clarification on",
}


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _row_event(row: Sequence[Any]) -> Event:
    return Event(seq=row[0], ts=row[1], task_id=row[2], type=row[3], data=json.loads(row[4]), key=row[5])


def projection_rows(task: Task) -> dict[str, list[tuple[Any, ...]]]:
    """The rows one task contributes to each projection table."""
    doc = task.to_json()
    # The stored links carry the state their finish recorded (live states are filled in only when shown).
    doc["children"] = [c.to_json() for c in task.children]
    rows: dict[str, list[tuple[Any, ...]]] = {
        "tasks": [(task.id, task.state.value, task.title, task.scope, task.source_repo, task.source_task_id,
                   task.created_at, task.updated_at, _dumps(doc))],
        "steps": [(task.id, s.n, s.verb, s.description, s.peer, _dumps(s.depends_on), s.status,
                   s.peer_task_id) for s in task.plan],
        "gates": [(task.id, g.name, g.status, g.exit_code, g.duration_s, _dumps(g.log_tail))
                  for g in task.gates],
        "merges": [],
    }
    if task.merge is not None:
        m = task.merge
        rows["merges"].append((task.id, m.state, m.target, m.merge_sha, m.rollback_sha, m.strategy,
                               m.rollback_method, task.updated_at))
    return rows


class Tx:
    """One open `BEGIN IMMEDIATE` transaction: reads see a stable store; appends are validated, projected."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db
        self.events: list[Event] = []
        self._tasks: dict[int, Task] = {}
        # The projection rows each task has in the tables now, so a write touches only the tables that change.
        self._rows: dict[int, dict[str, list[tuple[Any, ...]]]] = {}

    async def get_task(self, task_id: int) -> Task:
        if task_id in self._tasks:
            return self._tasks[task_id]
        rows = list(await self.db.execute_fetchall("SELECT doc FROM tasks WHERE id = ?", (task_id,)))
        if not rows:
            raise NotFoundError(f"no task {task_id} in this repo; `cockpit task list --all` shows the tasks")
        task = Task.from_json(json.loads(rows[0][0]))
        self._tasks[task_id] = task
        self._rows[task_id] = projection_rows(task)
        return task

    async def _exists(self, task_id: int) -> bool:
        if task_id in self._tasks:
            return True
        return bool(list(await self.db.execute_fetchall("SELECT 1 FROM tasks WHERE id = ?", (task_id,))))

    async def next_task_id(self) -> int:
        rows = list(await self.db.execute_fetchall("SELECT COALESCE(MAX(id), 0) + 1 FROM tasks"))
        return int(rows[0][0])

    async def event_for_key(self, key: str) -> Event | None:
        rows = list(await self.db.execute_fetchall(
            "SELECT seq, ts, task_id, type, data, key FROM events WHERE key = ?", (key,)))
        return _row_event(rows[0]) if rows else None

    async def events_since(self, seq: int) -> list[Event]:
        return [_row_event(r) for r in await self.db.execute_fetchall(
            "SELECT seq, ts, task_id, type, data, key FROM events WHERE seq > ? ORDER BY seq", (seq,))]

    async def append(
        self, task_id: int | None, type_: str, data: dict[str, Any] | None = None, *,
        key: str | None = None, action: str | None = None,
    ) -> Event:
        """Append one event; refuse an invalid transition (nothing written) and project the change."""
        # Fold exactly what a replay will read back from the row, so the two can never disagree.
        data = json.loads(_dumps(dict(data or {})))
        task: Task | None = None
        if task_id is not None:
            type_ = event_type(type_)  # an event about a task is one of the vocabulary's (refused otherwise)
        if type_ == EventType.TASK_CREATED and task_id is not None:
            if await self._exists(task_id):
                raise CockpitError(f"task {task_id} already exists; a task is created once", code="exists")
            self._rows[task_id] = {}
        elif task_id is not None:
            task = await self.get_task(task_id)
            target = target_state(task, type_, data)
            if target is not None:
                check_transition(task_id, task.state, target, action or ACTIONS.get(type_, type_))
        ts = time.time()
        try:
            cur = await self.db.execute(
                "INSERT INTO events (ts, task_id, type, data, key) VALUES (?, ?, ?, ?, ?)",
                (ts, task_id, type_, _dumps(data), key),
            )
        except sqlite3.IntegrityError:
            raise CockpitError(f"an event with idempotency key {key!r} is already recorded",
                               code="duplicate_key") from None
        event = Event(seq=int(cur.lastrowid or 0), ts=ts, task_id=task_id, type=type_, data=data, key=key)
        changed = apply(self._tasks, event)
        if changed is not None:
            await self._write(changed)
        self.events.append(event)
        return event

    async def _write(self, task: Task) -> None:
        """Rewrite the task's projection rows: its tasks row always, the other tables where they changed."""
        rows = projection_rows(task)
        before = self._rows.get(task.id, {})
        await self.db.execute(
            "INSERT OR REPLACE INTO tasks (id, state, title, scope, source_repo, source_task_id, created_at,"
            " updated_at, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows["tasks"][0])
        for table, width in (("steps", 8), ("gates", 6), ("merges", 8)):
            if rows[table] == before.get(table, []):
                continue
            if before.get(table):
                await self.db.execute(f"DELETE FROM {table} WHERE task_id = ?", (task.id,))
            if rows[table]:
                marks = ", ".join("?" * width)
                await self.db.executemany(f"INSERT INTO {table} VALUES ({marks})", rows[table])
        self._rows[task.id] = rows


def _prepare_private(path: Path) -> None:
    """The store's folder 0700 and its files 0600 (SQLite gives -wal and -shm the database's mode); an
    existing zero-length database is refused: SQLite would silently start a new, empty store in it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileExistsError:
        size = path.stat().st_size
        wal = path.with_name(path.name + "-wal")
        if size == 0 and not (wal.exists() and wal.stat().st_size > 0):
            raise CockpitError(
                f"{path} is empty (0 bytes): the store was truncated or lost, so its tasks and events are "
                "gone from it; restore it from a backup, or move it aside and run `cockpit init` to start a "
                "new store", code="store_empty") from None
    else:
        os.close(fd)
        return
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        with contextlib.suppress(FileNotFoundError):
            member = path.with_name(name)
            if stat.S_IMODE(member.stat().st_mode) & 0o077:
                member.chmod(0o600)


def private_dir(path: Path) -> None:
    """Create `path` (and parents) with mode 0700, and make an existing one 0700: it holds task text."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)


async def _through(statement: Awaitable[Any]) -> None:
    """Await a statement to its end even when the caller is cancelled meanwhile, then pass the cancel on.

    aiosqlite runs a statement in its own thread whatever happens to the coroutine awaiting it: a BEGIN,
    COMMIT or ROLLBACK left behind by a cancel would leave the connection in a transaction state nobody knows.
    """
    running = asyncio.ensure_future(statement)
    cancelled = False
    while not running.done():
        try:
            await asyncio.shield(running)
        except asyncio.CancelledError:
            if running.cancelled():
                raise
            cancelled = True
    running.result()
    if cancelled:
        raise asyncio.CancelledError


class Store:
    """An open connection to one repo's `index.db`."""

    def __init__(self, path: Path, db: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self.path = path
        # Writes go through `db` inside `tx()`; plain reads use `reader`, a second connection, so they only
        # ever see committed data, never a half-written transaction of another coroutine on `db`.
        self.db = db
        self.reader = reader
        self._lock = asyncio.Lock()
        self._read_lock = asyncio.Lock()
        self._listeners: list[Listener] = []

    @classmethod
    async def open(cls, path: Path, *, create: bool = True) -> Store:
        if not create and not await asyncio.to_thread(path.exists):
            raise NotFoundError(f"{path} does not exist; run `cockpit init` in that repo first")
        await asyncio.to_thread(_prepare_private, path)
        db = await aiosqlite.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    await db.execute(statement)
            await db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            await db.execute("COMMIT")
            reader = await aiosqlite.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            await reader.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        except sqlite3.DatabaseError as exc:
            await db.close()
            raise CockpitError(f"{path} is not a usable cockpit store ({exc}); run `cockpit doctor`",
                               code="store") from None
        return cls(path, db, reader)

    async def close(self) -> None:
        await self.reader.close()
        await self.db.close()

    async def query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only statement against committed data."""
        async with self._read_lock:
            return [tuple(r) for r in await self.reader.execute_fetchall(sql, args)]

    def add_listener(self, listener: Listener) -> None:
        """Called with the events of each transaction right after it commits."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        async with self._lock:
            try:
                await _through(self.db.execute("BEGIN IMMEDIATE"))
            except asyncio.CancelledError:
                # The BEGIN ran all the same: end that transaction before another coroutine takes `db`.
                await _through(self.db.execute("ROLLBACK"))
                raise
            tx = Tx(self.db)
            try:
                yield tx
            except BaseException:
                await _through(self.db.execute("ROLLBACK"))
                raise
            cancelled = False
            try:
                await _through(self.db.execute("COMMIT"))
            except asyncio.CancelledError:
                cancelled = True  # committed: its listeners hear of it before the cancel goes on
        if tx.events:
            for listener in list(self._listeners):
                try:
                    listener(tx.events)
                except Exception:
                    # The change is committed: a failing listener must not turn it into an error.
                    log.exception("a store listener failed")
        if cancelled:
            raise asyncio.CancelledError

    async def append(
        self, task_id: int | None, type_: str, data: dict[str, Any] | None = None, *,
        key: str | None = None, action: str | None = None,
    ) -> tuple[Event, Task | None]:
        async with self.tx() as tx:
            if key is not None:
                existing = await tx.event_for_key(key)
                if existing is not None:
                    task = await tx.get_task(existing.task_id) if existing.task_id is not None else None
                    return existing, task
            event = await tx.append(task_id, type_, data, key=key, action=action)
            task = await tx.get_task(task_id) if task_id is not None else None
            return event, task

    async def get_task(self, task_id: int) -> Task:
        rows = await self.query("SELECT doc FROM tasks WHERE id = ?", (task_id,))
        if not rows:
            raise NotFoundError(f"no task {task_id} in this repo; `cockpit task list --all` shows the tasks")
        return Task.from_json(json.loads(rows[0][0]))

    async def list_tasks(self, states: Iterable[State] | None = None, *, after_id: int = 0,
                         limit: int | None = None) -> list[Task]:
        """Tasks in id order (those in `states`), with an id above `after_id`, at most `limit` of them."""
        args: tuple[Any, ...] = (after_id,)
        where = "id > ?"
        if states is not None:
            values = tuple(s.value for s in states)
            where += f" AND state IN ({','.join('?' * len(values))})"
            args += values
        sql = f"SELECT doc FROM tasks WHERE {where} ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        return [Task.from_json(json.loads(r[0])) for r in await self.query(sql, args)]

    async def recent_creates_from(self, source_repo: str, since_ts: float) -> int:
        """How many tasks `source_repo` created since `since_ts` (read from the newest events only)."""
        rows = await self.query(
            "SELECT COUNT(*) FROM events WHERE seq > (SELECT COALESCE(MAX(seq), 0) - 5000 FROM events) "
            "AND type = ? AND ts >= ? AND json_extract(data, '$.source_repo') = ?",
            (EventType.TASK_CREATED, since_ts, source_repo))
        return int(rows[0][0]) if rows else 0

    async def counts(self) -> dict[str, int]:
        rows = await self.query("SELECT state, COUNT(*) FROM tasks GROUP BY state")
        return {str(r[0]): int(r[1]) for r in rows}

    async def events_since(self, seq: int, limit: int | None = None) -> list[Event]:
        sql = "SELECT seq, ts, task_id, type, data, key FROM events WHERE seq > ? ORDER BY seq"
        args: tuple[Any, ...] = (seq,)
        if limit is not None:
            sql += " LIMIT ?"
            args = (seq, limit)
        return [_row_event(r) for r in await self.query(sql, args)]

    async def task_events(self, task_id: int) -> list[Event]:
        return [_row_event(r) for r in await self.query(
            "SELECT seq, ts, task_id, type, data, key FROM events WHERE task_id = ? ORDER BY seq",
            (task_id,))]

    async def last_seq(self) -> int:
        rows = await self.query("SELECT COALESCE(MAX(seq), 0) FROM events")
        return int(rows[0][0]) if rows else 0

    async def schema_version(self) -> int:
        rows = await self.query("SELECT value FROM meta WHERE key = 'schema_version'")
        return int(rows[0][0]) if rows else 0

    async def replay(self) -> dict[int, Task]:
        """Fold every event from scratch."""
        async with self._read_lock:
            return await self._replay()

    async def _replay(self) -> dict[int, Task]:
        tasks: dict[int, Task] = {}
        rows = await self.reader.execute_fetchall(
            "SELECT seq, ts, task_id, type, data, key FROM events ORDER BY seq")
        for row in rows:
            apply(tasks, _row_event(row))
        return tasks

    async def replay_differences(self) -> list[str]:
        """Compare the stored projections with a replay of the events; [] when they agree exactly."""
        # One read transaction: events and projections come from the same snapshot even while others write.
        async with self._read_lock:
            try:
                await _through(self.reader.execute("BEGIN"))
            except asyncio.CancelledError:
                # A reader left inside a transaction would see this snapshot for ever.
                await _through(self.reader.execute("COMMIT"))
                raise
            try:
                return await self._replay_differences()
            finally:
                await _through(self.reader.execute("COMMIT"))

    async def _replay_differences(self) -> list[str]:
        expected: dict[str, list[tuple[Any, ...]]] = {name: [] for name in PROJECTION_TABLES}
        for task in (await self._replay()).values():
            for name, rows in projection_rows(task).items():
                expected[name].extend(rows)
        problems: list[str] = []
        for name, sql in PROJECTION_TABLES.items():
            actual = [tuple(r) for r in await self.reader.execute_fetchall(sql)]
            want = sorted(expected[name], key=lambda r: tuple(str(x) for x in r))
            have = sorted(actual, key=lambda r: tuple(str(x) for x in r))
            if want != have:
                wanted = {r[0:2] for r in want}
                had = {r[0:2] for r in have}
                problems.append(
                    f"projection {name} differs from the event replay ({len(have)} rows stored, {len(want)} "
                    f"replayed; keys only stored: {sorted(had - wanted)[:5]}, only replayed: "
                    f"{sorted(wanted - had)[:5]}, changed rows: {len([r for r in have if r not in want])})"
                )
        return problems

    async def rebuild(self) -> int:
        """Rewrite every projection from the events; returns the number of tasks."""
        async with self.tx() as tx:
            tasks: dict[int, Task] = {}
            for event in await tx.events_since(0):
                apply(tasks, event)
            for table in PROJECTION_TABLES:
                await self.db.execute(f"DELETE FROM {table}")
            for task in tasks.values():
                tx._rows[task.id] = {}
                await tx._write(task)
        return len(tasks)
