"""Health, readiness, Zalo domain verification, admin routes, OAuth connect, log hygiene."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import requests
import requests_mock

from app import create_app
from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.lanes import Item, Lanes, now_ms
from app.bridge.secrets_at_rest import sealer_for
from app.bridge.tokens_store import TOKEN, TokenStore
from sandbox.helpers import ZALO_API, ZALO_OA_ID, ZALO_OAUTH, clear_in_redis, load_fixture

ADMIN = {"Authorization": "Bearer adm-token-123"}  # the start takes no token in its URL


def beat(redis, age: float = 0.0):
    redis.set(keys.HEARTBEAT, time.time() - age)


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"ok": True}


def test_readyz_needs_a_fresh_worker_heartbeat(client, redis):
    assert client.get("/readyz").status_code == 503
    beat(redis, age=120)
    assert client.get("/readyz").get_json()["reason"] == "no fresh worker heartbeat"
    beat(redis)
    body = client.get("/readyz").get_json()
    assert client.get("/readyz").status_code == 200 and body["ready"] and body["dead_letters"] == 0


def test_readyz_is_503_with_a_reason_when_redis_is_down(client, redis_server):
    redis_server.stop()
    try:
        resp = client.get("/readyz")
        assert resp.status_code == 503 and "redis unreachable" in resp.get_json()["reason"]
    finally:
        redis_server.start()


def test_readyz_reports_a_dead_zalo_token_and_dead_letters(client, redis):
    beat(redis)
    redis.hset(TOKEN, mapping={"access_token": "secret-access", "dead": "-14014 Invalid refresh token"})
    DeadLetters(redis, Lanes(redis)).add("out:c", Item("freshchat:x", "freshchat", {}, now_ms()), "boom")
    body = client.get("/readyz").get_json()
    assert body["dead_letters"] == 1 and "-14014" in body["alerts"][0]
    assert "secret-access" not in str(body)


def test_readyz_says_how_long_the_zalo_pair_has_left(client, redis):
    beat(redis)
    now = time.time()
    redis.hset(
        TOKEN,
        mapping={
            "access_token": "secret-access",
            "refresh_token": "secret-refresh",
            "expires_at": now + 7200,
            "lifetime": 90000,
            "refresh_issued_at": now - 10 * 86400,
        },
    )
    resp = client.get("/readyz")
    token = resp.get_json()["zalo_token"]
    assert resp.status_code == 200 and resp.get_json()["alerts"] == []
    assert abs(token["access_expires_in"] - 7200) <= 2 and abs(token["refresh_expires_in"] - 80 * 86400) <= 2


def test_readyz_warns_two_weeks_before_the_refresh_token_runs_out(client, redis):
    beat(redis)
    redis.hset(
        TOKEN,
        mapping={
            "access_token": "secret-access",
            "refresh_token": "secret-refresh",
            "expires_at": 0,
            "refresh_issued_at": time.time() - 80 * 86400,
        },
    )
    resp = client.get("/readyz")
    body = resp.get_json()
    assert resp.status_code == 200 and body["zalo_token"]["access_expires_in"] is None
    assert abs(body["zalo_token"]["refresh_expires_in"] - 10 * 86400) <= 2
    assert body["alerts"] == [
        "zalo refresh token expires in 10 days and is not being rotated: check that the "
        "worker runs and its zalo.token.keepalive_failed logs, or re-connect the OA "
        "(admin console: Connect with Zalo)"
    ]
    assert "secret" not in str(body)


def test_readyz_alerts_when_the_refresh_token_is_past_its_three_months(client, redis):
    beat(redis)
    redis.hset(TOKEN, mapping={"access_token": "a", "refresh_token": "r", "updated_at": time.time() - 91 * 86400})
    body = client.get("/readyz").get_json()
    assert body["zalo_token"]["refresh_expires_in"] < 0 and "probably expired" in body["alerts"][0]


def test_status_snapshot_shows_the_token_numbers(settings, redis):
    from app.operations.status import bridge_status

    now = time.time()
    redis.hset(
        TOKEN,
        mapping={
            "access_token": "secret-access",
            "refresh_token": "secret-refresh",
            "expires_at": now + 600,
            "refresh_issued_at": now - 85 * 86400,
        },
    )
    token = bridge_status(redis)["zalo_token"]
    assert token["present"] and token["dead"] == "" and token["expires_at"] == now + 600
    assert abs(token["access_expires_in"] - 600) <= 2 and abs(token["refresh_expires_in"] - 5 * 86400) <= 2
    assert "expires in 5 days" in token["alert"] and "secret" not in str(token)


def test_zalo_verifier_page(settings, redis):
    client = create_app(replace(settings, zalo_site_verification="GkRa5O6GTXL3")).test_client()
    resp = client.get("/zalo_verifierGkRa5O6GTXL3.html")
    assert resp.status_code == 200 and b'content="GkRa5O6GTXL3"' in resp.data
    assert client.get("/zalo_verifierOTHER.html").status_code == 404


def test_admin_routes_are_404_without_admin_token(client):
    assert client.get("/admin/status").status_code == 404
    assert client.get("/admin/dead-letters", headers={"Authorization": "Bearer x"}).status_code == 404


def test_dead_letters_over_the_admin_api(settings, redis):
    client = create_app(replace(settings, admin_token="adm-token-123")).test_client()
    auth = {"Authorization": "Bearer adm-token-123"}
    DeadLetters(redis, Lanes(redis)).add("out:c", Item("freshchat:x", "freshchat", {"a": 1}, now_ms()), "boom")
    assert client.get("/admin/dead-letters", headers={"Authorization": "Bearer wrong"}).status_code == 404
    assert client.get("/admin/dead-letters", headers=auth).get_json()["dead_letters"][0]["reason"] == "boom"
    assert client.post("/admin/dead-letters/freshchat:x/replay", headers=auth).status_code == 200
    assert redis.llen(keys.lane("out:c")) == 1 and DeadLetters(redis, Lanes(redis)).count() == 0
    assert client.delete("/admin/dead-letters/freshchat:x", headers=auth).status_code == 404
    assert client.get("/admin/status", headers=auth).get_json()["lanes_pending"] == 1


def test_oauth_start_and_callback_store_the_pair(settings, redis):
    client = create_app(replace(settings, admin_token="adm-token-123")).test_client()
    assert client.get("/oauth/zalo/start").status_code == 404
    resp = client.get("/oauth/zalo/start", headers=ADMIN)
    target = urlparse(resp.headers["Location"])
    query = parse_qs(target.query)
    assert resp.status_code == 302 and target.path == "/v4/oa/permission"
    assert query["redirect_uri"] == ["https://bridge.example.com/oauth/zalo/callback"] and query["code_challenge"]
    with requests_mock.Mocker() as m:
        m.post(
            f"{ZALO_OAUTH}/v4/oa/access_token",
            json={"access_token": "a9", "refresh_token": "r9", "expires_in": "90000"},
        )
        m.get(f"{ZALO_API}/v2.0/oa/getoa", json=load_fixture("zalo", "answers", "getoa.json"))  # the settings' OA
        done = client.get(f"/oauth/zalo/callback?code=abc&oa_id={ZALO_OA_ID}&state={query['state'][0]}")
        sent = parse_qs(m.request_history[0].text)
    assert done.status_code == 200 and sent["grant_type"] == ["authorization_code"] and sent["code_verifier"]
    stored = TokenStore.of(redis, settings).state()  # the tokens are sealed in Redis
    assert stored["refresh_token"] == "r9" and redis.hget(TOKEN, "lifetime") == b"90000.0"
    assert abs(float(redis.hget(TOKEN, "refresh_issued_at")) - time.time()) < 5
    assert client.get(f"/oauth/zalo/callback?code=abc&state={query['state'][0]}").status_code == 400  # single use


def test_the_oauth_callback_leaves_no_token_in_clear_in_redis(settings, redis):
    access, refresh = "oauth-access-Qm9vAbCdEfGh", "oauth-refresh-ZxWvUtSrQpOn"
    client = create_app(replace(settings, admin_token="adm-token-123")).test_client()
    state = parse_qs(urlparse(client.get("/oauth/zalo/start", headers=ADMIN).headers["Location"]).query)["state"]
    with requests_mock.Mocker() as m:
        m.post(
            f"{ZALO_OAUTH}/v4/oa/access_token",
            json={"access_token": access, "refresh_token": refresh, "expires_in": "90000"},
        )
        m.get(f"{ZALO_API}/v2.0/oa/getoa", json=load_fixture("zalo", "answers", "getoa.json"))
        assert client.get(f"/oauth/zalo/callback?code=abc&state={state[0]}").status_code == 200
    assert redis.hget(TOKEN, "access_token").startswith(b"gAAAAA")
    assert clear_in_redis(redis, access, refresh) == []
    beat(redis)
    admin = client.get("/admin/status", headers={"Authorization": "Bearer adm-token-123"}).get_data(as_text=True)
    assert client.get("/readyz").status_code == 200 and "gAAAAA" not in admin and access not in admin


def test_configured_secrets_never_reach_a_log_line(settings, capsys):
    from app.logs import configure_logging

    configure_logging(replace(settings, log_format="json"))
    logging.getLogger("t").warning(
        "token %s and key %s",
        settings.zalo_access_token + "-x",
        settings.freshchat_api_key,
        extra={"header": settings.zalo_oa_secret_key},
    )
    line = capsys.readouterr().err
    assert '"level": "WARNING"' in line and "***" in line
    for secret in settings.secrets():
        assert secret not in line


def test_secrets_in_tracebacks_are_masked_too(settings, capsys):
    from app.logs import configure_logging

    configure_logging(replace(settings, log_format="text"))
    try:
        raise RuntimeError(f"bad key {settings.freshchat_api_key}")
    except RuntimeError:
        logging.getLogger("t").exception("boom")
    err = capsys.readouterr().err
    assert "RuntimeError: bad key ***" in err and settings.freshchat_api_key not in err


def test_secrets_of_stored_connections_are_masked_too(redis, settings, capsys):
    """They never pass through the environment: the registry hands them to the log filter
    when it reads them, in every process (web and worker alike read the registry)."""
    from app.connections.store import ConnectionStore, Registry
    from app.logs import configure_logging
    from tests.multi import HCM, store

    configure_logging(replace(settings, log_format="text"))
    store(redis, settings, HCM)
    registry = Registry(ConnectionStore(redis, settings, sealer_for(settings)), settings)
    assert registry.get("hcm") is not None
    logging.getLogger("t").warning("calling with %s", "hcm-app-secret", extra={"key": "hcm-fc-key"})
    err = capsys.readouterr().err
    assert "hcm-app-secret" not in err and "hcm-fc-key" not in err and err.count("***") == 2
