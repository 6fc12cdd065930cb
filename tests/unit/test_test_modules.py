"""Most product modules have a test module named for them (`cockpit/.../x.py` -> `tests/**/test_x.py`), so a
newcomer finds a module's tests by its name. The modules without one are listed below with why; a module that
is in neither set is new and wants a test module (or a line here).
"""

from __future__ import annotations

from pathlib import Path

import cockpit

PACKAGE = Path(cockpit.__file__).resolve().parent
TESTS = Path(__file__).resolve().parents[1]

# Product modules (paths under cockpit/) tested through another module's tests, each with where and why.
EXCEPTIONS: dict[str, str] = {
    "cli/args.py": "parsing helpers of the command line: tests/unit/test_cli.py, test_cli_inputs.py",
    "cli/output.py": "the command line's printing: every tests/unit/test_cli*.py asserts its output",
    "cli/parser.py": "the argparse tree: tests/unit/test_cli.py and test_cli_inputs.py run every verb",
    "cli/remote.py": "the remote verbs: tests/remote runs them over real ssh",
    "cli/repo.py": "init and doctor: tests/unit/test_cli.py and every harness's setup",
    "cli/running.py": "daemon start/stop verbs: tests/daemon/test_daemon.py",
    "cli/tasks.py": "task verbs: tests/unit/test_cli.py and tests/daemon",
    "core/agents/aider.py": "an adapter: tests/unit/test_agent_adapters.py covers every adapter side by side",
    "core/agents/base.py": "the adapter base: tests/unit/test_agent_adapters.py, test_agents.py",
    "core/agents/claude.py": "an adapter: tests/unit/test_agent_adapters.py and tests/agents (the real CLI)",
    "core/agents/codex.py": "an adapter: tests/unit/test_agent_adapters.py and tests/agents (the real CLI)",
    "core/agents/custom.py": "an adapter: tests/unit/test_agent_adapters.py",
    "core/agents/gemini.py": "an adapter: tests/unit/test_agent_adapters.py and tests/agents (the real CLI)",
    "core/agents/script.py": "the script adapter: tests/unit/test_script_agent.py",
    "core/classifier/clauses.py": "heuristic parts: tests/unit/classifier (test_heuristic, test_adversarial)",
    "core/classifier/danger.py": "heuristic parts: tests/unit/classifier (test_heuristic, test_adversarial)",
    "core/classifier/vocabulary.py": "heuristic parts: tests/unit/classifier/test_heuristic.py",
    "core/client.py": "the socket client: tests/daemon/test_socket.py",
    "core/daemonctl.py": "starting and finding daemons: tests/daemon/test_daemon.py, test_socket_dir.py",
    "core/daemonfile.py": "the daemon's pid/socket file: tests/daemon/test_daemon.py",
    "core/delegation/peers.py": "delegation parts: tests/daemon/test_delegation.py end to end",
    "core/delegation/sender.py": "delegation parts: tests/daemon/test_delegation.py end to end",
    "core/delegation/wait.py": "delegation parts: tests/daemon/test_delegation.py end to end",
    "core/errors.py": "error types: asserted by code in every test of bad input",
    "core/gitobjects.py": "the merge engine's object writes: tests/unit/merge/test_engine.py",
    "core/merge/context.py": "merge parts: tests/unit/merge/*",
    "core/merge/plumbing.py": "merge parts: tests/unit/merge/test_engine.py, test_rebase.py",
    "core/models.py": "plain data types, used by every test",
    "core/optable.py": "the op table: every op test (tests/unit/merge/test_ops.py, tests/daemon)",
    "core/paths.py": "the repo's paths: tests/unit/test_workspace.py and every harness",
    "core/printable.py": "untrusted text made printable: tests/tui/test_untrusted_text.py",
    "core/processes.py": "process-group kills: tests/daemon/test_execution_recovery.py, test_execution_gc.py",
    "core/projection.py": "the fold: tests/unit/test_store.py (replay equals the projection)",
    "core/prompts.py": "agent prompts: tests/unit/test_agent_adapters.py",
    "core/remote/daemons.py": "remote parts: tests/remote over real ssh",
    "core/remote/follow.py": "remote parts: tests/remote/test_remote_follow.py",
    "core/remote/ssh.py": "remote parts: tests/remote over real ssh",
    "core/review_ops.py": "review ops: tests/daemon/test_merge.py and tests/unit/merge/test_ops.py",
    "core/sessions.py": "agent sessions: tests/daemon/test_agent_session.py",
    "core/storewatch.py": "waiting on the store: tests/daemon/test_fallback.py",
    "core/textfold.py": "text folding: tests/unit/test_dedup.py and the classifier's tests",
    "daemon/assembly.py": "the composition root: every test that starts a daemon",
    "daemon/plan_shape.py": "plan checks: tests/unit/test_plans.py",
    "daemon/server.py": "the socket server: tests/daemon/test_socket.py",
    "demo/seeding.py": "the demo's seeding: tests/unit/demo/test_workspace.py, tests/acceptance",
    "mcp/server.py": "the MCP server: tests/daemon/test_mcp.py",
    "render.py": "terminal rendering of task lists: tests/unit/test_cli.py",
}
# The cockpit's screens and widgets are driven through the app, by keys and snapshots (tests/tui/test_app.py,
# test_snapshots.py, test_task_table.py, test_usage.py): a test per widget would repeat the app's harness.
UI_DRIVEN = ("tui/",)
MOST = 0.45  # of product modules with a test module named for them (besides the listed and UI-driven ones)


def product_modules() -> list[str]:
    return sorted(
        str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
        if p.name not in {"__init__.py", "__main__.py"} and "demo/repos" not in str(p.relative_to(PACKAGE))
    )


def named_test_modules() -> set[str]:
    return {p.stem.removeprefix("test_") for p in TESTS.rglob("test_*.py")}


def test_most_product_modules_have_a_test_module_named_for_them() -> None:
    modules = product_modules()
    assert len(modules) > 50, modules
    named = [m for m in modules if Path(m).stem in named_test_modules()]
    unaccounted = [
        m for m in modules if m not in named and m not in EXCEPTIONS and not m.startswith(UI_DRIVEN)
    ]
    # A module just added or split off may wait a little for its own test module, never many.
    assert len(unaccounted) <= max(3, len(modules) // 10), (
        f"these modules have no tests/**/test_<name>.py and no line in EXCEPTIONS: {unaccounted}"
    )
    headless = [m for m in modules if not m.startswith(UI_DRIVEN)]
    share = len([m for m in headless if m in named]) / len(headless)
    assert share >= MOST, f"only {share:.0%} of headless modules have a test module named for them"


def test_every_listed_exception_says_why() -> None:
    assert all(len(why.split()) >= 3 for why in EXCEPTIONS.values())
