"""What both webhooks share: body parsing, JSON answers, queueing with a 503 on Redis trouble."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, jsonify
from marshmallow import ValidationError
from redis.exceptions import RedisError

from app import events
from app.bridge.keys import DEFAULT, Keys, lane_for
from app.connections import Registry

log = logging.getLogger("webhooks")
T = TypeVar("T")


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


def look_up(find: Callable[[Registry], T]) -> T:
    """Ask the connection registry; it re-reads Redis every few seconds, and Redis failing
    then is a 503 like a failing queue, so the partner redelivers."""
    try:
        return find(current_app.extensions["connections"])
    except RedisError as exc:
        raise unavailable("registry", exc) from None


def unavailable(source: str, exc: RedisError) -> WebhookRejected:
    log.error("webhook.queue_unavailable", extra={"source": source, "error": type(exc).__name__})
    return WebhookRejected(503, "queue unavailable, retry later")


def mark_received(connection: str, source: str) -> None:
    """When a verified webhook from `source` last reached the connection (for its status)."""
    try:
        current_app.extensions["redis"].set(Keys(connection).last_webhook(source), time.time())
    except RedisError:
        pass  # a status detail; queueing answers 503 itself when Redis is away


def answer(event: events.Event, connection: str = DEFAULT):
    """Queue a relayed event; acknowledge every other one, so the partner does not retry it."""
    if event.queued:
        return enqueue(event, connection)
    extra = {"source": event.provider, "event_name": event.name, "why": event.reason}
    if event.verdict == events.RECORDED:
        log.info("webhook.recorded", extra=extra)
        return ok(recorded=event.name)
    if event.verdict == events.UNKNOWN:
        log.warning("webhook.unknown_event", extra=extra)
    else:
        log.info("webhook.ignored", extra=extra)
    return ok(ignored=event.reason)


def enqueue(event: events.Event, connection: str = DEFAULT):
    """Durably queue the event on the connection's lane (dedupe + append in one Redis step)."""
    settings = current_app.config["SETTINGS"]
    lane = lane_for(connection, event.lane)
    try:
        fresh = current_app.extensions["lanes"].accept_event(event, connection, settings.dedupe_ttl_seconds)
    except RedisError as exc:
        raise unavailable(event.provider, exc) from None
    log.info(
        "webhook.accepted" if fresh else "webhook.duplicate",
        extra={"source": event.provider, "event_id": event.dedupe_id, "lane": lane, "kind": event.kind},
    )
    return ok(duplicate=not fresh)


def register_error_handler(bp) -> None:
    @bp.errorhandler(WebhookRejected)
    def _rejected(exc: WebhookRejected):
        return jsonify({"error": exc.reason}), exc.status
