"""`POST /api/connections/<id>/test`: try a connection's credentials against both partners and
say in plain words what is wrong. Reads only: no token is refreshed, nothing is queued.

Zalo: `GET /v2.0/oa/getoa` with the connection's access token (also tells whether the OA id
is the token's). FreshChat: `GET /channels` with its API key (also tells whether the topic
exists). The OA Secret Key and the webhook public key can only be checked by a real webhook.
A test's answer is recorded (`record_check`), so the status (app/operations/status.py) shows it.
The console's topic picker lists the account's topics the same way (`ConnectionChecks.topics`),
and its group picker the account's groups (`GET /groups`, `ConnectionChecks.groups`).
"""

from __future__ import annotations

import json
import logging
import time

import requests
from marshmallow import ValidationError, validate
from redis import Redis

from app.bridge.keys import Keys
from app.bridge.secrets_at_rest import UnreadableSecret
from app.bridge.tokens_store import TokenStore
from app.connections.problem import Problem
from app.connections.store import TEXTS as STORE_TEXTS
from app.connections.store import Connection, Connections, ForeignUrl, stored_key_for
from app.integrations.freshchat.client import auth_headers
from app.integrations.http import build_session
from app.integrations.zalo.tokens import NO_PAIR
from config.settings import Settings

log = logging.getLogger("connections.admin")

TIMEOUT = 5.0  # seconds per call: an operator is waiting for the answer
PAGE_SIZE = 100
MAX_PAGES = 5  # topics beyond 500 are not looked for
TOKEN_ERRORS = {-216, -220, -124}  # Zalo's "access token invalid/expired"

# What people read.
TEXTS = {
    "no_token": NO_PAIR,
    "token_dead": "the token pair is dead ({reason}): connect the OA again",
    "token_unreadable": "the stored token pair cannot be unsealed with ENCRYPTION_KEY: put the old key back "
    "or connect the OA again",
    "zalo_unreachable": "Zalo API unreachable ({error})",
    "zalo_http": "Zalo answered HTTP {status}",
    "zalo_not_json": "Zalo answered something that is not JSON",
    "token_refused": "token refused ({code} {message}): the worker refreshes it when a message needs it; "
    "if this persists, connect the OA again",
    "zalo_refused": "Zalo refused the call ({code} {message})",
    "oa_differs": "OA id differs: the token is for OA {actual} ({name}), the connection says {expected}",
    "zalo_ok": "token works for OA {name} ({oa_id})",
    "fc_missing": "no API URL or API key",
    "fc_unreachable": "FreshChat API URL unreachable ({error})",
    "fc_key_refused": "API key refused (401): generate a new one under Admin, APIs for chat",
    "fc_forbidden": "API key not allowed to list topics (403)",
    "fc_forbidden_groups": "API key not allowed to list groups (403)",
    "fc_not_found": "the API URL answers 404: it is the chat URL plus /v2",
    "fc_http": "FreshChat answered HTTP {status}",
    "fc_not_json": "the API URL does not answer JSON: it is the chat URL plus /v2",
    "fc_no_channel": "channel id {channel} is not among the account's channels ({found})",
    "fc_ok": "API key works; channel {name} found",
    # the topic picker's refusals
    "bad_api_url": "the FreshChat API URL (the chat URL plus /v2)",
    "no_api_key": "the FreshChat API key",
}
_URL = validate.URL(schemes={"http", "https"}, require_tld=False)


class ConnectionChecks:
    """An operator's "Test connection" (recorded for the status) and the FreshChat topic picker."""

    def __init__(self, redis: Redis, settings: Settings, session: requests.Session | None = None):
        self.redis = redis
        self.connections = Connections(redis, settings)
        self.session = session or build_session(timeout=TIMEOUT)

    def test(self, connection_id: str) -> dict:
        result = check(self.connections.get(connection_id), self.redis, self.session)
        record_check(self.redis, connection_id, result)  # the status shows the latest answer
        log.info(
            "connections.tested",
            extra={
                "connection": connection_id,
                "zalo_ok": result["zalo"]["ok"],
                "freshchat_ok": result["freshchat"]["ok"],
            },
        )
        return result

    def topics(self, api_url: str | None = None, api_key: str | None = None, connection_id: str | None = None):
        """[{"id", "name"}] of the FreshChat account's topics. A connection's stored URL and key
        stand in for what the form did not replace, the stored key only for the stored URL (a
        400 naming api_key otherwise); a partner's refusal is a 502 in words."""
        return self._picker("channels", "cannot load topics", api_url, api_key, connection_id)

    def groups(self, api_url: str | None = None, api_key: str | None = None, connection_id: str | None = None):
        """[{"id", "name"}] of the FreshChat account's groups (`GET /groups`), for the option
        `freshchat_group_id`; the same rules as `topics`."""
        return self._picker("groups", "cannot load groups", api_url, api_key, connection_id)

    def _picker(self, listed: str, refusal: str, api_url, api_key, connection_id) -> list[dict]:
        if connection_id is not None:
            stored = self.connections.get(connection_id).settings
            api_url = api_url or stored.freshchat_api_url
            if not api_key and isinstance(api_url, str) and _is_url(api_url):
                api_key = _stored_key(stored, api_url, refusal)
        bad = {}
        if not isinstance(api_url, str) or not _is_url(api_url):
            bad["api_url"] = TEXTS["bad_api_url"]
        if not isinstance(api_key, str) or not 1 <= len(api_key) <= 4000:
            bad["api_key"] = TEXTS["no_api_key"]
        if bad:
            raise Problem(400, refusal, bad)
        found = list_all(api_url.rstrip("/"), api_key, self.session, listed)
        if isinstance(found, dict):
            raise Problem(502, found["detail"])
        return [{"id": str(c["id"]), "name": str(c.get("name") or "")[:200]} for c in found if c.get("id")]


def _is_url(value) -> bool:
    try:
        _URL(value)
    except ValidationError:
        return False
    return True


def _stored_key(settings: Settings, url: str, refusal: str) -> str:
    """A connection's stored FreshChat API key for a picker's call to `url`: a 400 naming
    api_key (to give again) unless `url` is the URL the key was stored with."""
    try:
        return stored_key_for(settings, url)
    except ForeignUrl:
        raise Problem(400, refusal, {"api_key": STORE_TEXTS["key_again"]}) from None


def record_check(redis: Redis, connection_id: str, result: dict) -> None:
    """The latest test's answer, for the status (the worker's tests record theirs too)."""
    redis.set(Keys(connection_id).last_check, json.dumps({"at": time.time(), **result}))


def last_check(redis: Redis, connection_id: str) -> dict | None:
    return read_check(redis.get(Keys(connection_id).last_check))


def read_check(raw: bytes | str | None) -> dict | None:
    """The stored last check (GET of keys.Keys.last_check), or None before the first."""
    return json.loads(raw) if raw else None


def check(connection: Connection, redis: Redis, session: requests.Session) -> dict:
    return {"zalo": check_zalo(connection, redis, session), "freshchat": check_freshchat(connection, session)}


def _result(ok: bool, text: str, **values) -> dict:
    return {"ok": ok, "detail": TEXTS[text].format(**values)}


def check_zalo(connection: Connection, redis: Redis, session: requests.Session) -> dict:
    settings = connection.settings
    try:
        pair = TokenStore.of(redis, settings, Keys(connection.id)).state()
    except UnreadableSecret:
        return _result(False, "token_unreadable")
    if pair.get("dead"):
        return _result(False, "token_dead", reason=pair["dead"])
    token = pair.get("access_token") or settings.zalo_access_token
    if not token:
        return _result(False, "no_token")
    return token_oa(settings, token, session)[0]


def token_oa(settings: Settings, token: str, session: requests.Session) -> tuple[dict, str, str]:
    """Zalo's `getoa` for `token`: (the result in words, the OA id the token serves, its
    name), the id "" when Zalo did not say. Also the OAuth callback's check that a new pair
    is the connection's OA's (app/web/oauth.py)."""
    try:
        resp = session.get(
            settings.zalo_api_base_url + "/v2.0/oa/getoa", headers={"access_token": token}, timeout=TIMEOUT
        )
    except requests.RequestException as exc:
        return _result(False, "zalo_unreachable", error=type(exc).__name__), "", ""
    if resp.status_code != 200:
        return _result(False, "zalo_http", status=resp.status_code), "", ""
    body = _json(resp)
    if body is None:
        return _result(False, "zalo_not_json"), "", ""
    return _zalo_answer(body if isinstance(body, dict) else {}, settings.zalo_oa_id)


def _zalo_answer(body: dict, expected_oa: str) -> tuple[dict, str, str]:
    try:
        code = int(body.get("error") or 0)
    except (TypeError, ValueError):
        code = -1  # an error that is no number is still an error
    if code:
        text = "token_refused" if code in TOKEN_ERRORS else "zalo_refused"
        return _result(False, text, code=code, message=str(body.get("message", ""))[:200]), "", ""
    data = body.get("data")
    data = data if isinstance(data, dict) else {}
    actual = str(data.get("oa_id") or data.get("oaid") or "")
    name = str(data.get("name", ""))[:100]
    if expected_oa and actual and actual != expected_oa:
        return _result(False, "oa_differs", actual=actual, name=name, expected=expected_oa), actual, name
    return _result(True, "zalo_ok", name=name, oa_id=actual), actual, name


def check_freshchat(connection: Connection, session: requests.Session) -> dict:
    settings = connection.settings
    channels = list_channels(settings.freshchat_api_url, settings.freshchat_api_key, session)
    if isinstance(channels, dict):
        return channels  # a failure, already in words
    return _find_channel(channels, settings.freshchat_channel_id)


def list_channels(api_url: str, api_key: str, session: requests.Session) -> list[dict] | dict:
    """The account's channels (topics), or a failed result in words (also for the console's
    topic picker)."""
    return list_all(api_url, api_key, session, "channels")


def list_all(api_url: str, api_key: str, session: requests.Session, listed: str) -> list[dict] | dict:
    """Every page of `GET /<listed>` (`channels`, `groups`: each answers its list under its own
    name), or a failed result in words. The key goes to `api_url` only."""
    if not (api_url and api_key):
        return _result(False, "fc_missing")
    channels = []
    for page in range(1, MAX_PAGES + 1):
        got = _channels_page(api_url, api_key, session, page, listed)
        if isinstance(got, dict):
            return got
        found, pages = got
        channels += [c for c in found if isinstance(c, dict)]
        if page >= pages:
            break
    return channels


def _channels_page(api_url: str, api_key: str, session: requests.Session, page: int, listed: str = "channels"):
    """(items, total pages), or a failed result."""
    try:
        resp = session.get(
            f"{api_url}/{listed}",
            headers=auth_headers(api_key),
            timeout=TIMEOUT,
            params={"page": page, "items_per_page": PAGE_SIZE},
        )
    except requests.RequestException as exc:
        return _result(False, "fc_unreachable", error=type(exc).__name__)
    forbidden = "fc_forbidden" if listed == "channels" else "fc_forbidden_groups"
    failed = {401: "fc_key_refused", 403: forbidden, 404: "fc_not_found"}
    if resp.status_code in failed:
        return _result(False, failed[resp.status_code])
    if resp.status_code != 200:
        return _result(False, "fc_http", status=resp.status_code)
    body = _json(resp)
    if not isinstance(body, dict):
        return _result(False, "fc_not_json")
    channels = body.get(listed)
    channels = channels if isinstance(channels, list) else []
    pagination = body.get("pagination")
    pagination = pagination if isinstance(pagination, dict) else {}
    try:
        pages = int(pagination.get("total_pages") or 1)
    except (TypeError, ValueError):
        pages = 1  # an odd pagination block: the page read is all we trust
    return channels, pages


def _find_channel(channels: list[dict], channel_id: str) -> dict:
    for channel in channels:
        if str(channel.get("id")) == channel_id:
            return _result(True, "fc_ok", name=str(channel.get("name", ""))[:100])
    found = ", ".join(f"{c.get('name', '')} = {c.get('id', '')}" for c in channels[:10]) or "none"
    return _result(False, "fc_no_channel", channel=channel_id, found=found)


def _json(resp: requests.Response) -> object:
    """The answer's JSON, or None when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        return None
