"""The agent adapters: per-task preparation (hooks, MCP, trust, a per-task home), usage readers, progress
filtering, and the hook payloads they report through. Real files in temporary homes; no agent CLI needed
(realistic fakes sit on PATH where an adapter checks that its agent is installed)."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest

from cockpit.core.agents import ADAPTERS, BACKENDS, Setup, adapter
from cockpit.core.agents.aider import exclude_aider_files, log_usage
from cockpit.core.agents.claude import transcript_usage
from cockpit.core.agents.codex import session_usage
from cockpit.core.agents.gemini import transcript_usage as gemini_usage
from cockpit.core.errors import ConfigError
from cockpit.core.models import Event, Task
from cockpit.core.projection import apply, target_state
from cockpit.core.states import State
from cockpit.hook import hook_payload, record, skip_payload


@pytest.fixture
def fake_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "codex", "gemini", "aider"):
        exe = bin_dir / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return bin_dir


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    root = tmp_path / "repo"
    worktree = root / ".cockpit" / "worktrees" / "task-7-x"
    worktree.mkdir(parents=True)
    (root / ".git" / "info").mkdir(parents=True)
    (root / ".git" / "worktrees" / "task-7-x").mkdir(parents=True)
    (worktree / ".git").write_text(f"gitdir: {root / '.git' / 'worktrees' / 'task-7-x'}\n")
    prompt = root / ".cockpit" / "prompts" / "task-7-1.md"
    prompt.parent.mkdir(parents=True)
    prompt.write_text("do it")
    person = tmp_path / "home"
    person.mkdir()
    return Setup(
        task_id=7,
        worktree=worktree,
        prompt_file=prompt,
        repo_root=root,
        home=root / ".cockpit" / "agents" / "task-7",
        signals_dir=root / ".cockpit" / "signals",
        git_dir=root / ".git",
        hook="sh /opt/cockpit/hook.sh",
        person_home=person,
    )


def test_every_backend_has_one_adapter_named_for_it() -> None:
    assert BACKENDS == ("claude", "codex", "aider", "gemini", "script", "custom")
    assert all(ADAPTERS[name].name == name for name in BACKENDS)
    with pytest.raises(ConfigError, match="unknown agent backend 'cursor'"):
        adapter("cursor")


def test_claude_gets_hooks_mcp_and_trust_per_task(fake_agents: Path, setup: Setup) -> None:
    assert setup.person_home is not None and setup.repo_root is not None
    (setup.person_home / ".claude.json").write_text(json.dumps(
        {"projects": {str(setup.repo_root): {"hasTrustDialogAccepted": True}}}
    ))
    os.environ.pop("CLAUDE_CONFIG_DIR", None)
    command = adapter("claude").launch(setup)

    assert setup.home is not None
    settings_file, mcp_file = setup.home / "claude-settings.json", setup.home / "claude-mcp.json"
    inner = command.argv[2]
    assert f"--settings {settings_file}" in inner and f"--mcp-config {mcp_file}" in inner
    assert "--permission-mode default" in inner
    hooks = json.loads(settings_file.read_text())["hooks"]
    stop = hooks["Stop"][0]["hooks"][0]["command"]
    assert stop == "sh /opt/cockpit/hook.sh turn-ended --stdin --event Stop"
    assert "needs-input" in hooks["PermissionRequest"][0]["hooks"][0]["command"]
    assert "resolved" in hooks["PostToolUse"][0]["hooks"][0]["command"]
    assert "SessionEnd" in hooks
    allowed = json.loads(settings_file.read_text())["permissions"]["allow"]
    assert "mcp__cockpit" in allowed and "Bash(git commit:*)" in allowed
    server = json.loads(mcp_file.read_text())["mcpServers"]["cockpit"]
    assert server["env"] == {"COCKPIT_REPO": str(setup.repo_root), "COCKPIT_TASK_ID": "7"}
    assert server["args"][-1] == "mcp"
    projects = json.loads((setup.person_home / ".claude.json").read_text())["projects"]
    assert projects[str(setup.worktree)]["hasTrustDialogAccepted"] is True, "trusted like the repo root"


def test_claude_does_not_trust_a_worktree_whose_repo_is_untrusted(fake_agents: Path, setup: Setup) -> None:
    assert setup.person_home is not None
    config = setup.person_home / ".claude.json"
    config.write_text(json.dumps({"projects": {}}))
    adapter("claude").launch(setup)
    assert json.loads(config.read_text()) == {"projects": {}}, "the trust dialog shows (and is flagged)"


def test_sandboxed_claude_keeps_its_state_in_a_config_folder_of_the_task(
    fake_agents: Path, setup: Setup
) -> None:
    """Under the sandbox the person's home is read-only: Claude Code's state goes to the task's folder."""
    import dataclasses

    assert setup.person_home is not None and setup.repo_root is not None and setup.home is not None
    person_json = setup.person_home / ".claude.json"
    person_json.write_text(json.dumps({
        "hasCompletedOnboarding": True,
        "projects": {str(setup.repo_root): {"hasTrustDialogAccepted": True}},
    }))
    (setup.person_home / ".claude").mkdir()
    (setup.person_home / ".claude" / "settings.json").write_text('{"model": "x"}')
    os.environ.pop("CLAUDE_CONFIG_DIR", None)
    sandboxed = dataclasses.replace(setup, sandbox="bwrap")
    command = adapter("claude").launch(sandboxed)

    own = setup.home / "claude"
    assert command.env["CLAUDE_CONFIG_DIR"] == str(own)
    copy = json.loads((own / ".claude.json").read_text())
    assert copy["hasCompletedOnboarding"] is True
    assert copy["projects"][str(setup.worktree)]["hasTrustDialogAccepted"] is True
    assert (own / "settings.json").resolve() == (setup.person_home / ".claude" / "settings.json").resolve()
    assert not (own / "projects").exists()
    person_projects = json.loads(person_json.read_text())["projects"]
    assert str(setup.worktree) not in person_projects, "the person's config is untouched"
    # A later run of the task keeps the state Claude Code wrote (its session, its trust answers).
    (own / ".claude.json").write_text(json.dumps({**copy, "numStartups": 5}))
    adapter("claude").launch(sandboxed)
    assert json.loads((own / ".claude.json").read_text())["numStartups"] == 5
    # Unsandboxed it uses the person's own config.
    assert "CLAUDE_CONFIG_DIR" not in adapter("claude").launch(setup).env


def test_codex_runs_in_a_per_task_home_with_the_persons_auth_linked(fake_agents: Path, setup: Setup) -> None:
    assert setup.person_home is not None and setup.home is not None
    person = setup.person_home / ".codex"
    person.mkdir()
    (person / "auth.json").write_text('{"token": "secret"}')
    (person / "config.toml").write_text('model = "gpt-x"\n[projects."/elsewhere"]\ntrust_level = "trusted"\n')
    os.environ.pop("CODEX_HOME", None)
    command = adapter("codex").launch(setup)

    home = setup.home / "codex"
    # A temp dir of the task's own: codex links no sandbox helpers into a CODEX_HOME below the temp dir.
    assert command.env == {"CODEX_HOME": str(home), "TMPDIR": str(setup.home / "tmp")}
    assert (setup.home / "tmp").is_dir() and not home.is_relative_to(setup.home / "tmp")
    assert (home / "auth.json").is_symlink() and (home / "auth.json").resolve() == person / "auth.json"
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["model"] == "gpt-x", "the person's own settings are kept"
    assert config["notify"][-4:] == ["--task", "7", "--repo", str(setup.repo_root)]
    assert config["projects"][str(setup.worktree)] == {"trust_level": "trusted"}
    assert str(setup.git_dir) in config["sandbox_workspace_write"]["writable_roots"]
    assert config["mcp_servers"]["cockpit"]["env"]["COCKPIT_TASK_ID"] == "7"
    inner = command.argv[2]
    assert "--disable daemon_auto_start" in inner and f"--add-dir {setup.git_dir}" in inner
    assert f"--add-dir {setup.git_dir}/worktrees/task-7-x" in inner, "the worktree's own git dir too"
    assert f"{setup.git_dir}/worktrees/task-7-x" in config["sandbox_workspace_write"]["writable_roots"]
    assert adapter("codex").marker(setup) == ("CODEX_HOME", str(home))
    assert json.loads((person / "auth.json").read_text()) == {"token": "secret"}, "never copied or changed"


@pytest.mark.parametrize("nests", [True, False])
def test_codex_under_cockpits_sandbox_keeps_its_own_only_where_a_nested_one_works(
    fake_agents: Path, setup: Setup, monkeypatch: pytest.MonkeyPatch, nests: bool
) -> None:
    import dataclasses

    from cockpit.core import sandbox

    monkeypatch.setattr(sandbox, "nests", lambda: nests)
    assert setup.git_dir is not None
    git = setup.git_dir.resolve()
    (git / "worktrees" / "task-7-x" / "HEAD").write_text("ref: refs/heads/cockpit/task-7-x\n")
    wrapped = dataclasses.replace(setup, sandbox="bwrap")
    command = adapter("codex").launch(wrapped)
    inner = command.argv[2]
    config = tomllib.loads((Path(command.env["CODEX_HOME"]) / "config.toml").read_text())
    if nests:
        # Exactly what cockpit's sandbox lets it write: `.git` itself is read-only there, and Codex's own
        # bubblewrap fails every command when it is named writable.
        signals = (git.parent / ".cockpit" / "signals").resolve()
        wanted = [git / "objects", git / "worktrees" / "task-7-x", git / "refs" / "heads" / "cockpit",
                  git / "logs" / "refs" / "heads" / "cockpit", signals]
        assert "danger-full-access" not in inner
        assert [str(p) for p in wanted] == config["sandbox_workspace_write"]["writable_roots"]
        assert all(f"--add-dir {p}" in inner for p in wanted) and f"--add-dir {git} " not in inner
    else:
        # Codex's sandbox would fail every command: cockpit's alone confines it.
        assert "--sandbox danger-full-access" in inner and "--add-dir" not in inner
        assert "sandbox_workspace_write" not in config
    unwrapped = adapter("codex").launch(setup)
    assert "danger-full-access" not in unwrapped.argv[2], "without cockpit's sandbox Codex keeps its own"


def test_codex_config_that_is_not_toml_is_a_clear_error(fake_agents: Path, setup: Setup) -> None:
    assert setup.person_home is not None
    (setup.person_home / ".codex").mkdir()
    (setup.person_home / ".codex" / "config.toml").write_text("model = [\n")
    with pytest.raises(ConfigError, match=r"config\.toml is not valid TOML"):
        adapter("codex").launch(setup)


def test_gemini_runs_in_a_per_task_home_with_the_persons_settings_and_the_tasks_hooks(
    fake_agents: Path, setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert setup.person_home is not None and setup.repo_root is not None and setup.home is not None
    monkeypatch.delenv("GEMINI_CLI_TRUSTED_FOLDERS_PATH", raising=False)
    monkeypatch.delenv("GEMINI_CLI_HOME", raising=False)
    for name, value in (("GIT_AUTHOR_NAME", "Ada"), ("GIT_AUTHOR_EMAIL", "ada@example.org"),
                        ("GIT_COMMITTER_NAME", "Ada"), ("GIT_COMMITTER_EMAIL", "ada@example.org")):
        monkeypatch.setenv(name, value)
    person = setup.person_home / ".gemini"
    person.mkdir()
    untrusted = adapter("gemini").launch(setup)
    assert "GEMINI_CLI_TRUST_WORKSPACE" not in untrusted.env, "an untrusted repo's dialog shows (flagged)"

    (person / "trustedFolders.json").write_text(json.dumps({str(setup.repo_root): "TRUST_FOLDER"}))
    (person / "oauth_creds.json").write_text("{}")
    (person / "tmp").mkdir()
    theirs = {"matcher": "*", "hooks": [{"name": "own", "type": "command", "command": "notify-send hi"}]}
    stale = {"matcher": "*", "hooks": [{"name": "cockpit-turn", "type": "command", "command": "old"}]}
    user = person / "settings.json"
    text = json.dumps({"ui": {"theme": "dark"}, "hooks": {"AfterAgent": [theirs, stale]},
                       "mcpServers": {"docs": {"command": "docs-mcp"}}})
    user.write_text("// the person's settings, with a comment\n" + text)
    before = user.read_text()
    command = adapter("gemini").launch(setup)
    adapter("gemini").launch(setup)  # the same task again adds nothing more
    assert command.env["GEMINI_CLI_TRUST_WORKSPACE"] == "true"
    # Gemini CLI hides the global git config from its shell: the identity travels in the environment.
    assert command.env["GIT_AUTHOR_EMAIL"] == "ada@example.org"
    home = Path(command.env["GEMINI_CLI_HOME"])
    assert home == (setup.home / "gemini").absolute()
    settings = json.loads((home / ".gemini" / "settings.json").read_text())
    assert settings["ui"] == {"theme": "dark"} and settings["mcpServers"]["docs"] == {"command": "docs-mcp"}
    assert settings["mcpServers"]["cockpit"]["trust"] is True
    assert settings["mcpServers"]["cockpit"]["env"]["COCKPIT_TASK_ID"] == "7"
    assert settings["hooksConfig"]["enabled"] is True
    turn = settings["hooks"]["AfterAgent"]
    assert turn[0] == theirs and len(turn) == 2, "theirs kept, an older cockpit hook replaced, ours once"
    assert turn[1]["hooks"][0]["command"] == (
        "sh /opt/cockpit/hook.sh turn-ended --stdin --event AfterAgent >/dev/null 2>&1; echo '{}'")
    assert "needs-input" in settings["hooks"]["Notification"][0]["hooks"][0]["command"]
    # The login is linked, never copied; the person's session files and settings stay theirs.
    assert (home / ".gemini" / "oauth_creds.json").resolve() == (person / "oauth_creds.json").resolve()
    assert (home / ".gemini" / "oauth_creds.json").is_symlink()
    assert not (home / ".gemini" / "tmp").exists()
    assert json.loads((home / ".gemini" / "trustedFolders.json").read_text()) == {
        str(setup.repo_root): "TRUST_FOLDER"}
    assert user.read_text() == before, "the person's settings are not touched"
    assert [p.name for p in setup.worktree.iterdir()] == [".git"], "nothing is written into the worktree"


def test_gemini_settings_that_are_not_json_are_one_clear_error(fake_agents: Path, setup: Setup) -> None:
    assert setup.person_home is not None
    (setup.person_home / ".gemini").mkdir()
    (setup.person_home / ".gemini" / "settings.json").write_text('{"ui": ')
    with pytest.raises(ConfigError, match=r"settings\.json is not valid JSON"):
        adapter("gemini").launch(setup)


def test_aider_files_are_excluded_once_and_aider_never_edits_gitignore(
    fake_agents: Path, setup: Setup
) -> None:
    command = adapter("aider").launch(setup)
    assert command.argv[:2] == ["aider", "--no-gitignore"]
    assert setup.git_dir is not None
    exclude = setup.git_dir / "info" / "exclude"
    assert exclude.read_text().splitlines().count(".aider*") == 1
    assert exclude_aider_files(setup.git_dir) is False
    assert exclude.read_text().splitlines().count(".aider*") == 1


def test_aider_usage_from_its_token_lines() -> None:
    text = (
        "Tokens: 2.3k sent, 180 received. Cost: $0.01 message, $0.01 session.\n"
        "Applied edit to hello.py\n"
        "Tokens: 4.1k sent, 1.2k cache write, 1.5k received. Cost: $0.03 message, $0.04 session.\n"
    )
    usage = log_usage(text)
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.cost_usd) == (6400, 1680, 0.04)
    assert log_usage("no tokens here") is None


def test_claude_transcript_usage_counts_each_message_once(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    usage = {"input_tokens": 10, "cache_creation_input_tokens": 5, "cache_read_input_tokens": 85,
             "output_tokens": 7}
    lines = [{"type": "assistant", "message": {"id": "m1", "usage": usage}}] * 3
    small = {"input_tokens": 1, "output_tokens": 2}
    lines.append({"type": "assistant", "message": {"id": "m2", "usage": small}})
    lines.append({"type": "user", "message": {"content": "hi"}})
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\nnot json\n")
    found = transcript_usage(path)
    assert found is not None and (found.input_tokens, found.output_tokens) == (101, 9)
    assert transcript_usage(tmp_path / "missing.jsonl") is None


def test_codex_usage_is_the_last_token_count_of_its_session(tmp_path: Path) -> None:
    folder = tmp_path / "sessions" / "2026" / "12" / "04"
    folder.mkdir(parents=True)
    records = [
        {"type": "event_msg", "payload": {"type": "token_count", "info": None}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": {
            "total_token_usage": {"input_tokens": 10, "output_tokens": 3}}}},
        {"type": "event_msg", "payload": {"type": "token_count", "info": {
            "total_token_usage": {"input_tokens": 54472, "output_tokens": 1824}}}},
    ]
    (folder / "rollout-1.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    found = session_usage(tmp_path)
    assert found is not None and (found.input_tokens, found.output_tokens) == (54472, 1824)


def test_gemini_usage_sums_the_models_messages(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    lines = [
        {"sessionId": "s", "startTime": "t"},
        {"$set": {"lastUpdated": "t"}},
        {"id": "u1", "type": "user", "content": "hi"},
        {"id": "g1", "type": "gemini", "tokens": {"input": 100, "output": 2}},
        {"id": "g1", "type": "gemini", "tokens": {"input": 100, "output": 20, "thoughts": 5}},
        {"id": "g2", "type": "gemini", "tokens": {"input": 130, "output": 10}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    found = gemini_usage(path)
    assert found is not None and (found.input_tokens, found.output_tokens) == (230, 35), "last line per id"


def test_progress_is_the_agents_words_not_its_furniture() -> None:
    claude = [
        "● I'll add the greeting module.",
        "● Bash(git commit -qm greeting)",
        "✻ Worked for 2s · done 6:38 PM",
        "────────────────────────────",
        "❯ ",
        "────────────────────────────",
        "  ⏸ manual mode on · ? for shortcuts",
    ]
    assert adapter("claude").progress(claude) == "Bash(git commit -qm greeting)"
    codex = [
        "• Ran git commit -qm greeting",
        "  Worked for 2s • 18:40",
        "› Ask Codex to do anything",
        "  fake default · /tmp/wt · title",
        "  ← for agents · ? for shortcuts",
    ]
    assert adapter("codex").progress(codex) == "Ran git commit -qm greeting"
    assert adapter("custom").progress(["working on step 3", "? for shortcuts"]) == "working on step 3"
    assert adapter("script").progress(["[step 1/2] write a"]) is None, "the script agent reports itself"


def test_typed_text_still_in_the_composer_is_not_submitted() -> None:
    from cockpit.core.sessions import still_in_composer

    typed = "Cockpit's gates failed on your work. Read /r/.cockpit/prompts/task-1-2-fix.md and fix it."
    waiting = ["• Ran git commit", "", "› Cockpit's gates failed on your work. Read /r/.cockpit/pro",
               "  mpts/task-1-2-fix.md and fix it.", "", "  fake default · /wt", "  ? for shortcuts"]
    assert still_in_composer(waiting, "›", typed)
    sent = ["› Cockpit's gates failed on your work. Read /r/.cockpit/prompts/task-1-2-fix.md", "",
            "◦ Working (1s • esc to interrupt)", "", "› Ask Codex to do anything", "  ? for shortcuts"]
    assert not still_in_composer(sent, "›", typed)


def test_codex_notify_payloads_other_than_a_turn_are_skipped() -> None:
    turn = json.dumps({"type": "agent-turn-complete", "input-messages": ["do it"],
                       "last-assistant-message": "Done, committed."})
    assert not skip_payload("turn-ended", hook_payload(turn, None))
    title = json.dumps({"type": "agent-turn-complete",
                        "input-messages": ["Generate a concise, single-line task title for ..."]})
    assert skip_payload("turn-ended", hook_payload(title, None))
    assert skip_payload("turn-ended", hook_payload(json.dumps({"type": "approval-requested"}), None))
    assert not skip_payload("needs-input", hook_payload(json.dumps({"type": "x"}), None))


def test_codex_notify_line_with_its_payload_appended_records_the_turn(
    fake_agents: Path, setup: Setup
) -> None:
    from cockpit.hook import main

    command = adapter("codex").launch(setup)
    config = tomllib.loads((Path(command.env["CODEX_HOME"]) / "config.toml").read_text())
    argv = config["notify"]
    assert argv[1:3] == ["-m", "cockpit.hook"]
    payload = json.dumps({"type": "agent-turn-complete", "input-messages": ["do it"],
                          "last-assistant-message": "Which colour?"})
    # Codex appends the payload as the last argument, after the task's options.
    assert main([*argv[3:], payload]) == 0
    assert setup.repo_root is not None
    signals = list((setup.repo_root / ".cockpit" / "signals").glob("*turn_ended*.json"))
    assert len(signals) == 1, signals
    data = json.loads(signals[0].read_text())
    assert data["task_id"] == 7 and data["data"]["message"] == "Which colour?"


def test_turn_ended_signal_keeps_the_last_message_and_transcript(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    (repo / ".git").mkdir(parents=True)
    payload = {"hook_event_name": "Stop", "transcript_path": "/t.jsonl", "last_assistant_message": "All set?"}
    path, task_id = record("turn-ended", repo=str(repo), task=3, payload=payload, event="Stop")
    assert path is not None and task_id == 3
    data = json.loads(path.read_text())
    assert data["kind"] == "turn_ended"
    assert data["data"]["message"] == "All set?" and data["data"]["transcript_path"] == "/t.jsonl"
    done, _ = record("done", repo=str(repo), task=3, message="finished")
    assert done is not None and json.loads(done.read_text())["kind"] == "done"


def _event(seq: int, type_: str, data: dict[str, object]) -> Event:
    return Event(seq=seq, ts=float(seq), task_id=1, type=type_, data=dict(data))


def test_the_new_events_fold_and_replay() -> None:
    tasks = {1: Task(1, "t", "t", state=State.EXECUTING, agent_status="running")}
    apply(tasks, _event(1, "agent.turn_ended", {"message": "Shall I?"}))
    assert tasks[1].last_message == "Shall I?"
    apply(tasks, _event(2, "agent.usage", {"run": 1, "input_tokens": 10, "output_tokens": 2}))
    apply(tasks, _event(3, "agent.usage", {"run": 1, "input_tokens": 30, "output_tokens": 5}))
    apply(tasks, _event(4, "agent.usage", {"run": 2, "input_tokens": 1, "output_tokens": 1, "cost_usd": 0.5}))
    usage = tasks[1].to_json()["usage"]
    assert (usage["input_tokens"], usage["output_tokens"], usage["cost_usd"]) == (31, 6, 0.5)
    assert len(usage["runs"]) == 2, "a run's later reading replaces its earlier one"
    apply(tasks, _event(5, "agent.done", {"message": "done it", "by": "agent"}))
    assert tasks[1].agent_status == "done" and tasks[1].last_message == "done it"
    assert Task.from_json(tasks[1].to_json()).to_json() == tasks[1].to_json()

    review = Task(1, "t", "t", state=State.AWAITING_REVIEW)
    assert target_state(review, "task.rework_requested", {"message": "more"}) is State.EXECUTING
    running = Task(1, "t", "t", state=State.EXECUTING)
    assert target_state(running, "task.stopped", {"how": "term"}) is State.INTERRUPTED
    assert target_state(running, "task.stopped", {"how": "term", "then": "cancel"}) is None
