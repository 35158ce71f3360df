"""Slash commands typed into a dream client: parsed and carried out by the client.

A line that starts with ``/`` is a command, never story text: ``/help``
and an unknown command are answered locally and nothing is sent. The
circle commands reach the room as the circle's own words (the room does
not tell them as story); ``/pass`` is checked locally first, so "it is not
your turn" comes at once, and the room answers with ``input_refused`` if
it disagrees (no circle open, for one). ``/template FILE`` validates the narrative locally
(the same validator the server runs) before uploading it.

:func:`parse_line` is pure; :func:`execute` carries a command out through a
small :class:`CommandContext` that the Textual app and ``--plain`` each
provide.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sleepsync.protocol.errors import InvalidMessage, TemplateInvalid
from sleepsync.protocol.messages import MAX_TEMPLATE_TEXT, Say, TemplateFormat
from sleepsync.protocol.narrative import parse_template

from .roomview import RoomView
from .sentences import Sentence, listing

__all__ = [
    "COMMANDS",
    "Command",
    "CommandContext",
    "Story",
    "execute",
    "help_lines",
    "parse_line",
    "pass_refusal",
    "read_template",
    "who_lines",
]

#: name -> (argument, what it does), in the order /help lists them.
COMMANDS: dict[str, tuple[str, str]] = {
    "help": ("", "list these commands"),
    "who": ("", "who is in the room: people, pods, their moods"),
    "rooms": ("", "the rooms on the server"),
    "circle": ("[close]", "open a storytelling circle (or close it)"),
    "pass": ("", "pass your turn in the circle"),
    "template": ("FILE", "check a narrative template (.json or .toml) and upload it"),
    "quit": ("", "leave the room"),
}


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    arg: str = ""


@dataclass(frozen=True, slots=True)
class Story:
    """A line to tell the room."""

    text: str


def parse_line(line: str) -> Command | Story | None:
    """A typed line: a command, a story line, or None for a blank line."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("/"):
        word, _, arg = text[1:].partition(" ")
        return Command(word.lower(), arg.strip())
    return Story(text)


def help_lines() -> list[str]:
    lines = ["Type a line and press Enter to tell it to the room. Commands:"]
    for name, (arg, what) in COMMANDS.items():
        lines.append(f"  /{name}{' ' + arg if arg else ''}: {what}")
    return lines


def _bar(level: float) -> str:
    return f"{level:.2f}"


def who_lines(view: RoomView) -> list[str]:
    """The roster as lines: people with their role, pods with their mood."""
    people = view.people()
    lines = [f"In {view.room}: {len(people)} people and {len(view.pods())} pods."]
    for m in people:
        you = " (you)" if m.name == view.me else ""
        turn = ", holds the circle" if view.circle and view.circle.turn == m.name else ""
        lines.append(f"  {m.name}{you}: {m.role}{turn}")
    for m in view.pods():
        mood = view.moods.get(m.name)
        state = "online" if m.online else "offline"
        if mood is not None:
            state += f", valence {_bar(mood.valence)}, arousal {_bar(mood.arousal)}"
            if mood.glitch > 0:
                state += f", glitch {mood.glitch:.2f}"
            if mood.isolated:
                state += ", isolated"
        lines.append(f"  {m.name}: pod, {state}")
    return lines


def pass_refusal(view: RoomView) -> str | None:
    """Why ``/pass`` cannot apply now, as far as this client knows (None: send it).

    With no circle in sight the line still goes to the room, which may have
    opened one a moment ago; the room answers with ``input_refused`` if not.
    """
    if view.circle is not None and view.circle.turn != view.me:
        return f"it is not your turn: {view.circle.turn} holds the circle"
    return None


def read_template(path: str) -> tuple[TemplateFormat, str]:
    """Read and validate a template file; raises ValueError with a one-line reason."""
    fmt: TemplateFormat = "toml" if path.lower().endswith(".toml") else "json"
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    if len(text.encode()) > MAX_TEMPLATE_TEXT:
        raise ValueError(f"{path} is over {MAX_TEMPLATE_TEXT} bytes")
    try:
        parse_template(text, fmt)
    except TemplateInvalid as exc:
        raise ValueError(f"{path} is not a valid narrative: {exc.message}") from exc
    return fmt, text


class CommandContext(Protocol):
    """What a front end gives :func:`execute`."""

    view: RoomView
    #: Observers cannot tell the story.
    can_speak: bool

    async def send_line(self, text: str) -> None: ...

    async def list_rooms(self) -> None: ...

    async def upload_template(self, fmt: TemplateFormat, text: str) -> None: ...

    def tell(self, sentence: Sentence) -> None: ...

    def quit(self) -> None: ...


async def execute(entry: Command | Story, ctx: CommandContext) -> None:
    """Carry out a typed line: tell it, or run the command (answers go to ``ctx.tell``)."""
    if isinstance(entry, Story):
        if not ctx.can_speak:
            ctx.tell(Sentence("Observers watch: your lines are not sent.", "you"))
            return
        try:
            Say(ctx.view.room, entry.text)
        except InvalidMessage as exc:
            ctx.tell(Sentence(f"Not sent: {exc.reason}.", "you"))
            return
        await ctx.send_line(entry.text)
        return
    name, view = entry.name, ctx.view
    if name in ("help", "?"):
        for line in help_lines():
            ctx.tell(Sentence(line, "you"))
    elif name == "who":
        for line in who_lines(view):
            ctx.tell(Sentence(line, "you"))
        if view.circle is not None:
            order = listing(view.circle_order())
            ctx.tell(Sentence(f"  circle: {order}; {view.circle.turn} holds it", "you"))
    elif name == "rooms":
        await ctx.list_rooms()
    elif name in ("circle", "pass"):
        await _circle(entry, ctx)
    elif name == "template":
        if not entry.arg:
            ctx.tell(Sentence("Usage: /template FILE (.json or .toml)", "you"))
            return
        try:
            fmt, text = read_template(entry.arg)
        except ValueError as exc:
            ctx.tell(Sentence(str(exc), "bad"))
            return
        await ctx.upload_template(fmt, text)
        ctx.tell(Sentence(f"{entry.arg} is valid; uploaded to {view.room}.", "you"))
    elif name in ("quit", "exit", "q"):
        ctx.quit()
    else:
        ctx.tell(Sentence(f"Unknown command /{name}: /help lists them.", "you"))


async def _circle(entry: Command, ctx: CommandContext) -> None:
    view = ctx.view
    if not ctx.can_speak:
        ctx.tell(Sentence("Observers cannot take part in the circle.", "you"))
        return
    if entry.name == "pass":
        why = pass_refusal(view)
        if why is not None:
            ctx.tell(Sentence(f"Not now: {why}.", "you"))
            return
        await ctx.send_line("/pass")
        return
    if entry.arg.lower() in ("close", "end"):
        if view.circle is None:
            ctx.tell(Sentence("No storytelling circle is open.", "you"))
            return
        await ctx.send_line("/circle close")
        return
    if view.circle is not None:
        ctx.tell(Sentence(f"A circle is already open; it is {view.circle.turn}'s turn.", "you"))
        return
    await ctx.send_line("/circle")
