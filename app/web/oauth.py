"""Connect an OA: OAuth v4 with PKCE (docs/interface.md, Z13); stores the token pair of the
connection named at the start (`?connection=`, default `default`) in Redis. The connection id
travels in the OAuth state (`<connection>.<random>`; the default's state is the random part
alone), so the callback, one URL for every connection, knows whose pair it receives.

A browser opens the start through a one-time link (`start_link`, from
`POST /api/connections/<id>/oauth-link` or the console), never with ADMIN_TOKEN in its URL,
where proxies, browser history and Referer headers would keep it."""

from __future__ import annotations

import base64
import hashlib
import secrets
from urllib.parse import urlencode

import requests
from flask import Blueprint, abort, jsonify, redirect, request
from flask.typing import ResponseReturnValue
from redis import Redis

from app import extensions
from app.bridge.keys import DEFAULT, Keys
from app.bridge.replies import text
from app.bridge.tokens_store import TokenStore
from app.connections.checks import token_oa
from app.connections.store import Connection
from app.integrations.http import build_session
from app.integrations.zalo.tokens import TokenKeeper
from app.logs import audit
from app.texts import say
from app.web.wrong_tokens import bearer_ok
from config.settings import LANGUAGES, Settings

bp = Blueprint("oauth", __name__, url_prefix="/oauth/zalo")
STATE_TTL = 600  # Zalo's codes live 10 minutes
LINK_TTL = 600
UNREACHABLE = "unreachable"
OTHER_OA = "other_oa"


def _connection(connection_id: str):
    """The connection (enabled or not: an OA may be connected before it is switched on)."""
    connection = extensions.connections().get(connection_id)
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


def start_link(redis: Redis, settings: Settings, connection_id: str) -> str:
    """A URL that starts OAuth for the connection once, within LINK_TTL seconds."""
    token = secrets.token_urlsafe(24)  # never holds a ".", like the state
    redis.set(Keys(connection_id).oauth_link(token), "1", ex=LINK_TTL)
    link = token if connection_id == DEFAULT else f"{connection_id}.{token}"
    return f"{settings.public_base_url}/oauth/zalo/start?{urlencode({'link': link})}"


def _linked_connection() -> str | None:
    """The connection of a valid one-time link (spending it), else None."""
    link = request.args.get("link", "")
    connection_id, _, token = link.rpartition(".")
    connection_id = connection_id or DEFAULT
    if not token or not extensions.redis().delete(Keys(connection_id).oauth_link(token)):
        return None
    return connection_id


def _bearer_connection() -> str | None:
    """With ADMIN_TOKEN as a bearer header (scripts), the connection named by `?connection=`."""
    if not bearer_ok(extensions.settings().admin_token):
        return None
    return request.args.get("connection") or DEFAULT


@bp.get("/start")
def start() -> ResponseReturnValue:
    """Redirect the OA admin to Zalo: opened through a one-time link, or with the bearer token."""
    if not extensions.settings().admin_token:
        abort(404)
    connection_id = _linked_connection() if "link" in request.args else _bearer_connection()
    if connection_id is None:
        abort(404)
    return redirect(permission_url(_connection(connection_id)))


def permission_url(connection: Connection, return_to: str = "") -> str:
    """Start the flow for `connection`: Zalo's consent page. With `return_to` (a path of this
    site, the console's), the callback sends the browser back there instead of answering JSON."""
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(16)  # never holds a ".": the default's state has no prefix
    if connection.id != DEFAULT:
        state = f"{connection.id}.{state}"
    keys = Keys(connection.id)
    pipe = extensions.redis().pipeline()
    pipe.set(keys.oauth_state(state), verifier, ex=STATE_TTL)
    if return_to:
        pipe.set(keys.oauth_return(state), return_to, ex=STATE_TTL)
    pipe.execute()
    app_id = connection.settings.zalo_app_id
    query = urlencode({"app_id": app_id, "redirect_uri": _callback_url(), "code_challenge": challenge, "state": state})
    return f"{connection.settings.zalo_oauth_base_url}/v4/oa/permission?{query}"


def _callback_url() -> str:
    return extensions.settings().public_base_url + "/oauth/zalo/callback"


@bp.get("/callback")
def callback() -> ResponseReturnValue:
    state, code = request.args.get("state", ""), request.args.get("code", "")
    connection_id = _connection_of(state)
    redis = extensions.redis()
    keys = Keys(connection_id)
    verifier, return_to = redis.mget(keys.oauth_state(state), keys.oauth_return(state)) if state else (None, None)
    connection = extensions.connections().get(connection_id) if verifier else None
    if not verifier or not code or connection is None:
        return jsonify({"error": "unknown or expired state; start again at /oauth/zalo/start"}), 400
    outcome, answer, status = _connect(connection, state, code, text(verifier))
    if return_to and outcome != UNREACHABLE:  # the console's flow: back to its page, which says what happened
        shown = {"zalo": outcome, **({"oa": answer["token_oa"]} if outcome == OTHER_OA else {})}
        return redirect(f"{text(return_to)}?{urlencode(shown)}")
    return jsonify(answer), status


def _connect(connection: Connection, state: str, code: str, verifier: str) -> tuple[str, dict, int]:
    """(outcome for the console, JSON answer, HTTP status). The state is spent once Zalo
    answered; while its token endpoint is unreachable the code is unspent and a reload retries.
    A pair is stored only once Zalo's `getoa` says it serves the connection's OA."""
    granted_oa = request.args.get("oa_id", "")
    if granted_oa and connection.zalo_oa_id and granted_oa != connection.zalo_oa_id:
        # The admin picked another OA on Zalo's page: refused before the code is spent.
        return _other_oa(connection, granted_oa, "")
    body = _exchange(connection.settings, code, verifier)
    if body.get("error") == UNREACHABLE:
        error = "could not reach Zalo's token endpoint; reload this page to try again within 10 minutes"
        return UNREACHABLE, {"error": error}, 502
    redis, keys = extensions.redis(), Keys(connection.id)
    if not redis.delete(keys.oauth_state(state)):
        return "refused", {"error": "this sign-in was already completed; start again at /oauth/zalo/start"}, 400
    redis.delete(keys.oauth_return(state))
    if str(body.get("error") or 0) != "0" or not body.get("access_token"):
        return "refused", {"error": f"Zalo refused the code ({body.get('error')})"}, 502
    session = build_session()
    asked, served, name = token_oa(connection.settings, body["access_token"], session)
    if served and connection.zalo_oa_id and served != connection.zalo_oa_id:
        return _other_oa(connection, served, name)
    if not served:  # Zalo unreachable, or its answer names no OA: nothing is stored unchecked
        detail = asked["detail"] if not asked["ok"] else "no oa_id"
        return "oa_unknown", {"error": say("oauth.oa_unknown", _language(), detail=detail)}, 502
    keeper = TokenKeeper(TokenStore.of(redis, connection.settings, keys), connection.settings, session)
    keeper.store(body["access_token"], body.get("refresh_token", ""), body.get("expires_in"))
    audit("oauth_token_stored", client=request.remote_addr or "-", connection=connection.id, oa_id=served)
    answer = {"ok": True, "oa_id": served, "message": "Zalo OA connected"}
    return "connected", answer if connection.id == DEFAULT else dict(answer, connection=connection.id), 200


def _other_oa(connection: Connection, got: str, name: str) -> tuple[str, dict, int]:
    """Zalo's pair (or the admin's pick) serves another OA than the connection's: refused,
    nothing stored; the message names both OAs."""
    audit(
        "oauth_refused_other_oa",
        client=request.remote_addr or "-",
        connection=connection.id,
        connection_oa=connection.zalo_oa_id,
        token_oa=got,
    )
    label = f"{name} ({got})" if name else got
    error = say("oauth.other_oa", _language(), got=label, connection=connection.id, expected=connection.zalo_oa_id)
    return OTHER_OA, {"error": error, "token_oa": got, "connection_oa": connection.zalo_oa_id}, 400


def _language() -> str:
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _exchange(settings: Settings, code: str, verifier: str) -> dict:
    data = {"code": code, "app_id": settings.zalo_app_id, "grant_type": "authorization_code", "code_verifier": verifier}
    try:
        resp = build_session().post(
            settings.zalo_oauth_base_url + "/v4/oa/access_token",
            data=data,
            headers={"secret_key": settings.zalo_app_secret},
        )
        body = resp.json()
    except (requests.RequestException, ValueError):
        return {"error": UNREACHABLE}
    # A 5xx or an answer that is no JSON object came from a proxy or an outage, not from
    # Zalo's OAuth: the code is unspent.
    return body if resp.status_code < 500 and isinstance(body, dict) else {"error": UNREACHABLE}
