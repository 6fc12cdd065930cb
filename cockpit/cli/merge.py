"""CLI verbs of merging: `task merge ID [--dry-run]`, `task rollback ID`, `merges`.

Each is one op (`merge_task`, `rollback_task`, `list_merges`) through the daemon when it runs (where merges
queue one at a time), else in-process under the repo's merge lock. Exit codes: 0 done, 1 refused (a failed
dry-run preflight too), 2 usage error.
"""

from __future__ import annotations

import argparse
from typing import Any

from cockpit.cli.args import task_id
from cockpit.cli.output import out
from cockpit.cli.running import run_async, with_backend
from cockpit.core.backend import Backend
from cockpit.core.models import JSON


def _short(sha: Any) -> str:
    return str(sha)[:10] if sha else "-"


def _print_preflight(report: JSON) -> None:
    from rich.table import Table

    from cockpit.render import console, esc

    table = Table(box=None, pad_edge=False, show_header=False)
    table.add_column("ok")
    table.add_column("check", style="bold")
    table.add_column("detail")
    for check in report.get("checks") or []:
        mark = "[green]ok[/green]" if check["ok"] else "[red]FAIL[/red]"
        table.add_row(mark, esc(check["name"]), esc(check["detail"]))
    console.print(table)
    if report.get("conflicts"):
        console.print(f"[red]conflicting files:[/red] {esc(', '.join(report['conflicts']))}")


def print_merge(result: JSON) -> None:
    from cockpit.render import console, esc

    task, merge = result["task"], result["merge"] or {}
    target = esc(merge.get("target") or "the target")
    if result.get("already_merged"):
        console.print(f"task {task['id']} is already merged into {target}: merge "
                      f"{_short(merge.get('merge_sha'))}, rollback point {_short(merge.get('rollback_sha'))} "
                      "(nothing changed)")
        return
    report = result.get("preflight") or {}
    if result.get("dry_run"):
        verdict = "[green]ok[/green]" if report.get("ok") else "[red]refused[/red]"
        into = esc(report.get("target") or target)
        console.print(f"preflight of task {task['id']} into {into}: {verdict} "
                      f"(dry run, nothing changed)")
        _print_preflight(report)
        if report.get("ok") and merge.get("would_rebase"):
            console.print(f"{esc(report.get('target'))} moved since the task branched: the merge would "
                          "rebase the task branch onto it and run the gates again first")
        return
    console.print(f"[green]merged[/green] task {task['id']} into {target} ({esc(merge.get('strategy'))}): "
                  f"merge {_short(merge.get('merge_sha'))}, rollback point "
                  f"{_short(merge.get('rollback_sha'))}"
                  + (f"; rebased onto {target} first" if result.get("rebased") else ""))
    if merge.get("worktree_kept"):
        console.print(f"[yellow]{esc(merge.get('note') or 'worktree kept')}[/yellow]")
    elif merge.get("worktree_removed"):
        console.print("worktree removed (branch kept)")
    console.print(f"undo with `cockpit task rollback {task['id']}`")


def print_rollback(result: JSON) -> None:
    from cockpit.render import console, esc

    task, rb = result["task"], result["rollback"] or {}
    target = esc((task.get("merge") or {}).get("target") or "the target")
    if result.get("already_rolled_back"):
        method = esc(rb.get("method"))
        console.print(f"task {task['id']} is already rolled back ({method}); nothing changed")
        return
    if rb.get("method") == "reset":
        what = (f"moved {target} back from {_short(rb.get('from_sha'))} to the rollback point "
                f"{_short(rb.get('to_sha'))}")
    else:
        what = f"committed revert {_short(rb.get('to_sha'))} on {target} (after {_short(rb.get('from_sha'))})"
    console.print(f"[magenta]rolled back[/magenta] task {task['id']}: {what}")
    console.print(f"run it again with `cockpit task retry {task['id']}`")


def print_merges(result: JSON) -> None:
    from rich.table import Table

    from cockpit.render import STATE_STYLES, console, esc, plain

    merges = result["merges"]
    if not merges:
        console.print("no merges yet")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("task", "title", "target", "state", "merge", "rollback point", "strategy", "rollback now"):
        table.add_column(col)
    styles = {"merged": "done", "rolled_back": "rolled_back", "merging": "merging",
              "needs_attention": "failed", "refused": "rejected", "preflight": "pending"}
    for m in merges:
        state = plain(m["state"], STATE_STYLES.get(styles.get(m["state"], ""), ""))
        now = m.get("rollback_now") or (f"({m['rollback_method']})" if m.get("rollback_method") else "-")
        table.add_row(plain(m["task_id"]), plain(m["title"]), plain(m["target"]), state,
                      plain(_short(m.get("merge_sha"))), plain(_short(m.get("rollback_sha"))),
                      plain(m.get("strategy") or ""), plain(now))
    console.print(table)
    for m in merges:
        if m["state"] == "needs_attention" and m.get("detail"):
            console.print(f"[red]task {esc(m['task_id'])} needs a person:[/red] {esc(m['detail'])}")


def cmd_merge(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        result = await b.call("merge_task", {"id": args.id, "dry_run": args.dry_run})
        out(args, result, lambda: print_merge(result))
        if result.get("dry_run"):
            return 0 if (result.get("preflight") or {}).get("ok") else 1
        return 0

    return run_async(with_backend(args, body))


def cmd_rollback(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        result = await b.call("rollback_task", {"id": args.id})
        out(args, result, lambda: print_rollback(result))
        return 0

    return run_async(with_backend(args, body))


def cmd_merges(args: argparse.Namespace) -> int:
    async def body(b: Backend) -> int:
        result = await b.call("list_merges", {"all": args.all})
        out(args, result, lambda: print_merges(result))
        return 0

    return run_async(with_backend(args, body))


def register(sub: Any, tsub: Any, common: argparse.ArgumentParser) -> None:
    p = tsub.add_parser("merge", parents=[common],
                        help="merge a task awaiting review into the target branch (verified, undoable)")
    p.add_argument("id", type=task_id)
    p.add_argument("--dry-run", action="store_true", help="run the preflight only and print its report")
    p.set_defaults(func=cmd_merge)

    p = tsub.add_parser("rollback", parents=[common], help="undo a done task's merge (reset or revert)")
    p.add_argument("id", type=task_id)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("merges", parents=[common], help="list the repo's merges, newest first")
    p.add_argument("--all", action="store_true", help="include refused merge attempts")
    p.set_defaults(func=cmd_merges)
