"""The steps of the webhook pipeline (pipeline.py): body reading and parsing, JSON
answers, queueing with a 503 on Redis trouble."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from flask import Blueprint, Response, current_app, g, jsonify, request
from redis.exceptions import RedisError

from app.bridge.keys import DEFAULT, Keys, lane_for
from app.bridge.lanes import NotReplicated
from app.integrations import events
from app.web.metrics import UNROUTED
from config.settings import Settings

log = logging.getLogger("webhooks")
T = TypeVar("T")
# Real events nest four levels; a deeper body is no event, and a very deep one would exhaust
# the interpreter's stack in json, marshmallow or the worker's json.dumps.
MAX_BODY = 1024 * 1024  # docs/interface.md §3: 413 above 1 MiB
MAX_DEPTH = 32
# Clocks disagree a little: a signed time this far ahead of ours is still accepted.
MARKS = "webhook_marks"  # app.extensions: (connection, source) -> when mark_received writes again
MARK_EVERY = 1.0  # seconds
clock = time.monotonic  # what mark_received times itself by (a test moves it)


class WebhookRejected(Exception):
    """Answer the partner with `status` and a reason that never contains secrets."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def read_body() -> bytes:
    """The raw body, at most MAX_BODY bytes whether its length is declared or chunked; a
    client that stops sending midway is a 400. Flask cuts a chunked body at its limit without
    a word, so a server that ends the input itself (gunicorn) is read from directly."""
    if (request.content_length or 0) > MAX_BODY:
        raise WebhookRejected(413, "body over 1 MiB")
    environ = request.environ
    stream = environ["wsgi.input"] if environ.get("wsgi.input_terminated") else request.stream
    try:
        raw = stream.read(MAX_BODY + 1)
    except (OSError, ValueError) as exc:
        log.info("webhook.body_unreadable", extra={"error": type(exc).__name__})
        raise WebhookRejected(400, "body could not be read") from None
    if len(raw) > MAX_BODY:
        raise WebhookRejected(413, "body over 1 MiB")
    return raw


def parse_object(raw: bytes) -> dict:
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise WebhookRejected(400, "body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise WebhookRejected(400, "body is not a JSON object")
    # a body cannot nest deeper than it has opening brackets: most events have a handful, and
    # counting bytes costs far less than walking the parsed value
    if raw.count(b"{") + raw.count(b"[") > MAX_DEPTH and _depth(payload) > MAX_DEPTH:
        raise WebhookRejected(400, f"body nests deeper than {MAX_DEPTH} levels")
    return payload


def _depth(value: object) -> int:
    """How deep objects and arrays nest, without recursion (the value may be ~1000 deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_fresh(source: str, signed_at: datetime) -> None:
    """Refuse a signed time outside the replay window: a captured delivery replayed after its
    dedupe key expired must not be relayed again (the window is far shorter than that TTL)."""
    settings: Settings = current_app.config["SETTINGS"]
    age = time.time() - signed_at.timestamp()
    if age > settings.replay_window_seconds or age < -settings.replay_skew_seconds:
        log.warning("webhook.outside_replay_window", extra={"source": source, "age_seconds": int(age)})
        raise WebhookRejected(400, "event time outside the replay window")


def ok(**extra: object) -> tuple[Response, int]:
    return jsonify({"ok": True, **extra}), 200


def accepted(duplicate: bool):
    """`ok(duplicate=...)`, the answer of nearly every webhook, its body serialized once."""
    body = _ACCEPTED.get(duplicate)
    if body is None:
        body = _ACCEPTED[duplicate] = current_app.json.dumps({"ok": True, "duplicate": duplicate}) + "\n"
    return current_app.response_class(body, mimetype="application/json"), 200


_ACCEPTED: dict[bool, str] = {}


def look_up(find: Callable[..., T], *args) -> T:
    """Ask the connection registry (`find(registry, *args)`); it re-reads Redis every few
    seconds, and Redis failing then is a 503 like a failing queue, so the partner redelivers."""
    try:
        return find(current_app.extensions["connections"], *args)
    except RedisError as exc:
        raise unavailable("registry", exc) from None


def unavailable(source: str, exc: RedisError) -> WebhookRejected:
    log.error("webhook.queue_unavailable", extra={"source": source, "error": type(exc).__name__})
    return WebhookRejected(503, "queue unavailable, retry later")


def mark_received(connection: str, source: str) -> None:
    """When a verified webhook from `source` last reached the connection (for its status and
    the workers' quiet check, both read in minutes), for a webhook that queues nothing (a queued
    one sets it in its accept step): written at most once per MARK_EVERY by each web process, so
    a connection's stream of ignored events does not each pay a Redis round trip."""
    marks = current_app.extensions.setdefault(MARKS, {})
    now = clock()
    if now < marks.get((connection, source), 0.0):
        return
    marks[(connection, source)] = now + MARK_EVERY
    try:
        current_app.extensions["redis"].set(Keys(connection).last_webhook(source), time.time())
    except RedisError:
        marks.pop((connection, source), None)  # a status detail: the next webhook tries again


def answer(event: events.Event, connection: str = DEFAULT, owner: str = ""):
    """Queue a relayed event on its `owner`'s lane (the receiving `connection`'s by default);
    acknowledge every other one, so the partner does not retry it. Either way the `connection`
    is marked as reached (mark_received)."""
    if event.queued:
        return enqueue(event, owner or connection, received_by=connection)
    mark_received(connection, event.provider)
    extra = {"source": event.provider, "event_name": event.name, "why": event.reason}
    if event.verdict == events.RECORDED:
        log.info("webhook.recorded", extra=extra)
        return ok(recorded=event.name)
    if event.verdict == events.UNKNOWN:
        log.warning("webhook.unknown_event", extra=extra)
    elif event.own:  # our own post or send coming back: nothing was dropped
        log.debug("webhook.own_post", extra=extra)
    else:
        log.info("webhook.ignored", extra=extra)
    return ok(ignored=event.reason)


def enqueue(event: events.Event, connection: str = DEFAULT, received_by: str = ""):
    """Durably queue the event on the connection's lane: dedupe, append and the last-webhook
    time of the connection it was `received_by` in one Redis step (accept.lua)."""
    settings: Settings = current_app.config["SETTINGS"]
    try:
        fresh = current_app.extensions["lanes"].accept_event(
            event, connection, settings.dedupe_ttl_seconds, received_by=received_by
        )
    except NotReplicated:  # logged once when the shortage starts (Lanes), not once per webhook
        raise WebhookRejected(503, "queue unavailable, retry later") from None
    except RedisError as exc:
        raise unavailable(event.provider, exc) from None
    # An accepted event's line is DEBUG: at INFO it was a tenth of the acknowledgement's time, and
    # the worker's relay.delivered line names the same event (its id is the line's context) with
    # its lane and connection. A duplicate is rare and worth seeing.
    if not fresh:
        log.info("webhook.duplicate", extra=_traced(event, connection))
    elif log.isEnabledFor(logging.DEBUG):
        log.debug("webhook.accepted", extra=_traced(event, connection))
    return accepted(duplicate=not fresh)


def _traced(event: events.Event, connection: str) -> dict:
    return {
        "source": event.provider,
        "event_id": event.dedupe_id,
        "lane": lane_for(connection, event.lane),
        "kind": event.kind,
    }


def routed(connection_id: str) -> None:
    """The connection answering this webhook: its answer is counted as that connection's."""
    g.webhook_connection = connection_id


def count_answers(bp: Blueprint, source: str) -> None:
    """Count every answer of the blueprint's webhook by status (GET /metrics), errors too."""

    @bp.after_request
    def _count(response: Response) -> Response:
        current_app.extensions["metrics"].answered(g.get("webhook_connection", UNROUTED), source, response.status_code)
        return response


def register_error_handler(bp: Blueprint) -> None:
    @bp.errorhandler(WebhookRejected)
    def _rejected(exc: WebhookRejected):
        return jsonify({"error": exc.reason}), exc.status
