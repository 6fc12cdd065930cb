"""The script agent (`cockpit.core.script_agent`): deterministic steps from the task's TOML script.

Command line (PYTHON is the interpreter running cockpit)::

    PYTHON -m cockpit.core.script_agent --task-id N [--script S] [--signals D] [--plan-file P] [--fix]

With no script it commits the plan. It reports its own progress, questions and exit through signals; a
script with `session = true` reports done and stays, taking prompts typed into its pane (see its module).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from cockpit.core.agents.base import Agent, Setup, missing


class Script(Agent):
    name = "script"
    executable = None

    @property
    def patterns(self) -> str:
        return "generic"

    def require(self, setup: Setup) -> None:
        if not setup.python or shutil.which(setup.python) is None:
            raise missing(self.name, setup.python or "python", "backend")

    def command(self, setup: Setup) -> list[str]:
        argv = [setup.python, "-m", "cockpit.core.script_agent", "--task-id", str(setup.task_id)]
        if setup.script_file is not None:
            argv += ["--script", str(setup.script_file.absolute())]
        if setup.signals_dir is not None:
            argv += ["--signals", str(setup.signals_dir.absolute())]
        if setup.plan_file is not None:
            argv += ["--plan-file", str(setup.plan_file.absolute())]
        if setup.fix:
            argv.append("--fix")
        return argv

    def progress(self, screen: Sequence[str]) -> str | None:
        return None  # the script agent reports its steps itself
