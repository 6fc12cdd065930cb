"""Human-readable output for the CLI (rich); `--json` output bypasses this entirely."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

STATE_STYLES = {
    "created": "dim", "pending": "yellow", "pending_clarification": "magenta", "approved": "cyan",
    "executing": "bold blue", "gating": "blue", "awaiting_review": "bold yellow", "merging": "bold cyan",
    "done": "green", "failed": "bold red", "interrupted": "red", "rejected": "dim red", "cancelled": "dim",
    "rolled_back": "magenta",
}

console = Console(highlight=False, soft_wrap=True)


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def age(ts: float) -> str:
    seconds = max(0, int(time.time() - ts))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def task_table(tasks: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("id", "state", "scope", "title", "agent", "age"):
        table.add_column(col)
    for t in tasks:
        agent = "needs input" if t.get("needs_input") else (t.get("agent_status") or "")
        title = t["title"]
        if t.get("parent"):
            title = f"← {t['parent']['repo']}#{t['parent']['id']} {title}"
        table.add_row(str(t["id"]), state_text(t["state"]), t.get("scope") or "", title, agent,
                      age(t.get("updated_at", 0)))
    return table


def print_task(t: dict[str, Any]) -> None:
    c = console
    c.print(Text.assemble((f"task {t['id']}", "bold"), "  ", state_text(t["state"]),
                          f"  {t.get('scope') or 'unclassified'}"))
    c.print(Text(t["title"], style="bold"))
    if t["description"] != t["title"]:
        c.print(t["description"])
    created = dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    c.print(f"[dim]created {created}, classifier {t.get('classifier') or '-'}"
            f"{', approved by ' + t['approved_by'] if t.get('approved_by') else ''}[/dim]")
    if t.get("reason"):
        c.print(f"reason: {t['reason']}")
    if t.get("parent"):
        p = t["parent"]
        c.print(f"parent: {p['repo']}#{p['id']}")
    if t.get("created_by"):
        behalf = f" on behalf of task {t['on_behalf_of']}" if t.get("on_behalf_of") else ""
        c.print(f"[dim]created by {t['created_by']}{behalf}[/dim]")
    for child in t.get("children") or []:
        note = " (released by a retry)" if child.get("released") else ""
        c.print(f"child:  {child['repo']}#{child['id']} {child.get('state') or ''}{note}")
    if t.get("child_failure"):
        c.print(f"[bold red]a delegated child went wrong:[/bold red] {t['child_failure']}")
    if t.get("plan"):
        c.print("[bold]plan[/bold]")
        for s in t["plan"]:
            peer = f" → {s['peer']}" if s.get("peer") else ""
            deps = f" (after {', '.join(map(str, s['depends_on']))})" if s.get("depends_on") else ""
            status = f" [dim]{s['status']}[/dim]" if s.get("status") and s["status"] != "pending" else ""
            peer_task = f" [dim]{s['peer']}#{s['peer_task_id']} {s.get('peer_state') or ''}[/dim]" \
                if s.get("peer_task_id") else ""
            c.print(f"  {s['n']}. {s['verb']}{peer}: {s['description']}{deps}{status}{peer_task}")
    if t.get("questions"):
        c.print("[bold]questions[/bold]")
        for q in t["questions"]:
            c.print(f"  - {q}")
    if t.get("answers"):
        c.print("[bold]answers[/bold]")
        for a in t["answers"]:
            c.print(f"  - {a}")
    if t.get("branch"):
        c.print(f"branch: {t['branch']}  worktree: {t.get('worktree') or '-'}  "
                f"attempt: {t.get('attempt', 0)}")
    if t.get("pane"):
        c.print(f"pane: {t['pane']}  agent: {t.get('agent') or '-'} ({t.get('agent_status')})")
    if t.get("needs_input"):
        c.print("[bold red]the agent is waiting for input[/bold red]: `cockpit task send ID TEXT`")
    if t.get("progress"):
        c.print(f"progress: {t['progress']}")
    for g in t.get("gates") or []:
        mark = "[green]passed[/green]" if g["status"] == "passed" else "[red]failed[/red]"
        c.print(f"gate {g['name']}: {mark} exit {g.get('exit_code')} in {g.get('duration_s', 0):.1f}s"
                f"{' - ' + g['reason'] if g.get('reason') else ''}")
    if t.get("failure"):
        c.print(f"[red]failure:[/red] {t['failure']}")
    m = t.get("merge")
    if m:
        c.print(f"merge: {m['state']} into {m['target']} merge {str(m.get('merge_sha') or '-')[:12]} "
                f"rollback point {str(m.get('rollback_sha') or '-')[:12]}"
                f"{' (' + m['rollback_method'] + ')' if m.get('rollback_method') else ''}")
