"""The repo's settings (`.cockpit/config.toml`, docs/design.md, Settings).

Reading validates every key and type and names the line of a syntax error; writing goes through tomlkit so a
person's comments survive `cockpit config set`.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cockpit.core.errors import CockpitError, ConfigError
from cockpit.core.models import GateSpec

DEFAULT_CONFIG = """\
# agent-cockpit settings for this repository. `cockpit config list` shows every key with its value.

[task]
# A person's own small tasks skip the human gate.
auto_approve_small = false
# Small tasks delegated by a peer repo skip it (the sender is blocked waiting).
auto_approve_delegated_small = true
# What a peer's approve_remote_task may approve here: "none" | "small" | "all".
remote_approval = "small"
# Branch that reviewed work is merged into.
target_branch = "main"
# Tasks executing at once in this repo.
max_parallel = 2
# Times a failed gate sends the agent back to fix its work (0 turns the fix cycle off).
fix_attempts = 1

[classifier]
# Empty: the built-in heuristic. Else an LLM CLI that prints JSON, e.g. "claude -p".
command = ""
timeout_s = 60

[agent]
# claude | codex | aider | gemini | script | custom
backend = "claude"
# For backend = "custom": placeholders {prompt_file} {worktree} {task_id}.
command = ""
# Extra regexes that mean "the agent waits for a person"; built-ins cover the common agents.
needs_input_patterns = []
# Seconds an agent gets to exit by itself when its session ends (then SIGTERM, then SIGKILL).
stop_grace_s = 5
# "auto": bubblewrap where installed; "bwrap": always (an error where it cannot run); "none": no sandbox.
# Inside it the agent writes only its worktree, its branch's git data and its own config (docs/security.md).
sandbox = "auto"

[notify]
# When something newly needs you, the cockpit says so in the terminal (OSC 9 and OSC 777 notifications) ...
terminal = true
# ... rings the bell ...
bell = true
# ... and shows a desktop notification where notify-send is installed.
desktop = true
# `cockpit status --tmux` (for tmux's status-right) names this repo's waiting tasks.
tmux = true

[tmux]
# A private server name (tmux -L NAME); empty means your own server, so you can attach.
socket_name = ""

[tdd]
# "auto" checks only repos that have test files; true / false force it.
enabled = "auto"
source_patterns = []
test_patterns = []

[merge]
# merge (--no-ff merge commit) | squash
strategy = "merge"
# Run the gates on the merge result before the target branch moves.
verify = true

# Gates run in the task's worktree once the agent has finished. Add as many as you like:
# [[gates]]
# name = "tests"
# command = "pytest -q"
# timeout_s = 600
"""


@dataclass(frozen=True)
class Key:
    section: str
    name: str
    kind: type | tuple[type, ...]
    default: Any
    choices: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


KEYS: tuple[Key, ...] = (
    Key("task", "auto_approve_small", bool, False),
    Key("task", "auto_approve_delegated_small", bool, True),
    Key("task", "remote_approval", str, "small", ("none", "small", "all")),
    Key("task", "target_branch", str, "main"),
    Key("task", "max_parallel", int, 2),
    Key("task", "fix_attempts", int, 1),
    Key("classifier", "command", str, ""),
    Key("classifier", "timeout_s", (int, float), 60),
    Key("agent", "backend", str, "claude", ("claude", "codex", "aider", "gemini", "script", "custom")),
    Key("agent", "command", str, ""),
    Key("agent", "needs_input_patterns", list, []),
    Key("agent", "stop_grace_s", (int, float), 5),
    Key("agent", "sandbox", str, "auto", ("auto", "bwrap", "none")),
    Key("tmux", "socket_name", str, ""),
    Key("notify", "terminal", bool, True),
    Key("notify", "bell", bool, True),
    Key("notify", "desktop", bool, True),
    Key("notify", "tmux", bool, True),
    Key("tdd", "enabled", (bool, str), "auto"),
    Key("tdd", "source_patterns", list, []),
    Key("tdd", "test_patterns", list, []),
    Key("merge", "strategy", str, "merge", ("merge", "squash")),
    Key("merge", "verify", bool, True),
)
KEY_BY_NAME = {k.dotted: k for k in KEYS}


@dataclass
class Settings:
    values: dict[str, Any] = field(default_factory=lambda: {k.dotted: k.default for k in KEYS})
    gates: list[GateSpec] = field(default_factory=list)

    def __getitem__(self, dotted: str) -> Any:
        return self.values[dotted]

    @property
    def auto_approve_small(self) -> bool:
        return bool(self.values["task.auto_approve_small"])

    @property
    def auto_approve_delegated_small(self) -> bool:
        return bool(self.values["task.auto_approve_delegated_small"])

    @property
    def remote_approval(self) -> str:
        return str(self.values["task.remote_approval"])

    @property
    def target_branch(self) -> str:
        return str(self.values["task.target_branch"])

    @property
    def max_parallel(self) -> int:
        return int(self.values["task.max_parallel"])

    @property
    def fix_attempts(self) -> int:
        return int(self.values["task.fix_attempts"])

    @property
    def classifier_command(self) -> str:
        return str(self.values["classifier.command"])

    @property
    def classifier_timeout_s(self) -> float:
        return float(self.values["classifier.timeout_s"])

    @property
    def agent_backend(self) -> str:
        return str(self.values["agent.backend"])

    @property
    def agent_command(self) -> str:
        return str(self.values["agent.command"])

    @property
    def agent_sandbox(self) -> str:
        return str(self.values["agent.sandbox"])

    @property
    def needs_input_patterns(self) -> list[str]:
        return [str(p) for p in self.values["agent.needs_input_patterns"]]

    @property
    def stop_grace_s(self) -> float:
        return max(0.0, float(self.values["agent.stop_grace_s"]))

    @property
    def tmux_socket(self) -> str | None:
        return str(self.values["tmux.socket_name"]) or None

    @property
    def tdd_enabled(self) -> bool | None:
        value = self.values["tdd.enabled"]
        return None if value == "auto" else bool(value)

    @property
    def merge_strategy(self) -> str:
        return str(self.values["merge.strategy"])

    @property
    def merge_verify(self) -> bool:
        return bool(self.values["merge.verify"])


def _check_value(key: Key, value: Any, where: str) -> Any:
    kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
    # bool is an int subclass: never accept true for a number or 1 for a flag.
    ok = any(isinstance(value, k) and not (k is not bool and isinstance(value, bool)) for k in kinds)
    if not ok:
        expected = " or ".join(k.__name__ for k in kinds)
        raise ConfigError(f"{where}: {key.dotted} must be {expected}, not {value!r}")
    if key.choices and isinstance(value, str) and value not in key.choices:
        raise ConfigError(f"{where}: {key.dotted} must be one of {', '.join(key.choices)}, not {value!r}")
    if key.dotted == "tdd.enabled" and isinstance(value, str) and value != "auto":
        raise ConfigError(f"{where}: tdd.enabled must be true, false or \"auto\", not {value!r}")
    if key.dotted == "task.max_parallel" and value < 1:
        raise ConfigError(f"{where}: task.max_parallel must be at least 1")
    if key.dotted == "task.fix_attempts" and value < 0:
        raise ConfigError(f"{where}: task.fix_attempts must be 0 or more")
    if key.kind is list and not all(isinstance(x, str) for x in value):
        raise ConfigError(f"{where}: {key.dotted} must be a list of strings")
    return value


def parse_settings(text: str, where: str = "config.toml") -> Settings:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already names the line and column.
        raise ConfigError(f"{where}: {exc}; fix the file or delete it and run `cockpit init`") from None
    settings = Settings()
    for section, body in data.items():
        if section == "gates":
            settings.gates = _parse_gates(body, where)
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: unknown setting {section!r}; settings live in sections like [task]")
        for name, value in body.items():
            key = KEY_BY_NAME.get(f"{section}.{name}")
            if key is None:
                raise ConfigError(f"{where}: unknown setting {section}.{name}; see `cockpit config list`")
            settings.values[key.dotted] = _check_value(key, value, where)
    return settings


def _parse_gates(body: Any, where: str) -> list[GateSpec]:
    if not isinstance(body, list):
        raise ConfigError(f"{where}: gates must be an array of tables: [[gates]]")
    gates: list[GateSpec] = []
    for i, gate in enumerate(body, 1):
        if not isinstance(gate, dict):
            raise ConfigError(f"{where}: gate {i} must be a table with name and command")
        unknown = set(gate) - {"name", "command", "timeout_s"}
        if unknown:
            raise ConfigError(f"{where}: gate {i}: unknown keys {', '.join(sorted(unknown))}")
        name, command = gate.get("name"), gate.get("command")
        if not isinstance(name, str) or not name or not isinstance(command, str) or not command:
            raise ConfigError(f"{where}: gate {i} needs a non-empty name and command")
        timeout = gate.get("timeout_s", 600)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigError(f"{where}: gate {name}: timeout_s must be a positive number")
        if name in {g.name for g in gates} or name in ("has-commits", "clean-tree", "tdd"):
            raise ConfigError(f"{where}: gate name {name!r} is used twice or by a built-in gate")
        gates.append(GateSpec(name=name, command=command, timeout_s=float(timeout)))
    return gates


def load_settings(path: Path) -> Settings:
    if not path.exists():
        return Settings()
    return parse_settings(path.read_text(), str(path))


def write_default(path: Path, *, target_branch: str = "main", backend: str = "claude") -> bool:
    """Write the commented default config with the given target branch and agent backend; False when one
    already exists."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    # A JSON string is a valid TOML basic string (same quotes and escapes).
    text = DEFAULT_CONFIG.replace('target_branch = "main"', f"target_branch = {json.dumps(target_branch)}")
    text = text.replace('backend = "claude"', f"backend = {json.dumps(backend)}")
    path.write_text(text)
    return True


def coerce(key: Key, raw: str) -> Any:
    """Turn a command-line string into the key's type, or say why not."""
    kinds = key.kind if isinstance(key.kind, tuple) else (key.kind,)
    if bool in kinds and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if key.kind is list:
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = None
        if not isinstance(value, list):
            raise ConfigError(f'{key.dotted} takes a list, e.g. \'["^Proceed\\\\?"]\'')
        return value
    for kind in kinds:
        try:
            if kind is int:
                return int(raw)
            if kind is float:
                return float(raw)
        except ValueError:
            continue
    if str in kinds:
        return raw
    expected = " or ".join(k.__name__ for k in kinds)
    raise ConfigError(f"{key.dotted} must be {expected}, not {raw!r}")


def set_value(path: Path, dotted: str, raw: str) -> Any:
    """Set one key, type-checked, keeping the file's comments and layout. Returns the stored value."""
    key = KEY_BY_NAME.get(dotted)
    if key is None:
        raise ConfigError(f"unknown setting {dotted}; `cockpit config list` shows the keys")
    value = _check_value(key, coerce(key, raw), "value")
    text = path.read_text() if path.exists() else DEFAULT_CONFIG
    parse_settings(text, str(path))  # never edit a file that is already broken
    import tomlkit  # only edits need it: readers (the daemon among them) use tomllib
    import tomlkit.exceptions
    from tomlkit.items import Table

    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.TOMLKitError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    section = doc.get(key.section)
    if not isinstance(section, Table):
        section = tomlkit.table()
        doc[key.section] = section
    section[key.name] = value
    new_text = tomlkit.dumps(doc)
    parse_settings(new_text, str(path))
    tmp = path.with_suffix(".toml.tmp")
    try:
        tmp.write_text(new_text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CockpitError(f"cannot write {path}: {exc.strerror}", code="config_write") from None
    return value


def get_value(settings: Settings, dotted: str) -> Any:
    if dotted not in KEY_BY_NAME:
        raise ConfigError(f"unknown setting {dotted}; `cockpit config list` shows the keys")
    return settings.values[dotted]
