"""The `setup` fixture of the engine tests: a real repo with main checked out and a task worktree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.merge.setups import BASE_FILES, Setup


@pytest.fixture
def setup(repo_factory: Callable[..., Path], short_tmp: Path) -> Setup:
    return Setup(repo_factory("repo", files=BASE_FILES), short_tmp)
