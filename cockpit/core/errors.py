"""Errors the core raises: each carries a stable code for the socket and `--json` output."""

from __future__ import annotations


class CockpitError(Exception):
    """An error meant for a person: one clear line saying what is wrong and what to do."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, *, code: str | None = None,
                 details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, **self.details}


class UsageError(CockpitError):
    code = "usage"
    exit_code = 2


class NotARepoError(UsageError):
    code = "not_a_repo"


class ConfigError(UsageError):
    code = "config"


class NotFoundError(CockpitError):
    code = "not_found"


class TransitionError(CockpitError):
    code = "invalid_transition"


class DuplicateError(CockpitError):
    code = "duplicate"


class RefusedError(CockpitError):
    """A request that is well-formed but not allowed (human gate, dirty checkout, conflict...)."""

    code = "refused"


class GitError(CockpitError):
    code = "git"


class TmuxError(CockpitError):
    code = "tmux"


class DaemonUnavailable(CockpitError):
    code = "daemon_unavailable"


class ProtocolError(CockpitError):
    code = "protocol"
