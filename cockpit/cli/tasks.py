"""The task verbs (`task create|list|show|approve|reject|cancel|retry|clarify|wait`) and `events`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cockpit.cli.args import Runner, read_text_arg
from cockpit.cli.output import out, say
from cockpit.cli.running import run_async, with_backend
from cockpit.core.backend import Backend
from cockpit.core.errors import CockpitError, UsageError
from cockpit.core.models import JSON
from cockpit.core.ops import all_tasks
from cockpit.core.states import State, parse_state


def cmd_task_create(args: argparse.Namespace) -> int:
    text = read_text_arg(args.text)
    script = None
    if args.script:
        try:
            script = Path(args.script).read_text()
        except OSError as exc:
            raise UsageError(f"cannot read script {args.script}: {exc.strerror}") from None

    async def body(b: Backend) -> int:
        task = await b.call("create_task", {"text": text, "force": args.force, "no_wait": args.no_wait,
                                            "script": script})

        def human() -> None:
            from cockpit.render import print_task

            print_task(task)

        out(args, task, human)
        return 0

    return run_async(with_backend(args, body))


def cmd_task_list(args: argparse.Namespace) -> int:
    states = [parse_state(s).value for s in args.state or []]

    async def body(b: Backend) -> int:
        result: dict[str, Any] = {"tasks": await all_tasks(b.call, {"all": args.all, "states": states})}
        # The repo's token usage (every task's agents), beside the list.
        first = await b.call("list_tasks", {"all": args.all, "states": states, "limit": 1})
        result["usage"] = first.get("usage")

        def human() -> None:
            from cockpit.render import console, task_table

            if result["tasks"]:
                console.print(task_table(result["tasks"]))
            else:
                console.print("no tasks" + ("" if args.all else " (--all includes finished ones)"))

        out(args, result, human)
        return 0

    return run_async(with_backend(args, body))


def task_op(op: str, extra: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
            message: str = "") -> Runner:
    """A verb that sends one op about one task and prints the task it returns."""

    def run(args: argparse.Namespace) -> int:
        async def body(b: Backend) -> int:
            payload = {"id": args.id, **(extra(args) if extra else {})}
            task = await b.call(op, payload)
            out(args, task, lambda: say(args, message.format(**task) if message else "")
                if message else _print(task))
            return 0

        return run_async(with_backend(args, body))

    return run


def cmd_task_show(args: argparse.Namespace) -> int:
    """The task, and where its agent's and its gates' logs are (the whole output, not just the tail)."""

    async def body(b: Backend) -> int:
        task = await b.call("get_task", {"id": args.id})
        logs = {name: str(path) for name, path in (("agent", b.paths.task_log(args.id)),
                                                   ("gates", b.paths.gate_log(args.id))) if path.exists()}

        def human() -> None:
            _print(task)
            failed = any(g.get("status") == "failed" for g in task.get("gates") or [])
            for name, path in logs.items():
                note = " (the failing gate's whole output)" if name == "gates" and failed else ""
                say(args, f"{name} log: {path}{note}")

        out(args, {**task, "logs": logs}, human)
        return 0

    return run_async(with_backend(args, body))


def cmd_task_approve(args: argparse.Namespace) -> int:
    """Approve; an ambiguous task only with --anyway, and with no daemon say that nothing runs yet."""

    async def body(b: Backend) -> int:
        if not args.anyway:
            current = await b.call("get_task", {"id": args.id})
            if current.get("state") == State.PENDING_CLARIFICATION.value:
                raise CockpitError(
                    f"task {args.id} is ambiguous and its questions are not answered yet: answer them with "
                    f"`cockpit task clarify {args.id} --answer TEXT`, or approve it as it is with --anyway",
                    code="needs_answers")
        task = await b.call("approve_task", {"id": args.id})
        data = {**task, "daemon_running": b.client is not None}

        def human() -> None:
            say(args, f"task {task['id']} is {task['state']}")
            if b.client is None and task.get("state") == State.APPROVED.value:
                say(args, "no daemon is running for this repo: nothing runs until one starts "
                          "(`cockpit daemon start`)")

        out(args, data, human)
        return 0

    return run_async(with_backend(args, body))


def _print(task: JSON) -> None:
    from cockpit.render import print_task

    print_task(task)


def cmd_task_wait(args: argparse.Namespace) -> int:
    states = [parse_state(s).value for s in args.state or []]

    async def body(b: Backend) -> int:
        result = await b.call("wait_task", {"id": args.id, "states": states, "timeout_s": args.timeout})
        task = result["task"]
        if result.get("timed_out"):
            if args.json:
                message = f"task {args.id} is still {task['state']}"
                out(args, {"error": {"code": "timeout", "message": message}, "task": task})
            else:
                print(f"cockpit: timed out: task {args.id} is still {task['state']}", file=sys.stderr)
            return 1
        out(args, task, lambda: say(args, f"task {task['id']} is {task['state']}"))
        return 0

    return run_async(with_backend(args, body))


def flatten_states(args: argparse.Namespace) -> argparse.Namespace:
    if args.state:
        args.state = [s for group in args.state for s in group]
    return args


def cmd_events(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        since = args.since
        if not args.follow or b.client is None:
            result = await b.call("events", {"since": since})
            for event in result["events"]:
                sys.stdout.write(json.dumps(event) + "\n")
            if not args.follow:
                return 0
            since = result["events"][-1]["seq"] if result["events"] else since
            from cockpit.core.storewatch import store_changes

            async for _ in store_changes(b.paths.cockpit):
                result = await b.call("events", {"since": since})
                for event in result["events"]:
                    sys.stdout.write(json.dumps(event) + "\n")
                    since = event["seq"]
                sys.stdout.flush()
            return 0
        async for event in b.client.subscribe(since):
            sys.stdout.write(json.dumps(event.to_json()) + "\n")
            sys.stdout.flush()
        return 0

    try:
        return run_async(with_backend(args, body))
    except KeyboardInterrupt:
        return 0
