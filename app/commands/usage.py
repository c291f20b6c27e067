"""`/help`, and the answer to a command the bridge does not know: the list of commands."""

from __future__ import annotations

from app.commands.base import Command, answer, say
from app.relay.context import Progress, RelayContext


def show_help(ctx: RelayContext, message: dict, command: Command, progress: Progress) -> None:
    answer(ctx, message, say(ctx, "command.help"))


def unknown(ctx: RelayContext, message: dict, command: Command, progress: Progress) -> None:
    answer(ctx, message, say(ctx, "command.unknown", name="/" + command.name) + say(ctx, "command.help"))
