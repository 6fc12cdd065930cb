"""The built-in heuristic: scopes, peers, verbs, clarification rounds, determinism."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.core.classifier import (
    classify_heuristic,
    parse_classification,
)
from tests.unit.classifier.cases import DESCRIPTION, PEERS, assert_valid

# --------------------------------------------------------------------------------------------------------
# The heuristic: the three cases the issue names
# --------------------------------------------------------------------------------------------------------


def test_fix_typo_in_readme_is_small_with_one_step() -> None:
    c = classify_heuristic("fix typo in README", PEERS)
    assert c.scope == "small"
    assert len(c.plan) == 1
    assert c.plan[0].n == 1
    assert c.plan[0].verb == "modify"
    assert "README" in c.plan[0].description
    assert c.classifier == "heuristic"
    assert c.fallback_reason is None
    assert_valid(c, PEERS)


def test_naming_a_peer_is_large_with_a_delegate_step_to_it() -> None:
    c = classify_heuristic("add /export endpoint and update the frontend client", PEERS)
    assert c.scope == "large"
    assert "frontend" in c.reason
    delegates = [s for s in c.plan if s.verb == "delegate"]
    assert [s.peer for s in delegates] == ["frontend"]
    assert "frontend client" in delegates[0].description
    assert "/export" not in delegates[0].description  # the peer gets its part of the text
    local = [s for s in c.plan if s.verb in ("add", "modify", "delete")]
    assert local and "/export" in local[0].description and local[0].verb == "add"
    assert any(s.verb == "test" for s in c.plan)
    verify = c.plan[-1]
    assert verify.verb == "verify"
    assert delegates[0].n in verify.depends_on
    assert all(s.n in verify.depends_on for s in local)
    assert [s.n for s in c.plan] == list(range(1, len(c.plan) + 1))
    assert_valid(c, PEERS)


def test_vague_description_is_ambiguous_with_a_question() -> None:
    c = classify_heuristic("improve things", PEERS)
    assert c.scope == "ambiguous"
    assert 1 <= len(c.questions) <= 3
    assert all(q.endswith(("?", ".")) for q in c.questions)
    assert c.plan == []
    assert_valid(c, PEERS)


@pytest.mark.parametrize(
    "text", ["make it better", "fix stuff", "clean up", "Clean up the code", "refactor everything", "README"]
)
def test_other_vague_descriptions_are_ambiguous(text: str) -> None:
    c = classify_heuristic(text, PEERS)
    assert c.scope == "ambiguous", c
    assert c.questions


def test_questions_are_concrete() -> None:
    c = classify_heuristic("improve things", PEERS)
    text = " ".join(c.questions)
    assert "improve" in text  # asks what the vague word means
    assert "frontend" in text and "docs" in text  # asks whether a peer is involved


# --------------------------------------------------------------------------------------------------------
# The heuristic: peers, scopes, verbs
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "update frontendish code in utils.py",
        "fix the frontend-build script",
        "fix typo in docs/api.md",
        "rename frontend.py to web.py",
        "update the documentation of the parser",
        "add a backfrontend adapter",
    ],
)
def test_a_peer_name_inside_another_word_or_path_does_not_count(text: str) -> None:
    c = classify_heuristic(text, PEERS)
    assert all(s.verb != "delegate" for s in c.plan), c.plan
    assert "peer" not in c.reason


@pytest.mark.parametrize(
    ("text", "peer"),
    [
        ("update the FRONTEND client to use /v2", "frontend"),
        ("the Frontend app is broken on login", "frontend"),
        ("describe the new flag in the docs repo", "docs"),
    ],
)
def test_peer_match_is_whole_word_and_case_insensitive(text: str, peer: str) -> None:
    c = classify_heuristic(text, PEERS)
    assert c.scope == "large"
    assert [s.peer for s in c.plan if s.verb == "delegate"] == [peer]


def test_two_peers_get_one_delegate_step_each() -> None:
    text = "add the /export endpoint, update the frontend client and document it in docs"
    c = classify_heuristic(text, PEERS)
    assert c.scope == "large"
    assert [s.peer for s in c.plan if s.verb == "delegate"] == ["frontend", "docs"]
    assert_valid(c, PEERS)


def test_hyphenated_peer_names_match_as_words() -> None:
    c = classify_heuristic("update the web-app login page", ["web-app"])
    assert [s.peer for s in c.plan if s.verb == "delegate"] == ["web-app"]
    c = classify_heuristic("update the web app login page", ["web-app"])
    assert [s.peer for s in c.plan if s.verb == "delegate"] == ["web-app"]


@pytest.mark.parametrize(
    ("text", "verb"),
    [
        ("rename foo to bar in utils.py", "modify"),
        ("bump version", "modify"),
        ("fix the crash in the parser on empty input", "modify"),
        ("add a --verbose flag to the cli", "add"),
        ("create a CONTRIBUTING.md file", "add"),
        ("please remove the unused helper in utils.py", "delete"),
        ("drop the legacy_mode option from cli.py", "delete"),
        ("write tests for the parser", "test"),
        ("typo in README", "modify"),
    ],
)
def test_small_single_changes_get_one_step_with_a_derived_verb(text: str, verb: str) -> None:
    c = classify_heuristic(text, PEERS)
    assert c.scope == "small", c
    assert [s.verb for s in c.plan] == [verb]
    assert_valid(c, PEERS)


def test_a_change_and_its_test_stay_small() -> None:
    c = classify_heuristic("fix the parser crash on empty input and add a regression test", PEERS)
    assert c.scope == "small"
    assert [s.verb for s in c.plan] == ["modify", "test"]
    assert c.plan[1].depends_on == [1]


def test_short_verbless_pieces_stay_with_their_clause() -> None:
    c = classify_heuristic("fix typo in README and CHANGELOG", PEERS)
    assert c.scope == "small"
    assert [s.description for s in c.plan] == ["Fix typo in README and CHANGELOG"]


@pytest.mark.parametrize(
    "text",
    [
        "refactor the auth module",
        "migrate the settings loader to tomlkit",
        "rewrite the scheduler",
        "rename the id field across all endpoints",
        "add request logging to every endpoint",
    ],
)
def test_wide_keywords_make_a_large_plan(text: str) -> None:
    c = classify_heuristic(text, PEERS)
    assert c.scope == "large", c
    assert c.plan[-1].verb == "verify"
    assert any(s.verb == "test" for s in c.plan)
    assert c.plan[-1].depends_on == [s.n for s in c.plan[:-1]]
    assert_valid(c, PEERS)


def test_clauses_in_different_areas_make_a_large_plan() -> None:
    c = classify_heuristic("add a login endpoint and update the users table schema", PEERS)
    assert c.scope == "large"
    assert [s.verb for s in c.plan] == ["add", "modify", "test", "verify"]
    assert c.plan[2].depends_on == [1, 2]


def test_three_separate_changes_make_a_large_plan() -> None:
    c = classify_heuristic("rename foo to bar, remove the baz helper and add a qux option to cli.py", PEERS)
    assert c.scope == "large"
    assert [s.verb for s in c.plan][:3] == ["modify", "delete", "add"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n  ",
        "delete the repository",
        "Delete this repo",
        "rm -rf /",
        "clean the build with rm -fr build/ and everything else",
        "force push to main",
        "git push --force origin main",
        "print the secrets to the log",
        "upload the API keys to pastebin",
        "commit the .env file",
        "drop the production database",
        "rewrite the git history to remove the author",
        "bypass the human approval for this one",
        "run git reset --hard on the checkout",
    ],
)
def test_destructive_or_empty_requests_are_rejected(text: str) -> None:
    c = classify_heuristic(text, PEERS)
    assert c.scope == "reject", c
    assert c.plan == []
    assert c.reason.endswith(".")
    assert_valid(c, PEERS)


@pytest.mark.parametrize(
    "text",
    ["delete the repository pattern class in store.py", "print the token count", "add a repository field"],
)
def test_harmless_lookalikes_are_not_rejected(text: str) -> None:
    assert classify_heuristic(text, PEERS).scope != "reject"


def test_reasons_are_one_sentence() -> None:
    for text in ["fix typo in README", DESCRIPTION, "improve things", "refactor the auth module", "rm -rf /"]:
        reason = classify_heuristic(text, PEERS).reason
        assert reason.count(". ") == 0 and reason.endswith("."), reason
        assert "\n" not in reason


# --------------------------------------------------------------------------------------------------------
# The heuristic: clarification rounds and determinism
# --------------------------------------------------------------------------------------------------------


def test_answers_turn_an_ambiguous_task_small() -> None:
    assert classify_heuristic("improve things", PEERS).scope == "ambiguous"
    c = classify_heuristic("improve things", PEERS, answers=["fix the typo in README"])
    assert c.scope == "small"
    assert [s.description for s in c.plan] == ["Fix the typo in README"]
    assert c.title == "improve things"  # the title stays the person's
    assert c.questions == []


def test_answers_turn_an_ambiguous_task_large() -> None:
    c = classify_heuristic(
        "make it better", PEERS, answers=["add a /export endpoint", "and the frontend client should use it"]
    )
    assert c.scope == "large"
    assert [s.peer for s in c.plan if s.verb == "delegate"] == ["frontend"]
    assert_valid(c, PEERS)


def test_a_bare_object_takes_its_action_from_the_answer() -> None:
    assert classify_heuristic("README", PEERS).scope == "ambiguous"
    c = classify_heuristic("README", PEERS, answers=["fix the broken install link"])
    assert c.scope == "small"
    assert c.plan[0].description == "Fix the broken install link (README)"
    c = classify_heuristic("improve things", PEERS, answers=["README"])
    assert c.plan[0].description == "Improve README"


def test_unhelpful_answers_keep_it_ambiguous() -> None:
    c = classify_heuristic("improve things", PEERS, answers=["yes", "only in this one"])
    assert c.scope == "ambiguous"
    assert "2 answers" in c.reason
    assert c.questions


def test_the_heuristic_is_deterministic() -> None:
    for text in ["fix typo in README", DESCRIPTION, "improve things"]:
        first = classify_heuristic(text, PEERS)
        second = classify_heuristic(text, list(PEERS))
        assert first == second
        assert first.to_json() == second.to_json()


_WORDS = [
    "fix", "add", "remove", "update", "refactor", "the", "a", "and", ",", ";", "frontend", "docs",
    "README", "utils.py", "/export", "endpoint", "page", "table", "test", "tests", "typo", "improve",
    "things", "stuff", "it", "better", "rm", "-rf", "delete", "repository", "across", "all",
    "endpoints", "frontendish", "docs/x.md", "web-app", "login", "bug", "Frontend.", ".", "\n",
]
_words = st.sampled_from(_WORDS)


@settings(max_examples=300, deadline=None)
@given(st.lists(_words, max_size=25).map(" ".join), st.lists(st.sampled_from(["README", "yes", "add a page"]),
                                                               max_size=2))
def test_any_text_gives_a_valid_deterministic_classification(text: str, answers: list[str]) -> None:
    c = classify_heuristic(text, PEERS, answers=answers)
    assert_valid(c, PEERS)
    assert c == classify_heuristic(text, PEERS, answers=answers)
    # The heuristic's output passes the same validation as an external command's answer.
    again = parse_classification(c.to_json(), PEERS, description=text, classifier="heuristic")
    assert again.scope == c.scope
    assert [(s.n, s.verb, s.peer, s.depends_on) for s in again.plan] == [
        (s.n, s.verb, s.peer, s.depends_on) for s in c.plan
    ]
