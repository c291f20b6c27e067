"""Zalo message -> FreshChat message parts; media is copied so links outlive Zalo's 7 days.

Every part remembers how to be sent more plainly: FreshChat refuses some parts it cannot
fetch (an image part answered with IMAGE_EMPTY_CONTENT), and a plainer form of the same
content must still reach the agent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.bridge.mapping import SNIPPET_CHARS
from app.errors import RetryableError
from app.integrations.zalo.schemas import zalo_user
from app.media.fetch import MediaFetchError, download
from app.media.links import media_url
from app.relay.context import Progress, RelayContext
from app.texts import for_agent, kind_for_agent
from app.wording import in_language

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("relay.parts")
COPY_ATTEMPTS = 3  # a CDN blip is retried; a dead link must not hold the conversation back
IMAGE_TYPES = {"image", "gif", "sticker"}
FILE_TYPES = {"file", "audio", "video"}

AS_LINK = "[{kind}] {url}"  # media with no FreshChat part of its own, or refused in one; {kind} in agents' words

# How plainly a message is sent: as built, images as files, media as text links.
AS_BUILT, IMAGES_AS_FILES, MEDIA_AS_LINKS = range(3)
PLAINNESS = ("as built", "images as file parts", "media as text links")


@dataclass(frozen=True)
class Media:
    """A copy in the media store, enough to describe it as any kind of part; `label`: its kind
    in the agents' words."""

    kind: str
    url: str
    name: str
    content_type: str
    size: int
    label: str


@dataclass(frozen=True)
class Part:
    """A FreshChat part as first sent; `media` is set when a plainer form exists."""

    body: dict
    media: Media | None = None

    def rendered(self, plainness: int) -> dict:
        if self.media is None or plainness == AS_BUILT:
            return self.body
        if plainness == MEDIA_AS_LINKS:
            return {"text": {"content": AS_LINK.format(kind=self.media.label, url=self.media.url)}}
        return _file_part(self.media) if "image" in self.body else self.body


def render(parts: list[Part], plainness: int) -> list[dict]:
    """The FreshChat message_parts at a given plainness; text parts never change."""
    return [part.rendered(plainness) for part in parts]


def text_part(content: str) -> Part:
    return Part({"text": {"content": content}})


def snippet(parts: list[Part]) -> str:
    """What a later quote of this message repeats: its text, media named by kind."""
    pieces = [p.body["text"]["content"] if p.media is None else f"[{p.media.label}]" for p in parts]
    return " ".join(pieces)[:SNIPPET_CHARS]


def zalo_parts(ctx: RelayContext, event: dict, progress: Progress, attempts: int = 0) -> list[Part]:
    """The parts for a Zalo event, text first, attachments in Zalo's order.

    `attempts` is how often this event already failed: transient copy failures are retried
    until COPY_ATTEMPTS, then the message goes with Zalo's original link.
    """
    message = event.get("message") or {}
    attachments = message.get("attachments") or []
    parts = [] if _text_is_label(event) else _text(message.get("text"))
    for index, attachment in enumerate(attachments):
        parts += attachment_parts(ctx, event, index, attachment, attempts)
        progress()
    if message.get("location") and not any(a.get("type") == "location" for a in attachments):
        parts += _text(location_text(ctx.settings, event, {}))  # one connector sends the coordinates here
    return parts or [text_part(for_agent(ctx.settings, "agent.no_content", event=event["event_name"]))]


def quote_parts(ctx: RelayContext, event: dict) -> list[Part]:
    """A reply ("quote") starts with what it answers, when the bridge has seen that message."""
    quoted = str((event.get("message") or {}).get("quote_msg_id") or "")
    if not quoted:
        return []
    known = quoted_text(ctx, quoted)
    return [text_part("> " + known.replace("\n", "\n> ") if known else for_agent(ctx.settings, "agent.quote_unknown"))]


def quoted_text(ctx: RelayContext, msg_id: str) -> str:
    """The user's own relayed message, or one this bridge sent to Zalo; "" when unknown."""
    relayed = ctx.effects.recorded(f"fc:msg:{msg_id}")
    if isinstance(relayed, dict) and relayed.get("text"):
        return relayed["text"]
    return ctx.mapping.sent_text(msg_id) or ""


def _text(text: str | None) -> list[Part]:
    return [text_part(text)] if text else []


def _text_is_label(event: dict) -> bool:
    """For locations and business cards Zalo's `text` is a label we fold into the part."""
    return event["event_name"] in ("user_send_location", "user_send_business_card")


def attachment_parts(ctx: RelayContext, event: dict, index: int, attachment: dict, attempts: int = 0) -> list[Part]:
    kind = attachment.get("type") or "attachment"
    payload = attachment.get("payload") or {}
    if event["event_name"] == "user_send_business_card":
        return _text(business_card_text(ctx.settings, event, payload))
    if kind == "location":
        return _text(location_text(ctx.settings, event, payload))
    if kind == "link":
        return _text(link_text(payload))
    if not payload.get("url"):
        known = [str(payload[field]) for field in ("id", "description") if payload.get(field)]
        return _text(" ".join([f"[{kind_for_agent(ctx.settings, kind)}]"] + known))
    return media_parts(ctx, event, index, kind, payload, attempts)


def media_parts(ctx: RelayContext, event: dict, index: int, kind: str, payload: dict, attempts: int = 0) -> list[Part]:
    """Copy to the media store; types FreshChat has no part for travel as a text link."""
    key = ctx.keys.media(f"zalo/{event['message']['msg_id']}/{index}", person=zalo_user(event))
    try:
        stored = ctx.effects.once(f"media:{key}", lambda: copy_media(ctx, key, payload))
    except MediaFetchError as exc:
        if (exc.status is None or exc.status >= 500) and attempts + 1 < COPY_ATTEMPTS:
            raise RetryableError(f"copying Zalo media failed: {exc}") from None
        log.warning("relay.media_copy_failed", extra={"key": key, "error": str(exc)})
        word = kind_for_agent(ctx.settings, kind)
        if kind in IMAGE_TYPES | FILE_TYPES:
            error = in_language(exc, ctx.settings.agent_language)
            return _text(for_agent(ctx.settings, "agent.copy_failed", kind=word, error=error, url=payload["url"]))
        return _text(AS_LINK.format(kind=word, url=payload["url"]))
    url, word = media_url(ctx.settings, key), kind_for_agent(ctx.settings, kind)
    media = Media(kind, url, stored["filename"], stored["content_type"], stored["size"], word)
    if kind in IMAGE_TYPES:
        return [Part({"image": {"url": media.url}}, media)]
    if kind in FILE_TYPES:
        return [Part(_file_part(media), media)]
    return [text_part(AS_LINK.format(kind=word, url=media.url))]


def _file_part(media: Media) -> dict:
    return {
        "file": {
            "name": media.name,
            "url": media.url,
            "content_type": media.content_type,
            "file_size_in_bytes": media.size,
        }
    }


def copy_media(ctx: RelayContext, key: str, payload: dict) -> dict:
    """Download from Zalo's CDN (capped, no private addresses) and keep it in the media store."""
    got = download(
        ctx.session,
        payload["url"],
        max_bytes=ctx.settings.media_max_bytes,
        allow_private=ctx.settings.media_fetch_allow_private,
        timeout=ctx.settings.http_timeout_seconds,
        filename_hint=payload.get("name"),
    )
    ctx.media.put(key, got.data, content_type=got.content_type, filename=got.filename)
    return {"filename": got.filename, "content_type": got.content_type, "size": len(got.data)}


def location_text(settings: Settings, event: dict, payload: dict) -> str:
    """Zalo puts coordinates in the attachment; one connector sends `message.location`."""
    message = event.get("message") or {}
    coords = payload.get("coordinates") or message.get("location") or {}
    lat, lon = coords.get("latitude", "?"), coords.get("longitude", "?")
    label = message.get("text")
    head = for_agent(settings, "agent.location_named", label=label) if label else for_agent(settings, "agent.location")
    return f"{head}\n{lat}, {lon}\nhttps://www.google.com/maps/search/?api=1&query={lat},{lon}"


def link_text(payload: dict) -> str:
    lines = [payload.get("title"), payload.get("description"), payload.get("url")]
    return "🔗 " + "\n".join(line for line in lines if line)


def business_card_text(settings: Settings, event: dict, payload: dict) -> str:
    """Zalo packs the card's phone into a JSON string in `description`; the name is in
    `message.text`, or only in the payload's title or plain description."""
    card = _card_blob(payload.get("description"))
    plain = payload.get("description") if card is None else None
    name = (event.get("message") or {}).get("text") or payload.get("title") or plain
    lines = [for_agent(settings, "agent.business_card", name=name or for_agent(settings, "agent.no_name"))]
    if card and card.get("phone"):
        lines.append(for_agent(settings, "agent.card_phone", phone=card["phone"]))
    return "\n".join(lines)


def _card_blob(description: str | None) -> dict | None:
    """The JSON object Zalo packs into `description`, or None when it is plain text."""
    try:
        card = json.loads(description or "")
    except ValueError:
        return None
    return card if isinstance(card, dict) else None
