"""Wait for a condition instead of sleeping: tests stay fast when things are quick and patient when not."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _failure(message: str, timeout: float, last: object) -> AssertionError:
    detail = message or "condition not met"
    return AssertionError(f"{detail} (waited {timeout:g}s; last value: {last!r})")


def wait_until(
    predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.02, message: str = ""
) -> T:
    """Call `predicate` until it returns something truthy and return that; AssertionError after `timeout`.

    Exceptions from the predicate propagate at once: a predicate that can fail early should say so itself.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value)
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T | Awaitable[T]],
    timeout: float = 10.0,  # noqa: ASYNC109 - same signature as wait_until; a deadline, not a cancel
    interval: float = 0.02,
    message: str = "",
) -> T:
    """`wait_until` for async tests: yields to the event loop between tries (the predicate may be async)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise _failure(message, timeout, value)
        await asyncio.sleep(interval)
