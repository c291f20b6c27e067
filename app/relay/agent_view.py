"""What agents see of their replies and of the user's reactions (issue 14 points 1-2).

Receipts. Each Zalo message the bridge sends is recorded in its conversation's `replies` hash
(keys.replies: the last 50 sends, their state and the quota that paid; 8 days after the last
reply; the start of the text is the sent-record's). `user_received_message` and
`user_seen_message` move those records on (sent < received < seen, never back). FreshChat
cannot edit or delete a message, so agents get one compact private note per batch instead of
one per message: the first change in a conversation sets a timer RECEIPTS_NOTE_DELAY_MS away;
when it fires, one note says what became received and what became read since the last note,
with the time. Receipts off (`receipts: off`): recorded, never shown.

Reactions. `user_reacted_message` becomes a short message from the user: the emoji and the
start of the message it is on (a reply the bridge sent, else "a message"). Removing a reaction
(`/-remove`) is recorded only.
"""

from __future__ import annotations

import logging

from app.bridge import keys
from app.bridge.lanes import Item, NotDue, now_ms
from app.integrations import events
from app.integrations.zalo import schemas
from app.relay import inbound, windows
from app.relay.context import Progress, RelayContext
from app.relay.parts import text_part
from app.texts import for_agent, vn_time

log = logging.getLogger("relay.agent_view")
RECEIPTS_NOTE_DELAY_MS = 5000  # received and seen come seconds apart: one note for both
STATE_OF = {schemas.RECEIVED: "received", schemas.SEEN: "seen"}
RANK = {"": 0, "sent": 0, "received": 1, "seen": 2}
# Zalo's reaction codes (zalo.md §3.5) as the emoji its app shows.
REACTIONS = {
    "/-heart": "❤️",
    "/-strong": "👍",
    ":>": "😆",
    ":o": "😮",
    ":-((": "😭",
    ":-h": "😡",
    "--b": "😓",
}
REMOVED = "/-remove"
QUOTE_CHARS = 60


# -- what a reply became -----------------------------------------------------------------------


def record_send(ctx: RelayContext, pipe, sent, text: str, conversation: str) -> None:
    """In the same round trip as the send's own record: the echo's id and the receipt."""
    ctx.mapping.remember_sent(sent, pipe, text=text)
    quota = windows.quota_name(getattr(sent, "quota", None))
    ctx.mapping.remember_receipt(pipe, str(sent), conversation, quota)


# -- receipts ----------------------------------------------------------------------------------


def record_receipt(ctx: RelayContext, item: Item, progress: Progress) -> None:
    """A receipt moves our sent messages on, in the user's conversation (those sent into an
    earlier one are no longer kept); with notes on, a change gets the conversation's receipts
    note scheduled (once per batch: an already waiting note keeps its time)."""
    event = item.payload
    state = STATE_OF[schemas.canonical_name(event["event_name"])]
    user = schemas.status_user(event, ctx.settings.zalo_oa_id)
    conversation = ctx.mapping.zalo_user(user).get("fc_conversation_id")
    if not conversation:
        return
    moved = ctx.mapping.advance_receipts(conversation, schemas.message_ids(event), state, str(event["timestamp"]))
    if moved and ctx.settings.receipts == "note":
        schedule_receipts_note(ctx, conversation)


def schedule_receipts_note(ctx: RelayContext, conversation: str) -> None:
    due = now_ms() + RECEIPTS_NOTE_DELAY_MS
    payload = {"conversation": conversation, "due_ms": due}
    windows.set_timer(
        ctx,
        keys.receipts_lane(conversation),
        f"receipts:{conversation}:{due}",
        events.RECEIPTS_NOTE,
        payload,
        due,
        replace=False,
    )


def receipts_note(ctx: RelayContext, item: Item, progress: Progress) -> None:
    """One note: the replies that became read, and those only received, since the last note."""
    if now_ms() < item.payload["due_ms"]:
        raise NotDue(item.payload["due_ms"])
    conversation = item.payload["conversation"]
    news = [(i, r) for i, r in ctx.mapping.receipts_in(conversation) if RANK[r["state"]] > RANK[r.get("reported", "")]]
    lines = [line for state in ("seen", "received") if (line := _receipt_line(ctx, state, news))]
    if not lines:
        return
    windows.post_note(ctx, conversation, f"fc:receipts:{item.id}", "\n".join(lines))
    ctx.mapping.mark_reported(conversation, {i: r["state"] for i, r in news})


def _receipt_line(ctx: RelayContext, state: str, news: list[tuple[str, dict]]) -> str:
    """ "✓✓ Read at <time>: “<first>” and 2 more", for the replies now in `state`."""
    records = [(i, r) for i, r in news if r["state"] == state]
    if not records:
        return ""
    first = _quote(ctx.mapping.sent_text(records[0][0]) or "") or for_agent(ctx.settings, "a_reply")
    replies = for_agent(ctx.settings, "receipt_replies", first=first, more=len(records) - 1)
    if len(records) == 1:
        replies = first
    at = max(int(r["at"] or 0) for _, r in records)
    key = "receipt_read" if state == "seen" else "receipt_received"
    return for_agent(ctx.settings, key, time=vn_time(at), replies=replies)


def _quote(text: str) -> str:
    text = " ".join(text.split())
    if not text:
        return ""
    return f"“{text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + '…'}”"


# -- reactions ---------------------------------------------------------------------------------


def relay_reaction(ctx: RelayContext, item: Item, progress: Progress) -> str | None:
    """A reaction reaches the agents as a short message from the user, once per event."""
    event = item.payload
    icon, msg_id = event["message"]["react_icon"], event["message"]["msg_id"]
    if icon == REMOVED:
        log.info("relay.reaction_removed", extra={"msg_id": msg_id})
        return events.NOT_RELAYED
    zalo_user = schemas.status_user(event, ctx.settings.zalo_oa_id)
    known = ctx.mapping.zalo_user(zalo_user)
    fc_user = inbound.ensure_freshchat_user(ctx, zalo_user, known, event)
    progress()
    text = reaction_text(ctx, REACTIONS.get(icon, icon), ctx.mapping.sent_text(msg_id))
    envelope = {"message_type": "normal", "actor_type": "user", "actor_id": fc_user, "user_id": fc_user}
    outgoing = inbound.Outgoing(envelope, [text_part(text)], text)
    inbound.deliver(ctx, item.id, zalo_user, fc_user, outgoing, known.get("fc_conversation_id"), progress)
    return None


def reaction_text(ctx: RelayContext, emoji: str, reacted_to: str | None) -> str:
    quote = _quote(reacted_to or "")
    if quote:
        return for_agent(ctx.settings, "reaction", emoji=emoji, quote=quote)
    return for_agent(ctx.settings, "reaction_unknown", emoji=emoji)


# The worker's routing for these kinds (workers/drain.py adds them to inbound's).
HANDLERS = {
    events.RECEIPT: record_receipt,
    events.REACTION: relay_reaction,
    events.RECEIPTS_NOTE: receipts_note,
    events.WINDOW_CLOSING: windows.window_closing,
}
