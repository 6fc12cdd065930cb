"""`.cockpit/config.toml`: a commented default, every key type-checked, errors naming the line, and `set`
keeping a person's comments and layout."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cockpit.core import config as cfg
from cockpit.core.errors import ConfigError
from cockpit.core.models import GateSpec


def test_the_default_file_is_commented_and_holds_every_default() -> None:
    text = cfg.DEFAULT_CONFIG
    assert sum(1 for line in text.splitlines() if line.lstrip().startswith("#")) >= 10
    data = tomllib.loads(text)
    flat = {f"{section}.{name}": value for section, body in data.items() for name, value in body.items()}
    assert flat == {k.dotted: k.default for k in cfg.KEYS}
    settings = cfg.parse_settings(text)
    assert settings.values == cfg.Settings().values and settings.gates == []
    # DESIGN section 7's defaults.
    assert settings.auto_approve_small is False and settings.auto_approve_delegated_small is True
    assert settings.remote_approval == "small" and settings.target_branch == "main"
    assert settings.max_parallel == 2 and settings.classifier_command == ""
    assert settings.agent_backend == "claude"
    assert settings.merge_strategy == "merge" and settings.merge_verify is True


def test_write_default_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / ".cockpit" / "config.toml"
    assert cfg.write_default(path) is True
    path.write_text(path.read_text() + "# mine\n")
    assert cfg.write_default(path) is False
    assert path.read_text().endswith("# mine\n")


def test_a_missing_file_means_the_defaults(tmp_path: Path) -> None:
    assert cfg.load_settings(tmp_path / "nope.toml").values == cfg.Settings().values


def test_a_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[task]\nauto_approve_small = false\nmax_parallel = = 3\n")
    with pytest.raises(ConfigError) as info:
        cfg.load_settings(path)
    assert str(path) in info.value.message and "line 3" in info.value.message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(("text", "message"), [
    ("[task]\nauto_approve_small = 1\n", "task.auto_approve_small must be bool, not 1"),
    ("[task]\nmax_parallel = true\n", "task.max_parallel must be int, not True"),
    ("[task]\nmax_parallel = 0\n", "max_parallel must be at least 1"),
    ("[task]\nfix_attempts = -1\n", "fix_attempts must be 0 or more"),
    ("[task]\nremote_approval = \"some\"\n", "must be one of none, small, all"),
    ("[task]\nbogus = 1\n", "unknown setting task.bogus"),
    ("[nope]\nx = 1\n", "unknown setting nope.x"),
    ("top = 1\n", "unknown setting 'top'"),
    ("[agent]\nneeds_input_patterns = [1]\n", "must be a list of strings"),
    ("[tdd]\nenabled = \"sometimes\"\n", "tdd.enabled must be true, false or \"auto\""),
    ("[merge]\nstrategy = \"rebase\"\n", "must be one of merge, squash"),
    ("gates = 3\n", "gates must be an array of tables"),
    ("[[gates]]\nname = \"t\"\n", "needs a non-empty name and command"),
    ("[[gates]]\nname = \"t\"\ncommand = \"x\"\ntimeout_s = 0\n", "timeout_s must be a positive number"),
    ("[[gates]]\nname = \"t\"\ncommand = \"x\"\nextra = 1\n", "unknown keys extra"),
    ("[[gates]]\nname = \"t\"\ncommand = \"x\"\n[[gates]]\nname = \"t\"\ncommand = \"y\"\n", "used twice"),
    ("[[gates]]\nname = \"tdd\"\ncommand = \"x\"\n", "by a built-in gate"),
])
def test_every_value_is_checked(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfg.parse_settings(text, "config.toml")
    assert message in info.value.message
    assert info.value.message.startswith("config.toml: ")


def test_gates_and_number_kinds() -> None:
    settings = cfg.parse_settings(
        "[classifier]\ntimeout_s = 2.5\n[tdd]\nenabled = false\n"
        "[[gates]]\nname = \"tests\"\ncommand = \"pytest -q\"\n"
        "[[gates]]\nname = \"lint\"\ncommand = \"ruff check\"\ntimeout_s = 30\n")
    assert settings.classifier_timeout_s == 2.5 and settings.tdd_enabled is False
    assert settings.gates == [GateSpec("tests", "pytest -q", 600.0), GateSpec("lint", "ruff check", 30.0)]
    assert cfg.parse_settings("[tdd]\nenabled = \"auto\"\n").tdd_enabled is None


def test_set_keeps_comments_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cfg.write_default(path)
    path.write_text(path.read_text().replace("[task]\n", "[task]\n# my own note about tasks\n"))
    before = path.read_text()
    assert cfg.set_value(path, "task.auto_approve_small", "true") is True
    after = path.read_text()
    assert "# my own note about tasks" in after
    assert after == before.replace("auto_approve_small = false", "auto_approve_small = true")
    assert cfg.load_settings(path).auto_approve_small is True
    # Every other comment of the default file is still there.
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in after.splitlines() if line.lstrip().startswith("#")] == comments


@pytest.mark.parametrize(("key", "raw", "value"), [
    ("task.max_parallel", "4", 4),
    ("task.remote_approval", "all", "all"),
    ("classifier.timeout_s", "2.5", 2.5),
    ("classifier.timeout_s", "30", 30),
    ("classifier.command", "claude -p", "claude -p"),
    ("agent.needs_input_patterns", '["^Proceed\\\\?", "y/n"]', ["^Proceed\\?", "y/n"]),
    ("tdd.enabled", "false", False),
    ("tdd.enabled", "auto", "auto"),
    ("merge.verify", "FALSE", False),
])
def test_set_coerces_and_checks_the_type(tmp_path: Path, key: str, raw: str, value: object) -> None:
    path = tmp_path / "config.toml"
    cfg.write_default(path)
    assert cfg.set_value(path, key, raw) == value
    assert cfg.get_value(cfg.load_settings(path), key) == value


@pytest.mark.parametrize(("key", "raw", "message"), [
    ("task.auto_approve_small", "maybe", "must be bool, not 'maybe'"),
    ("task.max_parallel", "many", "must be int, not 'many'"),
    ("task.max_parallel", "0", "at least 1"),
    ("task.remote_approval", "some", "must be one of none, small, all"),
    ("agent.needs_input_patterns", "oops", "takes a list"),
    ("task.nope", "1", "unknown setting task.nope"),
    ("nodots", "1", "unknown setting nodots"),
])
def test_set_refuses_bad_values_and_leaves_the_file(tmp_path: Path, key: str, raw: str, message: str) -> None:
    path = tmp_path / "config.toml"
    cfg.write_default(path)
    before = path.read_text()
    with pytest.raises(ConfigError, match=message):
        cfg.set_value(path, key, raw)
    assert path.read_text() == before


def test_set_refuses_to_edit_a_broken_file_and_creates_a_missing_one(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[task\n")
    with pytest.raises(ConfigError, match="line 1"):
        cfg.set_value(broken, "task.max_parallel", "3")
    assert broken.read_text() == "[task\n"
    fresh = tmp_path / "fresh.toml"
    cfg.set_value(fresh, "merge.strategy", "squash")
    assert cfg.load_settings(fresh).merge_strategy == "squash" and "# " in fresh.read_text()
    # A section missing from a hand-written file is added.
    bare = tmp_path / "bare.toml"
    bare.write_text("# only a comment\n")
    cfg.set_value(bare, "tmux.socket_name", "work")
    assert cfg.load_settings(bare).tmux_socket == "work" and bare.read_text().startswith("# only a comment\n")


def test_get_unknown_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown setting task\.bogus"):
        cfg.get_value(cfg.Settings(), "task.bogus")
