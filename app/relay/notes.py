"""Private notes that tell agents a message became a dead letter (the last resort).

A dead letter is kept for an operator (list, replay, drop); the note makes sure the people in
the conversation know something is missing, why, and which id to ask an operator about.
The why is the bridge's English reason, said in the agents' language (app/wording.py),
and when Zalo refused, what the agent can do about it (app/texts.py ZALO_ADVICE).
"""

from __future__ import annotations

import logging

from app.integrations.zalo.errors import ZALO_ERROR
from app.integrations.zalo.schemas import zalo_user as zalo_user_of
from app.texts import for_agent, zalo_advice
from app.wording import found_in, in_language

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
    text = for_agent(ctx.settings, key, reason=reason_for_agent(ctx.settings, reason or item.last_error), id=item.id)
    note = {"message_parts": [{"text": {"content": text}}], "message_type": "private", **actor}
    ctx.effects.once(f"fc:deadnote:{item.id}", lambda: ctx.freshchat.post_message(conversation, note).get("id", ""))


def reason_for_agent(settings, reason: str) -> str:
    """`reason` in the agents' language, shortened; after it Zalo's advice when Zalo refused."""
    said = _short(in_language(reason, settings.agent_language))
    refusal = found_in(reason, ZALO_ERROR)
    return f"{said}\n{zalo_advice(settings, _code(refusal['code']))}" if refusal else said


def _code(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"
