"""Human-readable output for the CLI (rich); `--json` output bypasses this entirely."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from cockpit.core.printable import printable

STATE_STYLES = {
    "created": "dim", "pending": "yellow", "pending_clarification": "magenta", "approved": "cyan",
    "executing": "bold blue", "gating": "blue", "awaiting_review": "bold yellow", "merging": "bold cyan",
    "done": "green", "failed": "bold red", "interrupted": "red", "rejected": "dim red", "cancelled": "dim",
    "rolled_back": "magenta",
}

console = Console(highlight=False, soft_wrap=True)


def esc(value: object) -> str:
    """A value from a task, a peer or an agent, safe inside a markup string: no escape sequences or markup."""
    return escape(printable(value))


def plain(value: object, style: str = "") -> Text:
    """A value as literal text (never parsed as markup), without escape sequences."""
    return Text(printable(value), style=style)


def state_text(state: str) -> Text:
    return plain(state, STATE_STYLES.get(state, ""))


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
        table.add_row(plain(t["id"]), state_text(t["state"]), plain(t.get("scope") or ""),
                      plain(printable(title, one_line=True)), plain(agent), age(t.get("updated_at", 0)))
    return table


def print_task(t: dict[str, Any]) -> None:
    c = console
    # Every value is escaped: titles, plans and failures may be a peer's or an agent's text.
    c.print(Text.assemble((f"task {printable(t['id'])}", "bold"), "  ", state_text(t["state"]),
                          f"  {printable(t.get('scope') or 'unclassified')}"))
    c.print(plain(t["title"], "bold"))
    if t["description"] != t["title"]:
        c.print(plain(t["description"]))
    created = dt.datetime.fromtimestamp(t["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
    c.print(f"[dim]created {created}, classifier {esc(t.get('classifier') or '-')}"
            f"{', approved by ' + esc(t['approved_by']) if t.get('approved_by') else ''}[/dim]")
    if t.get("reason"):
        c.print(f"reason: {esc(t['reason'])}")
    if t.get("parent"):
        p = t["parent"]
        c.print(f"parent: {esc(p['repo'])}#{esc(p['id'])}")
    if t.get("created_by"):
        behalf = f" on behalf of task {esc(t['on_behalf_of'])}" if t.get("on_behalf_of") else ""
        c.print(f"[dim]created by {esc(t['created_by'])}{behalf}[/dim]")
    for child in t.get("children") or []:
        note = " (released by a retry)" if child.get("released") else ""
        c.print(f"child:  {esc(child['repo'])}#{esc(child['id'])} {esc(child.get('state') or '')}{note}")
    if t.get("child_failure"):
        c.print(f"[bold red]a delegated child went wrong:[/bold red] {esc(t['child_failure'])}")
    if t.get("plan"):
        c.print("[bold]plan[/bold]")
        for s in t["plan"]:
            peer = f" → {esc(s['peer'])}" if s.get("peer") else ""
            deps = f" (after {', '.join(map(esc, s['depends_on']))})" if s.get("depends_on") else ""
            status = f" [dim]{esc(s['status'])}[/dim]" if s.get("status") and s["status"] != "pending" else ""
            peer_task = (f" [dim]{esc(s['peer'])}#{esc(s['peer_task_id'])} {esc(s.get('peer_state') or '')}"
                         "[/dim]" if s.get("peer_task_id") else "")
            c.print(f"  {esc(s['n'])}. {esc(s['verb'])}{peer}: {esc(s['description'])}{deps}{status}"
                    f"{peer_task}")
    if t.get("questions"):
        c.print("[bold]questions[/bold]")
        for q in t["questions"]:
            c.print(f"  - {esc(q)}")
    if t.get("answers"):
        c.print("[bold]answers[/bold]")
        for a in t["answers"]:
            c.print(f"  - {esc(a)}")
    if t.get("branch"):
        c.print(f"branch: {esc(t['branch'])}  worktree: {esc(t.get('worktree') or '-')}  "
                f"attempt: {esc(t.get('attempt', 0))}")
    if t.get("pane"):
        c.print(f"pane: {esc(t['pane'])}  agent: {esc(t.get('agent') or '-')} "
                f"({esc(t.get('agent_status'))})")
    if t.get("needs_input"):
        c.print("[bold red]the agent is waiting for input[/bold red]: `cockpit task send ID TEXT`")
    if t.get("progress"):
        c.print(f"progress: {esc(t['progress'])}")
    for g in t.get("gates") or []:
        mark = "[green]passed[/green]" if g["status"] == "passed" else "[red]failed[/red]"
        c.print(f"gate {esc(g['name'])}: {mark} exit {esc(g.get('exit_code'))} "
                f"in {g.get('duration_s', 0):.1f}s"
                f"{' - ' + esc(g['reason']) if g.get('reason') else ''}")
    if t.get("failure"):
        c.print(f"[red]failure:[/red] {esc(t['failure'])}")
    m = t.get("merge")
    if m:
        c.print(f"merge: {esc(m['state'])} into {esc(m['target'])} "
                f"merge {esc(str(m.get('merge_sha') or '-')[:12])} "
                f"rollback point {esc(str(m.get('rollback_sha') or '-')[:12])}"
                f"{' (' + esc(m['rollback_method']) + ')' if m.get('rollback_method') else ''}")
