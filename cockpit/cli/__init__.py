"""The `cockpit` command line. Every verb is a thin call into core; `--json` prints one JSON object.

`parser.py` builds the parser from the verb modules: `tasks` (task verbs, `events`), `repo` (`init`,
`doctor`, `config`), `daemon`, `execution`, `merge`, `remote`, `app` (the cockpit, `serve`) and `demo`;
`args`, `output` and `running` hold what they share.
"""

from cockpit.cli.parser import build_parser, main

__all__ = ["build_parser", "main"]
