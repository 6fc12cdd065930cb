"""Codex CLI: its TUI started with the task's prompt, isolated in a per-task CODEX_HOME.

Command line (GITDIR is the main repo's git directory, which a worktree's commits write to)::

    bash -c 'p=$(cat -- "$1") || exit 66; exec codex --disable daemon_auto_start --add-dir GITDIR \\
        --add-dir WORKTREE-GITDIR --add-dir SIGNALS "$p"' cockpit-codex PROMPT

with `CODEX_HOME=.cockpit/agents/task-<id>/codex` in the pane. Codex 0.17x starts a background app-server per
CODEX_HOME that is reparented to init and outlives the TUI; `--disable daemon_auto_start` keeps the turns in
the TUI process, and the per-task home keeps any server that does start to this task's environment (a stop
ends every process whose environment names this home). `--add-dir` makes the main repo's git directory, the
worktree's own git directory (`.git/worktrees/<name>`, which Codex protects) and the signals folder writable
in the workspace-write sandbox (commits and `$COCKPIT_HOOK done` need no escalation). Inside cockpit's
bubblewrap sandbox where a nested one cannot make its namespaces (a daemon running as root), Codex's own
sandbox would fail every command: `--sandbox danger-full-access` replaces the `--add-dir`s there, and
cockpit's sandbox alone confines it. `TMPDIR` is the task's own `tmp/` beside the home: Codex links no
sandbox helpers into a CODEX_HOME below the temp dir, and in cockpit's sandbox `/tmp` is a fresh tmpfs
where the person's temp dir does not exist. The home holds:

- `auth.json` (and any other file of the person's `~/.codex` but `config.toml`, `sessions`, `log`, `history`)
  as a symbolic link to the person's own, so the login is shared and never copied;
- `config.toml`: the person's config with, on top, `notify` (the task id on its command line: a turn's end
  reaches this task whatever environment the server has), the worktree trusted, the main repo's git
  directory writable in the workspace-write sandbox, and the cockpit MCP server;
- `sessions/`: this task's session files, from which the usage is read (the last `token_count` event).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from cockpit.core.agents.base import Agent, Setup, SubmitStyle, Usage, mcp_server, person_home, prompt_argv
from cockpit.core.errors import ConfigError

OWN = frozenset({"config.toml", "sessions", "log", "history.jsonl", "archived_sessions", "tmp", ".tmp"})


def person_codex_home(setup: Setup) -> Path:
    configured = os.environ.get("CODEX_HOME")
    return Path(configured) if configured else person_home(setup) / ".codex"


def link_person_files(source: Path, home: Path) -> None:
    """Link the person's Codex files (auth above all) into the task's home; never copy credentials."""
    if not source.is_dir() or source.resolve() == home.resolve():
        return
    for entry in source.iterdir():
        if entry.name in OWN:
            continue
        target = home / entry.name
        if target.is_symlink() or target.exists():
            continue
        target.symlink_to(entry)


def worktree_git_dir(worktree: Path) -> Path | None:
    """A linked worktree's own git directory (`.git/worktrees/<name>`, named by its `.git` file)."""
    try:
        text = (worktree / ".git").read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    return (worktree / text.split(":", 1)[1].strip()).resolve()


def writable_dirs(setup: Setup) -> list[Path]:
    """What Codex's workspace-write sandbox must let the task write besides the worktree: the main repo's
    git directory (objects, refs), the worktree's own git directory (its index: Codex protects it), and the
    signals folder (`$COCKPIT_HOOK done`). Inside cockpit's sandbox, exactly the git folders it lets the
    task write (objects, the worktree's own, its branch's ref and reflog folders): `.git` itself is read-only
    there, and Codex's bubblewrap, binding a writable `.git`, would fail every command making its mounts."""
    if setup.sandbox == "bwrap" and setup.repo_root is not None and setup.signals_dir is not None:
        from cockpit.core import sandbox

        spec = sandbox.SandboxSpec(worktree=setup.worktree, repo_root=setup.repo_root,
                                   signals_dir=setup.signals_dir)
        worktree = setup.worktree.resolve()
        return [path for path in sandbox.writable_paths(spec) if path != worktree]
    found: list[Path] = []
    for extra in (setup.git_dir, worktree_git_dir(setup.worktree), setup.signals_dir):
        if extra is not None and extra.absolute() not in found:
            found.append(extra.absolute())
    return found


def own_sandbox(setup: Setup) -> bool:
    """Whether Codex runs its commands in its own sandbox (workspace-write). Not inside cockpit's bubblewrap
    sandbox where a nested one cannot make its namespaces (a daemon running as root): Codex's would fail
    every command there, so it gets full access and cockpit's sandbox alone confines it. Blocks (a probe)."""
    if setup.sandbox != "bwrap":
        return True
    from cockpit.core import sandbox

    return sandbox.nests()


def task_config(setup: Setup, person_config: Path) -> str:
    """The person's config.toml with the task's notify, trust, writable git dir and MCP server on top."""
    assert setup.repo_root is not None
    import tomlkit  # only a codex task's start needs it; an idle daemon does not hold it
    import tomlkit.exceptions

    doc: Any = tomlkit.document()
    if person_config.is_file():
        try:
            doc = tomlkit.parse(person_config.read_text(encoding="utf-8"))
        except tomlkit.exceptions.ParseError as exc:
            raise ConfigError(f"{person_config} is not valid TOML ({exc}); fix it, then retry the task") \
                from None
    doc["notify"] = [
        setup.python, "-m", "cockpit.hook", "turn-ended",
        "--task", str(setup.task_id), "--repo", str(setup.repo_root),
    ]  # fmt: skip
    projects = doc.setdefault("projects", tomlkit.table())
    projects[str(setup.worktree.absolute())] = {"trust_level": "trusted"}
    if own_sandbox(setup) and writable_dirs(setup):
        sandbox = doc.setdefault("sandbox_workspace_write", tomlkit.table())
        roots = [str(r) for r in sandbox.get("writable_roots", [])]
        roots += [str(extra) for extra in writable_dirs(setup) if str(extra) not in roots]
        sandbox["writable_roots"] = roots
    servers = doc.setdefault("mcp_servers", tomlkit.table())
    servers["cockpit"] = mcp_server(setup)
    return tomlkit.dumps(doc)


def session_usage(home: Path) -> Usage | None:
    """The token count of the newest session file in the task's CODEX_HOME (its last `token_count`)."""
    files = sorted(home.glob("sessions/**/*.jsonl"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    total: dict[str, Any] | None = None
    try:
        with open(files[-1], encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if "token_count" not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                payload = record.get("payload") if isinstance(record, dict) else None
                info = payload.get("info") if isinstance(payload, dict) else None
                usage = info.get("total_token_usage") if isinstance(info, dict) else None
                if isinstance(usage, dict):
                    total = usage
    except OSError:
        return None
    if total is None:
        return None
    return Usage(
        input_tokens=int(total.get("input_tokens") or 0),
        output_tokens=int(total.get("output_tokens") or 0),
        source="codex-session",
    )


class Codex(Agent):
    name = "codex"
    executable = "codex"
    interactive = True
    turn_hooks = True
    submit: ClassVar[SubmitStyle] = "pause"
    exit_text = "/quit"
    speech_marks = ("•", "└")
    composer = "›"
    furniture = (r"^\s*› Ask Codex", r"f2 to view", r"^\s*◦ Working", r"^\s*Worked for", r"\bfake default\b")

    def codex_home(self, setup: Setup) -> Path:
        assert setup.home is not None
        return setup.home / "codex"

    def command(self, setup: Setup) -> list[str]:
        argv = ["codex"]
        if setup.prepared:
            # No background app-server: it would be reparented to init and outlive the task.
            argv += ["--disable", "daemon_auto_start"]
            if not own_sandbox(setup):
                argv += ["--sandbox", "danger-full-access"]
            else:
                # Writable in the workspace-write sandbox: the main repo's git dir and the worktree's own
                # (the commits) and the signals folder (`$COCKPIT_HOOK done`).
                for extra in writable_dirs(setup):
                    argv += ["--add-dir", str(extra)]
        return prompt_argv(self.name, argv, setup.prompt_file)

    def prepare(self, setup: Setup) -> dict[str, str]:
        home = self.codex_home(setup)
        home.mkdir(parents=True, exist_ok=True)
        source = person_codex_home(setup)
        text = task_config(setup, source / "config.toml")
        (home / "config.toml").write_text(text, encoding="utf-8")
        link_person_files(source, home)
        # Codex refuses to link its sandbox helpers into a CODEX_HOME below the temp dir (a repo under /tmp),
        # and under cockpit's sandbox a temp dir outside the task's folders does not exist: the task's own.
        tmp = home.parent / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return {"CODEX_HOME": str(home), "TMPDIR": str(tmp)}

    def usage(self, setup: Setup, hint: dict[str, object], log_text: str) -> Usage | None:
        return session_usage(self.codex_home(setup)) if setup.home is not None else None

    def marker(self, setup: Setup) -> tuple[str, str] | None:
        return ("CODEX_HOME", str(self.codex_home(setup))) if setup.home is not None else None

