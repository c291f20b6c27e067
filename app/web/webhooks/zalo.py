"""POST /webhooks/zalo: find the connection, verify, validate, deduplicate, queue, answer.
Never calls a partner."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, request
from redis.exceptions import RedisError

from app.bridge.keys import Keys
from app.bridge.mapping import Mapping
from app.connections.store import Connection, Registry
from app.integrations.zalo import schemas
from app.integrations.zalo.signature import verify_signature
from app.web.webhooks.common import (
    WebhookRejected,
    answer,
    check_fresh,
    count_answers,
    look_up,
    mark_received,
    ok,
    parse_object,
    read_body,
    register_error_handler,
    routed,
    validate,
)
from config.sandbox import published_secret

bp = Blueprint("zalo_webhook", __name__)
register_error_handler(bp)
count_answers(bp, "zalo")
log = logging.getLogger("webhooks.zalo")


@bp.post("/webhooks/zalo")
def receive():
    raw = read_body()
    payload = parse_object(raw)  # the MAC covers fields of the body: parsed (depth-guarded) first
    if "timestamp" not in payload:
        # Zalo's console checks the URL with an unsigned probe: it must see a 200.
        return ok(ignored="probe without timestamp")
    connection = _verified_connection(raw, payload)
    event = validate(schemas.load_event, payload)
    check_fresh("zalo", schemas.signed_at(event))
    mark_received(connection.id, "zalo")
    # An oa_send_* whose id we have not recorded is queued: our send record may land just after
    # its echo, so the worker looks again before showing it to agents as the OA's own message.
    is_our_send = lambda msg_id: _sent_by_us(connection, msg_id)  # noqa: E731 - tiny closure
    oa_id = connection.settings.zalo_oa_id
    return answer(schemas.to_event(event, is_our_send=is_our_send, oa_id=oa_id), connection.id)


def _verified_connection(raw: bytes, payload: dict) -> Connection:
    """The connection of the event's app and OA, once its OA Secret Key verifies the body."""
    app_id = str(payload.get("app_id") or "")
    candidates = look_up(lambda registry: _candidates(registry, app_id, schemas.oa_ids(payload)))
    if not candidates:
        log.warning("zalo.webhook.unknown_oa")
        raise WebhookRejected(401, "unknown Zalo app or OA")
    signature = request.headers.get("X-ZEvent-Signature")
    routed(candidates[0].id)  # a refused signature is still this connection's trouble
    for connection in candidates:
        key = connection.settings.zalo_oa_secret_key
        if not current_app.config["SETTINGS"].sandbox and published_secret(key, connection.settings.zalo_api_base_url):
            continue  # a stored connection with the sandbox's published key: anyone could sign
        if verify_signature(
            signature, app_id=app_id, raw_body=raw, timestamp=str(payload["timestamp"]), oa_secret_key=key
        ):
            routed(connection.id)
            return connection
    log.warning("zalo.webhook.invalid_signature", extra={"connection": candidates[0].id})
    raise WebhookRejected(401, "invalid or missing X-ZEvent-Signature")


def _candidates(registry: Registry, app_id: str, oa_ids: list[str]) -> list[Connection]:
    """The enabled connection the event names (an exact OA id wins over a connection that
    has none); an event naming no OA at all may belong to any of the app's connections, and
    the one whose key verifies it is the one."""
    if not oa_ids:
        return [c for c in registry.all() if c.enabled and c.zalo_app_id == app_id]
    found = [registry.for_zalo(app_id, oa_id) for oa_id in oa_ids]
    exact = [c for c, oa_id in zip(found, oa_ids, strict=True) if c and c.zalo_oa_id == oa_id]
    return (exact or [c for c in found if c])[:1]


def _sent_by_us(connection: Connection, msg_id: str) -> bool:
    """Most echoes are of our own sends, already recorded: drop them here, not in a worker."""
    try:
        return Mapping(current_app.extensions["redis"], keys=Keys(connection.id)).is_sent_by_us(msg_id)
    except RedisError:
        return False  # queue it; the worker decides once Redis answers
