"""The agents' tmux panes: one session per repo, one window per task, exit status read from tmux itself.

Every function blocks (one `tmux` subprocess per call, through libtmux); the daemon calls them through
`asyncio.to_thread`. Nothing here polls: when a task's command exits, a pane-scoped `pane-died` hook makes
tmux write the exit status into a signal file that the daemon watches.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cockpit.core.errors import TmuxError

__all__ = [
    "MIN_TMUX_VERSION",
    "NOT_INSTALLED",
    "PaneRef",
    "TmuxPanes",
    "died_hook_command",
    "read_died_signal",
    "tmux_available",
]

NOT_INSTALLED = "tmux is not installed; install it (apt-get install tmux)"
MIN_TMUX_VERSION = (3, 2)  # pane-scoped hooks and pane options
SESSION_SIZE = (200, 50)
# The window first runs this, so remain-on-exit, the log pipe and the hook are in place before the real
# command starts (a command that exits at once would otherwise close its window and lose its output).
_PLACEHOLDER = ("sleep", "2147483647")
# The task's command runs under this wrapper (as "$1"). tmux up to 3.4 can lose a SIGCHLD (libutempter
# swaps the handler while the pane's pty closes): the pane then reads dead with no status and pane-died
# never fires. Once the command is done, a detached child sends SIGCHLD to the server twice (at 0.2 s and
# 2 s): tmux's waitpid loop then reaps the wrapper, records its status and runs the hook. A spare SIGCHLD
# is harmless. The child ignores SIGHUP from the start (set before the fork: the wrapper's exit hangs up its
# process group at once). INT and QUIT get a handler (not SIG_IGN, which the command would inherit) so
# Ctrl-C in the pane reaches the command without killing the wrapper first.
_WRAPPER = (
    'trap : INT QUIT; /bin/sh -c "$1"; rc=$?; '
    "p=${TMUX%,*}; p=${p##*,}; trap '' HUP; "
    '(sleep 0.2; kill -CHLD "$p"; sleep 2; kill -CHLD "$p") </dev/null >/dev/null 2>&1 & '
    'exit "$rc"'
)
# 128 + N for a pane killed by signal N, like a POSIX shell reports it.
EXIT_FORMAT = "#{?pane_dead_signal,#{e|+|:128,#{pane_dead_signal}},#{pane_dead_status}}"
_FIELDS = (
    "pane_id",
    "pane_active",
    "session_name",
    "window_id",
    "window_name",
    "pane_dead",
    "pane_dead_status",
    "pane_dead_signal",
)
_FORMAT = "\t".join(f"#{{{field}}}" for field in _FIELDS)
# stderr that means "not there" (no server yet, session/window/pane gone) rather than a failure.
_MISSING = re.compile(
    r"no server running|error connecting to .*No such file or directory|can't find|server exited unexpectedly"
    r"|no current target"
)
_DEAD_MESSAGE = re.compile(r"^Pane is dead \((status|signal) .*\)$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# ':' and '.' separate the parts of a tmux target; blanks and control characters get escaped in listings.
_WINDOW_NAME = re.compile(r"^[^\x00-\x20\x7f:.]+$")
_checked_versions: set[str] = set()


def tmux_available() -> bool:
    """True when a `tmux` binary is on PATH."""
    return shutil.which("tmux") is not None


@dataclass(frozen=True)
class PaneRef:
    """Where a task's agent runs: stable for the life of the tmux server."""

    session: str
    window: str
    pane_id: str  # "%3": unique within one server, reused after a server restart

    @property
    def target(self) -> str:
        """A tmux target such as "cockpit-backend:task-4"."""
        return f"{self.session}:{self.window}"

    @property
    def exact_target(self) -> str:
        """The same target with exact name matching: "task-1" never falls back to a prefix like "task-12"."""
        return f"={self.session}:={self.window}"


@dataclass(frozen=True)
class _Pane:
    pane_id: str
    active: bool
    session: str
    window_id: str
    window: str
    dead: bool
    status: int | None

    def ref(self) -> PaneRef:
        return PaneRef(self.session, self.window, self.pane_id)


class _Missing(Exception):
    """The server, session, window or pane a command named does not exist."""


def session_name_for(name: str) -> str:
    """The name tmux will really use: it turns ':' and '.' into '_' (they separate target parts)."""
    return name.replace(":", "_").replace(".", "_")


def _arg(text: str) -> str:
    """Protect a free-text argument: tmux takes a trailing ';' as a command separator, but not '\\;'."""
    return text[:-1] + "\\;" if text.endswith(";") else text


def _format_literal(text: str) -> str:
    """Text that tmux format-expands (run-shell, pipe-pane, and the -s, -n, -c of new-session, new-window
    and respawn-pane) but must stay as written."""
    return text.replace("#", "##")


def _tmux_quote(text: str) -> str:
    """Quote a word for tmux's own command parser (a hook's command is parsed when the hook is set)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def died_hook_command(signal_path: Path) -> str:
    """The tmux command a pane-died hook runs: write the exit status to `signal_path` atomically.

    The status lands in a hidden temporary file next to the signal first, then is renamed over it, so a
    watcher never reads a half-written file (ignore names starting with '.').
    """
    path = signal_path.absolute()
    tmp = path.with_name(f".{path.name}.tmp")
    quoted_tmp = _format_literal(shlex.quote(str(tmp)))
    quoted_path = _format_literal(shlex.quote(str(path)))
    script = f"printf '%s\\n' {EXIT_FORMAT} > {quoted_tmp} && mv -f {quoted_tmp} {quoted_path}"
    return f"run-shell -b {_tmux_quote(script)}"


def read_died_signal(path: Path) -> int | None:
    """The exit status a pane-died hook wrote (128+N for signal N); None if absent or unreadable."""
    try:
        first = path.read_text().strip().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    try:
        return int(first[0]) if first else None
    except ValueError:
        return None


def _socket_dir() -> Path:
    return Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.geteuid()}"


class TmuxPanes:
    """The panes of one tmux session (`cockpit-<repo>`) on one tmux server (`-L socket_name`)."""

    def __init__(self, socket_name: str | None, session_name: str) -> None:
        self.socket_name = socket_name or None
        self.session_name = session_name_for(session_name)
        # libtmux is imported by the first pane operation, not at start: an idle daemon holds none of it.
        self._server: Any = None

    def __repr__(self) -> str:
        return f"TmuxPanes(socket_name={self.socket_name!r}, session_name={self.session_name!r})"

    @property
    def socket_path(self) -> Path:
        """Where the server listens (what `$TMUX` names inside its panes)."""
        return _socket_dir() / (self.socket_name or "default")

    # -- running tmux ---------------------------------------------------------------------------------

    def _tmux(self, *args: str) -> list[str]:
        """Run one tmux command and return its stdout lines; raise _Missing or TmuxError."""
        from libtmux import exc as libtmux_exc
        from libtmux.server import Server

        if self._server is None:
            self._server = Server(socket_name=self.socket_name)
        try:
            result = self._server.cmd(*args)
        except libtmux_exc.TmuxCommandNotFound:
            raise TmuxError(NOT_INSTALLED) from None
        except (libtmux_exc.LibTmuxException, OSError) as error:
            raise TmuxError(f"tmux {args[0]} could not run ({error}); check that tmux works") from error
        if result.returncode != 0:
            stderr = " ".join(result.stderr).strip() or f"exit status {result.returncode}"
            if _MISSING.search(stderr):
                raise _Missing(stderr)
            raise TmuxError(f"tmux {args[0]} failed on server {self._server_label()}: {stderr}")
        return list(result.stdout)

    def _tmux_or_none(self, *args: str) -> list[str] | None:
        try:
            return self._tmux(*args)
        except _Missing:
            return None

    def _server_label(self) -> str:
        return f"-L {self.socket_name}" if self.socket_name else "(default)"

    def _require_version(self) -> None:
        binary = shutil.which("tmux")
        if binary is None:
            raise TmuxError(NOT_INSTALLED)
        if binary in _checked_versions:
            return
        from libtmux import exc as libtmux_exc
        from libtmux.common import tmux_cmd

        try:
            output = " ".join(tmux_cmd("-V").stdout)
        except libtmux_exc.TmuxCommandNotFound:
            raise TmuxError(NOT_INSTALLED) from None
        found = re.search(r"(\d+)\.(\d+)", output)
        # Builds named "next-3.4" or "master" carry a number; anything unparsable is given the benefit.
        if found and (int(found[1]), int(found[2])) < MIN_TMUX_VERSION:
            wanted = ".".join(map(str, MIN_TMUX_VERSION))
            raise TmuxError(f"{output.strip()} is too old; cockpit needs tmux {wanted} or newer, upgrade it")
        _checked_versions.add(binary)

    # -- reading panes --------------------------------------------------------------------------------

    def _parse(self, lines: list[str]) -> list[_Pane]:
        panes = []
        for line in lines:
            parts = line.split("\t")
            if len(parts) != len(_FIELDS):
                continue
            pane_id, active, session, window_id, window, dead, status, signal = parts
            code: int | None = None
            if status.isdigit():
                code = int(status)
            elif signal.isdigit():
                code = 128 + int(signal)
            # Dead once tmux has both closed the pty and reaped the process: in between, tmux (3.3a, 3.4)
            # says pane_dead=1 with no status, and pane-died has not run yet.
            is_dead = dead == "1" and code is not None
            panes.append(_Pane(pane_id, active == "1", session, window_id, window, is_dead, code))
        return panes

    def _session_panes(self) -> list[_Pane]:
        lines = self._tmux_or_none("list-panes", "-s", "-t", f"={self.session_name}", "-F", _FORMAT)
        return self._parse(lines or [])

    def _window_panes(self, window_name: str) -> list[_Pane]:
        return [pane for pane in self._session_panes() if pane.window == window_name]

    def _resolve(self, pane: PaneRef | str) -> _Pane | None:
        """The pane now behind a reference, or None when it is gone.

        A PaneRef must still sit in its session and window: pane ids restart at %0 with a new server,
        so a bare id could name someone else's pane after a restart.
        """
        if isinstance(pane, PaneRef):
            found = self._find_id(pane.pane_id)
            if found is None or found.session != pane.session or found.window != pane.window:
                return None
            return found
        if pane.startswith("%"):
            return self._find_id(pane)
        # A window target ("cockpit-x:task-4"): its active pane.
        candidates = self._parse(self._tmux_or_none("list-panes", "-t", _arg(pane), "-F", _FORMAT) or [])
        return next((p for p in candidates if p.active), candidates[0] if candidates else None)

    def _find_id(self, pane_id: str) -> _Pane | None:
        lines = self._tmux_or_none("list-panes", "-a", "-F", _FORMAT) or []
        return next((p for p in self._parse(lines) if p.pane_id == pane_id), None)

    def _existing(self, pane: PaneRef | str) -> _Pane:
        found = self._resolve(pane)
        if found is None:
            label = pane.pane_id if isinstance(pane, PaneRef) else pane
            raise TmuxError(
                f"tmux pane {label} no longer exists on server {self._server_label()}; restart the task"
            )
        return found

    def find_pane(self, window_name: str) -> PaneRef | None:
        """The pane of window `window_name` in this session (a live one first), or None."""
        panes = self._window_panes(window_name)
        live = [p for p in panes if not p.dead]
        chosen = live or panes
        return chosen[0].ref() if chosen else None

    def pane_alive(self, pane: PaneRef | str) -> bool:
        """The pane exists and its process has not exited."""
        found = self._resolve(pane)
        return found is not None and not found.dead

    def exit_status(self, pane: PaneRef | str) -> int | None:
        """The exit status of a dead pane (128+N when killed by signal N); None while alive or unknown."""
        found = self._resolve(pane)
        return found.status if found is not None and found.dead else None

    def list_windows(self) -> list[str]:
        """The window names of this session, in index order; empty when the session or server is absent."""
        lines = self._tmux_or_none("list-windows", "-t", f"={self.session_name}", "-F", "#{window_name}")
        return lines or []

    def capture(self, pane: PaneRef | str, lines: int = 50) -> list[str]:
        """The last `lines` lines of the pane's text (scrollback included), trailing blank lines stripped.

        tmux's own "Pane is dead (...)" notice is left out: it is not the program's output.
        """
        found = self._existing(pane)
        try:
            text = self._tmux("capture-pane", "-p", "-J", "-S", f"-{max(lines, 1)}", "-t", found.pane_id)
        except _Missing:
            raise TmuxError(f"tmux pane {found.pane_id} closed while being read; restart the task") from None
        rows = [line.rstrip() for line in text]
        while rows and not rows[-1]:
            rows.pop()
        if found.dead and rows and _DEAD_MESSAGE.match(rows[-1]):
            rows.pop()
            while rows and not rows[-1]:
                rows.pop()
        return rows[-lines:] if lines > 0 else []

    # -- changing panes -------------------------------------------------------------------------------

    def start_window(
        self,
        window_name: str,
        cwd: Path,
        command: str,
        *,
        env: dict[str, str] | None = None,
        log_path: Path,
        died_signal: Path | None = None,
    ) -> PaneRef:
        """Run `command` (via /bin/sh -c) in a new window `window_name` in `cwd`.

        The pane stays after the command exits (remain-on-exit) so its status can be read, its output is
        appended to `log_path`, and when it dies tmux writes the exit status into `died_signal` (any stale
        signal file is removed first). A window of the same name whose command has exited is replaced;
        one still running is a TmuxError.
        """
        self._require_version()
        self._check_window_name(window_name)
        cwd = Path(cwd).absolute()
        if not cwd.is_dir():
            raise TmuxError(
                f"cannot start tmux window {window_name}: {cwd} is not a directory; create it first"
            )
        env_args = self._env_args(env or {})
        replaced = self._dead_windows(window_name)
        log_path = Path(log_path).absolute()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        if died_signal is not None:
            died_signal = Path(died_signal).absolute()
            died_signal.parent.mkdir(parents=True, exist_ok=True)
            died_signal.unlink(missing_ok=True)
        pane_id = self._new_window(window_name, cwd, list(_PLACEHOLDER))
        log_command = _format_literal(f"cat >> {shlex.quote(str(log_path))}")
        hook: tuple[str, ...] = () if died_signal is None else (
            "set-hook", "-p", "-t", pane_id, "pane-died", _arg(died_hook_command(died_signal)), ";")
        try:
            # One tmux client for the whole set-up (each is a process start): tmux runs them in order and
            # stops at the first that fails.
            self._tmux(
                "set-option", "-p", "-t", pane_id, "remain-on-exit", "on", ";",
                # The window is found by name later: programs must not rename it.
                "set-option", "-w", "-t", pane_id, "allow-rename", "off", ";",
                "set-option", "-w", "-t", pane_id, "automatic-rename", "off", ";",
                "pipe-pane", "-o", "-t", pane_id, _arg(log_command), ";",
                *hook,
                "respawn-pane", "-k", "-t", pane_id, "-c", _arg(_format_literal(str(cwd))), *env_args,
                "/bin/sh", "-c", _WRAPPER, "cockpit-task", _arg(command),
            )  # fmt: skip
        except (TmuxError, _Missing) as error:
            self._tmux_or_none("kill-pane", "-t", pane_id)
            if isinstance(error, TmuxError):
                raise
            raise TmuxError(
                f"tmux window {window_name} vanished while starting ({error}); check the tmux server"
            ) from None
        self._kill_windows(replaced)
        return PaneRef(self.session_name, window_name, pane_id)

    def open_shell(self, window_name: str, cwd: Path) -> PaneRef:
        """An interactive shell (tmux's default-shell) in `cwd`; an open one of that name is reused."""
        self._require_version()
        self._check_window_name(window_name)
        cwd = Path(cwd).absolute()
        if not cwd.is_dir():
            raise TmuxError(f"cannot open a shell in {cwd}: not a directory; create it first")
        existing = self.find_pane(window_name)
        if existing is not None and self.pane_alive(existing):
            return existing
        replaced = self._dead_windows(window_name)
        pane_id = self._new_window(window_name, cwd, [])
        self._kill_windows(replaced)
        return PaneRef(self.session_name, window_name, pane_id)

    def send_text(self, pane: PaneRef | str, text: str, *, enter: bool = True) -> None:
        """Type `text` literally into the pane (no key names, no shell), then Enter unless enter=False."""
        found = self._existing(pane)
        if found.dead:
            raise TmuxError(f"tmux pane {found.pane_id} has exited; it cannot take input, restart the task")
        try:
            if text:
                self._tmux("send-keys", "-t", found.pane_id, "-l", "--", _arg(text))
            if enter:
                self._tmux("send-keys", "-t", found.pane_id, "Enter")
        except _Missing:
            raise TmuxError(
                f"tmux pane {found.pane_id} closed while typing into it; restart the task"
            ) from None

    def send_keys(self, pane: PaneRef | str, *keys: str) -> None:
        """Press tmux key names (`C-d`, `Enter`, `Escape`) in a live pane."""
        found = self._existing(pane)
        if found.dead:
            raise TmuxError(f"tmux pane {found.pane_id} has exited; it cannot take input, restart the task")
        try:
            self._tmux("send-keys", "-t", found.pane_id, *keys)
        except _Missing:
            raise TmuxError(f"tmux pane {found.pane_id} closed while typing into it") from None

    def paste(self, pane: PaneRef | str, text: str) -> None:
        """Paste `text` as one bracketed paste (when the program asked for bracketed paste mode)."""
        found = self._existing(pane)
        if found.dead:
            raise TmuxError(f"tmux pane {found.pane_id} has exited; it cannot take input, restart the task")
        buffer = f"cockpit-{found.pane_id.lstrip('%')}"
        try:
            self._tmux("set-buffer", "-b", buffer, "--", _arg(text))
            self._tmux("paste-buffer", "-d", "-p", "-b", buffer, "-t", found.pane_id)
        except _Missing:
            raise TmuxError(f"tmux pane {found.pane_id} closed while pasting into it") from None

    def pane_pid(self, pane: PaneRef | str) -> int | None:
        """The pid of the pane's program (a session leader), None when the pane is gone."""
        found = self._resolve(pane)
        if found is None:
            return None
        lines = self._tmux_or_none("display-message", "-p", "-t", found.pane_id, "#{pane_pid}") or []
        return int(lines[0]) if lines and lines[0].strip().isdigit() else None

    def kill_window(self, window_name: str) -> None:
        """Close every window of that name in this session; absent is fine.

        Its processes get SIGHUP, and no died signal is written: a window closed here was closed on purpose.
        """
        self._kill_windows([p.window_id for p in self._window_panes(window_name)])

    def kill_server(self) -> None:
        """Stop the whole tmux server: for tests and demos on a private socket only."""
        self._tmux_or_none("kill-server")

    def attach_argv(self, pane: PaneRef) -> list[str]:
        """The argv a CLI should exec to show `pane` in this terminal.

        Inside a pane of the same server ($TMUX), the current client switches to it; elsewhere a client
        attaches (with $TMUX unset when run inside another server, where tmux would refuse to nest).
        """
        base = ["tmux", *(["-L", self.socket_name] if self.socket_name else [])]
        target = pane.exact_target
        inside = os.environ.get("TMUX", "")
        if inside and self._same_socket(inside.rsplit(",", 2)[0]):
            return [*base, "switch-client", "-t", target]
        attach = [*base, "select-window", "-t", target, ";", "attach-session", "-t", target]
        return ["env", "-u", "TMUX", *attach] if inside else attach

    # -- helpers --------------------------------------------------------------------------------------

    def _same_socket(self, path: str) -> bool:
        return os.path.realpath(path) == os.path.realpath(self.socket_path)

    def _check_window_name(self, window_name: str) -> None:
        if not _WINDOW_NAME.match(window_name):
            raise TmuxError(
                f"tmux window name {window_name!r} is not usable; use a name without blanks, ':' or '.'"
            )

    def _env_args(self, env: dict[str, str]) -> list[str]:
        args: list[str] = []
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise TmuxError(f"environment variable name {name!r} is not valid; use letters, digits and _")
            args += ["-e", _arg(f"{name}={value}")]
        return args

    def _dead_windows(self, window_name: str) -> list[str]:
        """The ids of windows of that name a new one will replace; a live one is an error.

        They are killed only after the new window exists: killing a session's last window first would
        end the session (and an otherwise empty server).
        """
        panes = self._window_panes(window_name)
        live = [p for p in panes if not p.dead]
        if live:
            raise TmuxError(
                f"tmux window {window_name} in session {self.session_name} is still running "
                f"(pane {live[0].pane_id}); stop it before starting it again"
            )
        return [p.window_id for p in panes]

    def _kill_windows(self, window_ids: list[str]) -> None:
        for window_id in dict.fromkeys(window_ids):
            self._tmux_or_none("kill-window", "-t", window_id)

    def _new_window(self, window_name: str, cwd: Path, argv: list[str]) -> str:
        """Create the window (and the session and server when missing); return its pane id."""
        # -s, -n and -c are format-expanded by tmux: a `#(...)` in a repo's path or name would run.
        shape = ["-d", "-P", "-F", "#{pane_id}", "-n", _arg(_format_literal(window_name)),
                 "-c", _arg(_format_literal(str(cwd)))]
        command = [_arg(arg) for arg in argv]
        # The session is there almost always: asking first would cost a tmux process every time.
        with contextlib.suppress(_Missing):
            return self._tmux("new-window", "-t", f"={self.session_name}:", *shape, *command)[0]
        if self._tmux_or_none("has-session", "-t", f"={self.session_name}") is None:
            width, height = SESSION_SIZE
            try:
                out = self._tmux(
                    "new-session", "-s", _format_literal(self.session_name),
                    "-x", str(width), "-y", str(height), *shape, *command,
                )  # fmt: skip
                return out[0]
            except (TmuxError, _Missing) as error:
                # Another thread may have created the session first; if so, add a window to it.
                if self._tmux_or_none("has-session", "-t", f"={self.session_name}") is None:
                    if isinstance(error, TmuxError):
                        raise
                    raise TmuxError(
                        f"tmux could not create session {self.session_name} ({error}); check the tmux server"
                    ) from None
        try:
            return self._tmux("new-window", "-t", f"={self.session_name}:", *shape, *command)[0]
        except _Missing as error:
            raise TmuxError(
                f"tmux session {self.session_name} closed while adding window {window_name} ({error}); retry"
            ) from None
