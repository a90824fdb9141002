"""The acknowledgement prompt: what is being done about a problem, and for how long.

`a` on a row with a problem opens it: a comment (required, what the next shift reads) and an
expiry (a duration, 4 h unless changed, or a time with its UTC offset). Enter in the comment
moves on to the expiry, enter there (or the button) acknowledges, escape cancels. What is wrong
with the answer is said under it, and the prompt stays; the engine judges it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from monitor.core.text import printable
from monitor.engine.acks import DEFAULT_EXPIRY, MAX_ACK_SECONDS, MAX_COMMENT_CHARS, moment


@dataclass(frozen=True, slots=True)
class AckAnswer:
    """What the operator said: why, and until when (as typed)."""

    comment: str
    expires: str


class AckPrompt(ModalScreen[AckAnswer | None]):
    """Asks for an acknowledgement of `subject` (its words: "check psap/fibre/cad-api, CRIT");
    dismissed with the answer, or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, subject: str, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__()
        self.subject = subject
        self.now = clock

    def compose(self) -> ComposeResult:
        with Vertical(id="ack-prompt"):
            # Ids come from the inventory: shown as written, never read as markup.
            yield Label(f"Acknowledge {printable(self.subject)}", markup=False, id="ack-title")
            yield Label("What is being done about it (the next shift reads this)")
            yield Input(
                placeholder="fibre cut, carrier ticket 7731",
                max_length=MAX_COMMENT_CHARS,
                id="ack-comment",
            )
            yield Label("Until: a duration (30m, 4h, 1d) or a time with its UTC offset")
            yield Input(
                value=DEFAULT_EXPIRY, placeholder="2026-12-01T18:00+01:00", id="ack-expires"
            )
            yield Static("", markup=False, id="ack-error")
            with Horizontal(id="ack-buttons"):
                yield Button("Acknowledge", variant="primary", id="ack-ok")
                yield Button("Cancel", id="ack-cancel")

    def on_mount(self) -> None:
        self.query_one("#ack-comment", Input).focus()

    @on(Input.Submitted, "#ack-comment")
    def _comment_done(self) -> None:
        self.query_one("#ack-expires", Input).focus()

    @on(Input.Submitted, "#ack-expires")
    @on(Button.Pressed, "#ack-ok")
    def _submit(self) -> None:
        comment_box = self.query_one("#ack-comment", Input)
        expires_box = self.query_one("#ack-expires", Input)
        comment, expires = comment_box.value.strip(), expires_box.value.strip()
        problem = _problem(comment, expires, self.now())
        if problem is not None:
            self.query_one("#ack-error", Static).update(problem)
            # Where the answer needs mending.
            (expires_box if comment else comment_box).focus()
            return
        self.dismiss(AckAnswer(comment, expires))

    @on(Button.Pressed, "#ack-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _problem(comment: str, expires: str, now: float) -> str | None:
    """What is wrong with an answer, in words for the operator; None when nothing is."""
    if not comment:
        return "Say what is being done about it: the comment is required."
    try:
        until = moment(expires, now)
    except ValueError as exc:
        return f"The expiry {exc}."
    if until <= now:
        return "The expiry is not in the future."
    if until - now > MAX_ACK_SECONDS:
        return "The expiry is more than 30 days away."
    return None
