"""POST /webhooks/freshchat: verify the RSA signature, validate, deduplicate, queue, answer."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, request

from app.integrations.freshchat import schemas
from app.integrations.freshchat.signature import verify_signature
from app.webhooks.common import WebhookRejected, answer, parse_object, register_error_handler, validate

bp = Blueprint("freshchat_webhook", __name__)
register_error_handler(bp)
log = logging.getLogger("webhooks.freshchat")


@bp.post("/webhooks/freshchat")
def receive():
    raw = request.get_data(cache=False)
    settings = current_app.config["SETTINGS"]
    if not verify_signature(
        request.headers.get("X-Freshchat-Signature"), raw_body=raw, public_key_pem=settings.freshchat_webhook_public_key
    ):
        log.warning("freshchat.webhook.invalid_signature")
        raise WebhookRejected(401, "invalid or missing X-Freshchat-Signature")
    event = validate(schemas.load_event, parse_object(raw))
    return answer(schemas.to_event(event))
