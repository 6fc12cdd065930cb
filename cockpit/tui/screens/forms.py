"""Small modal forms: a new task, a rejection reason, clarifying answers, an answer for the agent, a yes/no.

Each dismisses with its result (None when cancelled with escape); the caller sends the op.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from rich.console import RenderableType
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Select, Static, TextArea

from cockpit.core.printable import printable

ResultT = TypeVar("ResultT")


class FormScreen(ModalScreen[ResultT | None], Generic[ResultT]):
    """Escape cancels; ctrl+s (or the OK button) submits."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Submit", show=False),
    ]

    def __init__(self, *, blink: bool = True) -> None:
        super().__init__()
        self.blink = blink

    def buttons(self, ok: str = "OK") -> ComposeResult:
        with Horizontal(classes="form-buttons"):
            yield Button(ok, id="ok", variant="primary")
            yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.blink
        for area in self.query(TextArea):
            area.cursor_blink = self.blink

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        result = self.result()
        if result is not None:
            self.dismiss(result)

    def result(self) -> ResultT | None:
        raise NotImplementedError

    def complain(self, message: str) -> None:
        self.query_one(".form-error", Static).update(Text(message, style="bold red"))

    @on(Button.Pressed, "#ok")
    def _ok(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.field_submitted(event.input)

    def field_submitted(self, field: Input) -> None:
        """Enter in a field: submit the form (a form with several fields may move to the next instead)."""
        self.action_submit()


@dataclass(frozen=True)
class NewTask:
    repo: str
    text: str
    script: Path | None
    force: bool


class NewTaskScreen(FormScreen[NewTask]):
    def __init__(self, repos: list[str], repo: str, *, blink: bool = True) -> None:
        super().__init__(blink=blink)
        self.repos = repos
        self.repo = repo

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="new-task-form") as form:
            form.border_title = "new task"
            yield Label("What should be done?")
            yield TextArea(id="text", soft_wrap=True, show_line_numbers=False)
            yield Label("Repo")
            yield Select([(name, name) for name in self.repos], value=self.repo, allow_blank=False, id="repo")
            yield Label("Script for the script agent (optional TOML file)")
            yield Input(placeholder="path/to/script.toml", id="script")
            yield Checkbox("create it even if it looks like a duplicate", id="force")
            yield Static(classes="form-error")
            yield from self.buttons("Create (ctrl+s)")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#text", TextArea).focus()

    def result(self) -> NewTask | None:
        text = self.query_one("#text", TextArea).text.strip()
        if not text:
            self.complain("say what should be done")
            return None
        repo = self.query_one("#repo", Select).value
        script = self.query_one("#script", Input).value.strip()
        return NewTask(
            repo=str(repo),
            text=text,
            script=Path(script).expanduser() if script else None,
            force=self.query_one("#force", Checkbox).value,
        )


class ReasonScreen(FormScreen[str]):
    """Why a task is rejected (may be empty)."""

    def __init__(self, what: str, *, blink: bool = True) -> None:
        super().__init__(blink=blink)
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="reason-form") as form:
            form.border_title = "reject"
            yield Label(Text(f"Reject {self.what}? Say why (optional):"))
            yield Input(placeholder="reason", id="reason")
            yield Static(classes="form-error")
            yield from self.buttons("Reject")

    def result(self) -> str | None:
        return self.query_one("#reason", Input).value.strip()


class ClarifyScreen(FormScreen[list[str]]):
    """One answer box per question of an ambiguous task."""

    def __init__(self, what: str, questions: list[str], *, blink: bool = True) -> None:
        super().__init__(blink=blink)
        self.what = what
        self.questions = questions or ["What exactly should be done?"]

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="clarify-form") as form:
            form.border_title = f"clarify {self.what}"
            with VerticalScroll(id="answers"):
                for i, question in enumerate(self.questions):
                    yield Label(Text(f"{i + 1}. {printable(question)}", style="bold"))
                    yield Input(placeholder="answer", id=f"answer-{i}", classes="answer")
            yield Static(classes="form-error")
            yield from self.buttons("Send answers")

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#answer-0", Input).focus()

    def field_submitted(self, field: Input) -> None:
        answers = list(self.query(".answer").results(Input))
        index = answers.index(field)
        if index + 1 < len(answers):
            answers[index + 1].focus()
        else:
            self.action_submit()

    def result(self) -> list[str] | None:
        answers = [field.value.strip() for field in self.query(".answer").results(Input)]
        if not any(answers):
            self.complain("answer at least one question")
            return None
        return [a for a in answers if a]


class AnswerScreen(FormScreen[str]):
    """Text typed into the agent's pane (then Enter)."""

    def __init__(self, what: str, context: list[str], *, blink: bool = True) -> None:
        super().__init__(blink=blink)
        self.what = what
        self.context = context

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="answer-form") as form:
            form.border_title = f"answer {self.what}"
            if self.context:
                yield Static(
                    Text(printable("\n".join(self.context[-6:])), style="dim", no_wrap=True,
                         overflow="crop"),
                    id="answer-context",
                )
            yield Input(placeholder="typed into the agent's pane, then enter", id="answer")
            yield Static(classes="form-error")
            yield from self.buttons("Send")

    def result(self) -> str | None:
        return self.query_one("#answer", Input).value


class ConfirmScreen(ModalScreen[bool]):
    """Say what will happen; y / enter confirms, n / escape cancels."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes"),
        Binding("n,escape", "cancel", "No"),
    ]

    def __init__(
        self,
        title: str,
        body: RenderableType,
        *,
        confirm: str = "Confirm",
        danger: bool = False,
        allowed: bool = True,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm
        self.danger = danger
        self.allowed = allowed

    def compose(self) -> ComposeResult:
        with Vertical(classes="form", id="confirm-form") as form:
            form.border_title = self.title_text
            with VerticalScroll(id="confirm-body"):
                yield Static(self.body)
            with Horizontal(classes="form-buttons"):
                yield Button(
                    f"{self.confirm_label} (y)",
                    id="yes",
                    variant="error" if self.danger else "primary",
                    disabled=not self.allowed,
                )
                yield Button("Cancel (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes" if self.allowed else "#no", Button).focus()

    def action_confirm(self) -> None:
        if self.allowed:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed, "#yes")
    def _yes(self) -> None:
        self.action_confirm()

    @on(Button.Pressed, "#no")
    def _no(self) -> None:
        self.dismiss(False)
