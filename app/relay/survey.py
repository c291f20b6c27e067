"""The satisfaction survey (option `satisfaction_survey`, docs/interface.md §5), in three pieces:

- `on_outcome`, an after-delivery subscriber (app/relay/subscribers.py): a conversation was
  resolved on a connection with the option: a question item joins the conversation's survey
  timer lane (`survey:<conversation>`), due at once;
- `ask`, that item's handler (workers/drain.py, HANDLERS below): while the customer's free reply
  window is open, the one rating question goes to them, once, in the customer's language, and
  the conversation is marked as asked for 24 h (`Keys.survey_asked`);
- `take_rating`, a pre-delivery rule (app/relay/rules.py): a customer's message that is a
  single digit 1 to 5 (spaces around it, ASCII or fullwidth digits) while the conversation is
  marked reaches the agents as a private note "rated N/5" and the rating counter, not as a
  customer message. The mark goes in the same Redis round trip as the note's record, so one
  rating per question, and a re-run of the item (a crash before it left its lane) finds the
  record and takes the same path without posting again.
"""

from __future__ import annotations

import logging

from app.bridge import keys
from app.bridge.lanes import Item, now_ms
from app.bridge.outcome import DELIVERED, Outcome, Relayed
from app.errors import PermanentError
from app.integrations import events
from app.integrations.freshchat.schemas import STATE_KEYS, conversation_id
from app.integrations.zalo.errors import ZaloPermanent
from app.integrations.zalo.schemas import zalo_user as zalo_user_of
from app.relay import agent_view, windows
from app.relay.context import Progress, RelayContext
from app.relay.outbound import send_to, zalo_reconciler, zalo_user_for
from app.texts import for_agent, for_customer

log = logging.getLogger("relay.survey")
RESOLVED = "conversation_resolution"
ASKED_SECONDS = 24 * 3600  # a rating counts within 24 h of the question
CLOCK_SKEW_MS = 60 * 1000  # Zalo's clock against ours: a digit sent before the question is no answer
RATING_TEXTS = ("user_send_text", "anonymous_send_text")
FULLWIDTH = str.maketrans("１２３４５", "12345")


# -- the question ---------------------------------------------------------------------------


def on_outcome(outcome: Outcome, pipe) -> None:
    """Subscriber: a resolution delivered on a connection with the survey gets its question item."""
    item, ctx = outcome.item, outcome.ctx
    if outcome.state != DELIVERED or outcome.removed or not _resolution(item):
        return
    if not ctx.settings.satisfaction_survey:
        return
    conversation = conversation_id(item.payload)
    inner = item.payload["data"].get(STATE_KEYS[RESOLVED]) or {}
    payload = {"conversation": conversation, "fc_user": str((inner.get("user") or {}).get("id") or "")}
    lane = keys.survey_lane(conversation)
    windows.set_timer(ctx, lane, f"survey:{item.id}", events.SURVEY_QUESTION, payload, now_ms(), False, pipe)


def _resolution(item: Item) -> bool:
    return item.kind == "freshchat" and isinstance(item.payload, dict) and item.payload.get("action") == RESOLVED


def ask(ctx: RelayContext, item: Item, progress: Progress) -> str:
    """The rating question, once, while the customer's free window is open (a reply then costs
    nothing); nothing when it has closed, or when the option was switched off meanwhile."""
    conversation = item.payload["conversation"]
    zalo_user = zalo_user_for(ctx, conversation, item.payload.get("fc_user") or None)
    if not ctx.settings.satisfaction_survey or not zalo_user or not window_open(ctx, zalo_user):
        log.info("relay.survey_not_asked", extra={"conversation": conversation, "zalo_user": zalo_user})
        return events.NOT_RELAYED
    question = for_customer(ctx.settings, "customer.survey")

    def remember(pipe, sent: str) -> None:
        agent_view.record_send(ctx, pipe, sent, question, conversation)  # its echo is ours
        pipe.set(ctx.keys.survey_asked(conversation), now_ms(), ex=ASKED_SECONDS)

    try:
        ctx.effects.once(
            f"zalo:survey:{item.id}",
            lambda: send_to(ctx, zalo_user, {"text": question}),
            also=remember,
            reconcile=zalo_reconciler(ctx),
        )
    except ZaloPermanent as exc:  # blocked the OA, not a follower...: no question, nothing to retry
        log.warning("relay.survey_refused", extra={"code": exc.code, "conversation": conversation})
    return events.NOT_RELAYED


def window_open(ctx: RelayContext, zalo_user: str) -> bool:
    age = windows.age_ms(ctx.mapping.zalo_user(zalo_user))
    return age is not None and age <= windows.FREE_MS


# -- the answer -----------------------------------------------------------------------------


def rating_in(event: dict) -> int | None:
    """The rating a customer's text gives: exactly one digit 1 to 5, spaces around it allowed,
    ASCII or fullwidth (an East Asian keyboard's "５"); None for anything else ("5 sao", "12", "0")."""
    if event.get("event_name") not in RATING_TEXTS:
        return None
    text = str((event.get("message") or {}).get("text") or "").strip().translate(FULLWIDTH)
    return int(text) if len(text) == 1 and text in "12345" else None


def take_rating(ctx: RelayContext, item: Item, progress: Progress) -> Relayed | None:
    """Pre-delivery rule for a user's message: a rating answering the question becomes the
    agents' note (and the counter); None lets the message be relayed as usual."""
    event = item.payload
    rating = rating_in(event)
    if rating is None:
        return None
    zalo_user = zalo_user_of(event)
    known = ctx.mapping.zalo_user(zalo_user)
    conversation = known.get("fc_conversation_id") or ""
    effect = f"fc:rating:{event['message']['msg_id']}"
    taken_before = ctx.effects.recorded(effect) is not None  # a re-run: the question is answered already
    if not conversation or not (taken_before or _answers_question(ctx, conversation, event)):
        return None
    _note(ctx, conversation, effect, rating)
    return _touch(ctx, zalo_user, known, event)


def _answers_question(ctx: RelayContext, conversation: str, event: dict) -> bool:
    """The conversation was asked less than 24 h ago (the mark is there), before this message."""
    asked = ctx.redis.get(ctx.keys.survey_asked(conversation))
    return asked is not None and int(event["timestamp"]) + CLOCK_SKEW_MS >= int(asked)


def _note(ctx: RelayContext, conversation: str, effect: str, rating: int) -> None:
    """The note, once; its record, the end of the question and the count in one round trip.
    A note FreshChat refuses for good is only logged: the rating is still counted and taken."""
    note = {
        "message_parts": [{"text": {"content": for_agent(ctx.settings, "agent.rated", rating=rating)}}],
        "message_type": "private",
        "actor_type": "system",
    }

    def taken(pipe, _posted) -> None:
        pipe.delete(ctx.keys.survey_asked(conversation))
        ctx.counters.rated(rating, pipe)

    try:
        ctx.effects.once(effect, lambda: ctx.freshchat.post_message(conversation, note).get("id", ""), also=taken)
    except PermanentError as exc:
        log.error("relay.note_refused", extra={"effect": effect, "error": str(exc)})
        ctx.effects.once(effect, lambda: "", also=taken)
    log.info("relay.rated", extra={"conversation": conversation, "rating": rating})


def _touch(ctx: RelayContext, zalo_user: str, known: dict, event: dict) -> Relayed:
    """The rating is the customer's newest interaction: their reply window restarts from it."""
    sent_ms, last = int(event["timestamp"]), int(known.get("last_ts") or 0)
    if sent_ms > last:
        ctx.mapping.touch(zalo_user, str(sent_ms), event["message"]["msg_id"])
    return Relayed(zalo_user=zalo_user, user_wrote_at=sent_ms if sent_ms >= last else 0)


# The worker's routing for the question item (workers/drain.py adds it to the Zalo handlers).
HANDLERS = {events.SURVEY_QUESTION: ask}
