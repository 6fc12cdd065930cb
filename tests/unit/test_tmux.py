"""The tmux layer against a real private tmux server per test (no sleeps: every wait is on a condition)."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cockpit.core.errors import TmuxError
from cockpit.core.tmux import PaneRef, TmuxPanes, read_died_signal, session_name_for, tmux_available
from cockpit_testkit.tmuxserver import private_tmux_socket, tmux_server_running
from cockpit_testkit.waiting import wait_until

pytestmark = pytest.mark.skipif(not tmux_available(), reason="tmux is not installed")


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "logs" / "task-1.log"


def log_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def start(
    panes: TmuxPanes,
    worktree: Path,
    log_path: Path,
    command: str,
    *,
    env: dict[str, str] | None = None,
    died_signal: Path | None = None,
) -> PaneRef:
    return panes.start_window(
        "task-1", worktree, command, env=env, log_path=log_path, died_signal=died_signal
    )


def wait_dead(panes: TmuxPanes, pane: PaneRef) -> None:
    wait_until(lambda: not panes.pane_alive(pane), message=f"{pane.pane_id} should exit")


def test_command_runs_in_cwd_and_its_output_reaches_the_log(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    pane = start(tmux_panes, worktree, log_path, "pwd; echo hello-log")

    assert pane == PaneRef("cockpit-test", "task-1", pane.pane_id)
    assert pane.pane_id.startswith("%")
    wait_until(lambda: "hello-log" in log_text(log_path), message="log output")
    assert str(worktree.resolve()) in log_text(log_path)
    assert tmux_panes.list_windows() == ["task-1"]


def test_log_is_appended_not_truncated(tmux_panes: TmuxPanes, worktree: Path, log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_text("earlier run\n")

    pane = start(tmux_panes, worktree, log_path, "echo second run")

    wait_until(lambda: "second run" in log_text(log_path), message="appended output")
    assert log_text(log_path).startswith("earlier run\n")
    wait_dead(tmux_panes, pane)


@pytest.mark.parametrize("code", [0, 3])
def test_exit_status_is_read_from_the_dead_pane(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path, code: int
) -> None:
    pane = start(tmux_panes, worktree, log_path, f"echo bye; exit {code}")

    wait_dead(tmux_panes, pane)

    assert tmux_panes.exit_status(pane) == code
    assert tmux_panes.exit_status(pane.pane_id) == code
    assert tmux_panes.find_pane("task-1") == pane, "remain-on-exit keeps the window"


def test_exit_status_is_none_while_running(tmux_panes: TmuxPanes, worktree: Path, log_path: Path) -> None:
    pane = start(tmux_panes, worktree, log_path, "read line")

    assert tmux_panes.pane_alive(pane)
    assert tmux_panes.exit_status(pane) is None


@pytest.mark.parametrize("signal_name", ["task-1.died", 'it\'s a #$HOME; "sig"'])
def test_pane_died_hook_writes_the_signal_on_exit_and_not_before(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path, tmp_path: Path, signal_name: str
) -> None:
    signals = tmp_path / "signals"
    signal = signals / signal_name
    pane = start(tmux_panes, worktree, log_path, "echo ready; read x; exit 5", died_signal=signal)
    wait_until(lambda: "ready" in tmux_panes.capture(pane), message="command started")

    assert tmux_panes.pane_alive(pane)
    assert not signal.exists(), "the hook must not fire while the command runs"

    tmux_panes.send_text(pane, "go")

    wait_until(signal.exists, message="pane-died hook wrote the signal")
    assert read_died_signal(signal) == 5
    assert tmux_panes.exit_status(pane) == 5
    assert sorted(p.name for p in signals.iterdir()) == [signal_name], "no temporary file is left"


def test_every_exit_is_signalled_even_when_tmux_misses_a_sigchld(
    tmux_panes: TmuxPanes, worktree: Path, tmp_path: Path
) -> None:
    # tmux 3.3a/3.4 lose a pane's SIGCHLD now and then (6-12% of exits measured); without the wrapper's
    # nudge this test failed about one run in four.
    signals = tmp_path / "signals"
    refs = {
        n: tmux_panes.start_window(
            f"task-{n}", worktree, f"read x; exit {n}", log_path=tmp_path / f"{n}.log",
            died_signal=signals / f"task-{n}",
        )
        for n in range(1, 25)
    }  # fmt: skip
    for ref in refs.values():
        tmux_panes.send_text(ref, "")

    for n, ref in refs.items():
        signal = signals / f"task-{n}"
        wait_until(signal.exists, message=f"signal of task-{n}")
        assert read_died_signal(signal) == n
        assert tmux_panes.exit_status(ref) == n


def test_died_signal_reports_a_killing_signal_as_128_plus_n(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path, tmp_path: Path
) -> None:
    signal = tmp_path / "signals" / "task-1.died"

    pane = start(tmux_panes, worktree, log_path, "kill -9 $$", died_signal=signal)

    wait_until(signal.exists, message="signal file")
    assert read_died_signal(signal) == 137
    assert tmux_panes.exit_status(pane) == 137


def test_stale_signal_is_removed_when_the_window_starts(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path, tmp_path: Path
) -> None:
    signal = tmp_path / "task-1.died"
    signal.write_text("0\n")

    pane = start(tmux_panes, worktree, log_path, "read x; exit 2", died_signal=signal)

    assert not signal.exists()
    tmux_panes.send_text(pane, "")
    wait_until(signal.exists, message="fresh signal")
    assert read_died_signal(signal) == 2


def test_capture_shows_printed_text_without_trailing_blanks(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    pane = start(tmux_panes, worktree, log_path, "echo 'line one'; echo 'line two'; read x; echo done")

    lines = wait_until(lambda: (c := tmux_panes.capture(pane)) and c[-1] == "line two" and c)
    assert lines == ["line one", "line two"]
    assert tmux_panes.capture(pane, lines=1) == ["line two"]

    tmux_panes.send_text(pane, "")
    wait_dead(tmux_panes, pane)
    # The first line survives tmux's "Pane is dead" notice scrolling the screen, and the notice is left out.
    assert tmux_panes.capture(pane) == ["line one", "line two", "", "done"]


@pytest.mark.parametrize(
    "text",
    [
        "hello world",
        'it\'s "quoted" and $HOME `x` \\n',
        "ends with a semicolon;",
        "-starts-with-dash",
        "Enter",
    ],
)
def test_send_text_delivers_a_literal_line_to_stdin(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path, text: str
) -> None:
    pane = start(tmux_panes, worktree, log_path, "while read -r x; do printf 'got:%s|\\n' \"$x\"; done")

    tmux_panes.send_text(pane, text)

    wait_until(lambda: f"got:{text}|" in tmux_panes.capture(pane), message=f"echo of {text!r}")


def test_send_text_without_enter_waits_for_the_rest_of_the_line(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    pane = start(tmux_panes, worktree, log_path, 'read -r x; echo "got:$x"; read -r y')

    tmux_panes.send_text(pane, "part one ", enter=False)
    tmux_panes.send_text(pane, "part two")

    wait_until(lambda: "got:part one part two" in tmux_panes.capture(pane), message="one joined line")


def test_send_text_to_an_exited_pane_is_an_error(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    pane = start(tmux_panes, worktree, log_path, "true")
    wait_dead(tmux_panes, pane)

    with pytest.raises(TmuxError, match="has exited"):
        tmux_panes.send_text(pane, "hello")


def test_find_pane_after_a_restart_of_the_panes_object(
    tmux_socket: str, tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    pane = start(tmux_panes, worktree, log_path, "read x")

    restarted = TmuxPanes(tmux_socket, "cockpit-test")

    assert restarted.find_pane("task-1") == pane
    assert restarted.pane_alive(pane)
    assert restarted.find_pane("task-2") is None
    assert TmuxPanes(tmux_socket, "cockpit-other").find_pane("task-1") is None


def test_queries_before_any_server_exists(tmux_panes: TmuxPanes, tmux_socket: str) -> None:
    assert tmux_panes.find_pane("task-1") is None
    assert tmux_panes.list_windows() == []
    assert not tmux_panes.pane_alive("%0")
    assert tmux_panes.exit_status("%0") is None
    tmux_panes.kill_window("task-1")
    tmux_panes.kill_server()
    with pytest.raises(TmuxError, match="no longer exists"):
        tmux_panes.capture("%0")
    assert not tmux_server_running(tmux_socket), "queries must not start a server"


def test_a_pane_ref_from_another_window_is_not_trusted(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    pane = start(tmux_panes, worktree, log_path, "read x")
    # Pane ids restart with a new server: the same id in another window is someone else's pane.
    stale = PaneRef("cockpit-test", "task-9", pane.pane_id)

    assert not tmux_panes.pane_alive(stale)
    assert tmux_panes.pane_alive(pane.pane_id)
    assert tmux_panes.pane_alive(pane.target)


def test_starting_over_a_dead_window_replaces_it(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    first = start(tmux_panes, worktree, log_path, "exit 1")
    wait_dead(tmux_panes, first)

    second = start(tmux_panes, worktree, log_path, "echo second; read x")

    assert second.pane_id != first.pane_id
    assert tmux_panes.list_windows() == ["task-1"]
    assert tmux_panes.find_pane("task-1") == second
    assert tmux_panes.pane_alive(second)
    assert not tmux_panes.pane_alive(first)


def test_starting_over_a_live_window_is_an_error(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    first = start(tmux_panes, worktree, log_path, "read x")

    with pytest.raises(TmuxError, match="still running"):
        start(tmux_panes, worktree, log_path, "echo again")

    assert tmux_panes.pane_alive(first)
    assert tmux_panes.list_windows() == ["task-1"]


def test_kill_window(tmux_panes: TmuxPanes, worktree: Path, log_path: Path) -> None:
    pane = start(tmux_panes, worktree, log_path, "read x")
    tmux_panes.start_window("task-2", worktree, "read x", log_path=log_path)

    tmux_panes.kill_window("task-1")
    tmux_panes.kill_window("task-1")
    tmux_panes.kill_window("absent")

    assert tmux_panes.list_windows() == ["task-2"]
    assert not tmux_panes.pane_alive(pane)
    assert tmux_panes.find_pane("task-1") is None


def test_env_vars_reach_the_command(tmux_panes: TmuxPanes, worktree: Path, log_path: Path) -> None:
    env = {"CK_GREETING": "hello world", "CK_QUOTED": 'it\'s "x";'}

    start(tmux_panes, worktree, log_path, 'printf "%s|%s\\n" "$CK_GREETING" "$CK_QUOTED"', env=env)

    wait_until(lambda: 'hello world|it\'s "x";' in log_text(log_path), message="env in output")


def test_invalid_env_name_is_refused(tmux_panes: TmuxPanes, worktree: Path, log_path: Path) -> None:
    with pytest.raises(TmuxError, match="not valid"):
        start(tmux_panes, worktree, log_path, "true", env={"BAD NAME": "x"})


def test_commands_with_quotes_and_a_trailing_semicolon(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path
) -> None:
    (worktree / "file.txt").write_text("x")
    command = "printf '%s\\n' \"it's #{pane_id} ##\"; find . -name file.txt -exec echo found {} \\;"

    pane = start(tmux_panes, worktree, log_path, command)

    wait_dead(tmux_panes, pane)
    assert tmux_panes.exit_status(pane) == 0
    wait_until(lambda: "found ./file.txt" in log_text(log_path), message="find output")
    assert "it's #{pane_id} ##" in log_text(log_path)


@pytest.mark.parametrize("name", ["", "task 1", "task:1", "task.1", "tab\tname"])
def test_unusable_window_names_are_refused(
    tmux_panes: TmuxPanes, worktree: Path, log_path: Path, name: str
) -> None:
    with pytest.raises(TmuxError, match="not usable"):
        tmux_panes.start_window(name, worktree, "true", log_path=log_path)
    with pytest.raises(TmuxError, match="not usable"):
        tmux_panes.open_shell(name, worktree)


def test_read_died_signal_tolerates_missing_and_garbage(tmp_path: Path) -> None:
    assert read_died_signal(tmp_path / "absent") is None
    (tmp_path / "empty").write_text("")
    assert read_died_signal(tmp_path / "empty") is None
    (tmp_path / "junk").write_text("not a number\n")
    assert read_died_signal(tmp_path / "junk") is None
    (tmp_path / "ok").write_text("7\n")
    assert read_died_signal(tmp_path / "ok") == 7


def test_a_missing_working_directory_is_an_error(
    tmux_panes: TmuxPanes, tmp_path: Path, log_path: Path
) -> None:
    with pytest.raises(TmuxError, match="not a directory"):
        tmux_panes.start_window("task-1", tmp_path / "absent", "true", log_path=log_path)


def test_session_names_are_made_valid_for_tmux(tmux_socket: str, worktree: Path, log_path: Path) -> None:
    panes = TmuxPanes(tmux_socket, "cockpit-my.repo:x")

    pane = panes.start_window("task-1", worktree, "read x", log_path=log_path)

    assert panes.session_name == "cockpit-my_repo_x"
    assert pane.session == "cockpit-my_repo_x"
    assert panes.find_pane("task-1") == pane


def test_windows_started_concurrently_on_a_fresh_server(
    tmux_panes: TmuxPanes, worktree: Path, tmp_path: Path
) -> None:
    def launch(n: int) -> PaneRef:
        return tmux_panes.start_window(f"task-{n}", worktree, "read x", log_path=tmp_path / f"{n}.log")

    with ThreadPoolExecutor(max_workers=4) as pool:
        refs = list(pool.map(launch, range(1, 5)))

    assert sorted(tmux_panes.list_windows()) == ["task-1", "task-2", "task-3", "task-4"]
    assert all(tmux_panes.pane_alive(ref) for ref in refs)


def test_open_shell_is_interactive_in_cwd_and_reused(tmux_panes: TmuxPanes, worktree: Path) -> None:
    shell = tmux_panes.open_shell("shell-1", worktree)

    tmux_panes.send_text(shell, "echo shell-at:$(pwd)")

    wait_until(lambda: f"shell-at:{worktree.resolve()}" in tmux_panes.capture(shell), message="shell output")
    assert tmux_panes.open_shell("shell-1", worktree) == shell


def test_missing_tmux_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, worktree: Path, log_path: Path
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    panes = TmuxPanes("ck-test-never", "cockpit-test")

    assert not tmux_available()
    with pytest.raises(TmuxError, match=r"^tmux is not installed; install it \(apt-get install tmux\)$"):
        panes.start_window("task-1", worktree, "true", log_path=log_path)
    with pytest.raises(TmuxError, match="tmux is not installed"):
        panes.list_windows()


# -- attach ---------------------------------------------------------------------------------------------


def test_attach_argv_outside_tmux(tmux_panes: TmuxPanes, tmux_socket: str) -> None:
    pane = PaneRef("cockpit-test", "task-4", "%3")

    assert tmux_panes.attach_argv(pane) == [
        "tmux", "-L", tmux_socket,
        "select-window", "-t", "=cockpit-test:=task-4", ";", "attach-session", "-t", "=cockpit-test:=task-4",
    ]  # fmt: skip
    assert TmuxPanes(None, "cockpit-test").attach_argv(pane)[:2] == ["tmux", "select-window"]


def test_attach_argv_inside_tmux(
    monkeypatch: pytest.MonkeyPatch, tmux_panes: TmuxPanes, tmux_socket: str
) -> None:
    pane = PaneRef("cockpit-test", "task-4", "%3")

    monkeypatch.setenv("TMUX", f"{tmux_panes.socket_path},4242,0")
    assert tmux_panes.attach_argv(pane) == [
        "tmux",
        "-L",
        tmux_socket,
        "switch-client",
        "-t",
        "=cockpit-test:=task-4",
    ]

    # Inside some other server: switching cannot cross servers, so attach with $TMUX unset.
    monkeypatch.setenv("TMUX", f"{tmux_panes.socket_path.parent / 'elsewhere'},4242,0")
    assert tmux_panes.attach_argv(pane)[:5] == ["env", "-u", "TMUX", "tmux", "-L"]
    assert "attach-session" in tmux_panes.attach_argv(pane)


@pytest.fixture
def outer_socket() -> Iterator[str]:
    with private_tmux_socket() as name:
        yield name


def client_views(socket_name: str) -> list[str]:
    out = subprocess.run(
        ["tmux", "-L", socket_name, "list-clients", "-F", "#{session_name}:#{window_name}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.split()


def test_attach_argv_really_attaches_and_switches(
    monkeypatch: pytest.MonkeyPatch,
    tmux_panes: TmuxPanes,
    tmux_socket: str,
    outer_socket: str,
    worktree: Path,
) -> None:
    shell = tmux_panes.open_shell("shell", worktree)
    task = tmux_panes.start_window("task-2", worktree, "read x", log_path=worktree / "task.log")
    # A terminal to attach from: a pane of another private server (so the argv is the "inside another
    # server" one, which must unset $TMUX to nest).
    monkeypatch.setenv("TMUX", f"{tmux_panes.socket_path.parent / outer_socket},1,0")
    attach = tmux_panes.attach_argv(shell)
    subprocess.run(
        ["tmux", "-L", outer_socket, "new-session", "-d", "-x", "120", "-y", "40", shlex.join(attach)],
        check=True,
    )
    wait_until(lambda: client_views(tmux_socket) == ["cockpit-test:shell"], message="client attached")

    # From a shell inside the attached session, the argv switches the same client to the task.
    monkeypatch.setenv("TMUX", f"{tmux_panes.socket_path},1,0")
    tmux_panes.send_text(shell, shlex.join(tmux_panes.attach_argv(task)))

    wait_until(lambda: client_views(tmux_socket) == ["cockpit-test:task-2"], message="client switched")


# -- teardown -------------------------------------------------------------------------------------------


@pytest.fixture
def reaped_sockets() -> Iterator[list[str]]:
    """Set up before the server fixtures, so its check runs after their teardown."""
    names: list[str] = []
    yield names
    for name in names:
        assert not tmux_server_running(name), f"tmux server {name} survived its test"
        assert subprocess.run(["tmux", "-L", name, "ls"], capture_output=True, check=False).returncode != 0


def test_no_tmux_server_survives_a_test(
    reaped_sockets: list[str], request: pytest.FixtureRequest, worktree: Path, log_path: Path
) -> None:
    panes: TmuxPanes = request.getfixturevalue("tmux_panes")
    socket: str = request.getfixturevalue("tmux_socket")
    reaped_sockets.append(socket)
    start(panes, worktree, log_path, "read x")

    assert tmux_server_running(socket)


@pytest.mark.parametrize("session", ["proj#(touch {marker})x", "proj#{pane_id}", "proj##x"])
def test_hash_in_names_and_paths_is_literal_and_runs_nothing(
    tmux_socket: str, tmp_path: Path, session: str
) -> None:
    # A repo directory named `proj#(touch X)x` ran the command through tmux's format expansion, and
    # `#{pane_id}` in a name made every later lookup miss.
    marker = tmp_path / "ran"
    name = session.replace("{marker}", str(marker))
    cwd = tmp_path / name
    cwd.mkdir(parents=True)
    log = tmp_path / "logs" / f"{name}.log"
    panes = TmuxPanes(tmux_socket, f"cockpit-{name}")
    signal = tmp_path / "signals" / "task-1.died"
    pane = panes.start_window("task-1", cwd, "pwd", log_path=log, died_signal=signal)
    assert panes.session_name == session_name_for(f"cockpit-{name}")
    wait_until(lambda: read_died_signal(signal) is not None, message="the pane should exit")
    assert read_died_signal(signal) == 0
    assert str(cwd) in log_text(log)
    assert panes.find_pane("task-1") == pane
    listed = subprocess.run(["tmux", "-L", tmux_socket, "list-sessions", "-F", "#{session_name}"],
                            capture_output=True, text=True, check=True).stdout.split("\n")
    assert panes.session_name in listed
    shell = panes.open_shell("shell-1", cwd)
    assert panes.find_pane("shell-1") == shell
    assert not marker.exists(), "a #() in a name or path must never run"
