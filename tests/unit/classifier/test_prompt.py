"""The prompt an external classifier command is given."""

from __future__ import annotations

from cockpit.core.classifier import (
    build_prompt,
)
from cockpit.core.models import SCOPES, VERBS
from tests.unit.classifier.cases import PEERS


def test_build_prompt_names_the_task_the_peers_the_schema_and_the_answers() -> None:
    prompt = build_prompt("add /export", PEERS, repo_name="backend", answers=["CSV only"])
    assert "add /export" in prompt
    assert "<peer_repos>\nfrontend\ndocs\n</peer_repos>" in prompt
    assert '"backend"' in prompt
    assert "CSV only" in prompt
    for word in (*SCOPES, *VERBS, "depends_on", "questions", '"peer"'):
        assert word in prompt
    assert "(none)" in build_prompt("x", [])
