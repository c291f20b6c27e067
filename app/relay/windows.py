"""Zalo's reply windows and what replies cost, as agents need to know them.

Zalo counts from the user's last interaction (their last message, by its own timestamp): a reply
within 48 h is free, up to 7 days it is billed to the app's Zalo Cloud Account, later it is
refused (-230). The bridge keeps each user's last message (time and id) and the time of the last
reply that reached them, and from that:

- sends inside the window as a reply to that message (`reply_target`, asked by the sending
  code, app/relay/outbound.py `send_to_user`);
- sets one timer per user, due WINDOW_NOTE_AFTER after their last message, that tells the agents
  the free window is about to close, unless a reply went out meanwhile (`window_closing`);
- with `hold_billed_replies`, does not send a reply that would be billed and tells the agent
  (`held`); otherwise a billed reply, as Zalo's answer and the window agree, gets a note
  (`note_if_billed`).
"""

from __future__ import annotations

import logging
from typing import cast

from app.bridge import keys
from app.bridge.lanes import Item, NotDue, now_ms
from app.bridge.outcome import DELIVERED, Outcome
from app.errors import PermanentError
from app.integrations import events
from app.integrations.zalo.client import SentId
from app.relay.context import Progress, RelayContext
from app.texts import for_agent, vn_time

log = logging.getLogger("relay.windows")
HOUR_MS = 3600 * 1000
FREE_MS = 48 * HOUR_MS  # a reply within 48 h of the user's last message is free
BILLED_MS = 7 * 24 * HOUR_MS  # up to 7 days it is billed; later Zalo refuses it (-230)
WINDOW_NOTE_AFTER_MS = 47 * HOUR_MS  # an hour left: time to answer for free
FREE_QUOTAS = {"reply", "welcome_msg"}  # quota types Zalo does not charge for
BILLED = "billed"  # what a receipt records when no free quota paid


def age_ms(known: dict, at_ms: int | None = None) -> int | None:
    """How long ago the user last wrote, None when the bridge never saw them write."""
    last = int(known.get("last_ts") or 0)
    return None if not last else (at_ms or now_ms()) - last


def reply_target(known: dict) -> str:
    """The user's last message id while its free window is open, else "" (a reply after 48 h
    counts as a proactive message anyway), and "" once Zalo refused that id as a recipient: every
    later reply to it would cost a refused call before the one to the user id."""
    age, last = age_ms(known), known.get("last_msg_id", "")
    if age is None or age > FREE_MS or last == known.get("reply_refused"):
        return ""
    return last


def would_be_billed(known: dict) -> bool:
    """Past the free 48 h but inside the 7 days (later Zalo refuses, and the agent hears so)."""
    age = age_ms(known)
    return age is not None and FREE_MS < age <= BILLED_MS


def quota_name(quota: dict | None) -> str:
    """What a receipt records about the quota that paid: its type, or "billed"."""
    kind = str((quota or {}).get("quota_type") or "")
    return kind if kind in FREE_QUOTAS else (f"{BILLED}:{kind}" if kind else BILLED)


def is_billed(quota: str) -> bool:
    return quota.startswith(BILLED)


# -- the window timer ----------------------------------------------------------------------


def on_outcome(outcome: Outcome, pipe) -> None:
    """Subscriber (app/relay/subscribers.py): a Zalo user's newest message (re)sets their
    window timer; a reply that reached them answers it, and one Zalo billed gets a note."""
    learned, ctx = outcome.learned, outcome.ctx
    if outcome.state != DELIVERED or learned is None:
        return
    if learned.user_wrote_at:
        user_wrote(ctx, learned.zalo_user, learned.user_wrote_at, pipe)
    if learned.sent and learned.reply is not None:
        replied(ctx, learned.zalo_user, pipe)
        quotas = _quotas(ctx, learned.reply["conversation_id"], learned.sent)
        note_if_billed(ctx, learned.reply, learned.zalo_user, quotas)


def _quotas(ctx: RelayContext, conversation_id: str, sent: tuple[str, ...]) -> list[str]:
    """The quota that paid for each part: Zalo's answer carries it (app/integrations/zalo/client.py
    `Sent`); a part sent by an earlier run is only a recorded id, its receipt has it (one HMGET,
    only then)."""
    if all(hasattr(part, "quota") for part in sent):
        return [quota_name(part.quota) for part in cast(tuple[SentId, ...], sent)]  # as just seen
    recorded = ctx.mapping.quotas(conversation_id, [str(part) for part in sent])
    pairs = zip(sent, recorded, strict=True)
    return [quota_name(part.quota) if hasattr(part, "quota") else kept for part, kept in pairs]


def user_wrote(ctx: RelayContext, zalo_user: str, msg_ts: int, pipe=None) -> None:
    """The user's newest message: (re)set their window timer, unless its window is already
    closed (a late redelivery)."""
    due = msg_ts + WINDOW_NOTE_AFTER_MS
    if now_ms() >= msg_ts + FREE_MS:
        return
    payload = {"zalo_user": zalo_user, "msg_ts": msg_ts}
    set_timer(
        ctx, keys.window_lane(zalo_user), f"window:{zalo_user}:{msg_ts}", events.WINDOW_CLOSING, payload, due, pipe=pipe
    )


def set_timer(
    ctx: RelayContext,
    lane_id: str,
    item_id: str,
    event: str,
    payload: dict,
    due_ms: int,
    replace: bool = True,
    pipe=None,
) -> None:
    """Put a timer item (the worker runs it at `due_ms`) in one of the connection's timer lanes;
    `replace` swaps a waiting one, else a waiting one stays. With `pipe`, as part of it."""
    item = Item(item_id, "zalo", payload, now_ms(), event=event, connection=ctx.connection)
    ctx.lanes.schedule(keys.lane_for(ctx.connection, lane_id), item, due_ms, replace=replace, pipe=pipe)


def replied(ctx: RelayContext, zalo_user: str, pipe=None) -> None:
    """A reply reached the user: it answers their messages so far, so no window note."""
    ctx.mapping.replied(zalo_user, now_ms(), pipe)
    ctx.lanes.cancel(keys.lane_for(ctx.connection, keys.window_lane(zalo_user)), pipe)


def window_closing(ctx: RelayContext, item: Item, progress: Progress) -> None:
    """Due an hour before the free window of the user's last message closes: tell the agents,
    if that message is still the last and nobody answered it."""
    zalo_user, msg_ts = item.payload["zalo_user"], int(item.payload["msg_ts"])
    due = msg_ts + WINDOW_NOTE_AFTER_MS
    if now_ms() < due:
        raise NotDue(due)
    known = ctx.mapping.zalo_user(zalo_user)
    newer = int(known.get("last_ts") or 0) != msg_ts
    answered = int(known.get("last_reply_ts") or 0) >= msg_ts
    conversation = known.get("fc_conversation_id")
    if newer or answered or not conversation:
        return
    text = for_agent(ctx.settings, "window_closing", time=vn_time(msg_ts + FREE_MS))
    post_note(ctx, conversation, f"fc:window:{zalo_user}:{msg_ts}", text)


# -- billed replies -------------------------------------------------------------------------


def held(ctx: RelayContext, message: dict, zalo_user: str, preview: str) -> bool:
    """With `hold_billed_replies`, a reply Zalo would bill is not sent: the agent hears why."""
    if not ctx.settings.hold_billed_replies or not would_be_billed(ctx.mapping.zalo_user(zalo_user)):
        return False
    log.info("relay.billed_reply_held", extra={"message_id": message["id"]})
    ctx.counters.billed("held")
    text = for_agent(ctx.settings, "reply_held", preview=preview)
    post_note(ctx, message["conversation_id"], f"fc:held:{message['id']}", text, _actor(message))
    return True


def note_if_billed(ctx: RelayContext, message: dict, zalo_user: str, quotas: list[str]) -> None:
    """One note per agent message that Zalo billed (any of its parts). Zalo's answer is the
    evidence, but only medium-confidence sources describe it, so the note also needs our own
    record to put the user's last message over 48 h ago: never a false alarm inside the window."""
    if not any(is_billed(q) for q in quotas):
        return
    age = age_ms(ctx.mapping.zalo_user(zalo_user))
    if age is not None and age > FREE_MS:
        ctx.counters.billed("sent")
        text = for_agent(ctx.settings, "reply_billed")
        post_note(ctx, message["conversation_id"], f"fc:billed:{message['id']}", text, _actor(message))


def _actor(message: dict) -> dict:
    return {"actor_type": message.get("actor_type") or "agent", "actor_id": message.get("actor_id")}


def post_note(ctx: RelayContext, conversation: str, effect: str, text: str, actor: dict | None = None) -> None:
    """A private note, once per effect key; one FreshChat refuses for good is only logged (it
    informs, it holds nothing up)."""
    note = {"message_parts": [{"text": {"content": text}}], "message_type": "private"}
    note.update(actor or {"actor_type": "system"})
    try:
        ctx.effects.once(effect, lambda: ctx.freshchat.post_message(conversation, note).get("id", ""))
    except PermanentError as exc:
        log.error("relay.note_refused", extra={"effect": effect, "error": str(exc)})
