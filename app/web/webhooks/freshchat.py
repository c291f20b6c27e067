"""POST /webhooks/freshchat[/<connection>]: FreshChat's pieces of the webhook pipeline
(pipeline.py, next to this module). The URL names the connection; its RSA key verifies the raw body
before the body is parsed at all.

Connections may share one FreshChat account, which has one webhook URL: its events go to the
connection that created or linked the conversation (keys.conversation_owner), and to the
connection of the URL when no connection of the account knows the conversation.
"""

from __future__ import annotations

from datetime import datetime

from flask import Request, current_app
from redis.exceptions import RedisError

from app.bridge import keys
from app.bridge.keys import DEFAULT, Keys
from app.connections.store import Connection, Registry
from app.integrations.events import Event
from app.integrations.freshchat import schemas
from app.integrations.freshchat.signature import verify_signature
from app.web.webhooks.common import WebhookRejected, look_up, parse_object, unavailable
from app.web.webhooks.pipeline import blueprint, handle

bp = blueprint("freshchat_webhook", __name__, "freshchat")


class Freshchat:
    name = "freshchat"
    signature_header = "X-Freshchat-Signature"

    def route(self, request: Request, raw: bytes) -> str:
        return (request.view_args or {})["connection_id"]

    def candidates(self, registry: Registry, connection_id: str) -> list[Connection]:
        connection = registry.get(connection_id)
        return [connection] if connection is not None and connection.enabled else []

    def unknown(self, connection_id: str) -> WebhookRejected:
        return WebhookRejected(404, "not found")

    def verify(self, connection: Connection, request: Request, raw: bytes, connection_id: str) -> bool:
        key = connection.settings.freshchat_webhook_public_key
        return verify_signature(request.headers.get(self.signature_header), raw_body=raw, public_key_pem=key)

    def load(self, raw: bytes, connection_id: str) -> dict:
        return schemas.load_event(parse_object(raw))

    def signed_at(self, valid: dict) -> datetime:
        return schemas.signed_at(valid)

    def to_event(self, connection: Connection, valid: dict) -> Event:
        return schemas.to_event(valid)

    def owner(self, connection: Connection, event: Event) -> str:
        return _owner(connection, schemas.conversation_id(event.payload))


FRESHCHAT = Freshchat()


@bp.post("/webhooks/freshchat", defaults={"connection_id": DEFAULT})
@bp.post("/webhooks/freshchat/<connection_id>")
def receive(connection_id: str):  # read by Freshchat.route, with the rest of the request
    return handle(FRESHCHAT)


def _owner(connection: Connection, conversation: str) -> str:
    """The connection that owns the conversation, else the URL's. An owner that is disabled
    or removed still gets the event: its worker keeps it as a dead letter (never lost, and
    never sent through another connection's OA)."""
    if len(look_up(lambda registry: registry.all())) == 1:
        return connection.id  # a single connection: no look-up needed
    sharing = look_up(lambda registry: registry.on_account(connection.freshchat_account))
    owners = keys.conversation_owner(connection.freshchat_account)
    try:
        owner = current_app.extensions["redis"].hget(owners, conversation)
    except RedisError as exc:
        raise unavailable("freshchat", exc) from None
    owner = owner.decode() if owner else _knows(sharing, conversation)
    known = look_up(lambda registry: registry.get(owner)) if owner else None
    moved = known is not None and known.freshchat_account != connection.freshchat_account
    return owner if owner and not moved else connection.id


def _knows(sharing: list[Connection], conversation: str) -> str:
    """No owner recorded (a conversation from before connections existed): the connection on
    this account whose mapping knows the conversation, if one does."""
    pipe = current_app.extensions["redis"].pipeline(transaction=False)
    for c in sharing:
        pipe.exists(Keys(c.id).conversation(conversation))
    try:
        found = pipe.execute()
    except RedisError as exc:
        raise unavailable("freshchat", exc) from None
    return next((c.id for c, known in zip(sharing, found, strict=True) if known), "")
