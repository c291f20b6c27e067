"""POST /webhooks/zalo: verify, validate, deduplicate, queue, answer. Never calls a partner."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, request
from redis.exceptions import RedisError

from app.bridge.mapping import Mapping
from app.integrations.zalo import schemas
from app.integrations.zalo.signature import verify_signature
from app.webhooks.common import (WebhookRejected, enqueue, ok, parse_object, register_error_handler,
                                  validate)

bp = Blueprint("zalo_webhook", __name__)
register_error_handler(bp)
log = logging.getLogger("webhooks.zalo")


@bp.post("/webhooks/zalo")
def receive():
    raw = request.get_data(cache=False)
    payload = parse_object(raw)
    if "timestamp" not in payload:
        # Zalo's console checks the URL with an unsigned probe: it must see a 200.
        return ok(ignored="probe without timestamp")
    _verify(raw, payload)
    event = validate(schemas.load_event, payload)
    return _route(event)


def _verify(raw: bytes, payload: dict) -> None:
    settings = current_app.config["SETTINGS"]
    if not verify_signature(request.headers.get("X-ZEvent-Signature"), app_id=settings.zalo_app_id,
                            raw_body=raw, timestamp=str(payload["timestamp"]),
                            oa_secret_key=settings.zalo_oa_secret_key):
        log.warning("zalo.webhook.invalid_signature")
        raise WebhookRejected(401, "invalid or missing X-ZEvent-Signature")


def _route(event: dict):
    name = event["event_name"]
    if not name.startswith(schemas.RELAYED_PREFIXES):
        log.info("zalo.webhook.recorded", extra={"event_name": name})
        return ok(recorded=name)
    if name.startswith("oa_send_") and _sent_by_us(event):
        return ok(ignored="echo of a message this bridge sent")
    # Any other oa_send_* is queued: our send record may land just after its echo, so the worker
    # looks again before showing it to agents as a message the OA sent with another tool.
    user = event["sender"]["id"] if name.startswith("user_send_") else event["recipient"]["id"]
    return enqueue("zalo", f"in:{user}", schemas.dedupe_id(event), event)


def _sent_by_us(event: dict) -> bool:
    """Most echoes are of our own sends, already recorded: drop them here, not in a worker."""
    try:
        return Mapping(current_app.extensions["redis"]).is_sent_by_us(event["message"]["msg_id"])
    except RedisError:
        return False  # queue it; the worker decides once Redis answers
