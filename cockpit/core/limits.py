"""Size and rate limits on what any party may hand the cockpit: text, numbers, pages, requests.

Every intake (socket, CLI, MCP, a peer's fallback write into the store) checks text with `check_text`, so a
peer cannot fill a repo, and numbers with `seconds`, so NaN or infinity never reaches a timer.
"""

from __future__ import annotations

import math
from typing import Any

from cockpit.core.errors import UsageError

__all__ = ["MAX_TEXT_BYTES", "check_text", "seconds"]

MAX_TEXT_BYTES = 64 * 1024  # a task's description, an answer, a script, a message


def check_text(text: str, what: str = "the task description") -> str:
    """`text`, or a usage error when its UTF-8 form is over `MAX_TEXT_BYTES`."""
    if len(text) * 4 > MAX_TEXT_BYTES:  # cheap first: most text is far below the cap
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_TEXT_BYTES:
            raise UsageError(
                f"{what} is {size} bytes, over the {MAX_TEXT_BYTES // 1024} KiB limit; shorten it, or put "
                "the detail in a file of the repo and refer to it",
                code="too_large",
            )
    return text


def seconds(value: Any, name: str, default: float | None = None) -> float | None:
    """A number of seconds (0 or more, finite), or `default` when absent; a usage error otherwise."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a finite number of seconds, 0 or more (not {value!r})",
                         code="bad_request")
    return float(value)
