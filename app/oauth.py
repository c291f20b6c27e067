"""Connect an OA: OAuth v4 with PKCE (docs/interface.md, Z13); stores the token pair of the
connection named at the start (`?connection=`, default `default`) in Redis. The connection id
travels in the OAuth state (`<connection>.<random>`; the default's state is the random part
alone), so the callback, one URL for every connection, knows whose pair it receives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlencode

import requests
from flask import Blueprint, abort, current_app, jsonify, redirect, request

from app.bridge.keys import DEFAULT, Keys
from app.integrations.http import build_session
from app.integrations.zalo.tokens import TokenKeeper

bp = Blueprint("oauth", __name__, url_prefix="/oauth/zalo")
STATE_TTL = 600  # Zalo's codes live 10 minutes


def _settings():
    return current_app.config["SETTINGS"]


def _connection(connection_id: str):
    """The connection (enabled or not: an OA may be connected before it is switched on)."""
    connection = current_app.extensions["connections"].get(connection_id)
    if connection is None:
        abort(404)
    return connection


def _connection_of(state: str) -> str:
    return state.rpartition(".")[0] or DEFAULT


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, code_challenge) with S256, implicit at Zalo."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@bp.get("/start")
def start():
    """Admin-only (ADMIN_TOKEN as bearer or ?token=): redirect the OA admin to Zalo."""
    settings = _settings()
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip() or request.args.get("token", "")
    if not settings.admin_token or not hmac.compare_digest(given.encode(), settings.admin_token.encode()):
        abort(404)
    return redirect(permission_url(_connection(request.args.get("connection") or DEFAULT)))


def permission_url(connection, return_to: str = "") -> str:
    """Start the flow for `connection`: Zalo's consent page. With `return_to` (a path of this
    site, the console's), the callback sends the browser back there instead of answering JSON."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)  # never holds a ".": the default's state has no prefix
    if connection.id != DEFAULT:
        state = f"{connection.id}.{state}"
    keys = Keys(connection.id)
    pipe = current_app.extensions["redis"].pipeline()
    pipe.set(keys.oauth_state(state), verifier, ex=STATE_TTL)
    if return_to:
        pipe.set(keys.oauth_return(state), return_to, ex=STATE_TTL)
    pipe.execute()
    app_id = connection.settings.zalo_app_id
    query = urlencode({"app_id": app_id, "redirect_uri": _callback_url(), "code_challenge": challenge, "state": state})
    return f"{connection.settings.zalo_oauth_base_url}/v4/oa/permission?{query}"


def _callback_url() -> str:
    return _settings().public_base_url + "/oauth/zalo/callback"


@bp.get("/callback")
def callback():
    state, code = request.args.get("state", ""), request.args.get("code", "")
    connection_id = _connection_of(state)
    redis = current_app.extensions["redis"]
    verifier, return_to = None, None
    if state:
        keys = Keys(connection_id)
        verifier, return_to = (
            redis.pipeline().getdel(keys.oauth_state(state)).getdel(keys.oauth_return(state)).execute()
        )
    connection = current_app.extensions["connections"].get(connection_id) if verifier else None
    if not verifier or not code or connection is None:
        return jsonify({"error": "unknown or expired state; start again at /oauth/zalo/start"}), 400
    outcome, answer, status = _connect(connection, code, verifier.decode())
    if return_to:  # the console's flow: back to its page, which says what happened
        return redirect(f"{return_to.decode()}?zalo={outcome}")
    return jsonify(answer), status


def _connect(connection, code: str, verifier: str) -> tuple[str, dict, int]:
    """(outcome for the console, JSON answer, HTTP status)."""
    granted_oa = request.args.get("oa_id", "")
    if granted_oa and connection.zalo_oa_id and granted_oa != connection.zalo_oa_id:
        # The admin picked another OA on Zalo's page: its token must not send as this connection.
        error = (
            f"Zalo connected OA {granted_oa}, but this connection is OA "
            f"{connection.zalo_oa_id}; start again and pick that OA"
        )
        return "other_oa", {"error": error}, 400
    body = _exchange(connection.settings, code, verifier)
    if str(body.get("error") or 0) != "0" or not body.get("access_token"):
        return "refused", {"error": f"Zalo refused the code ({body.get('error')})"}, 502
    keeper = TokenKeeper(
        current_app.extensions["redis"], connection.settings, build_session(), keys=Keys(connection.id)
    )
    keeper.store(body["access_token"], body.get("refresh_token", ""), body.get("expires_in"))
    answer = {"ok": True, "oa_id": granted_oa, "message": "Zalo OA connected"}
    return "connected", answer if connection.id == DEFAULT else dict(answer, connection=connection.id), 200


def _exchange(settings, code: str, verifier: str) -> dict:
    data = {"code": code, "app_id": settings.zalo_app_id, "grant_type": "authorization_code", "code_verifier": verifier}
    try:
        resp = build_session().post(
            settings.zalo_oauth_base_url + "/v4/oa/access_token",
            data=data,
            headers={"secret_key": settings.zalo_app_secret},
        )
        return resp.json()
    except (requests.RequestException, ValueError):
        return {"error": "unreachable"}
