"""The task actions a person takes in the cockpit (keys, buttons, the palette), each checked against the
task's state, confirmed where it cannot be undone, then sent as one op in a worker; the outcome comes back
to the app as `OpFinished` and is said on the flash line.

`TaskActions` holds no widgets: it is handed the app (to push a confirmation, run a worker, post the result)
and the repos' links, and is called by the app for each `TaskAction` / `RepoAction` message a screen posts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual.app import App
from textual.worker import Worker

from cockpit.core import daemonctl
from cockpit.core.errors import CockpitError
from cockpit.core.models import Task
from cockpit.core.states import RUNNING, State
from cockpit.tui.messages import OpFinished, TaskAction
from cockpit.tui.reports import preflight_report, rollback_plan
from cockpit.tui.repos import Repos
from cockpit.tui.screens.diff import DiffScreen
from cockpit.tui.screens.forms import AnswerScreen, ClarifyScreen, ConfirmScreen, NewTask, ReasonScreen
from cockpit.tui.screens.log import LogScreen
from cockpit.tui.terminal import Terminals

# Every action a `TaskAction` may name (the screens' bindings and the detail's buttons use these names).
TASK_ACTIONS = frozenset({
    "approve", "reject", "clarify", "answer", "attach", "shell", "diff", "merge", "rollback", "run_gates",
    "log", "cancel_task", "mark_done", "stop", "retry", "rework",
})

Say = Callable[[str, str], None]


class TaskActions:
    def __init__(self, app: App[Any], repos: Repos, say: Say) -> None:
        self.app = app
        self.repos = repos
        self.links = repos.links
        self.say = say
        self.terminals = Terminals(app, repos, say)

    def run(self, message: TaskAction) -> None:
        repo, task = message.repo, message.task
        match message.action:
            case "approve":
                self.approve(repo, task)
            case "reject":
                self.reject(repo, task)
            case "clarify":
                self.clarify(repo, task)
            case "answer":
                self.answer(repo, task, message.context)
            case "attach":
                self.terminals.attach(repo, task)
            case "shell":
                self.terminals.shell(repo, task)
            case "diff":
                self.open_diff(repo, task)
            case "merge":
                self.merge(repo, task)
            case "rollback":
                self.rollback(repo, task)
            case "run_gates":
                self.run_op(repo, "run_gates", {"id": task.id}, task_id=task.id)
            case "log":
                self.open_log(repo, task)
            case "cancel_task":
                self.cancel(repo, task)
            case "mark_done":
                self.mark_done(repo, task)
            case "stop":
                self.stop(repo, task)
            case "retry":
                self.run_op(repo, "retry_task", {"id": task.id, "by": "person"}, task_id=task.id)
            case "rework":
                self.rework(repo, task, message.message)
            case other:
                raise ValueError(f"no task action {other!r}")

    # -- sending ops -----------------------------------------------------------------------------------------

    def run_op(self, repo: str, op: str, args: dict[str, Any], *, task_id: int | None = None) -> Worker[None]:
        return self.app.run_worker(
            self.op(repo, op, args, task_id), name=f"{op}:{repo}", group="ops", exit_on_error=False
        )

    async def op(self, repo: str, op: str, args: dict[str, Any], task_id: int | None) -> None:
        try:
            result = await self.links[repo].call(op, args)
        except CockpitError as exc:
            self.app.post_message(OpFinished(repo, op, task_id, error=exc.message, code=exc.code))
            return
        self.app.post_message(OpFinished(repo, op, task_id, result=result))

    def confirm(self, screen: ConfirmScreen, then: Callable[[], object]) -> None:
        """Ask; on yes, `then`."""

        def done(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(screen, done)

    # -- the plan: approve, reject, clarify -----------------------------------------------------------------

    def approve(self, repo: str, task: Task) -> None:
        if task.state is State.PENDING_CLARIFICATION:
            self._approve_anyway(repo, task)
            return
        self.say(f"approving {repo}#{task.id}…", "info")
        self.run_op(repo, "approve_task", {"id": task.id, "by": "person"}, task_id=task.id)

    def _approve_anyway(self, repo: str, task: Task) -> None:
        """An ambiguous task is approved before its questions are answered only when the person says so."""
        body = Text.assemble(
            (f"{repo}#{task.id} is ambiguous: its questions are not answered yet.\n\n", "bold"),
            *((f" {i}. {q}\n", "yellow") for i, q in enumerate(task.questions, 1)),
            "\nc answers them (then it is planned again). Approving anyway hands the text to the agent as it "
            "is.",
        )

        def approve() -> None:
            self.say(f"approving {repo}#{task.id} without answers…", "info")
            self.run_op(repo, "approve_task", {"id": task.id, "by": "person"}, task_id=task.id)

        self.confirm(ConfirmScreen(f"approve {repo}#{task.id} anyway?", body, confirm="Approve anyway",
                                   cancel="Back"), approve)

    def reject(self, repo: str, task: Task) -> None:
        def done(reason: str | None) -> None:
            if reason is not None:
                self.run_op(
                    repo, "reject_task", {"id": task.id, "reason": reason, "by": "person"}, task_id=task.id
                )

        self.app.push_screen(ReasonScreen(f"{repo}#{task.id}", blink=self.repos.config.cursor_blink), done)

    def clarify(self, repo: str, task: Task) -> None:
        if task.state is not State.PENDING_CLARIFICATION:
            self.say(
                f"{repo}#{task.id} is {task.state.value}: only a task in pending_clarification takes answers",
                "warning",
            )
            return

        def done(answers: list[str] | None) -> None:
            if answers:
                self.say(f"sending answers for {repo}#{task.id}; it is classified again…", "info")
                self.run_op(
                    repo, "clarify_task", {"id": task.id, "answers": answers, "by": "person"}, task_id=task.id
                )

        self.app.push_screen(
            ClarifyScreen(f"{repo}#{task.id}", task.questions, blink=self.repos.config.cursor_blink), done
        )

    def create(self, new: NewTask) -> None:
        self.say(f"creating a task in {new.repo}…", "info")
        self.app.run_worker(self._create(new), name=f"create_task:{new.repo}", group="ops",
                            exit_on_error=False)

    async def _create(self, new: NewTask) -> None:
        script = None
        if new.script is not None:
            try:
                script = await asyncio.to_thread(new.script.read_text)
            except OSError as exc:
                self.say(f"cannot read the script {new.script}: {exc.strerror}", "error")
                return
        await self.op(new.repo, "create_task",
                      {"text": new.text, "script": script, "force": new.force, "by": "person"}, None)

    # -- the agent: answer, stop, done, rework, cancel -------------------------------------------------------

    def answer(self, repo: str, task: Task, context: list[str]) -> None:
        if task.state is not State.EXECUTING:
            self.say(f"{repo}#{task.id} is {task.state.value}: only a running agent takes input", "warning")
            return

        def done(text: str | None) -> None:
            if text is not None:
                self.run_op(repo, "send_input", {"id": task.id, "text": text}, task_id=task.id)

        self.app.push_screen(
            AnswerScreen(f"{repo}#{task.id}", context, blink=self.repos.config.cursor_blink), done
        )

    def open_log(self, repo: str, task: Task) -> None:
        paths = self.links[repo].paths
        if task.gates or task.state is State.GATING:
            self.app.push_screen(LogScreen(f"{repo}#{task.id} gate log", paths.gate_log(task.id)))
        elif task.pane or task.agent or task.attempt:
            self.app.push_screen(LogScreen(f"{repo}#{task.id} agent log", paths.task_log(task.id)))
        else:
            self.say(f"{repo}#{task.id} has no log yet: nothing has run", "warning")

    def stop(self, repo: str, task: Task) -> None:
        if task.state not in RUNNING:
            self.say(f"{repo}#{task.id} is {task.state.value}: only an executing task can be stopped",
                     "warning")
            return

        def stop() -> None:
            self.say(f"stopping {repo}#{task.id}…", "info")
            self.run_op(repo, "stop_task", {"id": task.id, "by": "person"}, task_id=task.id)

        self.confirm(
            ConfirmScreen(
                f"stop {repo}#{task.id}",
                Text(f"Stop the agent of “{task.title}”? Its pane is closed and the task is cancelled; its "
                     "branch and worktree stay for a look."),
                confirm="Stop it",
                cancel="Keep it running",
                danger=True,
            ),
            stop,
        )

    def rework(self, repo: str, task: Task, message: str) -> None:
        """Send the task back to its agent with the person's review comments."""
        self.say(f"sending {repo}#{task.id} back to the agent…", "info")
        self.run_op(repo, "rework_task", {"id": task.id, "message": message, "by": "person"}, task_id=task.id)

    def mark_done(self, repo: str, task: Task) -> None:
        if task.state is not State.EXECUTING:
            self.say(f"{repo}#{task.id} is {task.state.value}: only an executing agent can be marked done",
                     "warning")
            return
        self.say(f"marking {repo}#{task.id} done; the gates run next…", "info")
        self.run_op(repo, "done_task", {"id": task.id}, task_id=task.id)

    def cancel(self, repo: str, task: Task) -> None:
        if task.state in RUNNING:
            self.stop(repo, task)
            return
        self.confirm(
            ConfirmScreen(
                f"cancel {repo}#{task.id}",
                Text(
                    f"Cancel “{task.title}”? It is {task.state.value}; a cancelled task is finished for good."
                ),
                confirm="Yes, cancel it",
                cancel="Keep it",
                danger=True,
            ),
            lambda: self.run_op(repo, "cancel_task", {"id": task.id, "by": "person"}, task_id=task.id),
        )

    # -- the daemon ------------------------------------------------------------------------------------------

    def start_daemon(self, repo: str) -> None:
        link = self.links[repo]
        if link.connected:
            self.say(f"{repo}'s daemon is already running", "ok")
            return
        self.say(f"starting {repo}'s daemon…", "info")
        self.app.run_worker(lambda: self._start_daemon(repo), name=f"start:{repo}", group="daemons",
                            thread=True, exit_on_error=False)

    def _start_daemon(self, repo: str) -> None:
        """Thread: starting a daemon waits for it to answer."""
        link = self.links[repo]
        try:
            if link.hosted is not None:
                pid = link.hosted.start()["pid"]  # over ssh, on its host
            else:
                pid = daemonctl.start(link.paths).info.pid
        except CockpitError as exc:
            self.app.call_from_thread(self.say, f"{repo}: {exc.message}", "error")
            return
        self.app.call_from_thread(link.wake)
        self.app.call_from_thread(self.say, f"{repo}'s daemon is running (pid {pid})", "ok")

    # -- review: the diff, merge, roll back ------------------------------------------------------------------

    def open_diff(self, repo: str, task: Task) -> None:
        if not task.branch:
            self.say(f"{repo}#{task.id} has no branch yet: nothing to diff", "warning")
            return
        self.app.push_screen(DiffScreen(self.repos, repo, task))

    def merge(self, repo: str, task: Task) -> None:
        if task.state is not State.AWAITING_REVIEW:
            self.say(
                f"{repo}#{task.id} is {task.state.value}: only a task awaiting review can be merged",
                "warning",
            )
            return
        self.say(f"preflight for {repo}#{task.id}…", "info")
        self.app.run_worker(self._merge_preflight(repo, task), name=f"preflight:{repo}", group="merge",
                            exit_on_error=False)

    async def _merge_preflight(self, repo: str, task: Task) -> None:
        try:
            result = await self.links[repo].call("merge_task", {"id": task.id, "dry_run": True})
        except CockpitError as exc:
            self.app.post_message(OpFinished(repo, "merge_task", task.id, error=exc.message, code=exc.code))
            return
        body, ok = preflight_report(result)
        self.say("", "info")

        def merge() -> None:
            self.say(f"merging {repo}#{task.id}…", "info")
            self.run_op(repo, "merge_task", {"id": task.id}, task_id=task.id)

        self.confirm(ConfirmScreen(f"merge {repo}#{task.id}", body, confirm="Merge", allowed=ok), merge)

    def rollback(self, repo: str, task: Task) -> None:
        if task.merge is None or task.merge.state != "merged" or not task.merge.merge_sha:
            self.say(f"{repo}#{task.id} has no merge to roll back", "warning")
            return
        self.app.run_worker(self._rollback_plan(repo, task), name=f"rollback-plan:{repo}", group="merge",
                            exit_on_error=False)

    async def _rollback_plan(self, repo: str, task: Task) -> None:
        """What a rollback would do now (reset or revert), as the repo's daemon reads its git."""
        try:
            listed = await self.links[repo].call("list_merges", {})
        except CockpitError as exc:
            self.say(f"{repo}#{task.id}: {exc.message}", "error")
            return
        merges = listed.get("merges")
        found = [m for m in merges if isinstance(m, dict) and m.get("task_id") == task.id] if isinstance(
            merges, list) else []
        method = found[0].get("rollback_now") if found else None
        # Not known (the daemon left it out): the daemon picks reset or revert when it rolls back.
        body, ok = rollback_plan(repo, task, method if isinstance(method, str) else "remote")

        def roll_back() -> None:
            self.say(f"rolling back {repo}#{task.id}…", "info")
            self.run_op(repo, "rollback_task", {"id": task.id}, task_id=task.id)

        self.confirm(ConfirmScreen(f"roll back {repo}#{task.id}", body, confirm="Roll back", danger=True,
                                   allowed=ok), roll_back)
