"""Who is asking: the person, or a peer (docs/design.md, Principals and the sandbox).

A connection speaks for the **person** only when it presents the person's token: a random secret in a per-user
file (mode 0600) that the CLI and the cockpit read and agents' sandboxes cannot. Everything else (peers'
daemons, agents' MCP servers and hook commands, any client that presents nothing) is the **peer** principal.

Every op runs with one `OpContext` (the principal and how the request arrived), set by the transport around
the handler: `current()` reads it anywhere below, so a handler, the service or delegation code can tell who
asked without threading an argument through every call. Outside any request the context is the peer's: code
that forgets to set one gets the lesser power, never the greater.

The token file is `$COCKPIT_TOKEN_FILE` when set (tests), else `$XDG_CONFIG_HOME/cockpit/token`, else
`~/.config/cockpit/token`. It is created on first use, 0600 in a 0700 folder, and refused when others could
read it.

A daemon also accepts, as the person, the tokens in `trusted/` beside that file: another machine's person
token, installed there (0600) only when that person asked for it with `cockpit workspace add --host ...
--trust`. The host's own token is never replaced by one.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cockpit.core.errors import ConfigError, RefusedError

Principal = Literal["person", "peer"]
PERSON: Principal = "person"
PEER: Principal = "peer"

TOKEN_ENV = "COCKPIT_TOKEN_FILE"
TOKEN_BYTES = 32
TRUSTED_DIR = "trusted"
# Ops only a person may run, whatever their arguments (others check their arguments in their handler).
PERSON_OPS = frozenset({"send_input", "retry_task", "merge_task", "rollback_task", "rework_task"})


@dataclass(frozen=True)
class OpContext:
    """The caller of one op: its principal, and the transport it came through ("socket" or "store")."""

    principal: Principal = PEER
    via: str = "socket"

    @property
    def is_person(self) -> bool:
        return self.principal == PERSON

    def label(self, by: str) -> str:
        """The `by` to record for a caller's label: a peer cannot call itself the person."""
        if self.is_person or not by.startswith(PERSON):
            return by
        return PEER


PEER_CONTEXT = OpContext(PEER)
PERSON_CONTEXT = OpContext(PERSON, via="store")
_CURRENT: contextvars.ContextVar[OpContext] = contextvars.ContextVar("cockpit_op_context",
                                                                    default=PEER_CONTEXT)


def current() -> OpContext:
    """The context of the op being served (the peer's outside any request)."""
    return _CURRENT.get()


@contextlib.contextmanager
def acting_as(context: OpContext) -> Iterator[OpContext]:
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def by_label(by: str | None) -> str:
    """The `by` to record for the current caller: its label, by default (and never above) its principal."""
    context = current()
    return context.label(by if by else context.principal)


def require_person(what: str) -> None:
    """Refuse `what` unless a person asked for it."""
    if current().is_person:
        return
    raise RefusedError(
        f"{what} needs a person: run it from your own terminal (the cockpit or the `cockpit` command); "
        "agents and peer repos act as the peer principal and cannot",
        code="person_required",
    )


# -- the token file ------------------------------------------------------------------------------------------

def token_path(env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if env.get(TOKEN_ENV):
        return Path(env[TOKEN_ENV]).expanduser()
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else Path.home() / ".config"
    return base / "cockpit" / "token"


def _check_private(path: Path, fd: int) -> None:
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        raise ConfigError(f"the person token {path} belongs to another user; remove it and run cockpit again")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the person token {path} is readable by others (mode "
                          f"{stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`, or remove it so a new "
                          "one is made")


def _read(path: Path) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # e.g. /dev/null bound over it inside an agent's sandbox
        _check_private(path, fd)
        text = os.read(fd, 4096).decode("ascii", errors="replace").strip()
    finally:
        os.close(fd)
    return text if len(text) >= TOKEN_BYTES else None


def read_token(path: Path | None = None) -> str | None:
    """The person's token, or None when it does not exist or cannot be read (inside a sandbox). Blocks."""
    return _read(path or token_path())


def ensure_token(path: Path | None = None) -> str:
    """The person's token, made on first use (0600 in a 0700 folder). Blocks."""
    path = path or token_path()
    found = _read(path)
    if found is not None:
        return found
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    import secrets  # here, not at import: the daemon's lean start loads no hashlib until it needs it

    token = secrets.token_hex(TOKEN_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, (token + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # never replaces a token another process made meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    found = _read(path)
    if found is None:
        raise ConfigError(f"cannot read the person token {path}; remove it and run cockpit again")
    return found


def matches(presented: object, token: str | None) -> bool:
    import hmac  # as secrets above

    return (isinstance(presented, str) and token is not None
            and hmac.compare_digest(presented.encode(), token.encode()))


# -- tokens of other machines' persons, accepted here --------------------------------------------------------

def trusted_dir(env: dict[str, str] | None = None) -> Path:
    """Where tokens of persons on other machines who trusted this host are kept (beside the token file)."""
    return token_path(env).with_name(TRUSTED_DIR)


def _token_text(token: str) -> str:
    token = token.strip()
    if not (TOKEN_BYTES <= len(token) <= 512) or not all(c.isascii() and (c.isalnum() or c in "-_")
                                                        for c in token):
        raise ConfigError("that is not a person token (32 to 512 letters, digits, '-' or '_'); nothing was "
                          "changed")
    return token


def accept_token(token: str, origin: str, folder: Path | None = None) -> tuple[Path, bool]:
    """Accept `token` as the person's from now on (`origin`: where it comes from, for the person reading the
    folder). Returns (its file, whether it was new). Never touches this machine's own token. Blocks."""
    token = _token_text(token)
    if folder is None:
        if matches(token, read_token()):
            return token_path(), False  # this machine's own (a home shared by both): nothing to add
        folder = trusted_dir()
    import hashlib  # as secrets above

    file = folder / hashlib.sha256(token.encode()).hexdigest()[:16]
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    label = "".join(c if c.isprintable() else "?" for c in origin)[:200]
    tmp = folder / f".{file.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, f"{token}\n# the person token of {label}, trusted by `cockpit workspace add --trust`\n"
                 .encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, file)
        new = True
    except FileExistsError:
        new = False  # the same token (its name is its digest), trusted before
    finally:
        tmp.unlink(missing_ok=True)
    return file, new


def trusted_tokens(folder: Path | None = None) -> list[str]:
    """The tokens accepted besides this machine's own; files others could read are ignored. Blocks."""
    folder = folder or trusted_dir()
    try:
        names = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    found: list[str] = []
    for path in names:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            info = os.fstat(fd)
            if (not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid()
                    or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO)):
                continue
            words = os.read(fd, 4096).decode("ascii", errors="replace").split()
        finally:
            os.close(fd)
        if words and len(words[0]) >= TOKEN_BYTES:
            found.append(words[0])
    return found


def accepts(presented: object, own: str | None, folder: Path | None = None) -> bool:
    """Whether `presented` speaks for the person here: this machine's token or a trusted one. Blocks."""
    return matches(presented, own) or any(matches(presented, t) for t in trusted_tokens(folder))
