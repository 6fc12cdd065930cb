"""Running the real agent CLIs through cockpit against the fake model server.

Each test gets a person's home of its own (the autouse HOME of cockpit_testkit/gitrepos.py) set up the way a
person who already uses the agent has it: the model endpoint pointed at the fake server, onboarding done, the
repo root trusted. Cockpit does the rest per task (hooks, trust of the worktree, per-task homes), which is
what these tests check. The daemon is started with that environment, so its tmux server and every pane have
it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cockpit.core.paths import RepoPaths
from cockpit_testkit.daemons import cli, cli_json
from cockpit_testkit.model_server import ModelServer
from cockpit_testkit.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
TOOL_DIRS = (ROOT / ".tools" / "npm" / "node_modules" / ".bin", ROOT / ".tools" / "aider-venv" / "bin")
API_KEY = "sk-ant-cockpit-test-0123456789abcdef"
DIALOG_DRAW_S = 5  # how long after a hook flagged a question its dialog may take to show
IDLE_WAIT_S = 20  # how long a task may wait for a person, dialog-less, before a drive gives up


@dataclass(frozen=True)
class AgentSpec:
    name: str  # the [agent] backend
    executable: str
    interactive: bool  # stays open after its work (False: exits by itself, as aider does)
    dialog: str  # text on the screen while it asks for a permission
    answer: str  # what a person types to allow once
    answer_enter: bool  # whether the answer needs Enter


AGENTS: dict[str, AgentSpec] = {
    "claude": AgentSpec("claude", "claude", True, "Do you want to proceed?", "1", False),
    "codex": AgentSpec("codex", "codex", True, "Would you like to run the following command?", "y", False),
    "gemini": AgentSpec("gemini", "gemini", True, "Allow execution of", "1", False),
    "aider": AgentSpec("aider", "aider", False, "(Y)es/(N)o", "y", True),
}


def agent_path() -> str:
    extra = [str(d) for d in TOOL_DIRS if d.is_dir()]
    return os.pathsep.join([*extra, os.environ.get("PATH", "")])


def require_cli(spec: AgentSpec) -> str:
    """The agent's executable; fails the test (never skips) with one line when it is not installed."""
    found = shutil.which(spec.executable, path=agent_path())
    if found is None:
        pytest.fail(
            f"agent CLI `{spec.executable}` is not installed: run scripts/install-agents "
            "(scripts/test does) to put the pinned CLIs in .tools/",
            pytrace=False,
        )
    return found


def seed_home(spec: AgentSpec, home: Path, repo: Path, server: ModelServer) -> dict[str, str]:
    """The person's config for `spec`, pointing at the fake server; returns the environment to add."""
    env = {"PATH": agent_path()}
    if spec.name == "claude":
        (home / ".claude.json").write_text(json.dumps({
            "hasCompletedOnboarding": True,
            "numStartups": 1,
            "customApiKeyResponses": {"approved": [API_KEY[-20:]], "rejected": []},
            "projects": {str(repo): {"hasTrustDialogAccepted": True, "hasCompletedProjectOnboarding": True}},
        }))
        env |= {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": API_KEY,
                "DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}
    elif spec.name == "codex":
        codex = home / ".codex"
        codex.mkdir(exist_ok=True)
        (codex / "config.toml").write_text(
            'model = "fake"\nmodel_provider = "fake"\n\n'
            "[model_providers.fake]\n"
            f'name = "fake"\nbase_url = "{server.url}/v1"\n'
            'env_key = "FAKE_MODEL_KEY"\nwire_api = "responses"\n\n'
            f'[projects."{repo}"]\ntrust_level = "trusted"\n'
        )
        # Codex will not link its sandbox helpers into a CODEX_HOME under the temp dir, and the test repos
        # live there: give the agents a temp dir of their own elsewhere.
        env |= {"FAKE_MODEL_KEY": "fake", "TMPDIR": tempfile.mkdtemp(prefix="ck-agent-tmp-")}
    elif spec.name == "gemini":
        gemini = home / ".gemini"
        gemini.mkdir(exist_ok=True)
        (gemini / "settings.json").write_text(json.dumps({
            "security": {"auth": {"selectedType": "gemini-api-key"}},
            "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
            "privacy": {"usageStatisticsEnabled": False},
        }))
        (gemini / "trustedFolders.json").write_text(json.dumps({str(repo): "TRUST_FOLDER"}))
        env |= {"GOOGLE_GEMINI_BASE_URL": server.url, "GEMINI_API_KEY": "fake"}
    elif spec.name == "aider":
        (home / ".aider.conf.yml").write_text(
            f"model: openai/fake\nopenai-api-base: {server.url}/v1\nopenai-api-key: fake\n"
            "check-update: false\nanalytics-disable: true\nshow-model-warnings: false\n"
            "show-release-notes: false\n"
        )
        env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return env


class Driver:
    """One repo with its daemon, running `spec` on the test's private tmux server."""

    def __init__(self, spec: AgentSpec, repo: Path, socket: str, env: dict[str, str]) -> None:
        self.spec, self.repo, self.socket, self.env = spec, repo, socket, env
        self.paths = RepoPaths(repo)
        self.answered = 0

    def cockpit(self, *args: str, timeout: float = 60) -> Any:
        result = cli(*args, "--json", repo=self.repo, env=self.env, timeout=timeout)
        what = " ".join(args)
        assert result.code == 0, f"cockpit {what}: exit {result.code}: {result.stdout} {result.stderr}"
        return result.json

    def start_daemon(self) -> None:
        result = cli("daemon", "start", "--json", repo=self.repo, env=self.env, timeout=60)
        assert result.code == 0, result.stderr

    def stop_daemon(self) -> None:
        cli("daemon", "stop", repo=self.repo, env=self.env, timeout=60)

    def create(self, text: str) -> int:
        task = cli_json("task", "create", text, "--force", repo=self.repo)
        return int(task["id"])

    def show(self, task_id: int) -> dict[str, Any]:
        data: dict[str, Any] = self.cockpit("task", "show", str(task_id))
        return data

    def screen(self, task_id: int) -> str:
        target = f"cockpit-{self.repo.name}:task-{task_id}"
        out = subprocess.run(["tmux", "-L", self.socket, "capture-pane", "-p", "-t", target],
                             capture_output=True, text=True, check=False)
        return out.stdout

    def pane_alive(self, task_id: int) -> bool:
        target = f"cockpit-{self.repo.name}:task-{task_id}"
        out = subprocess.run(["tmux", "-L", self.socket, "list-panes", "-t", target, "-F", "#{pane_dead}"],
                             capture_output=True, text=True, check=False)
        return out.returncode == 0 and out.stdout.strip() == "0"

    def task_processes(self, task_id: int) -> list[str]:
        """The command lines of live processes started for this task (its pane env names repo and task)."""
        want = {f"COCKPIT_TASK_ID={task_id}".encode(), f"COCKPIT_REPO={self.repo}".encode()}
        found: list[str] = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                env = set((proc / "environ").read_bytes().split(b"\0"))
                status = (proc / "stat").read_text().rsplit(")", 1)[-1].split()
                line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile, or not ours to read
                continue
            if want <= env and status[0] != "Z":
                found.append(f"{proc.name}: {line.strip()}")
        return found

    def answer(self, task_id: int) -> None:
        args = ["task", "send", str(task_id), self.spec.answer]
        if not self.spec.answer_enter:
            args.append("--no-enter")
        result = cli(*args, repo=self.repo, env=self.env)
        if result.code != 0 and self.show(task_id)["state"] != "executing":
            # The flag and the dialog's last frame outlived the answer already given: the run moved on (its
            # gates passed), so there is nothing left to answer.
            return
        assert result.code == 0, f"task send: {result.stdout} {result.stderr}"
        self.answered += 1

    def drive(self, task_id: int, *states: str, timeout: float = 150,
              on_dialog: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Wait for one of `states`, answering the agent's permission dialogs as a person would.

        A dialog is answered only once cockpit flags the task `needs_input` with the dialog on the screen:
        the flag is what a person in the cockpit sees. A task that waits for a person with no dialog (its turn
        ended without a done report) fails the wait after a while, with the screen.
        """
        waiting_since: list[float] = []

        def reached() -> dict[str, Any] | None:
            task = self.show(task_id)
            if task["state"] in states:
                return task
            if task["state"] in ("failed", "cancelled", "rejected", "interrupted"):
                raise AssertionError(
                    f"task {task_id} ended {task['state']}: {task.get('failure')}\n{self.screen(task_id)}"
                )
            if not task.get("needs_input"):
                waiting_since.clear()
                return None
            before = self.screen(task_id)
            if self.spec.dialog in before:
                (on_dialog or self.answer)(task_id)
                self.wait_answered(task_id, before)
                return None
            waiting_since.append(time.monotonic())
            if waiting_since[-1] - waiting_since[0] > IDLE_WAIT_S:
                raise AssertionError(
                    f"task {task_id} waits for a person with no dialog: {task.get('needs_input_reason')}\n"
                    f"{self.screen(task_id)}"
                )
            return None

        try:
            found = wait_until(reached, timeout=timeout, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.screen(task_id)}") from None
        assert found is not None
        return found

    def drive_until_waiting(self, task_id: int, *, answer_dialogs: bool,
                            timeout: float = 150) -> dict[str, Any]:
        """Until the task waits for a person with no dialog on the screen (with `answer_dialogs` False: with
        or without one), answering dialogs on the way when told to."""

        def waiting() -> dict[str, Any] | None:
            task = self.show(task_id)
            if task["state"] != "executing":
                raise AssertionError(f"task {task_id} left executing: {task['state']} {task.get('failure')}")
            if not task.get("needs_input"):
                return None
            screen = self.screen(task_id)
            if answer_dialogs and self.spec.dialog not in screen:
                # A hook can flag a question a moment before the agent has drawn its dialog.
                screen = self.dialog_screen(task_id) or screen
            if self.spec.dialog not in screen or not answer_dialogs:
                return task
            self.answer(task_id)
            self.wait_answered(task_id, screen)
            return None

        try:
            found = wait_until(waiting, timeout=timeout, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.screen(task_id)}") from None
        assert found is not None
        return found

    def dialog_screen(self, task_id: int, timeout: float = DIALOG_DRAW_S) -> str | None:
        """The screen once it shows the agent's dialog, or None if none shows within `timeout`."""
        def shown() -> str | None:
            screen = self.screen(task_id)
            return screen if self.spec.dialog in screen else None

        try:
            return wait_until(shown, timeout=timeout, interval=0.2)
        except AssertionError:
            return None

    def wait_answered(self, task_id: int, before: str, timeout: float = 30) -> None:
        """Until the answer took: the flag cleared, or the screen moved on (maybe to the next dialog)."""

        def answered() -> bool:
            return not self.show(task_id).get("needs_input") or self.screen(task_id) != before

        wait_until(answered, timeout=timeout, interval=0.1,
                   message=f"the dialog of task {task_id} should go once answered")

    def events(self, task_id: int) -> list[dict[str, Any]]:
        result = cli("events", repo=self.repo, env=self.env)
        assert result.code == 0, result.stderr
        out = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return [e for e in out if e["task_id"] == task_id]
