"""POST /webhooks/zalo: Zalo's pieces of the webhook pipeline (pipeline.py, next to this module).
Never calls a partner.

Zalo signs `app_id + body + timestamp` with the OA Secret Key, and one URL serves every
connection: the body is parsed (depth-guarded) before verifying, because the app id, OA id and
timestamp that route and verify it are fields of it; nothing else of it is used until it verifies.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Request, current_app
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError

from app.bridge.keys import Keys
from app.bridge.mapping import Mapping
from app.connections.store import Connection, Registry
from app.integrations.events import Event
from app.integrations.zalo import schemas
from app.integrations.zalo.signature import verify_signature
from app.web.webhooks.common import WebhookRejected, parse_object
from app.web.webhooks.pipeline import Acknowledged, blueprint, handle
from config.sandbox import published_secret

bp = blueprint("zalo_webhook", __name__, "zalo")
log = logging.getLogger("webhooks.zalo")


class Zalo:
    name = "zalo"
    signature_header = "X-ZEvent-Signature"

    def route(self, request: Request, raw: bytes) -> dict:
        payload = parse_object(raw)  # the MAC covers fields of the body
        if "timestamp" not in payload:
            # Zalo's console checks the URL with an unsigned probe: it must see a 200.
            raise Acknowledged("probe without timestamp")
        return payload

    def candidates(self, registry: Registry, payload: dict) -> list[Connection]:
        """The enabled connection the event names, or the app's when it names no OA (the one
        whose key verifies it is the one): Registry.zalo_candidates, one look at the registry."""
        return registry.zalo_candidates(_app_id(payload), schemas.oa_ids(payload))

    def unknown(self, payload: dict) -> WebhookRejected:
        log.warning("zalo.webhook.unknown_oa")
        return WebhookRejected(401, "unknown Zalo app or OA")

    def verify(self, connection: Connection, request: Request, raw: bytes, payload: dict) -> bool:
        key = connection.settings.zalo_oa_secret_key
        if not current_app.config["SETTINGS"].sandbox and published_secret(key, connection.settings.zalo_api_base_url):
            return False  # a stored connection with the sandbox's published key: anyone could sign
        return verify_signature(
            request.headers.get(self.signature_header),
            app_id=_app_id(payload),
            raw_body=raw,
            timestamp=str(payload["timestamp"]),
            oa_secret_key=key,
        )

    def load(self, raw: bytes, payload: dict) -> dict:
        return schemas.load_event(payload)  # parsed already, to route it

    def signed_at(self, valid: dict) -> datetime:
        return schemas.signed_at(valid)

    def to_event(self, connection: Connection, valid: dict) -> Event:
        # An oa_send_* whose id we have not recorded is queued: our send record may land just after
        # its echo, so the worker looks again before showing it to agents as the OA's own message.
        is_our_send = lambda msg_id: _sent_by_us(connection, msg_id)  # noqa: E731 - tiny closure
        return schemas.to_event(valid, is_our_send=is_our_send, oa_id=connection.settings.zalo_oa_id)

    def owner(self, connection: Connection, event: Event) -> str:
        return connection.id


ZALO = Zalo()


@bp.post("/webhooks/zalo")
def receive() -> ResponseReturnValue:
    return handle(ZALO)


def _app_id(payload: dict) -> str:
    return str(payload.get("app_id") or "")


def _sent_by_us(connection: Connection, msg_id: str) -> bool:
    """Most echoes are of our own sends, already recorded: drop them here, not in a worker."""
    try:
        return Mapping(current_app.extensions["redis"], keys=Keys(connection.id)).is_sent_by_us(msg_id)
    except RedisError:
        return False  # queue it; the worker decides once Redis answers
