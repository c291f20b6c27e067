"""POST /webhooks/zalo: verify, validate, deduplicate, queue, answer. Never calls a partner."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, request
from redis.exceptions import RedisError

from app.bridge.mapping import Mapping
from app.integrations.zalo import schemas
from app.integrations.zalo.signature import verify_signature
from app.webhooks.common import WebhookRejected, answer, ok, parse_object, register_error_handler, validate

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
    # An oa_send_* whose id we have not recorded is queued: our send record may land just after
    # its echo, so the worker looks again before showing it to agents as the OA's own message.
    return answer(schemas.to_event(event, is_our_send=_sent_by_us))


def _verify(raw: bytes, payload: dict) -> None:
    settings = current_app.config["SETTINGS"]
    if not verify_signature(
        request.headers.get("X-ZEvent-Signature"),
        app_id=settings.zalo_app_id,
        raw_body=raw,
        timestamp=str(payload["timestamp"]),
        oa_secret_key=settings.zalo_oa_secret_key,
    ):
        log.warning("zalo.webhook.invalid_signature")
        raise WebhookRejected(401, "invalid or missing X-ZEvent-Signature")


def _sent_by_us(msg_id: str) -> bool:
    """Most echoes are of our own sends, already recorded: drop them here, not in a worker."""
    try:
        return Mapping(current_app.extensions["redis"]).is_sent_by_us(msg_id)
    except RedisError:
        return False  # queue it; the worker decides once Redis answers
