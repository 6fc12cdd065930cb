"""A workspace: the `cockpit-workspace.toml` that names a set of repos which delegate work to each other.

The file (docs/design.md, Files) is found by walking up from the current directory::

    [repos.backend]
    path = "backend"          # relative to the workspace file, or absolute
    [repos.api]
    host = "build-box"        # on another machine: an ssh destination as ~/.ssh/config knows it
    path = "/srv/api"         # absolute, on that host

Repo names are the keys, so they are unique by construction. Writes go through tomlkit, so a person's comments
and layout survive `cockpit workspace add`.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cockpit.core.errors import ConfigError, NotFoundError, RefusedError, UsageError

WORKSPACE_FILE = "cockpit-workspace.toml"
# A bare TOML key that also reads well in `frontend#4`: letters, digits, dot, dash, underscore.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

WORKSPACE_HEADER = """\
# agent-cockpit workspace: the repos that delegate work to each other.
# Add one with `cockpit workspace add NAME PATH`; a path is relative to this file, or absolute.
"""


@dataclass(frozen=True)
class Workspace:
    file: Path
    repos: dict[str, Path]
    # Repos on another machine: name -> ssh destination. Their `repos` path is the path on that host.
    hosts: dict[str, str] = field(default_factory=dict)
    # Hosted repos added with `--trust`: the person's credential may be presented to their daemons.
    trusted: frozenset[str] = frozenset()

    @property
    def root(self) -> Path:
        return self.file.parent

    @classmethod
    def load(cls, file: Path) -> Workspace:
        try:
            data = tomllib.loads(file.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: {exc}; fix the file") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {file}: {exc.strerror}") from None
        repos: dict[str, Path] = {}
        hosts: dict[str, str] = {}
        trusted: set[str] = set()
        section = data.get("repos", {})
        if not isinstance(section, dict):
            raise ConfigError(f"{file}: [repos] must be a table of [repos.NAME] sections")
        for name, body in section.items():
            if not isinstance(body, dict) or not isinstance(body.get("path"), str):
                raise ConfigError(f'{file}: [repos.{name}] needs path = "..."')
            host = body.get("host")
            if host is not None:
                if not isinstance(host, str) or not host.strip() or host.startswith("-"):
                    raise ConfigError(f'{file}: [repos.{name}] host must be an ssh destination, e.g. '
                                      'host = "build-box"')
                remote = PurePosixPath(body["path"])
                if not remote.is_absolute():
                    raise ConfigError(f'{file}: [repos.{name}] is on {host}: its path must be absolute '
                                      f'there, e.g. path = "/srv/{name}"')
                repos[name] = Path(str(remote))
                hosts[name] = host
                if body.get("trust") is True:
                    trusted.add(name)
                continue
            path = Path(body["path"]).expanduser()
            repos[name] = (path if path.is_absolute() else file.parent / path).resolve()
        return cls(file=file.resolve(), repos=repos, hosts=hosts, trusted=frozenset(trusted))

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace | None:
        """The workspace whose file is found walking up from `start`, or None."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            file = candidate / WORKSPACE_FILE
            if file.is_file():
                return cls.load(file)
        return None

    @classmethod
    def locate(cls, where: Path | None = None) -> Workspace:
        """The workspace at `where` (its file or its directory), else the one found walking up from it.

        Raises a NotFoundError that says how to make one when there is none.
        """
        if where is not None and where.is_file():
            return cls.load(where)
        if where is not None and (where / WORKSPACE_FILE).is_file():
            return cls.load(where / WORKSPACE_FILE)
        found = cls.find(where)
        if found is None:
            here = (where or Path.cwd()).resolve()
            raise NotFoundError(
                f"no {WORKSPACE_FILE} in {here} or any directory above it; create one with "
                "`cockpit workspace init [DIR]`", code="no_workspace")
        return found

    @classmethod
    def init(cls, directory: Path) -> tuple[Workspace, bool]:
        """Create `DIRECTORY/cockpit-workspace.toml` unless it exists; returns (workspace, created)."""
        directory = directory.expanduser().resolve()
        if not directory.is_dir():
            raise UsageError(f"{directory} is not a directory; create it first")
        file = directory / WORKSPACE_FILE
        if file.exists():
            return cls.load(file), False
        _write_atomic(file, WORKSPACE_HEADER)
        return cls.load(file), True

    def add(self, name: str, path: Path) -> Workspace:
        """Add repo `name` at `path`, a git repository (maybe without .cockpit/ yet); returns the result."""
        self.check_new_name(name)
        target = path.expanduser().resolve()
        if not target.is_dir():
            raise UsageError(f"{target} is not a directory")
        if not (target / ".git").exists():
            raise UsageError(f"{target} is not the root of a git repository; run `git init` there first")
        for other, other_path in self.repos.items():
            if other_path == target and other not in self.hosts:
                raise RefusedError(f"{target} is already in the workspace as {other!r}",
                                   code="duplicate_path")
        stored = os.path.relpath(target, self.root) if target.is_relative_to(self.root) else str(target)
        return self._write_entry(name, {"path": stored})

    def add_hosted(self, name: str, host: str, path: str, *, trust: bool = False,
                   replace: bool = False) -> Workspace:
        """Add repo `name` at absolute `path` on ssh destination `host` (checked there by the caller).
        `replace`: `name` is that same entry already, written again (e.g. now with `trust`)."""
        if not (replace and self.hosts.get(name) == host and str(self.repos.get(name)) == path):
            self.check_new_name(name)
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise UsageError(f"{host!r} is not an ssh destination; give a host as ~/.ssh/config knows it, "
                             "e.g. --host build-box or --host me@build-box")
        remote = PurePosixPath(path)
        if not remote.is_absolute():
            raise UsageError(f"--path {path!r} must be absolute on {host}, e.g. --path /srv/{name}")
        for other, other_host in self.hosts.items():
            if other != name and other_host == host and str(self.repos[other]) == str(remote):
                raise RefusedError(f"{host}:{remote} is already in the workspace as {other!r}",
                                   code="duplicate_path")
        entry: dict[str, object] = {"host": host, "path": str(remote)}
        if trust:
            entry["trust"] = True
        return self._write_entry(name, entry)

    def check_new_name(self, name: str) -> None:
        if not NAME_RE.match(name):
            raise UsageError(f"repo name {name!r} must start with a letter or digit and hold only letters, "
                             "digits, '.', '-' and '_' (64 at most)")
        if name in self.repos:
            raise RefusedError(f"{self.file} already has a repo named {name!r} (at {self.repos[name]}); "
                               "repo names are unique: pick another name", code="duplicate_name")

    def _write_entry(self, name: str, values: dict[str, object]) -> Workspace:
        text = self.file.read_text()
        import tomlkit  # only edits need it: reading uses tomllib
        import tomlkit.exceptions
        from tomlkit.items import Table

        try:
            doc = tomlkit.parse(text)
        except tomlkit.exceptions.TOMLKitError as exc:
            raise ConfigError(f"{self.file}: {exc}; fix the file") from None
        repos = doc.get("repos")
        if not isinstance(repos, Table):
            repos = tomlkit.table(is_super_table=True)
            doc["repos"] = repos
        entry = tomlkit.table()
        for key, value in values.items():
            entry[key] = value
        repos[name] = entry
        _write_atomic(self.file, tomlkit.dumps(doc))
        return Workspace.load(self.file)

    def name_of(self, root: Path) -> str | None:
        root = root.resolve()
        return next((name for name, path in self.repos.items() if path == root and name not in self.hosts),
                    None)

    def host_of(self, name: str) -> str | None:
        """The ssh destination of a repo on another machine; None for a repo on this one."""
        return self.hosts.get(name)

    def path_of(self, name: str) -> Path:
        try:
            return self.repos[name]
        except KeyError:
            known = ", ".join(sorted(self.repos)) or "none"
            raise NotFoundError(
                f"no repo named {name!r} in {self.file}; repos are: {known} "
                "(`cockpit workspace add` adds one)"
            ) from None

    def peers_of(self, root: Path) -> list[str]:
        me = self.name_of(root)
        return [name for name in self.repos if name != me]


def _write_atomic(file: Path, text: str) -> None:
    tmp = file.with_name(f".{file.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, file)


def repo_identity(root: Path) -> tuple[str, list[str], Workspace | None]:
    """The repo's name (its workspace key, else its directory name), its peers, and its workspace."""
    ws = Workspace.find(root)
    if ws is not None:
        name = ws.name_of(root)
        if name is not None:
            return name, ws.peers_of(root), ws
    return root.resolve().name, [], ws
