"""Per-connection status (/readyz, /admin/status) and connecting each connection's OA."""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import requests
import requests_mock

from app import create_app
from app.bridge import keys
from app.bridge.keys import Keys, lane_for
from app.bridge.lanes import Item, Lanes, now_ms
from app.integrations.zalo.tokens import TOKEN, TokenKeeper
from tests.helpers import ZALO_OAUTH
from tests.multi import HCM, HCM_APP, HCM_OA, HCM_SECRET, OA2, post_zalo_as, store, zalo_event

AUTH = {"Authorization": "Bearer adm-token-123"}

ADMIN = {"Authorization": "Bearer adm-token-123"}  # the start takes no token in its URL


def admin_client(settings):
    return create_app(replace(settings, admin_token="adm-token-123")).test_client()


def test_readyz_shows_each_connection_and_names_its_alerts(client, redis, settings):
    store(redis, settings, OA2, HCM)
    redis.set(keys.HEARTBEAT, time.time())
    redis.hset(Keys("oa2").zalo_token, mapping={"access_token": "x", "dead": "-14014 Invalid refresh token"})
    Lanes(redis).accept("hcm/in:u1", Item("zalo:1", "zalo", {}, now_ms(), connection="hcm"))
    Lanes(redis).accept("hcm/in:u1", Item("zalo:2", "zalo", {}, now_ms(), connection="hcm"))
    Lanes(redis).accept("out:c1", Item("freshchat:1", "freshchat", {}, now_ms()))
    follow = zalo_event("follow", app_id=HCM_APP) | {"oa_id": HCM_OA}
    assert post_zalo_as(client, follow, HCM_SECRET).status_code == 200
    body = client.get("/readyz").get_json()
    assert body["alerts"] == [
        "connection oa2: zalo refresh token dead: -14014 Invalid refresh token; re-connect the OA "
        "(admin console: Connect with Zalo) - replies are waiting"
    ]
    assert list(body["connections"]) == ["default", "hcm", "oa2"]
    hcm, default = body["connections"]["hcm"], body["connections"]["default"]
    assert (hcm["lanes_pending"], hcm["queued_items"], default["queued_items"]) == (1, 2, 1)
    assert abs(hcm["last_webhook"]["zalo"] - time.time()) < 5 and hcm["last_webhook"]["freshchat"] is None
    assert body["connections"]["oa2"]["alerts"] == body["alerts"] and default["alerts"] == []
    assert body["zalo_token"] == default["zalo_token"]  # the top level stays the default's
    assert "x" not in str(body["connections"]["oa2"]["zalo_token"].values())


def test_admin_status_lists_every_connection(redis, settings):
    store(redis, settings, HCM)
    status = admin_client(settings).get("/admin/status", headers=AUTH).get_json()
    assert set(status["connections"]) == {"default", "hcm"}
    assert status["connections"]["hcm"]["zalo_token"]["present"] is False and status["connections"]["hcm"]["enabled"]


def test_oauth_refuses_a_token_for_another_oa_than_the_connections(redis, settings):
    store(redis, settings, HCM)
    client = admin_client(settings)
    state = parse_qs(urlparse(client.get("/oauth/zalo/start?connection=hcm", headers=ADMIN).headers["Location"]).query)[
        "state"
    ][0]
    with requests_mock.Mocker() as m:
        done = client.get(f"/oauth/zalo/callback?code=abc&oa_id=111222333&state={state}")
    assert done.status_code == 400 and "pick that OA" in done.get_json()["error"] and m.call_count == 0


def test_oauth_with_zalo_unreachable_is_a_502_not_a_500(redis, settings):
    client = admin_client(settings)
    state = parse_qs(urlparse(client.get("/oauth/zalo/start", headers=ADMIN).headers["Location"]).query)
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", exc=requests.exceptions.ConnectTimeout)
        done = client.get(f"/oauth/zalo/callback?code=abc&state={state['state'][0]}")
    assert done.status_code == 502 and "reload this page to try again" in done.get_json()["error"]


def test_oauth_connects_the_oa_of_the_connection_named_at_the_start(redis, settings):
    store(redis, settings, HCM)
    client = admin_client(settings)
    assert client.get("/oauth/zalo/start?connection=nobody", headers=ADMIN).status_code == 404
    resp = client.get("/oauth/zalo/start?connection=hcm", headers=ADMIN)
    query = parse_qs(urlparse(resp.headers["Location"]).query)
    assert query["app_id"] == [HCM_APP] and query["state"][0].startswith("hcm.")
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "h9", "refresh_token": "hr9"})
        done = client.get(f"/oauth/zalo/callback?code=abc&oa_id={HCM_OA}&state={query['state'][0]}")
    assert done.status_code == 200 and done.get_json()["connection"] == "hcm"
    assert parse_qs(m.request_history[0].text)["app_id"] == [HCM_APP]
    assert m.request_history[0].headers["secret_key"] == "hcm-app-secret"
    hcm_settings = replace(settings, zalo_refresh_token="", zalo_access_token="")
    stored = TokenKeeper(redis, hcm_settings, requests.Session(), keys=Keys("hcm")).state()
    assert stored["access_token"] == "h9" and not redis.exists(TOKEN)


def test_reply_window_and_receipt_timers_are_not_counted_as_waiting_work(client, redis, settings):
    from app.bridge.keys import receipts_lane, window_lane

    store(redis, settings, HCM)
    later = now_ms() + 47 * 3600 * 1000
    Lanes(redis).accept(lane_for("hcm", window_lane("u1")), Item("win:1", "timer", {}, now_ms(), connection="hcm"))
    redis.zadd(keys.DUE, {lane_for("hcm", window_lane("u1")): later})
    Lanes(redis).accept(receipts_lane("c1"), Item("rcpt:1", "timer", {}, now_ms()))
    Lanes(redis).accept("hcm/in:u2", Item("zalo:9", "zalo", {}, now_ms(), connection="hcm"))
    body = client.get("/readyz").get_json()
    hcm, default = body["connections"]["hcm"], body["connections"]["default"]
    assert (hcm["lanes_pending"], hcm["queued_items"], hcm["timers"]) == (1, 1, 1)
    assert (default["lanes_pending"], default["queued_items"], default["timers"]) == (0, 0, 1)
    status = admin_client(settings).get("/admin/status", headers=AUTH).get_json()
    assert status["lanes_pending"] == 1  # the whole bridge's conversations waiting, timers apart
