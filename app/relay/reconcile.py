"""Reconcile before repeating: a send whose answer never came is looked for in the partner's
conversation before it is made again (docs/delivery.md, "Unknown outcomes").

Neither Zalo's CS API nor FreshChat's message API takes an idempotency key, so a timeout or a
crash mid-call leaves the outcome unknown. The send's in-flight record (`Effects.take_off`)
says what went to whom and when; once the partner has surely finished with the call, its
conversation shows whether the message is there."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from app.bridge.replies import text
from app.errors import PermanentError, ReconcilePending
from app.integrations.zalo.client import HISTORY_PAGE, HistoryTooLong, history_since
from app.integrations.zalo.schemas import anonymous_id
from app.relay import people
from app.relay.context import RelayContext

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("relay.reconcile")
# A call may still be worked on after we gave up on it; look only once it has surely ended.
SETTLE_TIMEOUTS = 3  # times HTTP_TIMEOUT_SECONDS after the send
SKEW_MS = 5000  # partner clocks may run behind ours: messages this much "before" the send count
LOOKUP_SECONDS = 5.0  # a look-up that cannot conclude in this time counts as unreadable
ZALO_PAGES = 3  # of 10 messages, newest first
FRESHCHAT_PAGES = 2  # of 50 messages, newest first
USER_CONVERSATIONS = 3  # a conversation created blind: looked for among this many of the user's
# Zalo history `type`s of what the bridge sends (an image shows as "photo")
ZALO_TYPES = {"text": {"text"}, "image": {"photo", "image"}, "gif": {"gif", "photo"}, "file": {"file"}}


ECHO_MARGIN_SECONDS = 60  # an echo of a send of unknown outcome waits this long past the settling


def settle_seconds(settings: Settings) -> float:
    return SETTLE_TIMEOUTS * settings.http_timeout_seconds


def echo_patience(settings: Settings) -> int:
    """How long after a send its echo may wait for the send's outcome to be settled."""
    return int(settle_seconds(settings) + ECHO_MARGIN_SECONDS)


class Unreadable(Exception):
    """The look-up could not decide whether the message is there."""


def reconciler(ctx: RelayContext, partner: str, find: Callable[[dict], Any]) -> Callable[[dict], Any]:
    """The `reconcile` of `Effects.once` for sends to `partner`: wait until the partner is
    surely done with the call, then `find(flight)` the result it shows (None: not there).
    A partner that cannot be read means a resend, as before reconciliation, and is counted."""

    def reconcile(flight: dict) -> Any:
        wait = flight["at"] / 1000 + settle_seconds(ctx.settings) - time.time()
        if wait > 0:
            raise ReconcilePending(
                f"{partner} send of unknown outcome: look in {wait:.1f}s", partner=partner, retry_after=wait
            )
        try:
            found = find(flight)
        except (PermanentError, Unreadable) as exc:
            log.warning("reconcile.unreadable", extra={"partner": partner, "error": str(exc)[:300]})
            ctx.effects.count(partner, "unreadable")
            return None
        ctx.effects.count(partner, "found" if found is not None else "not_found")
        log.info("reconcile.settled", extra={"partner": partner, "found": found is not None})
        return found

    return reconcile


# -- Zalo: the OA's messages (src 0) in the user's conversation ---------------------------------


def wait_for_send_in_flight(ctx: RelayContext, zalo_user: str) -> None:
    """An echo we do not know yet may be of our send whose answer never came: wait until that
    send is settled (found or resent), at most `echo_patience` after it was made."""
    effect = ctx.redis.get(ctx.keys.sending_to(zalo_user))
    flight = ctx.effects.in_flight(text(effect)) if effect else None
    if flight is None:
        return
    left = flight["at"] / 1000 + echo_patience(ctx.settings) - time.time()
    if left > 0:
        raise ReconcilePending("echo waits for a send of unknown outcome", partner="zalo", retry_after=min(left, 5.0))


def zalo_fingerprint(message: dict) -> dict:
    """What of a CS message the conversation history shows: the text, or the attachment's kind."""
    if "attachment" not in message:
        return {"kind": "text", "text": message.get("text", "")}
    payload = message["attachment"].get("payload") or {}
    if message["attachment"].get("type") == "file":
        return {"kind": "file", "id": payload.get("token", "")}
    element = (payload.get("elements") or [{}])[0]
    return {"kind": element.get("media_type", "image"), "id": element.get("attachment_id", "")}


def find_zalo_send(ctx: RelayContext, flight: dict) -> str | None:
    """The id of an OA message to `flight["to"]`, sent since the flight, with its content and
    not already known as another of our sends; None when the history has none."""
    if anonymous_id(flight["to"]):
        raise Unreadable("Zalo's history is read per OA user; an anonymous visitor has none")
    what, since = flight["what"], flight["at"] - SKEW_MS
    deadline = time.monotonic() + LOOKUP_SECONDS

    def read_page(offset: int) -> list[dict]:
        if time.monotonic() > deadline:
            raise Unreadable("Zalo's history took too long to read")
        return ctx.zalo.conversation(flight["to"], offset=offset, count=HISTORY_PAGE)

    try:
        for item in history_since(read_page, since, ZALO_PAGES):
            if _zalo_same(item, what) and not ctx.mapping.is_sent_by_us(str(item.get("message_id"))):
                return str(item["message_id"])
    except HistoryTooLong as exc:
        raise Unreadable(f"{exc} since the send") from None
    return None  # newest first: the history reached back past the send without it


def _zalo_same(item: dict, what: dict) -> bool:
    if str(item.get("src")) != "0" or item.get("type") not in ZALO_TYPES.get(what["kind"], ()):
        return False
    return what["kind"] != "text" or item.get("message") == what["text"]


# -- FreshChat: the bridge's messages in the conversation ----------------------------------------


def freshchat_fingerprint(message: dict) -> dict:
    """Who posts (actor, note or not) and each part's kind and main value: what a message
    listed back shows unchanged."""
    return {
        "actor_type": message.get("actor_type", ""),
        "actor_id": message.get("actor_id") or "",
        "message_type": message.get("message_type", "normal"),
        "parts": parts_signature(message.get("message_parts") or []),
    }


def parts_signature(parts: list[dict]) -> list[list[str]]:
    signature = []
    for part in parts:
        kind, body = next(iter(part.items()), ("", {}))  # one key per part
        body = body if isinstance(body, dict) else {}
        value = body.get("content") or body.get("url") or body.get("fileHash") or body.get("label") or ""
        signature.append([kind, str(value)])
    return signature


def find_freshchat_post(ctx: RelayContext, flight: dict) -> dict | None:
    """{"id", "conversation_id"} of a message posted since the flight, as the flight's actor,
    with the same parts; in the flight's conversation, or (a conversation created blind)
    among the user's latest ones. None when it is not there."""
    deadline = time.monotonic() + LOOKUP_SECONDS
    conversations = [flight["conversation"]] if flight.get("conversation") else None
    if conversations is None:
        found = people.own_conversations(ctx, ctx.freshchat.user_conversations(flight["user"]))
        conversations = found[-USER_CONVERSATIONS:]
    for conversation in conversations:
        posted = _find_in(ctx, conversation, flight, deadline)
        if posted:
            return {"id": posted, "conversation_id": conversation}
    return None


def _find_in(ctx: RelayContext, conversation: str, flight: dict, deadline: float) -> str | None:
    since = flight["at"] - SKEW_MS
    from_time = datetime.fromtimestamp(since / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{since % 1000:03d}Z"
    next_page = None
    for _ in range(FRESHCHAT_PAGES):
        if time.monotonic() > deadline:
            raise Unreadable("FreshChat's messages took too long to read")
        messages, next_page = ctx.freshchat.messages(conversation, from_time=from_time, next_page=next_page)
        for message in messages:
            if _ms(message.get("created_time")) < since:
                return None
            if freshchat_fingerprint(message) == flight["what"]:
                return str(message["id"])
        if not next_page:
            return None
    raise Unreadable(f"more than {FRESHCHAT_PAGES} pages of messages since the send")


def _ms(iso: str | None) -> int:
    try:
        return int(datetime.fromisoformat(str(iso).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0
