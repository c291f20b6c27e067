"""Zalo message -> FreshChat message parts; media is copied so links outlive Zalo's 7 days."""

from __future__ import annotations

import json
import logging

from app.integrations.errors import RetryableError
from app.media.fetch import MediaFetchError, download
from app.media.links import media_url

log = logging.getLogger("relay.parts")
COPY_ATTEMPTS = 3  # a CDN blip is retried; a dead link must not hold the conversation back
IMAGE_TYPES = {"image", "gif", "sticker"}
FILE_TYPES = {"file", "audio", "video"}


def zalo_parts(ctx, event: dict, progress, attempts: int = 0) -> list[dict]:
    """The FreshChat parts for a Zalo event, text first, attachments in Zalo's order.

    `attempts` is how often this event already failed: transient copy failures are retried
    until COPY_ATTEMPTS, then the message goes with Zalo's original link.
    """
    message = event.get("message") or {}
    attachments = message.get("attachments") or []
    parts = [] if _text_is_label(event) else _text(message.get("text"))
    for index, attachment in enumerate(attachments):
        parts += attachment_parts(ctx, event, index, attachment, attempts)
        progress()
    return parts or [{"text": {"content": f"[{event['event_name']} without content]"}}]


def _text(text: str | None) -> list[dict]:
    return [{"text": {"content": text}}] if text else []


def _text_is_label(event: dict) -> bool:
    """For locations and business cards Zalo's `text` is a label we fold into the part."""
    return event["event_name"] in ("user_send_location", "user_send_business_card")


def attachment_parts(ctx, event: dict, index: int, attachment: dict, attempts: int = 0) -> list[dict]:
    kind = attachment.get("type", "")
    payload = attachment.get("payload") or {}
    if event["event_name"] == "user_send_business_card":
        return _text(business_card_text(event, payload))
    if kind == "location":
        return _text(location_text(event, payload))
    if kind == "link":
        return _text(link_text(payload))
    if kind in IMAGE_TYPES | FILE_TYPES and payload.get("url"):
        return media_parts(ctx, event, index, kind, payload, attempts)
    return _text(f"[Zalo {kind or 'attachment'} {payload.get('id', '')}]".replace(" ]", "]"))


def media_parts(ctx, event: dict, index: int, kind: str, payload: dict, attempts: int = 0) -> list[dict]:
    key = f"zalo/{event['message']['msg_id']}/{index}"
    try:
        stored = ctx.effects.once(f"media:{key}", lambda: copy_media(ctx, key, payload))
    except MediaFetchError as exc:
        if (exc.status is None or exc.status >= 500) and attempts + 1 < COPY_ATTEMPTS:
            raise RetryableError(f"copying Zalo media failed: {exc}") from None
        log.warning("relay.media_copy_failed", extra={"key": key, "error": str(exc)})
        return _text(f"[The {kind} could not be copied ({exc}); Zalo's original link, which "
                     f"expires after about 7 days: {payload['url']}]")
    url = media_url(ctx.settings, key)
    if kind in IMAGE_TYPES:
        return [{"image": {"url": url}}]
    return [{"file": {"name": stored["filename"], "url": url, "content_type": stored["content_type"],
                      "file_size_in_bytes": stored["size"]}}]


def copy_media(ctx, key: str, payload: dict) -> dict:
    """Download from Zalo's CDN (capped, no private addresses) and keep it in the media store."""
    got = download(ctx.session, payload["url"], max_bytes=ctx.settings.media_max_bytes,
                   allow_private=ctx.settings.media_fetch_allow_private,
                   timeout=ctx.settings.http_timeout_seconds, filename_hint=payload.get("name"))
    ctx.media.put(key, got.data, content_type=got.content_type, filename=got.filename)
    return {"filename": got.filename, "content_type": got.content_type, "size": len(got.data)}


def location_text(event: dict, payload: dict) -> str:
    coords = payload.get("coordinates") or {}
    lat, lon = coords.get("latitude", "?"), coords.get("longitude", "?")
    label = (event.get("message") or {}).get("text")
    head = f"📍 Location: {label}" if label else "📍 Location"
    return f"{head}\n{lat}, {lon}\nhttps://www.google.com/maps/search/?api=1&query={lat},{lon}"


def link_text(payload: dict) -> str:
    lines = [payload.get("title"), payload.get("description"), payload.get("url")]
    return "🔗 " + "\n".join(line for line in lines if line)


def business_card_text(event: dict, payload: dict) -> str:
    """Zalo packs the card's phone into a JSON string in `description`."""
    try:
        card = json.loads(payload.get("description") or "{}")
    except ValueError:
        card = {}
    name = (event.get("message") or {}).get("text") or "(no name)"
    lines = [f"👤 Business card: {name}"]
    if isinstance(card, dict) and card.get("phone"):
        lines.append(f"Phone: {card['phone']}")
    return "\n".join(lines)
