"""The scripts the seeded demo tasks run: each a valid script-agent script doing what its role needs."""

from __future__ import annotations

from cockpit.core.script_agent import parse_script
from cockpit.demo import scripts, workspace


def test_every_seeded_script_parses_and_commits() -> None:
    assert [role for role, _, _ in scripts.SEEDED] == ["delegating", "asking", "review", "merged", "failed"]
    for role, description, text in scripts.SEEDED:
        parsed = parse_script(text, source=role)
        kinds = [a.kind for a in parsed.steps]
        assert description.strip(), role
        assert kinds[-1] == "commit", role
        assert all(not a.path.startswith("/") for a in parsed.steps if a.kind == "write"), role


def test_the_asking_task_asks_and_the_failing_one_has_a_fix_that_still_fails() -> None:
    asking = parse_script(dict((r, t) for r, _, t in scripts.SEEDED)["asking"])
    assert "ask" in [a.kind for a in asking.steps]
    failed = parse_script(dict((r, t) for r, _, t in scripts.SEEDED)["failed"])
    assert failed.fix, "the fix round is what the failed task shows running out"
    # The fix formats with two decimals but no thousands separator: the test's "$1,234.50" still fails.
    fixed = next(a.content for a in failed.fix if a.kind == "write")
    assert ":.2f" in fixed and ",.2f" not in fixed


def test_the_scripts_run_the_tests_with_this_python() -> None:
    runs = [a.text for _, _, t in scripts.SEEDED for a in parse_script(t).steps if a.kind == "run"]
    assert runs and all(r.startswith(workspace.PYTHON + " -m unittest") for r in runs)
