"""Mark each test with what it needs, read from the fixtures it asks for, so `-m "not tmux"` or
`-m "not daemon"` selects by need wherever the test lives (the markers are registered in pyproject.toml)."""

from __future__ import annotations

import pytest

# A fixture a test asks for (directly or through another fixture) -> the marker that says what it needs.
NEEDS: dict[str, str] = {
    "tmux_socket": "tmux",
    "tmux_panes": "tmux",
    "daemons": "daemon",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker in sorted({NEEDS[name] for name in names & NEEDS.keys()}):
            item.add_marker(marker)
