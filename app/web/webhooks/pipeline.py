"""The one webhook pipeline: every partner's webhook runs `handle`, in this order.

    read body → route → candidates → verify → load → fresh? → classify → owner → queue + received → answer

A partner (zalo.py, freshchat.py next to this module) supplies only its pieces: how to route, which
connections may have sent the event, how to check the signature, how to load and classify the
event. The order, the answers (400/401/404/413/503/200), the logs and the counters are here.

Why this order:
- Nothing is trusted before `verify`. `route` reads only what finding the connection needs
  (Zalo: the JSON body, because the app id, OA id and signed timestamp are fields of it;
  FreshChat: the connection in the URL, and the body is not even parsed until it verifies).
- The key that verifies belongs to a connection, so the candidates come before `verify`; the
  first candidate whose key verifies the raw body is the connection (several Zalo connections
  of one app may share an event that names no OA).
- `load` (the partner's marshmallow schema) and the replay window only look at a verified body:
  an unsigned body gets a 401, never a description of what is wrong with it.
- Only a verified, valid, fresh event marks the connection as reached or is queued; a queued
  one is marked in the same Redis step that queues it (accept.lua), so an accepted webhook
  costs one round trip.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from flask import Blueprint, Request, request
from marshmallow import ValidationError

from app.connections.store import Connection, Registry
from app.integrations.events import Event
from app.web.webhooks.common import (
    WebhookRejected,
    answer,
    check_fresh,
    count_answers,
    look_up,
    ok,
    read_body,
    register_error_handler,
    routed,
)

# What a partner reads before verifying, only to find the connection (Zalo: the parsed body;
# FreshChat: the connection id of the URL). It is handed back to the later pieces unchanged.
Route = Any


class Partner(Protocol):
    """The pieces of one partner's webhook; `handle` calls them in its fixed order."""

    name: str  # "zalo" or "freshchat": the source in logs, counters and the last-webhook key
    signature_header: str  # named in the 401 when the signature does not verify

    def route(self, request: Request, raw: bytes) -> Route:
        """What routing needs, read from the unverified request; raise WebhookRejected to refuse."""

    def candidates(self, registry: Registry, route: Route) -> list[Connection]:
        """The enabled connections that may have sent it, most likely first."""

    def unknown(self, route: Route) -> WebhookRejected:
        """The answer when no connection may have sent it."""

    def verify(self, connection: Connection, request: Request, raw: bytes, route: Route) -> bool:
        """Whether the connection's key verifies the raw body."""

    def load(self, raw: bytes, route: Route) -> dict:
        """The verified body, parsed and validated by the partner's schema (ValidationError: 400)."""

    def signed_at(self, valid: dict) -> datetime:
        """The event's signed time, for the replay window."""

    def to_event(self, connection: Connection, valid: dict) -> Event:
        """Classify it once: queue, recorded, ignored or unknown (app/events.py)."""

    def owner(self, connection: Connection, event: Event) -> str:
        """The connection whose lane takes a queued event (usually `connection.id`)."""


class Acknowledged(Exception):
    """Raised by `route` for a request that is answered 200 without being verified (Zalo's
    unsigned URL check): nothing in it is used, so nothing needs trusting."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def handle(partner: Partner):
    """Answer the current request as `partner`'s webhook, in the one order (module docstring)."""
    raw = read_body()
    try:
        route = partner.route(request, raw)
    except Acknowledged as probe:
        return ok(ignored=probe.reason)
    candidates = look_up(partner.candidates, route)
    if not candidates:
        raise partner.unknown(route)
    connection = verified(partner, raw, route, candidates)
    valid = load(partner, raw, route)
    check_fresh(partner.name, partner.signed_at(valid))
    event = partner.to_event(connection, valid)
    return answer(event, connection.id, partner.owner(connection, event) if event.queued else "")


def verified(partner: Partner, raw: bytes, route: Route, candidates: list[Connection]) -> Connection:
    """The first candidate whose key verifies the raw body; a 401 when none does. The answer is
    counted as the first candidate's even when refused: a wrong key is that connection's trouble."""
    routed(candidates[0].id)
    for connection in candidates:
        if partner.verify(connection, request, raw, route):
            routed(connection.id)
            return connection
    logging.getLogger(f"webhooks.{partner.name}").warning(
        f"{partner.name}.webhook.invalid_signature", extra={"connection": candidates[0].id}
    )
    raise WebhookRejected(401, f"invalid or missing {partner.signature_header}")


def load(partner: Partner, raw: bytes, route: Route) -> dict:
    """A schema error is the partner's mistake, so answer 400."""
    try:
        return partner.load(raw, route)
    except ValidationError as exc:
        raise WebhookRejected(400, f"invalid event: {exc.messages}") from None


def blueprint(name: str, import_name: str, source: str) -> Blueprint:
    """A partner's webhook blueprint: WebhookRejected answered as JSON, every answer counted."""
    bp = Blueprint(name, import_name)
    register_error_handler(bp)
    count_answers(bp, source)
    return bp
