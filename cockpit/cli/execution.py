"""Execution verbs: `task attach|send|tail|gates|stop|rework|done`, `gc`, and the agents' `hook ...`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from cockpit.cli.args import ArgParser, read_text_arg, seconds_arg, task_id
from cockpit.cli.output import out, say
from cockpit.cli.running import run_async, with_backend
from cockpit.core.backend import Backend
from cockpit.core.errors import CockpitError, UsageError
from cockpit.core.models import JSON
from cockpit.core.printable import printable
from cockpit.core.states import IN_EXECUTION, State

# -- attach ------------------------------------------------------------------------------------------------


def cmd_attach(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> JSON:
        info: JSON = await b.call("attach_info", {"id": args.id})
        return info

    info = run_async(_with_result(args, body))
    from cockpit.core.tmux import PaneRef, TmuxPanes

    # The argv depends on this terminal ($TMUX): build it here, not in the daemon.
    panes = TmuxPanes(info.get("socket_name"), str(info["session"]))
    argv = panes.attach_argv(PaneRef(str(info["session"]), str(info["window"]), str(info["pane_id"])))
    if args.json or args.print:
        out(args, {**info, "argv": argv}, lambda: print(" ".join(argv)))
        return 0
    sys.stdout.flush()
    os.execvp(argv[0], argv)
    return 0  # not reached


async def _with_result(args: argparse.Namespace, body: Any) -> Any:
    result: list[Any] = []

    async def run(b: Backend) -> int:
        result.append(await body(b))
        return 0

    await with_backend(args, run)
    return result[0]


# -- send ----------------------------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    text = read_text_arg(args.text)

    async def body(b: Backend) -> int:
        result = await b.call("send_input", {"id": args.id, "text": text, "enter": not args.no_enter})
        out(args, result, lambda: say(args, f"sent to task {args.id} ({result['pane']})"))
        return 0

    return int(run_async(with_backend(args, body)))


# -- tail ----------------------------------------------------------------------------------------------------


def cmd_tail(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        result = await b.call("tail", {"id": args.id, "lines": args.lines})
        if args.json and not args.follow:
            out(args, result)
            return 0
        lines = list(result["lines"])
        if args.follow and result.get("partial"):
            lines = lines[:-1]  # printed whole once the follower reads the rest of it
        for line in lines:
            _emit(args, args.id, line)
        sys.stdout.flush()
        if not args.follow:
            if not result["exists"]:
                print(f"cockpit: task {args.id} has no log yet ({result['path']})", file=sys.stderr)
            return 0
        await _follow(args, b, Path(result["path"]), int(result.get("complete_size", 0)))
        return 0

    try:
        return int(run_async(with_backend(args, body)))
    except KeyboardInterrupt:
        return 0


def _emit(args: argparse.Namespace, task_id: int, line: str) -> None:
    if args.json:
        sys.stdout.write(json.dumps({"id": task_id, "line": line}) + "\n")
    else:
        sys.stdout.write(line + "\n")


async def _follow(args: argparse.Namespace, b: Backend, log: Path, offset: int) -> None:
    """Print what the agent adds to its log until the task stops running (or Ctrl-C)."""
    from cockpit.core import filewatch
    from cockpit.core.execution_ops import clean_output

    await asyncio.to_thread(log.parent.mkdir, parents=True, exist_ok=True)
    pending = ""
    names = {log.name, "index.db", "index.db-wal"}

    def interesting(change: filewatch.Change, path: str) -> bool:
        return Path(path).name in names

    def read_new() -> str:
        nonlocal offset
        try:
            with open(log, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return ""
        offset += len(data)
        return data.decode("utf-8", errors="replace")

    def flush(text: str, final: bool = False) -> None:
        nonlocal pending
        pending += text
        *complete, pending = pending.split("\n")
        if final and pending:
            complete.append(pending)
            pending = ""
        for line in clean_output("\n".join(complete)) if complete else []:
            _emit(args, args.id, line)
        sys.stdout.flush()

    async def running() -> bool:
        task = await b.call("get_task", {"id": args.id})
        return str(task["state"]) in IN_EXECUTION

    stop = asyncio.Event()
    watcher = filewatch.awatch(log.parent, b.paths.cockpit, watch_filter=interesting, stop_event=stop,
                               debounce=20)
    nxt = asyncio.ensure_future(watcher.__anext__())
    await asyncio.sleep(0)
    try:
        flush(await asyncio.to_thread(read_new))
        while await running():
            await nxt
            nxt = asyncio.ensure_future(watcher.__anext__())
            flush(await asyncio.to_thread(read_new))
        flush(await asyncio.to_thread(read_new), final=True)
    finally:
        stop.set()
        await filewatch.close_watch(nxt, watcher)


# -- gates ---------------------------------------------------------------------------------------------------


def cmd_gates(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        if b.via != "daemon":
            raise CockpitError(
                "`cockpit task gates` needs the repo's daemon (the gates run in the background and move the "
                "task): start it with `cockpit daemon start`, then run this again",
                code="daemon_required",
            )
        task = await b.call("run_gates", {"id": args.id})
        if args.no_wait:
            out(args, task, lambda: say(args, f"task {args.id}: gates queued"))
            return 0
        states = [State.AWAITING_REVIEW.value, State.FAILED.value, State.INTERRUPTED.value]
        result = await b.call("wait_task", {"id": args.id, "states": states, "timeout_s": args.timeout})
        task = result["task"]
        out(args, task, lambda: _print_gates(task))
        if result.get("timed_out"):
            print(f"cockpit: timed out: task {args.id} is still {task['state']}", file=sys.stderr)
            return 1
        return 0 if task["state"] == State.AWAITING_REVIEW.value else 1

    return int(run_async(with_backend(args, body)))


def _say(text: str) -> None:
    """Print a line that may hold an agent's or a peer's text (gate output, file names): never raw escapes."""
    print(printable(text))


def _print_gates(task: JSON) -> None:
    for gate in task.get("gates", []):
        code = "" if gate.get("exit_code") is None else f", exit {gate['exit_code']}"
        reason = f": {gate['reason']}" if gate.get("reason") else ""
        _say(f"{gate['status']:>6}  {gate['name']} ({gate['duration_s']:.2f}s{code}){reason}")
        if gate["status"] != "passed":
            for line in gate.get("log_tail", [])[-10:]:
                _say(f"        {line}")
    _say(f"task {task['id']} is {task['state']}")


# -- stop, rework, done --------------------------------------------------------------------------------------


def cmd_stop(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        task = await b.call("stop_task", {"id": args.id, "reason": args.reason or ""})
        out(args, task, lambda: say(args, f"task {args.id} is {task['state']}"))
        return 0

    return int(run_async(with_backend(args, body)))


def cmd_rework(args: argparse.Namespace) -> int:
    message = read_text_arg(args.message)

    async def body(b: Backend) -> int:
        task = await b.call("rework_task", {"id": args.id, "message": message})
        out(args, task, lambda: say(args, f"task {args.id} is {task['state']}: changes requested"))
        return 0

    return int(run_async(with_backend(args, body)))


def cmd_done(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        call: JSON = {"id": args.id}
        if args.message is not None:
            call["message"] = args.message
        task = await b.call("done_task", call)
        out(args, task, lambda: say(args, f"task {args.id} is {task['state']}: agent done"))
        return 0

    return int(run_async(with_backend(args, body)))


# -- gc ------------------------------------------------------------------------------------------------------


def cmd_gc(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        report = await b.call("gc", {"dry_run": args.dry_run, "force": args.force})

        def human() -> None:
            verb = "would remove" if report["dry_run"] else "removed"
            for item in report["removed"]:
                took = item.get("ignored_files") or []
                _say(f"{verb} {item['path']} ({item['why']})"
                     + (f" with {len(took)} ignored file(s): {', '.join(took[:3])}" if took else ""))
            for item in report["dirty"]:
                _say(
                    f"kept {item['path']} ({item['why']}): {item['count']} uncommitted file(s), e.g. "
                    + ", ".join(item["files"][:3])
                )
            for item in report.get("ignored", []):
                _say(
                    f"kept {item['path']} ({item['why']}): {item['count']} ignored file(s), e.g. "
                    + ", ".join(item["files"][:3]) + "; `cockpit gc --force` deletes them with it"
                )
            for item in report["skipped"]:
                _say(f"left {item['path']}: {item['reason']}")
            for name in report.get("windows_closed", []):
                _say(f"{'would close' if report['dry_run'] else 'closed'} tmux window {name}")
            if not (
                report["removed"] or report["dirty"] or report["skipped"] or report.get("ignored")
                or report.get("windows_closed")
            ):
                _say(f"nothing to collect ({report['kept']} worktree(s) in use)")

        out(args, report, human)
        return 0

    return int(run_async(with_backend(args, body)))


# -- hooks ---------------------------------------------------------------------------------------------------


def cmd_hook(args: argparse.Namespace) -> int:
    from cockpit.hook import HookError, hook_payload, record, skip_payload

    payload = hook_payload(args.payload, sys.stdin if args.stdin else None)
    if skip_payload(args.kind, payload):
        return 0
    try:
        path, task_id = record(
            args.kind, repo=args.repo, task=args.task, message=args.message, event=args.event, payload=payload
        )
    except HookError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise CockpitError(f"cannot write the signal: {exc}") from None
    if path is None:
        print(
            "cockpit hook: not running as a cockpit task (no --task, no $COCKPIT_TASK_ID); nothing recorded",
            file=sys.stderr,
        )
        return 0
    if args.json:
        sys.stdout.write(json.dumps({"signal": str(path), "task": task_id, "kind": args.kind}) + "\n")
    return 0


# -- registration --------------------------------------------------------------------------------------------


def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    p = tsub.add_parser("attach", parents=[common], help="show the task's agent pane (tmux)")
    p.add_argument("id", type=task_id)
    p.add_argument("--print", action="store_true", help="print the tmux command instead of running it")
    p.set_defaults(func=cmd_attach)

    p = tsub.add_parser("send", parents=[common], help="type TEXT (then Enter) into the task's agent pane")
    p.add_argument("id", type=task_id)
    p.add_argument("text", help="what to type; - reads it from stdin")
    p.add_argument("--no-enter", action="store_true", help="do not press Enter after the text")
    p.set_defaults(func=cmd_send)

    p = tsub.add_parser("tail", parents=[common], help="print the task's agent log")
    p.add_argument("id", type=task_id)
    p.add_argument("-n", "--lines", type=int, default=50, metavar="N", help="how many lines (default 50)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing while the task runs")
    p.set_defaults(func=cmd_tail)

    p = tsub.add_parser("gates", parents=[common], help="run the task's gates again (needs the daemon)")
    p.add_argument("id", type=task_id)
    p.add_argument("--no-wait", action="store_true", help="return once the re-run is queued")
    p.add_argument("--timeout", type=seconds_arg, metavar="S", help="give up waiting after S seconds")
    p.set_defaults(func=cmd_gates)

    p = tsub.add_parser(
        "stop",
        parents=[common],
        help="end the task's agent (exit, then TERM, then KILL); the task is interrupted, worktree kept",
    )
    p.add_argument("id", type=task_id)
    p.add_argument("--reason", help="why, for the record")
    p.set_defaults(func=cmd_stop)

    p = tsub.add_parser(
        "rework",
        parents=[common],
        help="request changes: type MESSAGE into the reviewed task's agent session (back to executing)",
    )
    p.add_argument("id", type=task_id)
    p.add_argument("--message", "-m", required=True, help="what to change; - reads it from stdin")
    p.set_defaults(func=cmd_rework)

    p = tsub.add_parser(
        "done", parents=[common], help="say the task's agent is done (its gates run next)"
    )
    p.add_argument("id", type=task_id)
    p.add_argument("--message", help="a note for the record")
    p.set_defaults(func=cmd_done)

    p = sub.add_parser(
        "gc",
        parents=[common],
        help="remove worktrees of rejected/cancelled tasks and orphans (never uncommitted work)",
    )
    p.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    p.add_argument("--force", action="store_true",
                   help="also remove worktrees holding ignored files (.env, build output), files and all")
    p.set_defaults(func=cmd_gc)

    hook = sub.add_parser("hook", help="for agents' hooks: report waiting, done, or the end of a turn")
    hsub = hook.add_subparsers(dest="hook_command", metavar="KIND", required=True, parser_class=ArgParser)
    for kind, text in (
        ("needs-input", "the agent waits for a person"),
        ("resolved", "the agent no longer waits"),
        ("done", "the agent's work is finished and committed"),
        ("turn-ended", "the agent's turn is over (payload on stdin or as the last argument)"),
    ):
        p = hsub.add_parser(kind, parents=[common], help=text)
        p.add_argument("--task", type=task_id, help="the task id (default: $COCKPIT_TASK_ID)")
        p.add_argument("--message", help="what the agent waits for")
        p.add_argument("--event", help="the agent's hook event name, for the record")
        p.add_argument(
            "--stdin",
            action="store_true",
            help="read the hook's JSON payload on stdin and take its message (Claude Code hooks)",
        )
        p.add_argument("payload", nargs="?", help="the hook's JSON payload as an argument (Codex's notify)")
        p.set_defaults(func=cmd_hook, kind=kind)
