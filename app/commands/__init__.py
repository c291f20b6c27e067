"""Agent commands (CONTRACT §5 "Agent commands"): an agent's reply that begins with "/" is for
the bridge, never for the customer, and is answered by a private note in the agents' language.

The FreshChat webhook classifies such a reply as its own event kind (`events.AGENT_COMMAND`,
app/integrations/freshchat/schemas.py), so it travels in the conversation's lane like any reply:
in order, and once (the lane's dedupe by FreshChat message id; each Zalo send and each note is an
effect recorded per message). A command is a function and its line in COMMANDS.
"""

from __future__ import annotations

from app.bridge.lanes import Item
from app.commands import askinfo, templates, usage
from app.commands.base import parse
from app.integrations import events
from app.integrations.freshchat.schemas import command_text
from app.relay import outbound
from app.relay.context import Progress, RelayContext

ESCAPE = "//"  # "//text" sends "/text" to the customer

COMMANDS = {
    "help": usage.show_help,
    "templates": templates.list_templates,
    "template": templates.send_template,
    "askinfo": askinfo.ask_info,
}


def run(ctx: RelayContext, item: Item, progress: Progress):
    message = item.payload["data"]["message"]
    text = command_text(message)
    if text.startswith(ESCAPE):
        return outbound.deliver_agent_message(ctx, unescaped(message), progress)
    command = parse(text)
    COMMANDS.get(command.name, usage.unknown)(ctx, message, command, progress)
    return events.NOT_RELAYED


def unescaped(message: dict) -> dict:
    """The message with one "/" taken off its first text: what the agent meant to send."""
    parts = [dict(part) for part in outbound.normalize_parts(message)]
    content = parts[0]["text"]["content"].lstrip()
    parts[0]["text"] = {**parts[0]["text"], "content": content[1:]}
    return {**message, "message_parts": parts}


# The worker's routing for FreshChat events of this kind (workers/drain.py).
HANDLERS = {events.AGENT_COMMAND: run}
