"""Token usage as the cockpit shows it: a task's runs, a repo's tasks, the day's work, in a few characters."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from cockpit.core.models import RunUsage


@dataclass(frozen=True)
class Usage:
    """Tokens in and out, and the cost where every agent that ran reported one (None: not known)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    runs: int = 0

    @classmethod
    def of_runs(cls, runs: Iterable[RunUsage]) -> Usage:
        """A task's usage: the sum of its runs' last readings (as the task JSON's `usage` totals them)."""
        return cls.total(cls(r.input_tokens, r.output_tokens, r.cost_usd, 1) for r in runs)

    @classmethod
    def total(cls, parts: Iterable[Usage]) -> Usage:
        tokens_in = tokens_out = runs = 0
        cost: float | None = None
        for part in parts:
            tokens_in += part.input_tokens
            tokens_out += part.output_tokens
            runs += part.runs
            if part.cost_usd is not None:
                cost = (cost or 0.0) + part.cost_usd
        return cls(tokens_in, tokens_out, cost, runs)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __bool__(self) -> bool:
        return self.runs > 0


def tokens_text(count: int) -> str:
    """950, 12.3k, 4.56M: three significant figures at most."""
    if count < 1000:
        return str(count)
    for size, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1000, "k")):
        if count >= size:
            value = count / size
            digits = 2 if value < 10 else 1 if value < 100 else 0
            return f"{value:.{digits}f}".rstrip("0").rstrip(".") + suffix
    return str(count)  # pragma: no cover - the loop always returns


def cost_text(cost: float | None) -> str:
    if cost is None:
        return ""
    return f"${cost:.2f}" if cost >= 0.01 or cost == 0 else "<$0.01"


def short_text(usage: Usage) -> str:
    """'12.3k tokens $0.40' for the bar (cost left out when no agent reported it)."""
    parts = [f"{tokens_text(usage.tokens)} tokens"]
    if usage.cost_usd is not None:
        parts.append(cost_text(usage.cost_usd))
    return " ".join(parts)


def long_text(usage: Usage) -> str:
    """'12.3k in · 800 out tokens · $0.40 · 2 runs' for a task's detail."""
    text = f"{tokens_text(usage.input_tokens)} in · {tokens_text(usage.output_tokens)} out tokens"
    if usage.cost_usd is not None:
        text += f" · {cost_text(usage.cost_usd)}"
    if usage.runs > 1:
        text += f" · {usage.runs} runs"
    return text


def day_start(now: float) -> float:
    """Local midnight before `now`."""
    local = time.localtime(now)
    return time.mktime((local.tm_year, local.tm_mon, local.tm_mday, 0, 0, 0, 0, 0, -1))
