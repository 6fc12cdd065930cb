"""Listening to the agents: signal files (exits, done, turns, questions) and their panes' output."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from cockpit.core import filewatch
from cockpit.core.errors import CockpitError, TmuxError
from cockpit.core.events import EventType
from cockpit.core.execution_ops import died_signal_path
from cockpit.core.models import JSON
from cockpit.core.needs_input import clean_lines
from cockpit.core.signals import Signal, read_signals
from cockpit.core.states import State
from cockpit.daemon.runs import (
    _DIED,
    _TASK_LOG,
    CAPTURE_GAP_S,
    CAPTURE_LINES,
    CONFIRM_DELAY_S,
    LOG_DEBOUNCE_MS,
    MAX_MESSAGE,
    MAX_PROGRESS,
    PROGRESS_INTERVAL_S,
    SIGNAL_DEBOUNCE_MS,
    ExecutorBase,
    Run,
)

log = logging.getLogger("cockpit.daemon.execution")


class AgentSignals(ExecutorBase):
    """What the agents tell: signal files, the panes' output, needs-input and progress."""

    # -- signals ---------------------------------------------------------------------------------------------

    async def _watch_signals(self, armed: asyncio.Event) -> None:
        def interesting(change: filewatch.Change, path: str) -> bool:
            name = Path(path).name
            return (
                change != filewatch.Change.deleted and not name.startswith(".") and not name.endswith(".tmp")
            )

        changes = filewatch.awatch(self.paths.signals, watch_filter=interesting,
                                   stop_event=self.daemon.stopping,
                                   debounce=SIGNAL_DEBOUNCE_MS, recursive=True)
        nxt = asyncio.ensure_future(changes.__anext__())
        await asyncio.sleep(0)  # the watcher is armed once awatch reaches its first wait
        armed.set()
        try:
            await self._drain_signals()  # what was written while nobody watched
            while True:
                try:
                    await nxt
                except StopAsyncIteration:
                    return
                nxt = asyncio.ensure_future(changes.__anext__())
                await self._drain_signals()
        finally:
            await filewatch.close_watch(nxt, changes)

    async def _drain_signals(self) -> None:
        signals, died = await asyncio.to_thread(self._read_signal_files)
        for signal in signals:
            try:
                await self._on_signal(signal)
            except Exception:
                log.exception("signal %s of task %d not handled", signal.kind, signal.task_id)
        for task_id in died:
            run = self.runs.get(task_id)
            if run is not None and not run.exited:
                self._spawn_died(run)
            elif task_id not in self.active:
                # Stale: that run was settled already (a task being set up keeps its file for _open_pane).
                died_signal_path(self.paths.signals, task_id).unlink(missing_ok=True)

    def _read_signal_files(self) -> tuple[list[Signal], list[int]]:
        signals = read_signals(self.paths.signals)
        died: list[int] = []
        with contextlib.suppress(FileNotFoundError):
            for entry in (self.paths.signals / "died").iterdir():
                match = _DIED.match(entry.name)
                if match is not None:
                    died.append(int(match.group(1)))
        return signals, died

    def _spawn_died(self, run: Run, *, closed: bool = False) -> None:
        if run.dying or run.exited:
            return
        run.dying = True
        self.daemon.spawn(self._died(run, closed=closed), f"died-{run.task_id}")

    async def _on_signal(self, signal: Signal) -> None:
        task_id, data = signal.task_id, signal.data
        run = self.runs.get(task_id)
        if signal.kind == "needs_input":
            source = "hook" if data.get("source") == "hook" else "agent"
            await self.set_needs_input(task_id, {**data, "source": source, "signal_ts": signal.ts})
        elif signal.kind == "resolved":
            if run is not None:
                run.turn_over.clear()  # the agent's hooks (a prompt submitted, a tool ran): it is mid-turn
            source = "hook" if data.get("source") == "hook" else "agent"
            await self.clear_needs_input(task_id, {**data, "source": source})
        elif signal.kind == "progress":
            if run is None or run.exited:
                return
            text = str(data.get("text", ""))
            if data.get("step") is not None and data.get("total") is not None:
                text = f"[{data['step']}/{data['total']}] {text}"
            await self._progress_event(
                run, text[:MAX_PROGRESS], {k: data[k] for k in ("step", "total", "phase") if k in data}
            )
        elif signal.kind == "exited":
            if run is None or run.exited:
                return
            if data.get("closed"):
                self._spawn_died(run, closed=True)
            elif isinstance(data.get("reason"), str):
                run.exit_reason = data["reason"]
        elif signal.kind == "done":
            await self.report_done(task_id, data)
        elif signal.kind == "turn_ended":
            await self._turn_ended(task_id, data)

    async def report_done(self, task_id: int, data: JSON) -> bool:
        """The agent says its work is done: record agent.done (the gates follow, see _on_done)."""
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return False
            if task.state is not State.EXECUTING or task.agent_status == "done":
                return False
            event: JSON = {"by": "agent", "attempt": task.attempt, "source": data.get("source", "hook")}
            if data.get("message"):
                event["message"] = str(data["message"])[:MAX_MESSAGE]
            await tx.append(task_id, EventType.AGENT_DONE, event)
        # Straight to the gates (the bus's copy of the event finds the task gating and does nothing).
        self.daemon.spawn(self._locked(task_id, self._on_done(task_id)), f"done-{task_id}")
        return True

    async def _turn_ended(self, task_id: int, data: JSON) -> None:
        """An agent's turn is over: without a done report it now waits for a person (needs_input)."""
        run = self.runs.get(task_id)
        if run is not None:
            run.turn_over.set()
            self.daemon.spawn(self._record_usage(run, data), f"usage-{task_id}")
        if data.get("event") == "SessionEnd":
            return  # the agent is exiting; its exit settles the run
        message = str(data.get("message") or "").strip()[:MAX_MESSAGE]
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return
            if task.state is not State.EXECUTING or task.agent_status in ("done", "exited"):
                return
            turn: JSON = {"attempt": task.attempt, "source": data.get("source", "hook")}
            for key in ("message", "event"):
                if data.get(key):
                    turn[key] = message if key == "message" else data[key]
            await tx.append(task_id, EventType.AGENT_TURN_ENDED, turn)
            if not task.needs_input:
                reason = message or "the agent ended its turn without reporting done"
                await tx.append(
                    task_id,
                    EventType.AGENT_NEEDS_INPUT,
                    {"source": "turn_ended", "message": reason, "event": data.get("event")},
                )

    async def set_needs_input(self, task_id: int, data: JSON) -> bool:
        """Raise the needs_input flag (once); False when it was up already or the agent is not running."""
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return False
            over = task.agent_status in ("exited", "done")
            if task.state is not State.EXECUTING or task.needs_input or over:
                return False
            await tx.append(task_id, EventType.AGENT_NEEDS_INPUT, data)
        return True

    async def clear_needs_input(self, task_id: int, data: JSON) -> bool:
        async with self.store.tx() as tx:
            try:
                task = await tx.get_task(task_id)
            except CockpitError:
                return False
            if not task.needs_input or task.state is not State.EXECUTING:
                return False
            await tx.append(task_id, EventType.AGENT_INPUT_RESOLVED, data)
        return True

    # -- the panes' output -----------------------------------------------------------------------------------

    async def _watch_logs(self, armed: asyncio.Event) -> None:
        def interesting(change: filewatch.Change, path: str) -> bool:
            return change != filewatch.Change.deleted and _TASK_LOG.match(Path(path).name) is not None

        changes = filewatch.awatch(self.paths.logs, watch_filter=interesting, stop_event=self.daemon.stopping,
                                   debounce=LOG_DEBOUNCE_MS)
        nxt = asyncio.ensure_future(changes.__anext__())
        await asyncio.sleep(0)
        armed.set()
        try:
            while True:
                try:
                    batch = await nxt
                except StopAsyncIteration:
                    return
                nxt = asyncio.ensure_future(changes.__anext__())
                for _change, path in batch:
                    match = _TASK_LOG.match(Path(path).name)
                    run = self.runs.get(int(match.group(1))) if match else None
                    if run is not None and not run.exited:
                        self._want_capture(run)
        finally:
            await filewatch.close_watch(nxt, changes)

    def _want_capture(self, run: Run, delay: float | None = None) -> None:
        """Capture the pane soon: at most one capture in flight and one every CAPTURE_GAP_S per pane."""
        if run.exited or self._stopped:
            return
        if run.capturing:
            run.dirty = True
            if delay is None:
                return
        loop = asyncio.get_running_loop()
        now = loop.time()
        wait = max(0.0, run.last_capture + CAPTURE_GAP_S - now) if delay is None else delay
        if run.capture_handle is not None:
            if run.capture_at <= now + wait:
                return  # an earlier capture is already due
            run.capture_handle.cancel()
        run.capture_at = now + wait
        run.capture_handle = loop.call_later(wait, self._capture_due, run)

    def _capture_due(self, run: Run) -> None:
        run.capture_handle = None
        if run.exited or self._stopped:
            return
        if run.capturing:
            run.dirty = True
            return
        run.capturing = True
        self.daemon.spawn(self._capture(run), f"capture-{run.task_id}")

    async def _capture(self, run: Run) -> None:
        try:
            lines = await asyncio.to_thread(run.panes.capture, run.pane, CAPTURE_LINES)
        except (TmuxError, OSError):
            lines = None
        finally:
            run.capturing = False
            run.last_capture = asyncio.get_running_loop().time()
        if run.exited or lines is None or run.detector is None:
            return
        detector = run.detector
        verdict = detector.feed(lines)
        if verdict is True:
            await self.set_needs_input(run.task_id, {"source": "pattern", "line": detector.last_match})
        elif verdict is False:
            await self.clear_needs_input(run.task_id, {"source": "pattern"})
        elif detector.last_match is not None and not detector.waiting:
            self._want_capture(run, CONFIRM_DELAY_S)  # one confirming look
        if run.dirty:
            run.dirty = False
            self._want_capture(run)
        words = run.adapter.progress(clean_lines(lines, CAPTURE_LINES))
        if words:
            self._progress_line(run, words.strip()[:MAX_PROGRESS])

    def _progress_line(self, run: Run, text: str) -> None:
        """Latest output line as agent.progress, at most one per PROGRESS_INTERVAL_S (the last one lands)."""
        if not text or text == run.progress_sent:
            return
        run.progress_text = text
        if run.progress_handle is not None or run.progress_busy:
            return  # the one due (or the write in flight) takes the latest text
        loop = asyncio.get_running_loop()
        wait = run.progress_at + PROGRESS_INTERVAL_S - loop.time()
        if wait <= 0:
            self._flush_progress(run)
        else:
            run.progress_handle = loop.call_later(wait, self._flush_progress, run)

    def _flush_progress(self, run: Run) -> None:
        run.progress_handle = None
        text = run.progress_text
        if run.exited or text is None or text == run.progress_sent:
            return
        run.progress_sent = text
        run.progress_busy = True
        self.daemon.spawn(self._screen_progress(run, text), f"progress-{run.task_id}")

    async def _screen_progress(self, run: Run, text: str) -> None:
        try:
            await self._progress_event(run, text, {"source": "screen"})
        finally:
            # The interval counts from the write: a slow store never lets two events land closer together.
            run.progress_busy = False
            loop = asyncio.get_running_loop()
            run.progress_at = loop.time()
            if not run.exited and run.progress_text not in (None, run.progress_sent):
                run.progress_handle = loop.call_later(PROGRESS_INTERVAL_S, self._flush_progress, run)

    async def _progress_event(self, run: Run, text: str, extra: JSON) -> None:
        async with self.store.tx() as tx:
            task = await tx.get_task(run.task_id)
            if task.state is State.EXECUTING and not run.exited:
                await tx.append(run.task_id, EventType.AGENT_PROGRESS, {"text": text, **extra})
