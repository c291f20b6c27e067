"""Liveness, readiness and Zalo's domain-verification page."""

from __future__ import annotations

import time

from flask import Blueprint, abort, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis import Redis
from redis.exceptions import RedisError

from app.bridge.keys import DEFAULT, HEARTBEAT
from app.connections.verification import HEADERS, code_of, filename_of, served
from app.operations.status import HEARTBEAT_MAX_AGE, connections_status

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"ok": True})


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    """Top-level fields: the bridge's and the default connection's; "connections": each one's
    token, dead letters, last webhooks, queue and problem codes (app/operations/problems.py); "alerts":
    every connection's, named. A problem leaves the bridge ready: it answers what it can."""
    redis: Redis = current_app.extensions["redis"]
    try:
        beat = redis.get(HEARTBEAT)
        connections = {
            cid: _brief(s) for cid, s in connections_status(redis, current_app.extensions["connections"]).items()
        }
        replicas = current_app.extensions["lanes"].replica_state()
    except RedisError as exc:
        return jsonify({"ready": False, "reason": f"redis unreachable ({type(exc).__name__})"}), 503
    age = time.time() - float(beat) if beat else None
    default = connections[DEFAULT]
    body = {
        "ready": True,
        "worker_heartbeat_age": age,
        "dead_letters": default["dead_letters"],
        "alerts": [alert for status in connections.values() for alert in status["alerts"]],
        "zalo_token": default["zalo_token"],
        "problem_codes": default["problem_codes"],
        "connections": connections,
    }
    if replicas is not None:
        body["redis_replicas"] = replicas
    if replicas and replicas["short"]:
        body.update(ready=False, reason=replicas_reason(replicas))
        return jsonify(body), 503
    if age is None or age > HEARTBEAT_MAX_AGE:
        body.update(ready=False, reason="no fresh worker heartbeat")
        return jsonify(body), 503
    return jsonify(body), 200


def replicas_reason(replicas: dict) -> str:
    connected = "unknown" if replicas["connected"] is None else replicas["connected"]
    return (
        f"Redis replicas connected: {connected} of REDIS_WAIT_REPLICAS={replicas['wanted']}; "
        "webhooks are answered 503 until a replica is back or the setting is lowered"
    )


def _brief(status: dict) -> dict:
    """What /readyz shows of a connection: no token details beyond the seconds left, and no
    error texts (this page needs no token; the admin API shows them): its problems by code."""
    token = status["zalo_token"]
    zalo_token = {"access_expires_in": token["access_expires_in"], "refresh_expires_in": token["refresh_expires_in"]}
    shown = {k: v for k, v in status.items() if k not in ("last_errors", "problems")}
    return dict(shown, zalo_token=zalo_token, problem_codes=[p["code"] for p in status["problems"]])


@bp.get("/zalo_verifier<code>.html")
def zalo_verifier(code: str):
    """A file uploaded in the console, byte for byte; else the page for ZALO_SITE_VERIFICATION."""
    if code_of(filename_of(code)) is None:
        abort(404)
    try:
        uploaded = served(current_app.extensions["redis"], code)
    except RedisError:
        uploaded = None  # the environment's code still answers while Redis is away
    if uploaded is not None:
        return uploaded, 200, HEADERS  # a CSP that runs nothing
    expected = current_app.config["SETTINGS"].zalo_site_verification
    if not expected or code != expected:
        abort(404)
    html = (
        '<html><head><meta property="zalo-platform-site-verification" content="'
        f'{expected}" /></head><body>There Is No Limit To What You Can Accomplish Using Zalo!'
        "</body></html>"
    )
    return html, 200, HEADERS
