"""Private notes that tell agents a message became a dead letter (the last resort).

A dead letter is kept for an operator (list, replay, drop); the note makes sure the people in
the conversation know something is missing, why, and which id to ask an operator about.
The why is the bridge's English reason, said in the agents' language (app/wording.py),
and when Zalo refused, what the agent can do about it (app/texts.py ZALO_ADVICE).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from app.bridge.lanes import Item
from app.bridge.outcome import FAILED, Outcome
from app.errors import PartnerError
from app.integrations.zalo.errors import ZALO_ERROR
from app.integrations.zalo.schemas import zalo_user as zalo_user_of
from app.relay.context import RelayContext
from app.texts import for_agent, zalo_advice
from app.wording import found_in, in_language

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("relay.notes")
REASON_MAX = 200


def on_outcome(outcome: Outcome, pipe) -> None:
    """Subscriber (app/relay/subscribers.py): a dead letter's note, in the conversation it
    belongs to (none for a removed connection: nobody could read it). The dead letter is kept
    and listed whatever happens here: the note is a courtesy, its failure only logged."""
    note = DEAD_LETTER_NOTES.get(outcome.item.kind)
    if outcome.state != FAILED or outcome.removed or note is None:
        return
    try:
        note(outcome.ctx, outcome.item, outcome.reason)
    except PartnerError as exc:
        extra = {"lane": outcome.lane, "item": outcome.item.id, "error": str(exc)[:300]}
        log.warning("worker.dead_letter_note_failed", extra=extra)
    except Exception:  # a bug: its traceback is what finds it
        log.exception("worker.dead_letter_note_failed", extra={"lane": outcome.lane, "item": outcome.item.id})


def inbound_dead_letter(ctx: RelayContext, item: Item, reason: str) -> None:
    """In the Zalo user's FreshChat conversation, when the bridge knows one."""
    zalo_user = zalo_user_of(item.payload)
    conversation = ctx.mapping.zalo_user(zalo_user).get("fc_conversation_id") if zalo_user else None
    if not conversation:
        log.warning("relay.dead_letter_unseen", extra={"item": item.id, "why": "no conversation yet"})
        return
    _post(ctx, item, conversation, "agent.dead_letter_inbound", {"actor_type": "system"}, reason)


def outbound_dead_letter(ctx: RelayContext, item: Item, reason: str) -> None:
    """In the agent's conversation, from the agent who wrote the reply."""
    event = item.payload
    message = (event.get("data") or {}).get("message") if event.get("action") == "message_create" else None
    if not message:
        return  # a state change (resolve, assign): nothing an agent wrote is missing
    actor = {"actor_type": message.get("actor_type") or "agent", "actor_id": message.get("actor_id")}
    _post(ctx, item, message["conversation_id"], "agent.dead_letter_outbound", actor, reason)


def _post(ctx: RelayContext, item: Item, conversation: str, key: str, actor: dict, reason: str = "") -> None:
    text = for_agent(ctx.settings, key, reason=reason_for_agent(ctx.settings, reason or item.last_error), id=item.id)
    note = {"message_parts": [{"text": {"content": text}}], "message_type": "private", **actor}
    ctx.effects.once(f"fc:deadnote:{item.id}", lambda: ctx.freshchat.post_message(conversation, note).get("id", ""))


# The note for a dead letter of each item kind (the partner it came from).
DEAD_LETTER_NOTES = {"zalo": inbound_dead_letter, "freshchat": outbound_dead_letter}


def reason_for_agent(settings: Settings, reason: str) -> str:
    """`reason` in the agents' language, shortened; after it Zalo's advice when Zalo refused."""
    said = _short(in_language(reason, settings.agent_language))
    refusal = found_in(reason, ZALO_ERROR)
    return f"{said}\n{zalo_advice(settings, _code(refusal['code']))}" if refusal else said


def _code(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    return reason if len(reason) <= REASON_MAX else reason[: REASON_MAX - 1] + "…"
