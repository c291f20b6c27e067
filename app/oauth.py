"""Connect the OA: OAuth v4 with PKCE (docs/interface.md, Z13); stores the token pair in Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import urlencode

import requests
from flask import Blueprint, abort, current_app, jsonify, redirect, request

from app.bridge.keys import DEFAULT_KEYS
from app.integrations.http import build_session
from app.integrations.zalo.tokens import TokenKeeper

bp = Blueprint("oauth", __name__, url_prefix="/oauth/zalo")
STATE_TTL = 600  # Zalo's codes live 10 minutes


def _settings():
    return current_app.config["SETTINGS"]


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
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)
    current_app.extensions["redis"].set(DEFAULT_KEYS.oauth_state(state), verifier, ex=STATE_TTL)
    query = urlencode(
        {"app_id": settings.zalo_app_id, "redirect_uri": _callback_url(), "code_challenge": challenge, "state": state}
    )
    return redirect(f"{settings.zalo_oauth_base_url}/v4/oa/permission?{query}")


def _callback_url() -> str:
    return _settings().public_base_url + "/oauth/zalo/callback"


@bp.get("/callback")
def callback():
    state, code = request.args.get("state", ""), request.args.get("code", "")
    verifier = current_app.extensions["redis"].getdel(DEFAULT_KEYS.oauth_state(state)) if state else None
    if not verifier or not code:
        return jsonify({"error": "unknown or expired state; start again at /oauth/zalo/start"}), 400
    body = _exchange(code, verifier.decode())
    if int(body.get("error") or 0) != 0 or not body.get("access_token"):
        return jsonify({"error": f"Zalo refused the code ({body.get('error')})"}), 502
    keeper = TokenKeeper(current_app.extensions["redis"], _settings(), build_session())
    keeper.store(body["access_token"], body.get("refresh_token", ""), body.get("expires_in"))
    return jsonify({"ok": True, "oa_id": request.args.get("oa_id", ""), "message": "Zalo OA connected"})


def _exchange(code: str, verifier: str) -> dict:
    settings = _settings()
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
