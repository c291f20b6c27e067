"""What every command shares: the parsed command, its answer (one private note per FreshChat
message, as the agent who typed it), and the conversation's Zalo user."""

from __future__ import annotations

from dataclasses import dataclass

from app.commands.catalogue import Catalogue
from app.relay import outbound
from app.relay.context import RelayContext
from app.texts import for_agent

NOTE_PART = 0  # a command's answer is the note of the message's first part: once per message


@dataclass(frozen=True)
class Command:
    name: str  # "templates" for "/templates", lower case
    args: str  # the rest of the first line
    lines: tuple[str, ...]  # the lines after the first, stripped, empty ones left out


def parse(text: str) -> Command:
    """ "/template 123\\nname: An" -> Command("template", "123", ("name: An",))."""
    first, _, rest = text.strip().partition("\n")
    word, _, args = first[1:].strip().partition(" ")
    lines = tuple(line.strip() for line in rest.splitlines() if line.strip())
    return Command(word.lower(), args.strip(), lines)


def answer(ctx: RelayContext, message: dict, text: str) -> None:
    """The command's one note, in the conversation, never sent to the customer. The bridge's
    note comes back as a webhook of a private message: never relayed, never a command."""
    outbound.post_note(ctx, message, NOTE_PART, text)


def say(ctx: RelayContext, key: str, **values) -> str:
    return for_agent(ctx.settings, key, **values)


def zalo_user(ctx: RelayContext, message: dict) -> str:
    """The conversation's Zalo user ("" when the bridge knows none)."""
    return outbound.zalo_user_for(ctx, str(message["conversation_id"]), message.get("user_id"))


def catalogue(ctx: RelayContext) -> Catalogue:
    return Catalogue(ctx.redis, ctx.keys, ctx.zalo)
