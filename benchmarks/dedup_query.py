"""Benchmark: DedupIndex.find_duplicate latency at 1,000 and 10,000 active tasks.

Run from the repo root: `.venv/bin/python benchmarks/dedup_query.py`. Prints one JSON object.
Queries are half reworded copies of indexed tasks (the hit path, all layers that are needed) and half
unseen tasks (the miss path, every layer runs), which is the realistic mix for task creation.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cockpit.core.dedup import DedupIndex
from cockpit_testkit.dedup_pairs import distractor_tasks

QUERIES = 500
WARMUP = 50
SIZES = (1_000, 10_000)
_FILLERS = ("please", "we should", "can we", "todo:", "")


def _reword(text: str, rng: random.Random) -> str:
    """A plausible re-filing of `text`: filler added, a word dropped or the clauses swapped."""
    words = text.split()
    move = rng.randrange(3)
    if move == 0 and len(words) > 4:
        del words[rng.randrange(1, len(words))]
    elif move == 1:
        words = words[len(words) // 2 :] + words[: len(words) // 2]
    return " ".join([rng.choice(_FILLERS), *words]).strip()


def _percentile(sorted_ms: list[float], q: float) -> float:
    index = min(len(sorted_ms) - 1, max(0, round(q * (len(sorted_ms) - 1))))
    return sorted_ms[index]


def measure(size: int, seed: int = 7) -> dict[str, float]:
    rng = random.Random(seed)
    corpus = distractor_tasks(size + QUERIES, seed=99)
    indexed, unseen = corpus[:size], corpus[size:]
    index = DedupIndex()
    started = time.perf_counter()
    for task_id, text in enumerate(indexed, start=1):
        index.add(task_id, text)
    build_s = time.perf_counter() - started
    queries = [_reword(rng.choice(indexed), rng) if i % 2 == 0 else unseen[i] for i in range(QUERIES)]
    for text in queries[:WARMUP]:
        index.find_duplicate(text)
    timings: list[float] = []
    hits = 0
    for text in queries:
        t0 = time.perf_counter()
        match = index.find_duplicate(text)
        timings.append((time.perf_counter() - t0) * 1000.0)
        hits += match is not None
    timings.sort()
    return {
        "p50_ms": round(_percentile(timings, 0.50), 4),
        "p99_ms": round(_percentile(timings, 0.99), 4),
        "max_ms": round(timings[-1], 4),
        "build_ms": round(build_s * 1000.0, 1),
        "hit_rate": round(hits / QUERIES, 3),
    }


def main() -> None:
    results = {size: measure(size) for size in SIZES}
    small, large = results[SIZES[0]], results[SIZES[1]]
    print(
        json.dumps(
            {
                "name": "dedup_query",
                "value": large["p99_ms"],
                "unit": "ms",
                "params": {
                    "sizes": list(SIZES),
                    "queries": QUERIES,
                    "query_mix": "50% reworded indexed tasks, 50% unseen tasks",
                    "python": sys.version.split()[0],
                    "build_ms_1k": small["build_ms"],
                    "build_ms_10k": large["build_ms"],
                    "hit_rate_1k": small["hit_rate"],
                    "hit_rate_10k": large["hit_rate"],
                    "max_ms_10k": large["max_ms"],
                },
                "p50_ms_1k": small["p50_ms"],
                "p99_ms_1k": small["p99_ms"],
                "p50_ms_10k": large["p50_ms"],
                "p99_ms_10k": large["p99_ms"],
            }
        )
    )


if __name__ == "__main__":
    main()
