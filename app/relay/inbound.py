"""Zalo -> FreshChat: one queued Zalo event becomes one FreshChat message (docs/interface.md §4)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from app.bridge.lanes import Item, now_ms
from app.bridge.mapping import Mapping, seen_due
from app.bridge.outcome import Relayed
from app.errors import PartnerError, PermanentError, RetryableError
from app.integrations import events
from app.integrations.freshchat.errors import ConversationGone, FreshchatPermanent
from app.integrations.zalo.schemas import ANONYMOUS, CAUGHT_UP, anonymous_id
from app.integrations.zalo.schemas import zalo_user as zalo_user_of
from app.relay import people, user_properties
from app.relay.context import Progress, RelayContext
from app.relay.parts import (
    AS_BUILT,
    MEDIA_AS_LINKS,
    PLAINNESS,
    Part,
    quote_parts,
    render,
    snippet,
    text_part,
    zalo_parts,
)
from app.relay.reconcile import find_freshchat_post, freshchat_fingerprint, reconciler, wait_for_send_in_flight
from app.texts import for_agent, vn_time

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("relay.inbound")
LATE_AFTER_MS = 20000  # Zalo redelivers after 30 s at the earliest; closer races are not "late"
ECHO_GRACE_SECONDS = 3  # our send record lands right after Zalo answers; its echo may come first


@dataclass(frozen=True)
class Outgoing:
    """One FreshChat message before it is sent: its fields but the parts, and the parts in
    a form that can be made plainer; `text` is what a later quote of it repeats."""

    envelope: dict
    parts: list[Part]
    text: str
    reply_to: str = ""  # the FreshChat message it answers (a Zalo quote of a relayed message)

    def as_built(self) -> list[tuple[str, dict]]:
        """The first of `forms` alone: the plainer ones are built once FreshChat refused it."""
        return [(PLAINNESS[AS_BUILT], self._form(AS_BUILT))]

    def forms(self) -> list[tuple[str, dict]]:
        """The message from as built to plainest, each distinct body once, with its name. The
        plainest also drops `in_reply_to`: a refused reply link must not cost the user's words."""
        forms: list[tuple[str, dict]] = []
        for plainness, name in enumerate(PLAINNESS):
            message = self._form(plainness)
            if all(message != earlier for _, earlier in forms):
                forms.append((name, message))
        return forms

    def _form(self, plainness: int) -> dict:
        message = {"message_parts": render(self.parts, plainness), **self.envelope}
        if self.reply_to and plainness < MEDIA_AS_LINKS:
            message["in_reply_to"] = {"message_id": self.reply_to}
        return message


def relay_user_message(ctx: RelayContext, item: Item, progress: Progress) -> Relayed:
    """Relay a user's message; the subscribers hear whether it is their newest (their reply
    window restarts: app/relay/windows.py)."""
    event, attempts = item.payload, item.attempts
    zalo_user = zalo_user_of(event)
    known = _sender_and_post(ctx, zalo_user, event["message"]["msg_id"])  # read once: the lane makes it current
    fc_user = ensure_freshchat_user(ctx, zalo_user, known, event)
    if zalo_user.startswith(ANONYMOUS):  # only a web-chat visitor's id is in that namespace
        _remember_anonymous_conversation(ctx, zalo_user, known, event)
    progress()
    last_ts = int(known.get("last_ts") or 0)
    parts = zalo_parts(ctx, event, progress, attempts)
    envelope = {"message_type": "normal", "actor_type": "user", "actor_id": fc_user, "user_id": fc_user}
    behind = int(event["timestamp"]) < last_ts or event.get(CAUGHT_UP)  # a redelivery or a catch-up
    body = (_late_mark(ctx.settings, event) if behind else []) + quote_parts(ctx, event) + parts
    outgoing = Outgoing(envelope, body, snippet(parts), reply_to=_answered(ctx, event))
    touch = _toucher(ctx, zalo_user, known, event, last_ts)
    deliver(
        ctx, event["message"]["msg_id"], zalo_user, fc_user, outgoing, known.get("fc_conversation_id"), progress, touch
    )
    return _touched(ctx, zalo_user, fc_user, event, last_ts, touch.seen)


def _sender_and_post(ctx: RelayContext, zalo_user: str, msg_id: str) -> dict:
    """The user's record, read in one round trip with the post's own (its result, or what an
    earlier run left in flight), which `deliver`'s `once` then uses instead of reading it."""
    pipe = ctx.redis.pipeline(transaction=False)
    recorded, known = ctx.effects.recorded_in(pipe, posted_key(msg_id)), ctx.mapping.zalo_user_in(pipe, zalo_user)
    answers = pipe.execute()
    recorded(answers[0])
    return known(answers[1])


def _answered(ctx: RelayContext, event: dict) -> str:
    """The FreshChat message a Zalo quote answers, when the bridge relayed the quoted one."""
    quoted = str((event.get("message") or {}).get("quote_msg_id") or "")
    return ctx.messages.freshchat_id(quoted) if quoted else ""


def _remember_anonymous_conversation(ctx: RelayContext, zalo_user: str, known: dict, event: dict) -> None:
    """Zalo answers an anonymous visitor only within the conversation their message names."""
    conversation = str((event.get("message") or {}).get("conversation_id") or "")
    if conversation and conversation != known.get("zalo_conversation_id"):
        ctx.mapping.set_zalo_user(zalo_user, zalo_conversation_id=conversation)


def relay_console_message(ctx: RelayContext, item: Item, progress: Progress) -> str | None:
    """A message the OA sent without this bridge (Zalo's OA chat, another tool, an automatic
    message): agents see it as a private note. Our own sends are recognised by their id."""
    event, attempts = item.payload, item.attempts
    msg_id = event["message"]["msg_id"]
    if ctx.mapping.is_sent_by_us(msg_id):
        log.debug("relay.own_echo", extra={"msg_id": msg_id})  # Zalo echoes what we sent: nothing lost
        return events.NOT_RELAYED
    if not event.get(CAUGHT_UP):  # found in history long after any send record would have landed
        _wait_for_our_send_record(item.received_at)
    zalo_user = zalo_user_of(event)
    wait_for_send_in_flight(ctx, zalo_user)
    known = ctx.mapping.zalo_user(zalo_user)
    fc_user = ensure_freshchat_user(ctx, zalo_user, known, event)
    parts = zalo_parts(ctx, event, progress, attempts)
    admin = event["sender"].get("admin_id")
    said = for_agent(ctx.settings, "agent.sent_by_admin", admin=admin) if admin else None
    header = text_part(said or for_agent(ctx.settings, "agent.sent_elsewhere"))
    envelope = {"message_type": "private", "actor_type": "system", "user_id": fc_user}
    late = _late_mark(ctx.settings, event) if event.get(CAUGHT_UP) else []
    outgoing = Outgoing(envelope, [header] + late + quote_parts(ctx, event) + parts, snippet(parts))
    deliver(ctx, msg_id, zalo_user, fc_user, outgoing, known.get("fc_conversation_id"), progress)
    return None


# The worker's one routing table for Zalo events (workers/drain.py), by event kind.
HANDLERS = {events.USER_MESSAGE: relay_user_message, events.OA_MESSAGE: relay_console_message}


def _wait_for_our_send_record(received_at: int) -> None:
    """An unknown echo this young may still be ours: look again once the grace is over."""
    left = ECHO_GRACE_SECONDS - (now_ms() - received_at) / 1000
    if left > 0:
        raise RetryableError("echo not matched yet", retry_after=left)


def deliver(
    ctx: RelayContext,
    msg_id: str,
    zalo_user: str,
    fc_user: str,
    outgoing: Outgoing,
    conversation: str | None,
    progress: Progress = lambda: None,
    touch: Toucher | None = None,
) -> None:
    """Post once per Zalo msg_id; the mapping is written from the record, so a Redis blip
    after FreshChat accepted cannot make us post (or open a conversation) twice. The message
    map is written with the record, so a later quote of either side finds the other, and so
    is `touch` (the user's newest message: `_toucher`), else after it (an earlier run recorded)."""
    recorded = []

    def also(pipe, posted: dict) -> None:
        ctx.messages.link(msg_id, posted.get("id", ""), pipe)
        if touch is not None:
            touch(pipe)
        recorded.append(True)

    done = ctx.effects.once(
        posted_key(msg_id),
        lambda: post(ctx, msg_id, conversation, fc_user, outgoing, progress),
        also=also,
        reconcile=reconciler(ctx, "freshchat", lambda flight: _posted(ctx, flight, conversation, outgoing)),
    )
    if touch is not None and not recorded:
        touch(None)
    if done.get("new_conversation"):
        ctx.mapping.link_conversation(zalo_user, done["conversation_id"])


def posted_key(msg_id: str) -> str:
    """The effect of relaying Zalo message `msg_id` to FreshChat (its result: what `post` answered)."""
    return f"fc:msg:{msg_id}"


def post(
    ctx: RelayContext,
    msg_id: str,
    conversation: str | None,
    fc_user: str,
    outgoing: Outgoing,
    progress: Progress = lambda: None,
) -> dict:
    """Post the message, plainer after each refusal of its content, so it never vanishes;
    a conversation FreshChat no longer takes is replaced by a new one. All of it happens in
    one recorded effect: at most one form is ever accepted."""
    forms = outgoing.as_built()  # the plainer forms only after a refusal
    step = 0
    while True:
        progress()  # several calls in a row: keep the lane's lease, so no one else posts meanwhile
        try:
            return {**post_form(ctx, conversation, fc_user, forms[step][1]), "text": outgoing.text}
        except ConversationGone as exc:
            if not conversation:
                raise
            log.info("relay.conversation_replaced", extra={"old": conversation, "why": str(exc)})
            conversation = None
        except FreshchatPermanent as exc:
            if exc.status != 400:  # auth or a missing user: a plainer message cannot help
                raise
            forms, step = outgoing.forms(), step + 1
            if step == len(forms):
                raise PermanentError(f"FreshChat refused even the plainest form: {exc}", status=400) from exc
            log.warning(
                "relay.degraded",
                extra={"msg_id": msg_id, "refused": forms[step - 1][0], "now_sent": forms[step][0], "reason": str(exc)},
            )


def _posted(ctx: RelayContext, flight: dict, conversation: str | None, outgoing: Outgoing) -> dict | None:
    """What `post` would have answered for the message FreshChat shows, or None."""
    found = find_freshchat_post(ctx, flight)
    if found is None:
        return None
    created = found["conversation_id"] != conversation
    return {**found, "text": outgoing.text, **({"new_conversation": True} if created else {})}


def post_form(ctx: RelayContext, conversation: str | None, fc_user: str, message: dict) -> dict:
    """Into the user's open conversation, or as the first message of a new one; recorded as
    in flight first, so an answer that never comes is looked for before posting again."""
    turn = ctx.freshchat.limiter  # the post's rate-limit turn, with its in-flight record
    ctx.effects.take_off(turn=turn, conversation=conversation or "", user=fc_user, what=freshchat_fingerprint(message))
    if conversation:
        posted = ctx.freshchat.post_message(conversation, message)
        return {"id": posted.get("id", ""), "conversation_id": conversation}
    created = ctx.freshchat.create_conversation(fc_user, message)
    first = (created.get("messages") or [{}])[0]
    return {"id": first.get("id", ""), "conversation_id": created["conversation_id"], "new_conversation": True}


def ensure_freshchat_user(ctx: RelayContext, zalo_user: str, known: dict, event: dict | None = None) -> str:
    """The FreshChat user id for a Zalo user, creating "<Name> Zalo" on first contact; with
    merge_users_by_app, the person's user the app's other OAs share (app/relay/people.py).

    Lanes serialise each Zalo user's events, so concurrent first messages reach this one at
    a time; the reference_id look-up covers a crash between creation and our mapping write.
    It never finds a user the bridge was asked to forget: a forgotten person starts afresh.
    """
    if known.get("fc_user_id"):
        if ctx.settings.merge_users_by_app:  # the option's own step, only for a connection that has it
            people.adopt(ctx, zalo_user, known, event)
        return known["fc_user_id"]
    profile = cache(lambda: {} if anonymous_id(zalo_user) else _profile(ctx, zalo_user))  # read once, if at all
    extra = user_properties.extra(ctx, known)
    forgotten = ctx.mapping.forgotten()  # users the bridge was asked to forget: never found again
    found: dict = {}  # a user FreshChat already had (a crash before our mapping write, another OA)
    looked: list[str] = []

    def find_or_create(reference: str) -> dict:
        looked.append(reference)
        found.update(ctx.freshchat.find_user(reference, skip=forgotten) or {})
        return found or ctx.freshchat.create_user(user_payload(reference, zalo_user, profile(), extra))

    by_app = people.person_of(ctx, zalo_user, event, profile)
    if by_app:
        claimant = f"{ctx.connection}:{zalo_user}"
        user_id = people.shared_user(ctx, by_app, find_or_create, claimant=claimant)
        if user_id in forgotten:  # forgotten through this OA: it starts afresh, on its own
            by_app = ""
        elif not looked:  # another OA's user: read it once, to add this OA to the names it carries
            found.update(ctx.freshchat.find_user(people.reference_id(ctx, by_app)) or {})
    if not by_app:
        user_id = find_or_create(reference_id(ctx.settings, zalo_user))["id"]
    person = {"user_id_by_app": by_app} if by_app else {}
    fields = {**person, **user_properties.to_keep(ctx, extra)}
    ctx.mapping.set_zalo_user(zalo_user, fc_user_id=user_id, created=str(int(time.time())), **fields)
    ctx.mapping.seen_now(zalo_user)  # creation just set "last_seen"
    if found:
        put = lambda: ctx.freshchat.update_user(user_id, user_update(ctx, zalo_user))  # noqa: E731
        user_properties.join_found(ctx, zalo_user, found, put)
    return user_id


def reference_id(settings: Settings, zalo_user: str) -> str:
    """`zalo:<oa>:<user>`; an anonymous visitor's is `zalo:<oa>:anon:<id>`."""
    return f"zalo:{settings.zalo_oa_id}:{zalo_user}" if settings.zalo_oa_id else f"zalo:{zalo_user}"


def _profile(ctx: RelayContext, zalo_user: str) -> dict:
    """Zalo's profile, or an anonymous one when Zalo refuses (e.g. -501 outside Vietnam)."""
    try:
        return ctx.zalo.user_detail(zalo_user)
    except PermanentError as exc:
        log.warning("relay.profile_unavailable", extra={"zalo_user": zalo_user, "error": str(exc)})
        return {}


def user_payload(reference: str, zalo_user: str, profile: dict, extra: dict | None = None) -> dict:
    """Only what agents need: display name, avatar, ids, the OA (`extra`: app/relay/user_properties.py).
    Never phone, e-mail or real name. Zalo names no anonymous visitor: the end of their id tells
    them apart."""
    anonymous = anonymous_id(zalo_user)
    fallback = anonymous[-6:] if anonymous else f"User {zalo_user[-6:]}"
    name = profile.get("display_name") or profile.get("user_alias") or fallback
    now = _now_iso()
    payload: dict[str, Any] = {
        "reference_id": reference,
        "first_name": f"{name} Zalo",
        "properties": properties(zalo_user, last_seen=now, created=now, extra=extra),
    }
    avatar = (profile.get("avatars") or {}).get("240") or profile.get("avatar")
    if avatar:
        payload["avatar"] = {"url": avatar}
    return payload


def properties(zalo_user: str, *, last_seen: str, created: str, extra: dict | None = None) -> list[dict]:
    anonymous = anonymous_id(zalo_user)
    who = ("zalo_anonymous_id", anonymous) if anonymous else ("zalo_user_id", zalo_user)
    return [
        {"name": "external_user_provider", "value": "zalo"},
        {"name": who[0], "value": who[1]},
        {"name": "last_seen", "value": last_seen},
        {"name": "created", "value": created},
        *({"name": name, "value": value} for name, value in sorted((extra or {}).items())),
    ]


def user_update(ctx: RelayContext, zalo_user: str) -> dict:
    """A `PUT /users/<id>` body with the user's whole property list (PUT may replace it)."""
    known = ctx.mapping.zalo_user(zalo_user)
    extra = user_properties.extra(ctx, known)
    return {"properties": properties(zalo_user, last_seen=_now_iso(), created=_created(known), extra=extra)}


def _created(known: dict) -> str:
    """When the bridge created the user's FreshChat user, as its property says it: kept in
    epoch seconds (8 bytes fewer per user than the text fc5f0b4 kept, which is still read)."""
    created = known.get("created", "")
    return _iso(int(created)) if created.isdigit() else created or _now_iso()


def _now_iso() -> str:
    return _iso(time.time())


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _late_mark(settings: Settings, event: dict) -> list[Part]:
    """A redelivery older than what we already relayed says when it was really sent, and so
    does a message found by catch-up (its webhook never came: it reaches agents late); the
    handler asks only for those."""
    sent_ms = int(event["timestamp"])
    if time.time() * 1000 - sent_ms < LATE_AFTER_MS:
        return []
    return [text_part(for_agent(settings, "agent.late", when=vn_time(sent_ms)))]


@dataclass(frozen=True)
class Toucher:
    """What the user's hash learns from a relayed message, written with its record (`deliver`):
    the newest message (when it is), and that FreshChat's "last_seen" is refreshed now (`seen`,
    decided from the hash the relay read: `seen_due`, at most hourly; not right after the user
    was created, which set it)."""

    mapping: Mapping
    zalo_user: str
    newest: str | None  # the message's time when it is the user's newest
    msg_id: str
    seen: bool

    def __call__(self, pipe) -> None:
        self.mapping.touch(self.zalo_user, self.newest, self.msg_id, seen=self.seen, pipe=pipe)


def _toucher(ctx: RelayContext, zalo_user: str, known: dict, event: dict, last: int) -> Toucher:
    sent_ms = int(event["timestamp"])
    newest = str(sent_ms) if sent_ms > last else None
    seen = bool(known.get("fc_user_id")) and seen_due(known)
    return Toucher(ctx.mapping, zalo_user, newest, event["message"]["msg_id"], seen)


def _touched(ctx: RelayContext, zalo_user: str, fc_user: str, event: dict, last: int, seen: bool) -> Relayed:
    """The newest relayed message is remembered (`Toucher`); refresh "last_seen" in FreshChat
    when due. The answer names the message when it is the user's newest (a re-run after a lost
    lease finds it already remembered: still the newest)."""
    if seen:
        _update_last_seen(ctx, zalo_user, fc_user)
    sent_ms = int(event["timestamp"])
    return Relayed(zalo_user=zalo_user, user_wrote_at=sent_ms if sent_ms >= last else 0)


def _update_last_seen(ctx: RelayContext, zalo_user: str, fc_user: str) -> None:
    """PUT may replace the property list, so the whole list goes every time."""
    try:
        ctx.freshchat.update_user(fc_user, user_update(ctx, zalo_user))
    except PartnerError as exc:  # cosmetic: never hold a conversation back for it
        log.warning("relay.last_seen_failed", extra={"error": str(exc)})
