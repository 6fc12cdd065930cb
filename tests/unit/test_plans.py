"""The plan file: what a reviewer reads, written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from cockpit.core.classifier import (
    classify_heuristic,
)
from cockpit.core.errors import UsageError
from cockpit.core.models import Classification, PlanStep
from cockpit.core.plans import render_plan, write_plan
from tests.unit.classifier.cases import DESCRIPTION, PEERS

# --------------------------------------------------------------------------------------------------------
# The plan file
# --------------------------------------------------------------------------------------------------------


def test_render_plan_shows_everything_a_reviewer_needs() -> None:
    c = classify_heuristic(DESCRIPTION, PEERS)
    c.classifier, c.fallback_reason = "heuristic", "classifier command timed out after 2.0s"
    text = render_plan(7, c.title, DESCRIPTION, c, answers=["CSV only"])
    assert text.startswith(f"# Task 7: {c.title}\n")
    assert "Scope: **large**" in text
    assert "Classifier: heuristic (fallback: classifier command timed out after 2.0s)" in text
    assert f"Reason: {c.reason}" in text
    assert f"> {DESCRIPTION}" in text
    assert "1. **add**: Add /export endpoint" in text
    assert "3. **delegate** → frontend: Update the frontend client _(depends on 1)_" in text
    assert "4. **verify**: " in text and "_(depends on 1, 2, 3)_" in text
    assert "## Answers\n\n1. CSV only" in text
    assert text.endswith("\n")


def test_render_plan_for_ambiguous_and_rejected_tasks() -> None:
    c = classify_heuristic("improve things", PEERS)
    text = render_plan(3, c.title, "improve things", c)
    assert "## Questions\n\n1. " in text
    assert "needs answers" in text
    assert "## Answers" not in text
    r = classify_heuristic("rm -rf /", PEERS)
    assert "the task is rejected" in render_plan(4, r.title, "rm -rf /", r)


def test_render_plan_keeps_multiline_text_in_its_place() -> None:
    c = Classification("small", "one change.", "t", [PlanStep(1, "modify", "line one\n# not a heading")])
    text = render_plan(1, "t", "first\n# also not a heading", c)
    assert "\n# not a heading" not in text
    assert "> # also not a heading" in text
    assert "1. **modify**: line one # not a heading" in text


def test_write_plan_writes_atomically_and_replaces(tmp_path: Path) -> None:
    plans_dir = tmp_path / ".cockpit" / "plans"
    path = write_plan(plans_dir, 12, "first\n")
    assert path == plans_dir / "task-12.md"
    assert path.read_text() == "first\n"
    assert write_plan(plans_dir, 12, "second\n") == path
    assert path.read_text() == "second\n"
    assert sorted(p.name for p in plans_dir.iterdir()) == ["task-12.md"]  # no temporary files left


@pytest.mark.parametrize("bad", [0, -1])
def test_write_plan_refuses_bad_ids(tmp_path: Path, bad: int) -> None:
    with pytest.raises(UsageError):
        write_plan(tmp_path, bad, "x")
