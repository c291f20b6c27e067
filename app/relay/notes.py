"""Private notes that tell agents a message became a dead letter (the last resort).

A dead letter is kept for an operator (list, replay, drop); the note makes sure the people in
the conversation know something is missing, why, and which id to ask an operator about.
"""

from __future__ import annotations

import logging

from app.integrations.zalo.schemas import zalo_user as zalo_user_of
from app.texts import for_agent

log = logging.getLogger("relay.notes")
REASON_MAX = 200


def inbound_dead_letter(ctx, item, reason: str) -> None:
    """In the Zalo user's FreshChat conversation, when the bridge knows one."""
    zalo_user = zalo_user_of(item.payload)
    conversation = ctx.mapping.zalo_user(zalo_user).get("fc_conversation_id") if zalo_user else None
    if not conversation:
        log.warning("relay.dead_letter_unseen", extra={"item": item.id, "why": "no conversation yet"})
        return
    _post(ctx, item, conversation, "agent.dead_letter_inbound", {"actor_type": "system"}, reason)


def outbound_dead_letter(ctx, item, reason: str) -> None:
    """In the agent's conversation, from the agent who wrote the reply."""
    event = item.payload
    message = (event.get("data") or {}).get("message") if event.get("action") == "message_create" else None
    if not message:
        return  # a state change (resolve, assign): nothing an agent wrote is missing
    actor = {"actor_type": message.get("actor_type") or "agent", "actor_id": message.get("actor_id")}
    _post(ctx, item, message["conversation_id"], "agent.dead_letter_outbound", actor, reason)


def _post(ctx, item, conversation: str, key: str, actor: dict, reason: str = "") -> None:
    text = for_agent(ctx.settings, key, reason=_short(reason or item.last_error), id=item.id)
    note = {"message_parts": [{"text": {"content": text}}], "message_type": "private", **actor}
    ctx.effects.once(f"fc:deadnote:{item.id}", lambda: ctx.freshchat.post_message(conversation, note).get("id", ""))


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"
