"""Per-connection status (/readyz, /admin/status) and connecting each connection's OA."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import requests_mock
from redis import connection as redis_connection

from app import create_app
from app.bridge import keys
from app.bridge.keys import Keys, lane_for
from app.bridge.lanes import Item, Lanes, now_ms
from app.bridge.tokens_store import TOKEN, TokenStore
from sandbox.helpers import ZALO_API, ZALO_OAUTH, load_fixture
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
    # an event that is recorded, not queued: only the webhook's time changes
    chatnow = zalo_event("follow", app_id=HCM_APP) | {"oa_id": HCM_OA, "event_name": "user_click_chatnow"}
    assert post_zalo_as(client, chatnow, HCM_SECRET).status_code == 200
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
    assert done.status_code == 400 and m.call_count == 0  # refused before the code is spent
    assert done.get_json()["error"] == (
        "Zalo connected OA 111222333, but connection hcm is for OA 777000111: nothing was stored. "
        "Start again and pick OA 777000111 on Zalo's page."
    )


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
        m.get(GETOA, json=getoa(HCM_OA))
        done = client.get(f"/oauth/zalo/callback?code=abc&oa_id={HCM_OA}&state={query['state'][0]}")
    assert done.status_code == 200 and done.get_json()["connection"] == "hcm"
    assert parse_qs(m.request_history[0].text)["app_id"] == [HCM_APP]
    assert m.request_history[0].headers["secret_key"] == "hcm-app-secret"
    hcm_settings = replace(settings, zalo_refresh_token="", zalo_access_token="")
    stored = TokenStore.of(redis, hcm_settings, Keys("hcm")).state()
    assert stored["access_token"] == "h9" and not redis.exists(TOKEN)


GETOA = f"{ZALO_API}/v2.0/oa/getoa"


def getoa(oa_id: str) -> dict:
    answer = load_fixture("zalo", "answers", "getoa.json")
    answer["data"]["oa_id"] = oa_id
    return answer


def start_hcm(redis, settings):
    """A client and the state of an OAuth flow started for the `hcm` connection (OA 777000111)."""
    store(redis, settings, HCM)
    client = admin_client(settings)
    location = client.get("/oauth/zalo/start?connection=hcm", headers=ADMIN).headers["Location"]
    return client, parse_qs(urlparse(location).query)["state"][0]


def hcm_pair(redis, settings) -> dict:
    hcm_settings = replace(settings, zalo_refresh_token="", zalo_access_token="")
    return TokenStore.of(redis, hcm_settings, Keys("hcm")).state()


class Audit(logging.Handler):
    """The audit lines (app.logs.audit) written while it is attached, with their fields."""

    FIELDS = ("connection", "oa_id", "connection_oa", "token_oa")

    def __init__(self):
        super().__init__()
        self.lines, self.text = [], ""

    def emit(self, record):
        self.lines.append((record.getMessage(), {k: getattr(record, k) for k in self.FIELDS if hasattr(record, k)}))
        self.text += repr(record.__dict__)

    def __enter__(self):
        logging.getLogger("bridge.audit").addHandler(self)
        return self

    def __exit__(self, *_):
        logging.getLogger("bridge.audit").removeHandler(self)


def test_oauth_without_oa_id_refuses_a_token_that_serves_another_oa(redis, settings):
    client, state = start_hcm(redis, settings)
    with requests_mock.Mocker() as m, Audit() as audit:
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "other-oa-access", "refresh_token": "r"})
        m.get(GETOA, json=getoa("388613280878808645"))
        done = client.get(f"/oauth/zalo/callback?code=abc&state={state}", headers={"Accept-Language": "vi"})
    assert done.status_code == 400
    assert done.get_json() == {
        "error": "Zalo đã kết nối OA Cửa hàng Minh Khánh (388613280878808645), nhưng kết nối hcm dành cho "
        "OA 777000111: chưa lưu gì cả. Hãy làm lại và chọn OA 777000111 trên trang của Zalo.",
        "token_oa": "388613280878808645",
        "connection_oa": "777000111",
    }
    token_call, getoa_call = m.request_history
    assert (getoa_call.method, getoa_call.url, getoa_call.body) == ("GET", GETOA, None)
    assert getoa_call.headers["access_token"] == "other-oa-access" and getoa_call.timeout == 5.0
    assert hcm_pair(redis, settings).get("access_token", "") == "" and not redis.exists(Keys("hcm").zalo_token)
    assert audit.lines == [
        (
            "oauth_refused_other_oa",
            {"connection": "hcm", "connection_oa": "777000111", "token_oa": "388613280878808645"},
        )
    ]
    assert "other-oa-access" not in audit.text


def test_oauth_without_oa_id_stores_a_token_that_serves_the_connections_oa(redis, settings):
    client, state = start_hcm(redis, settings)
    with requests_mock.Mocker() as m, Audit() as audit:
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "hcm-access-9", "refresh_token": "hcm-r9"})
        m.get(GETOA, json=getoa(HCM_OA))
        done = client.get(f"/oauth/zalo/callback?code=abc&state={state}")
    assert done.status_code == 200
    assert done.get_json() == {"ok": True, "oa_id": HCM_OA, "message": "Zalo OA connected", "connection": "hcm"}
    assert [(r.method, r.url, r.headers.get("access_token")) for r in m.request_history[1:]] == [
        ("GET", GETOA, "hcm-access-9")
    ]
    assert hcm_pair(redis, settings)["access_token"] == "hcm-access-9"
    assert audit.lines == [("oauth_token_stored", {"connection": "hcm", "oa_id": HCM_OA})]
    assert "hcm-access-9" not in audit.text and "hcm-r9" not in audit.text


@pytest.mark.parametrize(
    "answer, detail",
    [
        ({"exc": requests.exceptions.ConnectTimeout}, "Zalo API unreachable (ConnectTimeout)"),
        ({"status_code": 503, "text": "<html>busy</html>"}, "Zalo answered HTTP 503"),
        ({"json": {"error": 0, "message": "Success", "data": {}}}, "no oa_id"),
    ],
)
def test_oauth_stores_nothing_while_zalo_does_not_say_which_oa_the_token_serves(redis, settings, answer, detail):
    client, state = start_hcm(redis, settings)
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "hcm-access-9", "refresh_token": "hcm-r9"})
        m.get(GETOA, **answer)
        done = client.get(f"/oauth/zalo/callback?code=abc&state={state}")
    assert done.status_code == 502
    assert done.get_json()["error"] == (
        f"Could not ask Zalo which OA the new token serves ({detail}): nothing was stored. Start again to retry."
    )
    assert not redis.exists(Keys("hcm").zalo_token)


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


def test_readyz_reads_many_connections_in_a_few_round_trips_and_shows_each_ones_own(
    client, redis, settings, monkeypatch
):
    """Forty stored connections, three of them with something to show: /readyz reads them all in
    one pipeline (not a few round trips each, nor the due set again per connection)."""
    many = [dict(HCM, id=f"shop-{i:02d}", zalo={**HCM["zalo"], "oa_id": f"77{i:04d}"}) for i in range(40)]
    store(redis, settings, *many)
    redis.set(keys.HEARTBEAT, time.time())
    redis.set(Keys("shop-07").last_webhook("zalo"), time.time() - 60)
    redis.hset(Keys("shop-13").zalo_token, mapping={"access_token": "x", "dead": "-14014 Invalid refresh token"})
    Lanes(redis).accept("shop-21/in:u1", Item("zalo:1", "zalo", {}, now_ms(), connection="shop-21"))
    client.get("/readyz")  # the registry's first read of the forty
    sent = []
    real = redis_connection.Connection.send_packed_command
    monkeypatch.setattr(
        redis_connection.Connection,
        "send_packed_command",
        lambda conn, command, check_health=True: sent.append(command) or real(conn, command, check_health),
    )
    body = client.get("/readyz").get_json()
    assert len(sent) <= 6, len(sent)  # heartbeat, the due set and its lanes, the statuses (+ registry check)
    shown = body["connections"]
    assert list(shown) == ["default", *(c["id"] for c in many)]
    assert abs(shown["shop-07"]["last_webhook"]["zalo"] - (time.time() - 60)) < 5
    assert [c for c, s in shown.items() if s["last_webhook"]["zalo"]] == ["shop-07"]
    assert body["alerts"] == [
        "connection shop-13: zalo refresh token dead: -14014 Invalid refresh token; re-connect the OA "
        "(admin console: Connect with Zalo) - replies are waiting"
    ]
    assert [c for c, s in shown.items() if s["queued_items"]] == ["shop-21"] and shown["shop-21"]["queued_items"] == 1
    assert all(s["relayed_today"] == {"in": 0, "out": 0} and s["dead_letters"] == 0 for s in shown.values())
