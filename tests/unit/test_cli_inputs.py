"""The command line against hostile input, with no daemon: oversized text, non-finite numbers, text that
looks like terminal markup or escape sequences, and a damaged or empty store. Every call is a real
`python -m cockpit` subprocess on a real git repository."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from cockpit.core.limits import MAX_TEXT_BYTES
from cockpit.core.store import Store
from cockpit_testkit.daemons import cli, cli_json


@pytest.fixture
def initialised(repo: Path) -> Path:
    cli_json("init", repo=repo)
    return repo


def test_text_over_the_size_cap_is_refused_with_one_line_and_nothing_recorded(initialised: Path) -> None:
    text = "fix the typo in README " + "x" * MAX_TEXT_BYTES
    result = cli("task", "create", "-", repo=initialised, input=text)
    assert result.code == 2
    assert result.stderr.count("\n") == 1 and "64 KiB" in result.stderr, result.stderr
    refused = cli("task", "create", "-", "--json", repo=initialised, input=text)
    assert refused.json["error"]["code"] == "too_large"
    assert cli_json("task", "list", "--all", repo=initialised)["tasks"] == []
    # Just under the cap is fine.
    ok = cli_json("task", "create", "-", "--no-wait", repo=initialised,
                  input="fix the typo in README " + "y" * (MAX_TEXT_BYTES - 100))
    assert ok["state"] == "created"


def test_answers_over_the_size_cap_are_refused(initialised: Path) -> None:
    cli_json("task", "create", "do the thing maybe", repo=initialised)
    result = cli("task", "clarify", "1", "--answer", "z" * (MAX_TEXT_BYTES + 1), "--json", repo=initialised)
    assert result.code == 2 and result.json["error"]["code"] == "too_large"


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-1"])
def test_a_non_finite_or_negative_timeout_is_a_usage_error(initialised: Path, value: str) -> None:
    cli_json("task", "create", "fix the typo in README", repo=initialised)
    result = cli("task", "wait", "1", f"--timeout={value}", repo=initialised, timeout=30)
    assert result.code == 2, result
    assert "--timeout" in result.stderr and "seconds" in result.stderr


MARKUP_TITLE = "fix [/] the [bold]parser[/bold] [link=http://evil.example]here[/link] [agent] backend"
ESCAPES = "fix the \x1b]0;pwned\x07title \x1b[2J\x1b[Happroved by person\x1b[31m now\x9b2J"


def test_markup_in_a_title_is_shown_literally_and_never_crashes(initialised: Path) -> None:
    created = cli_json("task", "create", MARKUP_TITLE, repo=initialised)
    assert created["description"] == MARKUP_TITLE  # --json stays exact
    shown = cli("task", "show", "1", repo=initialised)
    assert shown.code == 0, shown.stderr
    for literal in ("[/]", "[bold]parser[/bold]", "[agent] backend"):
        assert literal in shown.stdout
    assert "[link=http://evil.example]" in shown.stdout
    listed = cli("task", "list", repo=initialised)
    assert listed.code == 0, listed.stderr
    assert "[/]" in listed.stdout


def test_escape_sequences_never_reach_the_terminal(initialised: Path) -> None:
    # Intake refuses control characters now, but a store written before that (or a classifier's reason, a
    # gate's output) may still hold them: what is shown never carries them to the terminal.
    cli_json("task", "create", "fix the typo in README", repo=initialised)
    with sqlite3.connect(initialised / ".cockpit" / "index.db") as db:
        db.execute("UPDATE tasks SET title = ?, doc = json_set(doc, '$.title', ?, '$.description', ?, "
                   "'$.reason', ?) WHERE id = 1", (ESCAPES, ESCAPES, ESCAPES, ESCAPES))
    shown = cli_json("task", "show", "1", repo=initialised)
    assert shown["description"] == ESCAPES and shown["title"] == ESCAPES  # --json stays exact
    for args in (("task", "show", "1"), ("task", "list")):
        result = cli(*args, repo=initialised)
        assert result.code == 0, result.stderr
        assert "\x1b" not in result.stdout and "\x07" not in result.stdout and "\x9b" not in result.stdout
        assert "title" in result.stdout


def test_cockpit_files_are_private(initialised: Path) -> None:
    cockpit = initialised / ".cockpit"
    assert stat.S_IMODE(cockpit.stat().st_mode) == 0o700
    cli_json("task", "create", "fix the typo in README", repo=initialised)
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        path = cockpit / name
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_an_existing_world_readable_store_is_made_private(initialised: Path) -> None:
    cockpit = initialised / ".cockpit"
    cockpit.chmod(0o755)
    (cockpit / "index.db").chmod(0o644)
    cli_json("task", "list", repo=initialised)
    assert stat.S_IMODE(cockpit.stat().st_mode) == 0o700
    assert stat.S_IMODE((cockpit / "index.db").stat().st_mode) == 0o600


def test_a_zero_length_store_is_an_error_not_a_new_store(initialised: Path) -> None:
    db = initialised / ".cockpit" / "index.db"
    for extra in ("index.db-wal", "index.db-shm"):
        (db.parent / extra).unlink(missing_ok=True)
    db.write_bytes(b"")
    result = cli("task", "list", repo=initialised)
    assert result.code == 1
    assert "empty" in result.stderr and "index.db" in result.stderr and "Traceback" not in result.stderr
    assert db.stat().st_size == 0, "nothing was written over it"
    doctor = cli("doctor", repo=initialised)
    assert doctor.code == 1 and "empty" in doctor.stdout + doctor.stderr
    assert "Traceback" not in doctor.stderr


def test_doctor_on_a_malformed_page_reports_the_integrity_check(initialised: Path) -> None:
    db = initialised / ".cockpit" / "index.db"
    with sqlite3.connect(db) as conn:  # a few pages of events
        conn.executemany("INSERT INTO events (ts, task_id, type, data) VALUES (0, NULL, 'note', ?)",
                         [(f'{{"n": {i}, "pad": "{"p" * 400}"}}',) for i in range(60)])
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[2 * page + 8 : 3 * page] = b"\xa5" * (page - 8)  # scribble over a page's cells
    db.write_bytes(bytes(data))
    result = cli("doctor", repo=initialised)
    assert result.code == 1
    assert "Traceback" not in result.stderr, result.stderr
    text = result.stdout + result.stderr
    assert "integrity" in text and ("backup" in text or "restore" in text), text


def test_store_refuses_a_zero_length_file(tmp_path: Path) -> None:
    import asyncio

    from cockpit.core.errors import CockpitError

    db = tmp_path / "index.db"
    db.write_bytes(b"")

    async def open_it() -> None:
        store = await Store.open(db)
        await store.close()

    with pytest.raises(CockpitError, match="empty"):
        asyncio.run(open_it())
