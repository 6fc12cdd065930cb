"""The whole `cockpit` parser, and `main`: every verb module registers its verbs here, in help order.

Exit codes: 0 done, 1 refused or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Sequence

from cockpit import __version__
from cockpit.cli import app, demo, execution, merge, remote
from cockpit.cli.args import ArgParser, common_parser, seconds_arg, state_arg, task_id
from cockpit.cli.daemon import cmd_daemon
from cockpit.cli.repo import cmd_config, cmd_doctor, cmd_init
from cockpit.cli.tasks import (
    cmd_events,
    cmd_task_approve,
    cmd_task_create,
    cmd_task_list,
    cmd_task_show,
    cmd_task_wait,
    flatten_states,
    task_op,
)
from cockpit.core.errors import CockpitError
from cockpit.core.printable import printable

# The modules that add verbs after the task verbs (each has `register(sub, tsub, common)`), in help order.
VERB_MODULES = (execution, merge, remote, app, demo)


def build_parser() -> argparse.ArgumentParser:
    common = common_parser()
    parser = ArgParser(prog="cockpit", description="Supervise AI coding agents across git repositories.")
    parser.add_argument("--version", action="version", version=f"agent-cockpit {__version__}")
    parser.add_argument("--workspace", metavar="PATH", help="open the cockpit on this workspace or repo")
    parser.set_defaults(func=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgParser)

    p = sub.add_parser("init", parents=[common], help="create .cockpit/ in a repo")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("doctor", parents=[common], help="check the store, config and daemon")
    p.add_argument("--repair", action="store_true", help="rebuild the projections from the events first")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("daemon", parents=[common], help="start, stop or inspect the repo's daemon")
    p.add_argument("action", choices=["start", "stop", "status", "run"])
    p.add_argument("--ready-fd", type=int, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_daemon)

    task = sub.add_parser("task", help="create and steer tasks")
    tsub = task.add_subparsers(dest="task_command", metavar="VERB", required=True, parser_class=ArgParser)
    p = tsub.add_parser("create", parents=[common], help="create a task (TEXT, or - to read stdin)")
    p.add_argument("text")
    p.add_argument("--no-wait", action="store_true", help="return at `created`, before classification")
    p.add_argument("--force", action="store_true", help="create it even if it looks like a duplicate")
    p.add_argument("--script", metavar="FILE", help="a TOML script for the script agent")
    p.set_defaults(func=cmd_task_create)

    p = tsub.add_parser("list", parents=[common], help="list tasks (active ones unless --all)")
    p.add_argument("--all", action="store_true")
    p.add_argument("--state", action="append", type=state_arg, metavar="S")
    p.set_defaults(func=cmd_task_list)

    p = tsub.add_parser("show", parents=[common], help="show one task")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=cmd_task_show)

    p = tsub.add_parser("approve", parents=[common], help="approve a pending task")
    p.add_argument("id", type=task_id)
    p.add_argument("--anyway", action="store_true",
                   help="approve an ambiguous task before its questions are answered")
    p.set_defaults(func=cmd_task_approve)

    p = tsub.add_parser("reject", parents=[common], help="reject a task")
    p.add_argument("id", type=task_id)
    p.add_argument("--reason", default="")
    p.set_defaults(func=task_op("reject_task", lambda a: {"reason": a.reason}, "task {id} is {state}"))

    p = tsub.add_parser("cancel", parents=[common], help="cancel a task")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=task_op("cancel_task", message="task {id} is {state}"))

    p = tsub.add_parser("retry", parents=[common], help="run a failed, interrupted or rolled-back task again")
    p.add_argument("id", type=task_id)
    p.add_argument("--fresh", action="store_true", help="start a new worktree from the target's tip")
    p.set_defaults(func=task_op("retry_task", lambda a: {"fresh": a.fresh}, "task {id} is {state}"))

    p = tsub.add_parser("clarify", parents=[common], help="answer an ambiguous task's questions")
    p.add_argument("id", type=task_id)
    p.add_argument("--answer", action="append", required=True, metavar="TEXT", nargs="+")
    p.set_defaults(func=task_op("clarify_task",
                                lambda a: {"answers": [x for group in a.answer for x in group]},
                                "task {id} is {state}"))

    p = tsub.add_parser("wait", parents=[common], help="block until a task reaches a state")
    p.add_argument("id", type=task_id)
    p.add_argument("--state", action="append", type=state_arg, metavar="S", nargs="+")
    p.add_argument("--timeout", type=seconds_arg, metavar="S")
    p.set_defaults(func=lambda a: cmd_task_wait(flatten_states(a)))

    p = sub.add_parser("events", parents=[common], help="print events as JSON lines")
    p.add_argument("--since", type=int, default=0, metavar="N")
    p.add_argument("--follow", action="store_true", help="keep printing new events as they commit")
    p.set_defaults(func=cmd_events)

    p = sub.add_parser("config", parents=[common], help="get, set or list settings")
    p.add_argument("action", choices=["get", "set", "list"])
    p.add_argument("key", nargs="?")
    p.add_argument("value", nargs="?")
    p.set_defaults(func=cmd_config)

    for verbs in VERB_MODULES:
        verbs.register(sub, tsub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_json = "--json" in argv
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.func is None:
            return int(app.open_cockpit(args))
        result = args.func(args)
        return int(result)
    except CockpitError as exc:
        if wants_json:
            sys.stdout.write(json.dumps({"error": exc.to_json()}) + "\n")
        else:
            print(f"cockpit: {printable(exc.message)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        # A bug or an unexpected OS error: the traceback for a report, and still one JSON object under --json.
        traceback.print_exc()
        message = f"internal error: {exc.__class__.__name__}: {exc}"
        if wants_json:
            sys.stdout.write(json.dumps({"error": {"code": "internal", "message": message}}) + "\n")
        else:
            print(f"cockpit: {printable(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
