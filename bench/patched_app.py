"""The bridge's web app with proposed hot-path fixes applied by monkeypatching, so the
benchmark can measure them under the same gunicorn command line without editing app/.

    gunicorn 'bench.patched_app:create_app()' ...   with BENCH_PATCHES=schema,session,logfilter

Each patch is the runtime equivalent of a small source change described in BENCHMARKS.md
("Profiles and fixes"); a patch that is already in app/ is a no-op."""

from __future__ import annotations

import logging
import os

ALL = ("schema", "session", "fastpath")


def patch_schema() -> None:
    """Build the marshmallow schemas once per process instead of once per request.

    Source change: in app/integrations/zalo/schemas.py `_SCHEMA = ZaloEvent()` and
    `load_event = lambda payload: _SCHEMA.load(payload)` (same in freshchat/schemas.py)."""
    from app.integrations.freshchat import schemas as fc
    from app.integrations.zalo import schemas as zalo

    zalo_schema, fc_schema = zalo.ZaloEvent(), fc.FreshchatEvent()
    zalo.load_event = zalo_schema.load
    fc.load_event = fc_schema.load


def patch_session(app) -> None:
    """Nothing uses Flask's cookie session, but with SECRET_KEY in app.config Flask builds an
    itsdangerous serializer for every request. Source change: drop `SECRET_KEY=...` from
    app.config.update in app/__init__.py (media links sign with settings.secret_key)."""
    app.config["SECRET_KEY"] = None


def zalo_fast_path(app):
    """POST /webhooks/zalo served as plain WSGI in front of Flask; every other request (and
    any webhook without a usable Content-Length) still goes through Flask unchanged.

    Source change: move the body of app/webhooks/zalo.py `receive()` into a Flask-free
    `handle(raw, signature, settings, lanes) -> (status, dict)`; the blueprint view calls it,
    and create_app wraps `app.wsgi_app` with this dispatcher. Same checks, same answers
    (400/401/503 JSON `{"error": ...}`, 200 `{"ok": true, ...}`), same log lines."""
    import json
    import secrets

    from redis.exceptions import RedisError

    from app import MAX_BODY
    from app.bridge.keys import DEFAULT_KEYS
    from app.bridge.lanes import Item, now_ms
    from app.integrations.zalo import schemas
    from app.integrations.zalo.signature import verify_signature
    from app.logs import context_id
    from app.webhooks.common import WebhookRejected, parse_object, validate

    settings, lanes = app.config["SETTINGS"], app.extensions["lanes"]
    log, web_log = logging.getLogger("webhooks"), logging.getLogger("web")
    inner = app.wsgi_app

    def enqueue(lane: str, event_id: str, event: dict) -> dict:
        item = Item(id=f"zalo:{event_id}", kind="zalo", payload=event, received_at=now_ms())
        try:
            fresh = lanes.accept(lane, item, DEFAULT_KEYS.seen("zalo", event_id), settings.dedupe_ttl_seconds)
        except RedisError as exc:
            log.error("webhook.queue_unavailable", extra={"source": "zalo", "error": type(exc).__name__})
            raise WebhookRejected(503, "queue unavailable, retry later")
        log.info("webhook.accepted" if fresh else "webhook.duplicate",
                 extra={"source": "zalo", "event_id": event_id, "lane": lane})
        return {"ok": True, "duplicate": not fresh}

    def handle(raw: bytes, signature: str | None) -> tuple[int, dict]:
        payload = parse_object(raw)
        if "timestamp" not in payload:
            return 200, {"ok": True, "ignored": "probe without timestamp"}
        if not verify_signature(signature, app_id=settings.zalo_app_id, raw_body=raw,
                                timestamp=str(payload["timestamp"]), oa_secret_key=settings.zalo_oa_secret_key):
            logging.getLogger("webhooks.zalo").warning("zalo.webhook.invalid_signature")
            raise WebhookRejected(401, "invalid or missing X-ZEvent-Signature")
        event = validate(schemas.load_event, payload)
        name = event["event_name"]
        if not name.startswith(schemas.RELAYED_PREFIXES):
            return 200, {"ok": True, "recorded": name}
        if name.startswith("oa_send_") and not event["sender"].get("admin_id"):
            return 200, {"ok": True, "ignored": "echo of an API-sent message"}
        user = event["sender"]["id"] if name.startswith("user_send_") else event["recipient"]["id"]
        return 200, enqueue(f"in:{user}", schemas.dedupe_id(event), event)

    def wsgi(environ, start_response):
        if environ.get("PATH_INFO") != "/webhooks/zalo" or environ.get("REQUEST_METHOD") != "POST":
            return inner(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return inner(environ, start_response)  # chunked or odd: Flask's full handling
        if not 0 <= length <= MAX_BODY:
            return inner(environ, start_response)  # Flask answers 413
        context_id.set(environ.get("HTTP_X_REQUEST_ID", "")[:64] or secrets.token_hex(6))
        raw = environ["wsgi.input"].read(length)
        try:
            status, body = handle(raw, environ.get("HTTP_X_ZEVENT_SIGNATURE"))
        except WebhookRejected as exc:
            status, body = exc.status, {"error": exc.reason}
        except Exception:
            web_log.exception("web.unhandled_error")
            status, body = 500, {"error": "internal error"}
        data = json.dumps(body, separators=(",", ":")).encode() + b"\n"
        reason = {200: "OK", 400: "BAD REQUEST", 401: "UNAUTHORIZED", 500: "INTERNAL SERVER ERROR",
                  503: "SERVICE UNAVAILABLE"}.get(status, "")
        start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                              ("Content-Length", str(len(data)))])
        return [data]

    app.wsgi_app = wsgi


def create_app(settings=None):
    from app import create_app as real_create_app

    wanted = [p for p in os.environ.get("BENCH_PATCHES", ",".join(ALL)).split(",") if p]
    if "schema" in wanted:
        patch_schema()
    app = real_create_app(settings)
    if "session" in wanted:
        patch_session(app)
    if "fastpath" in wanted:
        zalo_fast_path(app)
    return app
