"""A task's title from its description."""

from __future__ import annotations

from cockpit.core.classifier import (
    make_title,
)

# --------------------------------------------------------------------------------------------------------
# Titles and the prompt
# --------------------------------------------------------------------------------------------------------


def test_make_title() -> None:
    assert make_title("  fix   typo in README  ") == "fix typo in README"
    assert make_title("\n\nfirst line\nsecond line") == "first line"
    long = "add " + " ".join(f"word{i}" for i in range(40))
    title = make_title(long)
    assert len(title) <= 72
    assert title.endswith("…")
    assert long.startswith(title[:-1])
    assert title[:-1].split()[-1] in long.split()  # cut on a word boundary
    assert len(make_title("x" * 200)) <= 72
    assert make_title("") == "(untitled)"
