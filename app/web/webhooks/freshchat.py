"""POST /webhooks/freshchat[/<connection>]: verify the RSA signature with that connection's
key, validate, route to the conversation's owner, deduplicate, queue, answer.

Connections may share one FreshChat account, which has one webhook URL: its events go to the
connection that created or linked the conversation (keys.conversation_owner), and to the
connection of the URL when no connection of the account knows the conversation.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, request
from redis.exceptions import RedisError

from app.bridge import keys
from app.bridge.keys import DEFAULT, Keys
from app.connections.store import Connection
from app.integrations.freshchat import schemas
from app.integrations.freshchat.signature import verify_signature
from app.web.webhooks.common import (
    WebhookRejected,
    answer,
    check_fresh,
    count_answers,
    look_up,
    mark_received,
    parse_object,
    read_body,
    register_error_handler,
    routed,
    unavailable,
    validate,
)

bp = Blueprint("freshchat_webhook", __name__)
register_error_handler(bp)
count_answers(bp, "freshchat")
log = logging.getLogger("webhooks.freshchat")


@bp.post("/webhooks/freshchat", defaults={"connection_id": DEFAULT})
@bp.post("/webhooks/freshchat/<connection_id>")
def receive(connection_id: str):
    raw = read_body()
    connection = look_up(lambda registry: registry.get(connection_id))
    if connection is None or not connection.enabled:
        raise WebhookRejected(404, "not found")
    routed(connection.id)
    key = connection.settings.freshchat_webhook_public_key
    if not verify_signature(request.headers.get("X-Freshchat-Signature"), raw_body=raw, public_key_pem=key):
        log.warning("freshchat.webhook.invalid_signature", extra={"connection": connection.id})
        raise WebhookRejected(401, "invalid or missing X-Freshchat-Signature")
    valid = validate(schemas.load_event, parse_object(raw))
    check_fresh("freshchat", schemas.signed_at(valid))
    event = schemas.to_event(valid)
    mark_received(connection.id, "freshchat")
    owner = _owner(connection, schemas.conversation_id(event.payload)) if event.queued else connection.id
    return answer(event, owner)


def _owner(connection: Connection, conversation: str) -> str:
    """The connection that owns the conversation, else the URL's. An owner that is disabled
    or removed still gets the event: its worker keeps it as a dead letter (never lost, and
    never sent through another connection's OA)."""
    everyone = look_up(lambda registry: registry.all())
    if len(everyone) == 1:
        return connection.id  # a single connection: no look-up needed
    owners = keys.conversation_owner(connection.freshchat_account)
    try:
        owner = current_app.extensions["redis"].hget(owners, conversation)
    except RedisError as exc:
        raise unavailable("freshchat", exc) from None
    owner = owner.decode() if owner else _knows(connection, everyone, conversation)
    moved = [c for c in everyone if c.id == owner and c.freshchat_account != connection.freshchat_account]
    return owner if owner and not moved else connection.id


def _knows(connection: Connection, everyone: list[Connection], conversation: str) -> str:
    """No owner recorded (a conversation from before connections existed): the connection on
    this account whose mapping knows the conversation, if one does."""
    sharing = [c for c in everyone if c.freshchat_account == connection.freshchat_account]
    pipe = current_app.extensions["redis"].pipeline(transaction=False)
    for c in sharing:
        pipe.exists(Keys(c.id).conversation(conversation))
    try:
        found = pipe.execute()
    except RedisError as exc:
        raise unavailable("freshchat", exc) from None
    return next((c.id for c, known in zip(sharing, found, strict=True) if known), "")
