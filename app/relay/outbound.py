"""FreshChat -> Zalo: agents' replies and conversation state (CONTRACT §5)."""

from __future__ import annotations

import logging

from app.integrations.errors import RetryableError
from app.integrations.zalo.errors import ZaloAttachmentExpired, ZaloPermanent
from app.media.fetch import BlockedAddress, MediaFetchError, MediaTooLarge, download
from app.media.links import media_url
from app.relay.media_rules import gif_size, zalo_upload_kind

log = logging.getLogger("relay.outbound")
TEXT_LIMIT = 2000
PREVIEW = 300
STATUS = {"conversation_resolution": "resolved", "conversation_reopen": "open",
          "conversation_assignment": "assigned"}


def handle(ctx, item, progress) -> None:
    event = item.payload
    if event["action"] == "message_create":
        deliver_agent_message(ctx, event["data"]["message"], progress)
    else:
        update_state(ctx, item, event)


def deliver_agent_message(ctx, message: dict, progress) -> None:
    """Each part is one Zalo message, in order; each is sent at most once."""
    msg_id, conversation = message["id"], message["conversation_id"]
    zalo_user = zalo_user_for(ctx, conversation, message.get("user_id"))
    if not zalo_user:
        log.info("relay.not_a_zalo_conversation", extra={"conversation": conversation})
        return
    for index, part in enumerate(normalize_parts(message)):
        progress()
        try:
            ctx.effects.once(f"zalo:out:{msg_id}:{index}", lambda: send_part(ctx, zalo_user, msg_id, index, part),
                             also=lambda pipe, sent: ctx.mapping.remember_sent(sent, pipe))
        except ZaloPermanent as exc:
            report_failure(ctx, message, exc)
            return


def zalo_user_for(ctx, conversation: str, fc_user: str | None) -> str:
    """From our conversation mapping, else from the FreshChat user's reference_id."""
    known = ctx.mapping.conversation(conversation).get("zalo_user_id")
    if known or not fc_user:
        return known or ""
    reference = ctx.freshchat.get_user(fc_user).get("reference_id") or ""
    if not reference.startswith("zalo:"):
        return ""
    zalo_user = reference.rsplit(":", 1)[-1]
    ctx.mapping.link_conversation(zalo_user, conversation)
    return zalo_user


def normalize_parts(message: dict) -> list[dict]:
    """Current `message_parts`, or the 2018 `msg_parts` shape mapped onto it."""
    if message.get("message_parts"):
        return message["message_parts"]
    legacy = []
    for part in message.get("msg_parts") or []:
        kind, props = part.get("part_type", "text"), part.get("properties") or {}
        legacy.append({"text": {"content": props.get("text", "")}} if kind == "text" else {kind: props})
    return legacy


def send_part(ctx, zalo_user: str, msg_id: str, index: int, part: dict) -> str:
    """Send one part; nothing may touch Redis after the Zalo call (see Effects.once)."""
    if "text" in part:
        return send_text(ctx, zalo_user, msg_id, index, part["text"].get("content", ""))
    if "image" in part or "file" in part or "video" in part:
        return send_media(ctx, zalo_user, msg_id, index, part)
    return ctx.zalo.send_text(zalo_user, describe_part(part))


def send_text(ctx, zalo_user: str, msg_id: str, index: int, text: str) -> str:
    """Up to 2000 characters as text; longer as a .txt file in the media store plus its link."""
    if len(text) <= TEXT_LIMIT:
        return ctx.zalo.send_text(zalo_user, text)
    key = f"fc/{msg_id}/{index}"
    ctx.media.put(key, text.encode("utf-8"), content_type="text/plain; charset=utf-8",
                  filename=f"message-{msg_id[:8]}.txt")
    preview = text[:PREVIEW].rstrip()
    return ctx.zalo.send_text(zalo_user, f"{preview}…\n\n📄 Full message ({len(text)} characters): "
                                         f"{media_url(ctx.settings, key)}")


def send_media(ctx, zalo_user: str, msg_id: str, index: int, part: dict) -> str:
    kind = next(k for k in ("image", "file", "video") if k in part)
    info = part[kind] or {}
    got = fetch_attachment(ctx, info)
    if got is None:
        return ctx.zalo.send_text(zalo_user, f"📎 {info.get('name') or kind}: {info.get('url', '')}")
    upload_kind = zalo_upload_kind(got.content_type, len(got.data)) if kind != "video" else None
    if upload_kind is None:
        return send_link(ctx, zalo_user, f"fc/{msg_id}/{index}", got)
    return send_attachment(ctx, zalo_user, f"{msg_id}:{index}", upload_kind, got)


def fetch_attachment(ctx, info: dict):
    """The attachment's bytes; None when it cannot be copied for good (too large, blocked)."""
    try:
        return download(ctx.session, info.get("url", ""), max_bytes=ctx.settings.media_max_bytes,
                        allow_private=ctx.settings.media_fetch_allow_private,
                        timeout=ctx.settings.http_timeout_seconds, filename_hint=info.get("name"))
    except (MediaTooLarge, BlockedAddress) as exc:
        log.warning("relay.attachment_not_copied", extra={"error": str(exc)})
        return None
    except MediaFetchError as exc:
        raise RetryableError(f"FreshChat attachment download failed: {exc}") from exc


def send_link(ctx, zalo_user: str, key: str, got) -> str:
    ctx.media.put(key, got.data, content_type=got.content_type, filename=got.filename)
    icon = "🖼" if got.content_type.startswith("image/") else "📎"
    return ctx.zalo.send_text(zalo_user, f"{icon} {got.filename}: {media_url(ctx.settings, key)}")


def send_attachment(ctx, zalo_user: str, step: str, kind: str, got) -> str:
    """Upload once (Zalo's upload quota is monthly), send; re-upload if the id expired."""
    upload_key = f"zalo:upload:{step}"
    attachment = ctx.effects.once(upload_key, lambda: ctx.zalo.upload(kind, got.data, got.filename, got.content_type))
    try:
        return ctx.zalo.send(zalo_user, attachment_message(kind, attachment, got.data))
    except ZaloAttachmentExpired:
        ctx.effects.forget(upload_key)
        raise


def attachment_message(kind: str, attachment: str, data: bytes) -> dict:
    if kind == "file":
        return {"attachment": {"type": "file", "payload": {"token": attachment}}}
    element = {"media_type": kind, "attachment_id": attachment}
    if kind == "gif":
        element["width"], element["height"] = gif_size(data)
    return {"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [element]}}}


def describe_part(part: dict) -> str:
    """Buttons and other rich parts have no Zalo CS equivalent: send their words and links."""
    kind, body = next(iter(part.items()))
    if isinstance(body, dict):
        words = [str(body.get(k)) for k in ("label", "content", "url") if body.get(k)]
        if words:
            return " - ".join(words)
    return f"[{kind}]"


def report_failure(ctx, message: dict, exc: ZaloPermanent) -> None:
    """A private note in the conversation, from the replying agent, saying what to do."""
    preview = next((p["text"].get("content", "")[:80] for p in normalize_parts(message) if "text" in p), "")
    text = f"⚠️ Not delivered to Zalo (error {exc.code}): {exc.advice}"
    if preview:
        text += f'\nMessage: "{preview}"'
    note = {"message_parts": [{"text": {"content": text}}], "message_type": "private",
            "actor_type": message.get("actor_type") or "agent", "actor_id": message.get("actor_id")}
    log.warning("relay.zalo_refused", extra={"code": exc.code, "message_id": message["id"]})
    ctx.effects.once(f"fc:note:{message['id']}",
                     lambda: ctx.freshchat.post_message(message["conversation_id"], note).get("id", ""))


def update_state(ctx, item, event: dict) -> None:
    from app.integrations.freshchat.schemas import STATE_KEYS, conversation_id

    conversation = conversation_id(event)
    inner = event["data"].get(STATE_KEYS[event["action"]]) or {}
    ctx.mapping.set_conversation(conversation, status=STATUS[event["action"]],
                                 agent_id=str(inner.get("to_agent_id") or ""))
    if event["action"] == "conversation_resolution" and ctx.settings.resolve_notification:
        notify_resolved(ctx, item, conversation, (inner.get("user") or {}).get("id"))


def notify_resolved(ctx, item, conversation: str, fc_user: str | None) -> None:
    zalo_user = zalo_user_for(ctx, conversation, fc_user)
    if not zalo_user:
        return
    try:
        ctx.effects.once(f"zalo:resolve:{item.id}",
                         lambda: ctx.zalo.send_text(zalo_user, ctx.settings.resolve_notification_text))
    except ZaloPermanent as exc:
        log.warning("relay.resolve_notification_refused", extra={"code": exc.code})
