"""Running a classifier command: its own process group, the prompt on stdin, capped output, a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path
from typing import Any

from cockpit.core.classifier.schema import Unusable
from cockpit.core.processes import kill_group

MAX_OUTPUT_BYTES = 1024 * 1024
_STDERR_TAIL = 8192
_STRAGGLER_GRACE_S = 0.5


def _kill_group(pid: int) -> None:
    # SIGKILL at once: a classifier holds no state worth a graceful exit. The group is killed before its
    # leader is reaped, or while a member of it still holds the output open, so the id is still the group's.
    kill_group(pid, signal.SIGKILL)


async def _read_capped(stream: asyncio.StreamReader, buffer: bytearray, limit: int) -> None:
    """Read into `buffer` until EOF, or until it holds more than `limit` bytes."""
    while len(buffer) <= limit:
        chunk = await stream.read(65536)
        if not chunk:
            return
        buffer += chunk


async def _read_tail(stream: asyncio.StreamReader) -> bytes:
    tail = b""
    while True:
        chunk = await stream.read(65536)
        if not chunk:
            return tail
        tail = (tail + chunk)[-_STDERR_TAIL:]


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    try:
        stdin.write(data)
        await stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command does not read stdin (it took {prompt} as an argument): fine
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            stdin.close()


def _last_line(data: bytes | bytearray) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


class _ExitAwareProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol plus a future set when the process exits.

    `Process.wait()` also waits for the pipes to close, so a child the command left holding its output would
    look like a hang; this tells the two apart.
    """

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.exited: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def process_exited(self) -> None:
        super().process_exited()
        if not self.exited.done():
            self.exited.set_result(None)


async def _spawn(argv: list[str], cwd: Path | None) -> tuple[asyncio.subprocess.Process, _ExitAwareProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitAwareProtocol(limit=2**16, loop=loop),
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        start_new_session=True,  # its own process group: a timeout kills it and everything it started
    )
    return asyncio.subprocess.Process(transport, protocol, loop), protocol


async def run_command(argv: list[str], prompt: str, timeout_s: float, cwd: Path | None) -> str:
    """Run the command with `prompt` on stdin; return its stdout, or raise Unusable saying what went wrong."""
    name = argv[0]
    try:
        proc, protocol = await _spawn(argv, cwd)
    except FileNotFoundError:
        if cwd is not None and not await asyncio.to_thread(os.path.isdir, cwd):
            raise Unusable(f"classifier command cannot run: working directory {cwd} does not exist") from None
        raise Unusable(f"classifier command not found: {name}") from None
    except PermissionError:
        raise Unusable(f"classifier command is not executable: {name}") from None
    except OSError as exc:
        raise Unusable(f"classifier command could not start: {name}: {exc.strerror or exc}") from None

    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    feeder = asyncio.create_task(_feed(proc.stdin, prompt.encode("utf-8")))
    out_task = asyncio.create_task(_read_capped(proc.stdout, out, MAX_OUTPUT_BYTES))
    err_task = asyncio.create_task(_read_tail(proc.stderr))
    too_much = f"classifier command printed more than {MAX_OUTPUT_BYTES // 1024} KiB"
    try:
        async with asyncio.timeout(timeout_s):
            # Whichever comes first: the command exits, or its output closes (or overflows: then stop).
            first: set[asyncio.Future[Any]] = {protocol.exited, out_task}
            await asyncio.wait(first, return_when=asyncio.FIRST_COMPLETED)
            if len(out) > MAX_OUTPUT_BYTES:
                raise Unusable(too_much)
            await protocol.exited
            if not (out_task.done() and err_task.done()):
                # The command exited but something it started still holds its output open: a moment's
                # grace, then the rest of its process group goes; if even that does not close the output
                # (a process that left the group), what was printed so far is the answer.
                await asyncio.wait({out_task, err_task}, timeout=_STRAGGLER_GRACE_S)
                if not (out_task.done() and err_task.done()):
                    _kill_group(proc.pid)
                    await asyncio.wait({out_task, err_task}, timeout=_STRAGGLER_GRACE_S)
            if len(out) > MAX_OUTPUT_BYTES:
                raise Unusable(too_much)
            err = err_task.result() if err_task.done() else b""
    except TimeoutError:
        raise Unusable(f"classifier command timed out after {float(timeout_s)}s") from None
    finally:
        if not protocol.exited.done() or not (out_task.done() and err_task.done()):
            _kill_group(proc.pid)  # timed out, cancelled, or a straggler still holds the output
        for task in (feeder, out_task, err_task):
            task.cancel()
        await asyncio.gather(feeder, out_task, err_task, return_exceptions=True)
        if not protocol.exited.done():
            # The child watcher reaps the killed command (no zombie); not `proc.wait()`, which would also
            # wait for pipes that a process outside the group may still hold.
            await asyncio.wait({protocol.exited}, timeout=5.0)
        if protocol.transport is not None:
            protocol.transport.close()

    code = proc.returncode
    assert code is not None

    if code < 0:
        raise Unusable(f"classifier command was killed by signal {-code}")
    if code != 0:
        detail = _last_line(err) or _last_line(out)
        raise Unusable(f"classifier command exited with status {code}" + (f": {detail}" if detail else ""))
    return bytes(out).decode("utf-8", "replace")
