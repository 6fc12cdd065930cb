"""A workspace: the `cockpit-workspace.toml` that names a set of repos which delegate work to each other."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from cockpit.core.errors import ConfigError, NotFoundError

WORKSPACE_FILE = "cockpit-workspace.toml"


@dataclass(frozen=True)
class Workspace:
    file: Path
    repos: dict[str, Path]

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
        section = data.get("repos", {})
        if not isinstance(section, dict):
            raise ConfigError(f"{file}: [repos] must be a table of [repos.NAME] sections")
        for name, body in section.items():
            if not isinstance(body, dict) or not isinstance(body.get("path"), str):
                raise ConfigError(f'{file}: [repos.{name}] needs path = "..."')
            path = Path(body["path"]).expanduser()
            repos[name] = (path if path.is_absolute() else file.parent / path).resolve()
        return cls(file=file.resolve(), repos=repos)

    @classmethod
    def find(cls, start: Path | None = None) -> Workspace | None:
        """The workspace whose file is found walking up from `start`, or None."""
        here = (start or Path.cwd()).resolve()
        for candidate in (here, *here.parents):
            file = candidate / WORKSPACE_FILE
            if file.is_file():
                return cls.load(file)
        return None

    def name_of(self, root: Path) -> str | None:
        root = root.resolve()
        return next((name for name, path in self.repos.items() if path == root), None)

    def path_of(self, name: str) -> Path:
        try:
            return self.repos[name]
        except KeyError:
            known = ", ".join(sorted(self.repos)) or "none"
            raise NotFoundError(
                f"no repo named {name!r} in {self.file}; repos are: {known} (`cockpit workspace add` adds one)"
            ) from None

    def peers_of(self, root: Path) -> list[str]:
        me = self.name_of(root)
        return [name for name in self.repos if name != me]


def repo_identity(root: Path) -> tuple[str, list[str], Workspace | None]:
    """The repo's name (its workspace key, else its directory name), its peers, and its workspace."""
    ws = Workspace.find(root)
    if ws is not None:
        name = ws.name_of(root)
        if name is not None:
            return name, ws.peers_of(root), ws
    return root.resolve().name, [], ws
