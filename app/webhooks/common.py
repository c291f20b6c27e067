"""What both webhooks share: body parsing, JSON answers, queueing with a 503 on Redis trouble."""

from __future__ import annotations

import json
import logging

from flask import current_app, jsonify
from marshmallow import ValidationError
from redis.exceptions import RedisError

from app import events
from app.bridge.keys import DEFAULT_KEYS
from app.bridge.lanes import Item, now_ms

log = logging.getLogger("webhooks")


class WebhookRejected(Exception):
    """Answer the partner with `status` and a reason that never contains secrets."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_object(raw: bytes) -> dict:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise WebhookRejected(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    return payload


def validate(load, payload: dict) -> dict:
    """Run a schema loader; a schema error is the partner's mistake, so answer 400."""
    try:
        return load(payload)
    except ValidationError as exc:
        raise WebhookRejected(400, f"invalid event: {exc.messages}") from None


def ok(**extra):
    return jsonify({"ok": True, **extra}), 200


def answer(event: events.Event):
    """Queue a relayed event; acknowledge every other one, so the partner does not retry it."""
    if event.queued:
        return enqueue(event)
    extra = {"source": event.provider, "event_name": event.name, "why": event.reason}
    if event.verdict == events.RECORDED:
        log.info("webhook.recorded", extra=extra)
        return ok(recorded=event.name)
    if event.verdict == events.UNKNOWN:
        log.warning("webhook.unknown_event", extra=extra)
    else:
        log.info("webhook.ignored", extra=extra)
    return ok(ignored=event.reason)


def enqueue(event: events.Event):
    """Durably queue the event (dedupe + append in one Redis step) and answer."""
    settings = current_app.config["SETTINGS"]
    source = event.provider
    item = Item(
        id=f"{source}:{event.dedupe_id}", kind=source, payload=event.payload, received_at=now_ms(), event=event.kind
    )
    try:
        fresh = current_app.extensions["lanes"].accept(
            event.lane, item, DEFAULT_KEYS.seen(source, event.dedupe_id), settings.dedupe_ttl_seconds
        )
    except RedisError as exc:
        log.error("webhook.queue_unavailable", extra={"source": source, "error": type(exc).__name__})
        raise WebhookRejected(503, "queue unavailable, retry later") from None
    log.info(
        "webhook.accepted" if fresh else "webhook.duplicate",
        extra={"source": source, "event_id": event.dedupe_id, "lane": event.lane, "kind": event.kind},
    )
    return ok(duplicate=not fresh)


def register_error_handler(bp) -> None:
    @bp.errorhandler(WebhookRejected)
    def _rejected(exc: WebhookRejected):
        return jsonify({"error": exc.reason}), exc.status
