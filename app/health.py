"""Liveness, readiness and Zalo's domain-verification page."""

from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, jsonify
from redis.exceptions import RedisError

from app.bridge.deadletters import DeadLetters
from app.bridge.keys import HEARTBEAT
from app.integrations.zalo.tokens import TOKEN, token_health

bp = Blueprint("health", __name__)
HEARTBEAT_MAX_AGE = 30


@bp.get("/healthz")
def healthz():
    return jsonify({"ok": True})


@bp.get("/readyz")
def readyz():
    redis = current_app.extensions["redis"]
    try:
        beat = redis.get(HEARTBEAT)
        dead_letters = DeadLetters(redis, current_app.extensions["lanes"]).count()
        pair = {k.decode(): v.decode() for k, v in redis.hgetall(TOKEN).items()}
    except RedisError as exc:
        return jsonify({"ready": False, "reason": f"redis unreachable ({type(exc).__name__})"}), 503
    age = time.time() - float(beat) if beat else None
    token = token_health(pair, time.time())
    body = {
        "ready": True,
        "worker_heartbeat_age": age,
        "dead_letters": dead_letters,
        "alerts": [],
        "zalo_token": {
            "access_expires_in": token["access_expires_in"],
            "refresh_expires_in": token["refresh_expires_in"],
        },
    }
    if token["alert"]:
        body["alerts"].append(token["alert"])
    if age is None or age > HEARTBEAT_MAX_AGE:
        body.update(ready=False, reason="no fresh worker heartbeat")
        return jsonify(body), 503
    return jsonify(body), 200


@bp.get("/zalo_verifier<code>.html")
def zalo_verifier(code: str):
    expected = current_app.config["SETTINGS"].zalo_site_verification
    if not expected or code != expected:
        abort(404)
    html = (
        '<html><head><meta property="zalo-platform-site-verification" content="'
        f'{expected}" /></head><body>There Is No Limit To What You Can Accomplish Using Zalo!'
        "</body></html>"
    )
    return html, 200, {"Content-Type": "text/html; charset=utf-8"}
