"""Zalo -> FreshChat: one queued Zalo event becomes one FreshChat message (CONTRACT §4)."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone

from app.integrations.errors import PartnerError, PermanentError
from app.integrations.freshchat.client import ConversationGone
from app.relay.parts import zalo_parts

log = logging.getLogger("relay.inbound")
VN = timezone(timedelta(hours=7))
LATE_AFTER_MS = 20000  # Zalo redelivers after 30 s at the earliest; closer races are not "late"


def handle(ctx, item, progress) -> None:
    event = item.payload
    name = event["event_name"]
    if name.startswith("user_send_"):
        relay_user_message(ctx, event, progress, item.attempts)
    elif name.startswith("oa_send_"):
        relay_console_message(ctx, event, progress)


def relay_user_message(ctx, event: dict, progress, attempts: int = 0) -> None:
    zalo_user = event["sender"]["id"]
    known = ctx.mapping.zalo_user(zalo_user)  # read once: the lane makes it current
    fc_user = ensure_freshchat_user(ctx, zalo_user, known)
    progress()
    last_ts = int(known.get("last_ts") or 0)
    parts = _mark_if_late(last_ts, event, zalo_parts(ctx, event, progress, attempts))
    message = {"message_parts": parts, "message_type": "normal", "actor_type": "user",
               "actor_id": fc_user, "user_id": fc_user}
    deliver(ctx, event["message"]["msg_id"], zalo_user, fc_user, message, known.get("fc_conversation_id"))
    _touch(ctx, zalo_user, fc_user, event, last_ts)


def relay_console_message(ctx, event: dict, progress) -> None:
    """An OA admin typed in Zalo's console: agents see it as a private note."""
    msg_id = event["message"]["msg_id"]
    if ctx.mapping.is_sent_by_us(msg_id):
        return
    zalo_user = event["recipient"]["id"]
    known = ctx.mapping.zalo_user(zalo_user)
    fc_user = ensure_freshchat_user(ctx, zalo_user, known)
    parts = zalo_parts(ctx, event, progress)
    admin = event["sender"].get("admin_id", "")
    header = {"text": {"content": f"[Sent from the Zalo OA console by admin {admin}]"}}
    message = {"message_parts": [header] + parts, "message_type": "private", "actor_type": "system",
               "user_id": fc_user}
    deliver(ctx, msg_id, zalo_user, fc_user, message, known.get("fc_conversation_id"))


def deliver(ctx, msg_id: str, zalo_user: str, fc_user: str, message: dict, conversation: str | None) -> None:
    """Post once per Zalo msg_id; the mapping is written from the record, so a Redis blip
    after FreshChat accepted cannot make us post (or open a conversation) twice."""
    done = ctx.effects.once(f"fc:msg:{msg_id}", lambda: post(ctx, conversation, fc_user, message))
    if done.get("new_conversation"):
        ctx.mapping.link_conversation(zalo_user, done["conversation_id"])


def post(ctx, conversation: str | None, fc_user: str, message: dict) -> dict:
    """Post into the user's open conversation; start a new one when FreshChat refuses the old."""
    if conversation:
        try:
            posted = ctx.freshchat.post_message(conversation, message)
            return {"id": posted.get("id", ""), "conversation_id": conversation}
        except ConversationGone as exc:
            log.info("relay.conversation_replaced", extra={"old": conversation, "why": str(exc)})
    created = ctx.freshchat.create_conversation(fc_user, message)
    first = (created.get("messages") or [{}])[0]
    return {"id": first.get("id", ""), "conversation_id": created["conversation_id"], "new_conversation": True}


def ensure_freshchat_user(ctx, zalo_user: str, known: dict) -> str:
    """The FreshChat user id for a Zalo user, creating "<Name> Zalo" on first contact.

    Lanes serialise each Zalo user's events, so concurrent first messages reach this one at
    a time; the reference_id look-up covers a crash between creation and our mapping write.
    """
    if known.get("fc_user_id"):
        return known["fc_user_id"]
    reference = reference_id(ctx.settings, zalo_user)
    user = ctx.freshchat.find_user(reference) or ctx.freshchat.create_user(
        user_payload(reference, zalo_user, _profile(ctx, zalo_user)))
    ctx.mapping.set_zalo_user(zalo_user, fc_user_id=user["id"], created=_now_iso())
    ctx.mapping.seen_now(zalo_user)  # creation just set "last_seen"
    return user["id"]


def reference_id(settings, zalo_user: str) -> str:
    return f"zalo:{settings.zalo_oa_id}:{zalo_user}" if settings.zalo_oa_id else f"zalo:{zalo_user}"


def _profile(ctx, zalo_user: str) -> dict:
    """Zalo's profile, or an anonymous one when Zalo refuses (e.g. -501 outside Vietnam)."""
    try:
        return ctx.zalo.user_detail(zalo_user)
    except PermanentError as exc:
        log.warning("relay.profile_unavailable", extra={"zalo_user": zalo_user, "error": str(exc)})
        return {}


def user_payload(reference: str, zalo_user: str, profile: dict) -> dict:
    """Only what agents need: display name, avatar, ids. Never phone, e-mail or real name."""
    name = profile.get("display_name") or profile.get("user_alias") or f"User {zalo_user[-6:]}"
    now = _now_iso()
    payload = {"reference_id": reference, "first_name": f"{name} Zalo",
               "properties": properties(zalo_user, last_seen=now, created=now)}
    avatar = (profile.get("avatars") or {}).get("240") or profile.get("avatar")
    if avatar:
        payload["avatar"] = {"url": avatar}
    return payload


def properties(zalo_user: str, *, last_seen: str, created: str) -> list[dict]:
    return [{"name": "external_user_provider", "value": "zalo"},
            {"name": "zalo_user_id", "value": zalo_user},
            {"name": "last_seen", "value": last_seen},
            {"name": "created", "value": created}]


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _mark_if_late(last: int, event: dict, parts: list[dict]) -> list[dict]:
    """A redelivery older than what we already relayed says when it was really sent."""
    sent_ms = int(event["timestamp"])
    if sent_ms >= last or time.time() * 1000 - sent_ms < LATE_AFTER_MS:
        return parts
    when = datetime.fromtimestamp(sent_ms / 1000, VN).strftime("%H:%M %d/%m/%Y")
    return [{"text": {"content": f"[Delivered late - originally sent {when} (UTC+7)]"}}] + parts


def _touch(ctx, zalo_user: str, fc_user: str, event: dict, last: int) -> None:
    """Remember the newest relayed time; refresh "last_seen" in FreshChat at most hourly."""
    sent_ms = int(event["timestamp"])
    if ctx.mapping.touch(zalo_user, str(sent_ms) if sent_ms > last else None):
        _update_last_seen(ctx, zalo_user, fc_user)


def _update_last_seen(ctx, zalo_user: str, fc_user: str) -> None:
    """PUT may replace the property list, so the whole list goes every time."""
    created = ctx.mapping.zalo_user(zalo_user).get("created") or _now_iso()
    try:
        ctx.freshchat.update_user(fc_user, {"properties": properties(
            zalo_user, last_seen=_now_iso(), created=created)})
    except PartnerError as exc:  # cosmetic: never hold a conversation back for it
        log.warning("relay.last_seen_failed", extra={"error": str(exc)})
