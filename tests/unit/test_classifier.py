"""The classifier and planner: the built-in heuristic, the external command protocol, and the plan file."""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cockpit.core import classifier
from cockpit.core.classifier import (
    build_prompt,
    classify,
    classify_heuristic,
    extract_json_object,
    make_title,
    parse_classification,
)
from cockpit.core.errors import UsageError
from cockpit.core.models import SCOPES, VERBS, Classification, PlanStep
from cockpit.core.plans import render_plan, write_plan

PEERS = ["frontend", "docs"]
DESCRIPTION = "add /export endpoint and update the frontend client"
FAKE = Path(__file__).resolve().parents[1] / "support" / "fakes" / "fake_classifier.py"


def assert_valid(c: Classification, peers: list[str]) -> None:
    """The invariants every classification must hold, whoever produced it."""
    assert c.scope in SCOPES
    assert c.reason.strip()
    assert c.title.strip()
    seen: set[int] = set()
    for step in c.plan:
        assert step.verb in VERBS
        assert step.description.strip()
        assert step.n not in seen
        assert set(step.depends_on) <= seen, f"step {step.n} depends on a later step"
        if step.verb == "delegate":
            assert step.peer in peers
        else:
            assert step.peer is None
        seen.add(step.n)
    if c.scope == "ambiguous":
        assert 1 <= len(c.questions) <= 3
    if c.scope in ("small", "large"):
        assert c.plan
    if c.scope == "small":
        assert all(s.verb != "delegate" for s in c.plan)
    if c.scope == "reject":
        assert not c.plan


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


def test_build_prompt_names_the_task_the_peers_the_schema_and_the_answers() -> None:
    prompt = build_prompt("add /export", PEERS, repo_name="backend", answers=["CSV only"])
    assert "add /export" in prompt
    assert "<peer_repos>\nfrontend\ndocs\n</peer_repos>" in prompt
    assert '"backend"' in prompt
    assert "CSV only" in prompt
    for word in (*SCOPES, *VERBS, "depends_on", "questions", '"peer"'):
        assert word in prompt
    assert "(none)" in build_prompt("x", [])


# --------------------------------------------------------------------------------------------------------
# Parsing an external answer
# --------------------------------------------------------------------------------------------------------


def test_extract_json_handles_prose_fences_and_braces_in_strings() -> None:
    text = 'Sure {not json}.\n```json\n{"scope": "small", "x": "a } b { \\" c"}\n```\nbye'
    assert extract_json_object(text) == {"scope": "small", "x": 'a } b { " c'}
    assert extract_json_object('{"a": {"b": 1}} then {"scope": "large"}') == {"scope": "large"}
    assert extract_json_object('{"a": {"b": 1}}') == {"a": {"b": 1}}
    with pytest.raises(ValueError, match="no JSON object"):
        extract_json_object("nothing here")
    with pytest.raises(ValueError, match="invalid JSON"):
        extract_json_object("{scope: small}")


def test_parse_is_lenient_where_nothing_depends_on_it() -> None:
    c = parse_classification(
        {
            "scope": "LARGE",
            "reason": "two repos",
            "plan": [
                {"verb": "Add", "description": "add x"},
                {"verb": "delegate", "description": "use x", "peer": "Frontend", "depends_on": ["1"]},
            ],
        },
        PEERS,
        description="add x and use it in frontend",
    )
    assert c.scope == "large"
    assert c.title == "add x and use it in frontend"
    assert [(s.n, s.verb, s.peer, s.depends_on) for s in c.plan] == [
        (1, "add", None, []),
        (2, "delegate", "frontend", [1]),
    ]
    rejected = parse_classification(
        {"scope": "reject", "reason": "no", "plan": [{"verb": "add", "description": "x"}]}, PEERS
    )
    assert rejected.plan == []


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ([], "not a JSON object"),
        ({"reason": "x"}, 'no "scope"'),
        ({"scope": "medium", "plan": []}, "scope \"medium\" is not one of"),
        ({"scope": "small", "plan": [{"verb": "deploy", "description": "x"}]}, 'unknown verb "deploy"'),
        ({"scope": "small", "plan": [{"verb": "add", "description": ""}]}, "no description"),
        ({"scope": "large", "plan": [{"verb": "delegate", "description": "x", "peer": "mobile"}]},
         'delegates to "mobile", which is not a peer repo (frontend, docs)'),
        ({"scope": "large", "plan": [{"verb": "delegate", "description": "x"}]}, "names no peer"),
        ({"scope": "large", "plan": [{"verb": "add", "description": "x", "peer": "frontend"}]},
         "only delegate steps go to a peer"),
        ({"scope": "large", "plan": [{"verb": "add", "description": "x", "depends_on": [2]},
                                     {"verb": "test", "description": "y"}]}, "not an earlier step"),
        ({"scope": "large", "plan": [{"n": 1, "verb": "add", "description": "x"},
                                     {"n": 1, "verb": "test", "description": "y"}]}, "numbered twice"),
        ({"scope": "small", "plan": [{"verb": "delegate", "description": "x", "peer": "docs"}]},
         "cross-repo work is large"),
        ({"scope": "small", "plan": []}, "no steps"),
        ({"scope": "ambiguous", "plan": []}, "no questions"),
        ({"scope": "small", "plan": "do it"}, "must be a list"),
        ({"scope": "small", "plan": [{"n": True, "verb": "add", "description": "x"}]}, "must be a number"),
    ],
)
def test_parse_is_strict_where_it_matters(obj: object, problem: str) -> None:
    with pytest.raises(ValueError, match=None) as info:
        parse_classification(obj, PEERS)
    assert problem in str(info.value)


# --------------------------------------------------------------------------------------------------------
# The command protocol, with a real fake executable
# --------------------------------------------------------------------------------------------------------


def fake_command(mode: str, *extra: str) -> str:
    return shlex.join([sys.executable, str(FAKE), mode, *extra])


def pid_gone(pid: int) -> bool:
    """True when `pid` no longer runs (a zombie left for init to reap counts as gone: it cannot run)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return True
    return fields[0] in ("Z", "X")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def same_path(a: str | Path, b: str | Path) -> bool:
    return os.path.samefile(a, b)


@pytest.mark.parametrize("mode", ["good", "prose", "fence", "wrapped"])
async def test_a_good_answer_is_used(mode: str) -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command(mode), timeout_s=20)
    assert c.classifier == f"command:{os.path.basename(sys.executable)}"
    assert c.fallback_reason is None
    assert c.scope == "large"
    assert c.title == "Add /export and update the client"
    assert [(s.n, s.verb, s.peer, s.depends_on) for s in c.plan] == [
        (1, "add", None, []),
        (2, "test", None, [1]),
        (3, "delegate", "frontend", [1]),
        (4, "verify", None, [1, 2, 3]),
    ]
    if mode == "prose":
        assert c.plan[0].description == 'Add {braces} and "quotes" \\ and a } to /export'


async def test_the_prompt_arrives_on_stdin() -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command("good"), timeout_s=20, repo_name="backend")
    expected = build_prompt(DESCRIPTION, PEERS, repo_name="backend")
    assert c.reason == f"read {len(expected)} chars on stdin; peers: frontend, docs"


async def test_the_prompt_placeholder_is_substituted_in_argv() -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command("argv") + " {prompt}", timeout_s=20)
    assert c.fallback_reason is None
    assert c.reason == "argv prompt ok=True"


async def test_an_executable_on_its_own_shebang(tmp_path: Path) -> None:
    exe = tmp_path / "fake classifier"
    shutil.copy(FAKE, exe)
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    command = f"{shlex.quote(str(exe))} good"
    c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=20, cwd=tmp_path)
    assert c.classifier == "command:fake classifier"
    assert c.fallback_reason is None


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("garbage", "classifier command printed no JSON object"),
        ("invalid-json", "classifier command printed invalid JSON ("),
        ("bad-scope", 'classifier command returned an invalid answer: scope "medium" is not one of'),
        ("bad-verb", 'classifier command returned an invalid answer: step 2 has unknown verb "deploy"'),
        ("unknown-peer", 'step 3 delegates to "mobile", which is not a peer repo (frontend, docs)'),
        ("bad-depends", "step 2 depends on step 4, which is not an earlier step"),
        ("small-delegates", "scope is small but step 3 delegates to frontend"),
        ("fail", "classifier command exited with status 3: model overloaded, try later"),
        ("flood", "classifier command printed more than 1024 KiB"),
    ],
)
async def test_a_bad_answer_falls_back_to_the_heuristic_and_says_why(mode: str, reason: str) -> None:
    c = await classify(DESCRIPTION, PEERS, command=fake_command(mode), timeout_s=20)
    assert c.classifier == "heuristic"
    assert c.fallback_reason is not None and reason in c.fallback_reason, c.fallback_reason
    expected = classify_heuristic(DESCRIPTION, PEERS)
    assert (c.scope, c.plan, c.reason) == (expected.scope, expected.plan, expected.reason)


async def test_a_missing_executable_falls_back(tmp_path: Path) -> None:
    c = await classify(DESCRIPTION, PEERS, command=str(tmp_path / "no-such-classifier") + " -p", timeout_s=5)
    assert c.classifier == "heuristic"
    assert c.fallback_reason == f"classifier command not found: {tmp_path / 'no-such-classifier'}"


async def test_a_non_executable_file_falls_back(tmp_path: Path) -> None:
    exe = tmp_path / "classifier"
    exe.write_text("#!/bin/sh\necho {}\n")
    c = await classify(DESCRIPTION, PEERS, command=str(exe), timeout_s=5)
    assert c.fallback_reason == f"classifier command is not executable: {exe}"


async def test_bad_shell_syntax_falls_back() -> None:
    c = await classify(DESCRIPTION, PEERS, command='claude -p "unterminated', timeout_s=5)
    assert c.classifier == "heuristic"
    assert c.fallback_reason is not None and "not valid shell syntax" in c.fallback_reason


async def test_no_command_means_the_heuristic_without_a_fallback_reason() -> None:
    c = await classify("fix typo in README", PEERS, command="   ")
    assert c == classify_heuristic("fix typo in README", PEERS)
    assert c.fallback_reason is None


async def test_an_empty_description_is_rejected_without_running_the_command(tmp_path: Path) -> None:
    c = await classify("  ", PEERS, command=fake_command("hang", "--pid-file", str(tmp_path / "pids")))
    assert c.scope == "reject"
    assert c.fallback_reason is None
    assert not (tmp_path / "pids").exists()


async def test_a_hung_command_is_killed_at_the_timeout_with_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    command = fake_command("hang", "--pid-file", str(pid_file))
    c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=2.0)
    elapsed = time.monotonic() - started
    assert c.classifier == "heuristic"
    assert c.fallback_reason == "classifier command timed out after 2.0s"
    assert c.scope == "large"  # the heuristic's answer
    assert 2.0 <= elapsed < 4.5  # the timeout plus a margin for a loaded machine
    assert pid_file.exists(), "the fake never started"
    leader, child = (int(x) for x in pid_file.read_text().split())
    assert pid_gone(leader), "the command itself is still alive"  # reaped by classify: no zombie
    assert wait_until(lambda: pid_gone(child)), "the command's child is still alive"


async def test_a_child_left_holding_the_output_does_not_hold_up_the_answer(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    command = fake_command("straggler", "--pid-file", str(pid_file))
    c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=10.0)
    assert time.monotonic() - started < 5.0
    assert c.fallback_reason is None
    assert c.classifier.startswith("command:")
    leader, child = (int(x) for x in pid_file.read_text().split())
    assert pid_gone(leader)
    assert wait_until(lambda: pid_gone(child)), "the straggler is still alive"


async def test_a_child_outside_the_group_holding_the_output_does_not_hold_it_up(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    started = time.monotonic()
    command = fake_command("escaped", "--pid-file", str(pid_file))
    try:
        c = await classify(DESCRIPTION, PEERS, command=command, timeout_s=10.0)
        assert time.monotonic() - started < 5.0
        assert c.fallback_reason is None
        assert [s.verb for s in c.plan] == ["add", "test", "delegate", "verify"]
    finally:
        if pid_file.exists():  # it left our process group, so it is the test's to clean up
            os.kill(int(pid_file.read_text().split()[1]), 9)


async def test_cancelling_classify_kills_the_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    task = asyncio.create_task(
        classify(DESCRIPTION, PEERS, command=fake_command("hang", "--pid-file", str(pid_file)), timeout_s=60)
    )
    for _ in range(500):
        if pid_file.exists():
            break
        await asyncio.sleep(0.02)
    leader, child = (int(x) for x in pid_file.read_text().split())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pid_gone(leader)
    assert wait_until(lambda: pid_gone(child))


async def test_the_command_runs_in_cwd(tmp_path: Path) -> None:
    script = tmp_path / "where.py"
    script.write_text(
        "import json, os, sys\nsys.stdin.read()\n"
        "plan = [{'verb': 'add', 'description': 'x'}]\n"
        "print(json.dumps({'scope': 'small', 'reason': os.getcwd(), 'plan': plan}))\n"
    )
    c = await classify("add x", PEERS, command=shlex.join([sys.executable, str(script)]), cwd=tmp_path)
    assert c.fallback_reason is None
    assert same_path(c.reason, tmp_path)


def test_the_output_cap_is_a_module_constant() -> None:
    assert classifier.MAX_OUTPUT_BYTES == 1024 * 1024


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
