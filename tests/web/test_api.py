"""The JSON admin API (docs/interface.md §7.2) and `flask bridge connections`, on a real Redis."""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import replace

import pytest
import requests
import requests_mock

from app import create_app
from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from sandbox.helpers import FC_API, FC_PUBLIC_PEM, ZALO_API, ZALO_APP_ID, ZALO_OA_ID, clear_in_redis, load_fixture

ADMIN = "admin-token-for-the-api-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CHANNEL = "6c03caf2-a37f-45a2-a9a3-6e03aa7b85f5"  # the topic in freshchat/answers/channels.json
FC_HCM = "https://hcm.freshchat.com/v2"
BODY = {
    "id": "shop-hcm",
    "name": "Shop HCM",
    "zalo": {
        "app_id": "999000111",
        "app_secret": "hcm-app-secret-0000000000",
        "oa_id": "777000111",
        "oa_secret_key": "hcm-oa-secret-0000000000000",
        "access_token": "hcm-access-token-00000000000",
        "refresh_token": "hcm-refresh-token-0000000000",
    },
    "freshchat": {
        "api_url": FC_HCM + "/",
        "api_key": "hcm-freshchat-key-0000000000",
        "channel_id": CHANNEL,
        "webhook_public_key": FC_PUBLIC_PEM,
    },
    "options": {"resolve_notification": True, "resolve_notification_text": "Cảm ơn!"},
}
SECRETS = [
    BODY["zalo"]["app_secret"],
    BODY["zalo"]["oa_secret_key"],
    BODY["zalo"]["access_token"],
    BODY["zalo"]["refresh_token"],
    BODY["freshchat"]["api_key"],
]
ROUTES = [
    ("get", "/api/connections"),
    ("post", "/api/connections"),
    ("get", "/api/connections/shop-hcm"),
    ("patch", "/api/connections/shop-hcm"),
    ("delete", "/api/connections/shop-hcm"),
    ("post", "/api/connections/shop-hcm/test"),
    ("get", "/api/status"),
    ("get", "/api/dead-letters"),
    ("post", "/api/dead-letters/x/replay"),
    ("delete", "/api/dead-letters/x"),
]


def body(**changes) -> dict:
    found = copy.deepcopy(BODY)
    for section, values in changes.items():
        if isinstance(values, dict):
            found[section] = {**found.get(section, {}), **values}
        else:
            found[section] = values
    return found


@pytest.fixture
def api_settings(settings):
    return replace(settings, admin_token=ADMIN)


@pytest.fixture
def api(api_settings):
    return create_app(api_settings).test_client()


@pytest.fixture
def created(api):
    resp = api.post("/api/connections", json=body(), headers=AUTH)
    assert resp.status_code == 201
    return resp.get_json()


def store(redis, settings) -> ConnectionStore:
    return ConnectionStore(redis, settings, sealer_for(settings))


def item(item_id: str, connection: str = "shop-hcm") -> Item:
    return Item(item_id, "zalo", {"event_name": "user_send_text"}, now_ms(), connection=connection)


# -- who may call ------------------------------------------------------------------------------


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_api_path_is_404_while_admin_token_is_unset(client, method, path):
    resp = getattr(client, method)(path, headers=AUTH)
    assert resp.status_code == 404 and resp.get_json() == {"error": "not found"}
    assert resp.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("method,path", ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {ADMIN}", ADMIN])
def test_a_missing_or_wrong_token_is_401(api, method, path, header):
    resp = getattr(api, method)(path, headers={"Authorization": header} if header else {})
    assert resp.status_code == 401 and resp.get_json() == {"error": "missing or wrong bearer token"}
    assert resp.headers["Cache-Control"] == "no-store" and resp.headers["WWW-Authenticate"] == "Bearer"


# -- POST /api/connections ------------------------------------------------------------------------


def test_post_answers_201_with_the_connection_as_get_shows_it(api, redis, api_settings):
    resp = api.post("/api/connections", json=body(), headers=AUTH)
    shown = resp.get_json()
    assert resp.status_code == 201 and resp.headers["Cache-Control"] == "no-store"
    assert shown == api.get("/api/connections/shop-hcm", headers=AUTH).get_json()
    assert shown["zalo"] == {
        "app_id": "999000111",
        "app_secret": "set",
        "oa_id": "777000111",
        "oa_secret_key": "set",
        "access_token": "set",
        "refresh_token": "set",
    }
    assert shown["freshchat"] == {
        "api_url": FC_HCM,  # the trailing slash is dropped: paths are appended to it
        "api_key": "set",
        "channel_id": CHANNEL,
        "webhook_public_key": FC_PUBLIC_PEM,
    }
    assert shown["webhooks"] == {
        "zalo": "https://bridge.example.com/webhooks/zalo",
        "freshchat": "https://bridge.example.com/webhooks/freshchat/shop-hcm",
    }
    assert shown["oauth_callback"] == "https://bridge.example.com/oauth/zalo/callback"
    assert shown["oauth_start"] == "https://bridge.example.com/oauth/zalo/start?connection=shop-hcm"
    assert (shown["id"], shown["name"], shown["enabled"], shown["from_env"]) == ("shop-hcm", "Shop HCM", True, False)
    assert shown["status"]["zalo_token"]["present"] is True  # the given pair is the connection's now
    assert shown["status"]["queue_depth"] == 0 and shown["status"]["dead_letters"] == 0
    conn = store(redis, api_settings).get("shop-hcm")
    assert conn.settings.zalo_app_secret == BODY["zalo"]["app_secret"]
    assert conn.settings.resolve_notification_text == "Cảm ơn!"


def test_a_connection_without_tokens_or_options_takes_nothing_from_the_default(api, redis, api_settings):
    zalo = {k: v for k, v in BODY["zalo"].items() if "token" not in k}
    resp = api.post("/api/connections", json=dict(body(zalo=None), zalo=zalo, options={}), headers=AUTH)
    assert resp.status_code == 201
    assert resp.get_json()["zalo"]["access_token"] == "" and resp.get_json()["zalo"]["refresh_token"] == ""
    settings = store(redis, api_settings).get("shop-hcm").settings
    assert (settings.zalo_access_token, settings.zalo_refresh_token) == ("", "")  # not the default's pair
    assert settings.resolve_notification is False


def test_post_answers_400_with_one_message_per_bad_field(api, redis):
    bad = body(
        id="Shop_HCM",
        zalo={"app_id": "not-a-number", "oa_secret_key": "", "extra": 1},
        freshchat={"api_url": "ftp://x", "webhook_public_key": "not a key"},
        options={"resolve_notification": "maybe"},
    )
    del bad["zalo"]["app_secret"]
    bad["colour"] = "blue"
    resp = api.post("/api/connections", json=bad, headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json() == {
        "error": "invalid connection",
        "fields": {
            "id": "1 to 40 characters of a-z, 0-9 and -",
            "colour": "Unknown field.",
            "zalo.app_id": "digits only",
            "zalo.app_secret": "Missing data for required field.",
            "zalo.oa_secret_key": "1 to 200 characters",
            "zalo.extra": "Unknown field.",
            "freshchat.api_url": "Not a valid URL.",
            "freshchat.webhook_public_key": "not a PEM/base64 RSA public key",
            "options.resolve_notification": "Not a valid boolean.",
        },
    }
    assert not redis.hlen("zfb:connections")


def test_the_group_option_is_stored_shown_and_validated(api, redis, api_settings):
    group = "c2937604-0a08-43c2-a09c-e77f5f565a0e"
    resp = api.post("/api/connections", json=body(options={"freshchat_group_id": group}), headers=AUTH)
    assert resp.status_code == 201 and resp.get_json()["options"]["freshchat_group_id"] == group
    assert store(redis, api_settings).get("shop-hcm").settings.freshchat_group_id == group
    bad = api.patch("/api/connections/shop-hcm", json={"options": {"freshchat_group_id": '"><x'}}, headers=AUTH)
    assert bad.status_code == 400 and bad.get_json()["fields"] == {
        "options.freshchat_group_id": "a FreshChat group id (letters, digits and -, at most 100), or empty for none"
    }
    cleared = api.patch("/api/connections/shop-hcm", json={"options": {"freshchat_group_id": ""}}, headers=AUTH)
    assert cleared.status_code == 200 and cleared.get_json()["options"]["freshchat_group_id"] == ""


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json", b""])
def test_post_answers_400_for_a_body_that_is_not_an_object(api, raw):
    resp = api.post("/api/connections", data=raw, headers=dict(AUTH, **{"Content-Type": "application/json"}))
    assert resp.status_code == 400 and resp.get_json() == {"error": "the body must be a JSON object"}


def test_post_answers_400_for_an_id_over_40_characters(api):
    resp = api.post("/api/connections", json=body(id="a" * 41), headers=AUTH)
    assert resp.status_code == 400 and list(resp.get_json()["fields"]) == ["id"]


@pytest.mark.parametrize("taken", ["shop-hcm", "default"])
def test_post_answers_409_when_the_id_exists(api, created, taken):
    resp = api.post("/api/connections", json=body(id=taken, zalo={"oa_id": "777000999"}), headers=AUTH)
    assert resp.status_code == 409 and resp.get_json() == {"error": f"a connection with id {taken} exists"}


def test_post_answers_409_for_the_same_zalo_app_and_oa(api, created):
    resp = api.post("/api/connections", json=body(id="shop-hn"), headers=AUTH)
    assert resp.status_code == 409
    assert resp.get_json() == {"error": "connection shop-hcm already serves Zalo app 999000111 and OA 777000111"}
    other_oa = api.post("/api/connections", json=body(id="shop-hn", zalo={"oa_id": "777000222"}), headers=AUTH)
    assert other_oa.status_code == 201


def test_post_answers_409_for_the_default_connections_app_and_oa(api):
    resp = api.post("/api/connections", json=body(zalo={"app_id": ZALO_APP_ID, "oa_id": ZALO_OA_ID}), headers=AUTH)
    assert resp.status_code == 409 and resp.get_json()["error"].startswith("connection default already serves")


# -- GET ----------------------------------------------------------------------------------------------


def test_get_lists_the_default_connection_first_like_the_others(api, created):
    resp = api.get("/api/connections", headers=AUTH)
    found = resp.get_json()["connections"]
    assert resp.status_code == 200 and [c["id"] for c in found] == ["default", "shop-hcm"]
    default = found[0]
    assert default["from_env"] is True and default["zalo"]["app_id"] == ZALO_APP_ID
    assert default["zalo"]["app_secret"] == "set" and default["freshchat"]["api_key"] == "set"
    assert default["webhooks"]["freshchat"] == "https://bridge.example.com/webhooks/freshchat"
    assert default["oauth_start"] == "https://bridge.example.com/oauth/zalo/start"
    assert found[1] == created


@pytest.mark.parametrize(
    "method,path",
    [
        ("get", "/api/connections/nope"),
        ("patch", "/api/connections/nope"),
        ("delete", "/api/connections/nope"),
        ("post", "/api/connections/nope/test"),
    ],
)
def test_an_unknown_connection_is_404(api, method, path):
    resp = getattr(api, method)(path, json={"name": "x"}, headers=AUTH)
    assert resp.status_code == 404 and resp.get_json() == {"error": "no connection nope"}


# -- PATCH ---------------------------------------------------------------------------------------------


def test_patch_changes_a_subset_and_a_secret_only_when_given(api, redis, api_settings, created):
    resp = api.patch(
        "/api/connections/shop-hcm", json={"name": "Shop Sài Gòn", "zalo": {"oa_id": "777000333"}}, headers=AUTH
    )
    shown = resp.get_json()
    assert resp.status_code == 200 and shown["name"] == "Shop Sài Gòn" and shown["zalo"]["oa_id"] == "777000333"
    assert shown["zalo"]["app_secret"] == "set" and shown["freshchat"] == created["freshchat"]
    settings = store(redis, api_settings).get("shop-hcm").settings
    assert settings.zalo_app_secret == BODY["zalo"]["app_secret"]  # kept: not given
    assert settings.freshchat_api_key == BODY["freshchat"]["api_key"]
    api.patch("/api/connections/shop-hcm", json={"freshchat": {"api_key": "new-freshchat-key-000000"}}, headers=AUTH)
    settings = store(redis, api_settings).get("shop-hcm").settings
    assert settings.freshchat_api_key == "new-freshchat-key-000000"
    assert settings.zalo_app_secret == BODY["zalo"]["app_secret"] and settings.zalo_oa_id == "777000333"


def test_patch_with_a_new_access_token_keeps_the_stored_refresh_token(api, redis, api_settings, created):
    from app.bridge.tokens_store import TokenStore

    api.patch(
        "/api/connections/shop-hcm", json={"zalo": {"access_token": "hcm-access-token-11111111111"}}, headers=AUTH
    )
    conn = store(redis, api_settings).get("shop-hcm")
    pair = TokenStore.of(redis, conn.settings, Keys("shop-hcm")).state()
    assert pair["access_token"] == "hcm-access-token-11111111111"
    assert pair["refresh_token"] == BODY["zalo"]["refresh_token"]


def test_patch_answers_400_for_a_bad_field_or_a_new_id(api, created):
    resp = api.patch("/api/connections/shop-hcm", json={"id": "other", "enabled": "sometimes", "x": 1}, headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"enabled": "Not a valid boolean.", "x": "Unknown field."}
    resp = api.patch("/api/connections/shop-hcm", json={"id": "other"}, headers=AUTH)
    assert resp.status_code == 400 and resp.get_json()["fields"] == {"id": "the id of a connection never changes"}
    assert api.patch("/api/connections/shop-hcm", json={"id": "shop-hcm"}, headers=AUTH).status_code == 200


def test_patch_answers_409_when_it_would_take_another_connections_oa(api, created):
    api.post("/api/connections", json=body(id="shop-hn", zalo={"oa_id": "777000222"}), headers=AUTH)
    resp = api.patch("/api/connections/shop-hn", json={"zalo": {"oa_id": "777000111"}}, headers=AUTH)
    assert resp.status_code == 409 and "shop-hcm already serves" in resp.get_json()["error"]


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_the_default_connection_cannot_be_changed_through_the_api(api, method):
    resp = getattr(api, method)("/api/connections/default", json={"name": "x"}, headers=AUTH)
    assert resp.status_code == 409
    assert resp.get_json() == {
        "error": "the default connection is defined by environment variables; change those instead"
    }


# -- DELETE ---------------------------------------------------------------------------------------


def test_delete_keeps_the_queued_work_as_dead_letters_of_the_connection(api, redis, created):
    lanes = Lanes(redis)
    lanes.accept("shop-hcm/in:u1", item("zalo:1"))
    lanes.accept("shop-hcm/in:u1", item("zalo:2"))
    lanes.accept("shop-hcm/out:c1", item("freshchat:3"))
    lanes.accept("shop-hcm-2/in:u1", item("zalo:4", "shop-hcm-2"))  # a connection whose id starts alike
    lanes.accept("in:u1", item("zalo:5", "default"))
    redis.rpush(keys.lane("shop-hcm/in:u9"), item("zalo:6").dumps())  # a lane not in the due set
    resp = api.delete("/api/connections/shop-hcm", headers=AUTH)
    assert resp.status_code == 200 and resp.get_json() == {"removed": "shop-hcm", "kept_as_dead_letters": 4}
    assert api.get("/api/connections/shop-hcm", headers=AUTH).status_code == 404
    due = {m.decode() for m in redis.zrange(keys.DUE, 0, -1)}
    assert due == {"shop-hcm-2/in:u1", "in:u1"}
    assert not list(redis.scan_iter(match="zfb:lane:shop-hcm/*")) and not redis.exists(Keys("shop-hcm").zalo_token)
    listed = api.get("/api/dead-letters?connection=shop-hcm", headers=AUTH).get_json()["dead_letters"]
    assert sorted((d["id"], d["lane"], d["reason"]) for d in listed) == [
        ("freshchat:3", "shop-hcm/out:c1", "connection removed"),
        ("zalo:1", "shop-hcm/in:u1", "connection removed"),
        ("zalo:2", "shop-hcm/in:u1", "connection removed"),
        ("zalo:6", "shop-hcm/in:u9", "connection removed"),
    ]
    assert DeadLetters(redis, lanes).count() == 0  # the default's are not touched


def test_a_removed_connections_dead_letters_can_be_dropped_not_replayed(api, redis, created):
    Lanes(redis).accept("shop-hcm/in:u1", item("zalo:1"))
    api.delete("/api/connections/shop-hcm", headers=AUTH)
    resp = api.post("/api/dead-letters/zalo:1/replay?connection=shop-hcm", headers=AUTH)
    assert resp.status_code == 409 and "was removed" in resp.get_json()["error"]
    resp = api.delete("/api/dead-letters/zalo:1?connection=shop-hcm", headers=AUTH)
    assert resp.status_code == 200 and resp.get_json() == {"dropped": "zalo:1", "connection": "shop-hcm"}


# -- POST /api/connections/<id>/test ------------------------------------------------------------------


def getoa(oa_id: str = "777000111") -> dict:
    answer = load_fixture("zalo", "answers", "getoa.json")
    answer["data"]["oa_id"] = oa_id
    return answer


def channels() -> dict:
    return load_fixture("freshchat", "answers", "channels.json")


def run_test(api, mock, zalo=None, freshchat=None, connection="shop-hcm") -> dict:
    if zalo is not None:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", **zalo)
    if freshchat is not None:
        mock.get(f"{FC_HCM}/channels", **freshchat)
    resp = api.post(f"/api/connections/{connection}/test", headers=AUTH)
    assert resp.status_code == 200
    return resp.get_json()


def test_test_says_both_partners_accept_the_credentials(api, created):
    with requests_mock.Mocker() as mock:
        result = run_test(api, mock, zalo={"json": getoa()}, freshchat={"json": channels()})
    assert result == {
        "zalo": {"ok": True, "detail": "token works for OA Cửa hàng Minh Khánh (777000111)"},
        "freshchat": {"ok": True, "detail": "API key works; channel Zalo found"},
    }
    zalo_call, fc_call = mock.request_history
    assert zalo_call.headers["access_token"] == BODY["zalo"]["access_token"] and zalo_call.timeout == 5.0
    assert fc_call.headers["Authorization"] == "Bearer " + BODY["freshchat"]["api_key"]
    assert fc_call.qs == {"page": ["1"], "items_per_page": ["100"]} and fc_call.timeout == 5.0


def test_test_says_there_is_no_token_yet(api):
    zalo = {k: v for k, v in BODY["zalo"].items() if "token" not in k}
    api.post("/api/connections", json=dict(body(), zalo=zalo), headers=AUTH)
    with requests_mock.Mocker() as mock:
        result = run_test(api, mock, freshchat={"json": channels()})
    assert result["zalo"] == {
        "ok": False,
        "detail": 'no token yet: connect the OA ("Connect with Zalo" in the console, or a one-time link from '
        "POST /api/connections/<id>/oauth-link) or give access_token and refresh_token",
    }
    assert [r.url for r in mock.request_history] == [f"{FC_HCM}/channels?page=1&items_per_page=100"]


@pytest.mark.parametrize(
    "answer,detail",
    [
        (
            {"json": {"error": -216, "message": "Access token is invalid"}},
            "token refused (-216 Access token is invalid): the worker refreshes it when a message needs it; "
            "if this persists, connect the OA again",
        ),
        ({"json": {"error": -204, "message": "OA disabled"}}, "Zalo refused the call (-204 OA disabled)"),
        (
            {"json": getoa("388613280878808645")},
            "OA id differs: the token is for OA 388613280878808645 (Cửa hàng Minh Khánh), "
            "the connection says 777000111",
        ),
        ({"exc": requests.exceptions.ConnectTimeout}, "Zalo API unreachable (ConnectTimeout)"),
        ({"status_code": 502, "text": "Bad gateway"}, "Zalo answered HTTP 502"),
        ({"text": "<html>"}, "Zalo answered something that is not JSON"),
    ],
)
def test_test_says_what_zalo_refused(api, created, answer, detail):
    with requests_mock.Mocker() as mock:
        result = run_test(api, mock, zalo=answer, freshchat={"json": channels()})
    assert result["zalo"] == {"ok": False, "detail": detail} and result["freshchat"]["ok"] is True


def test_test_says_the_token_pair_is_dead(api, redis, created):
    redis.hset(Keys("shop-hcm").zalo_token, "dead", "-14014 Invalid refresh token")
    with requests_mock.Mocker() as mock:
        result = run_test(api, mock, freshchat={"json": channels()})
    assert result["zalo"] == {
        "ok": False,
        "detail": "the token pair is dead (-14014 Invalid refresh token): connect the OA again",
    }


@pytest.mark.parametrize(
    "answer,detail",
    [
        (
            {"status_code": 401, "json": {"message": "Unauthorized"}},
            "API key refused (401): generate a new one under Admin, APIs for chat",
        ),
        ({"status_code": 403, "json": {}}, "API key not allowed to list topics (403)"),
        ({"status_code": 404, "text": "Not found"}, "the API URL answers 404: it is the chat URL plus /v2"),
        ({"status_code": 500, "text": "oops"}, "FreshChat answered HTTP 500"),
        ({"exc": requests.exceptions.ConnectionError}, "FreshChat API URL unreachable (ConnectionError)"),
        ({"text": "<html>login</html>"}, "the API URL does not answer JSON: it is the chat URL plus /v2"),
        (
            {"json": {"channels": [{"id": "other-topic", "name": "Sales"}], "pagination": {"total_pages": 1}}},
            f"channel id {CHANNEL} is not among the account's channels (Sales = other-topic)",
        ),
    ],
)
def test_test_says_what_freshchat_refused(api, created, answer, detail):
    with requests_mock.Mocker() as mock:
        result = run_test(api, mock, zalo={"json": getoa()}, freshchat=answer)
    assert result["freshchat"] == {"ok": False, "detail": detail} and result["zalo"]["ok"] is True


def test_test_looks_for_the_channel_on_every_page(api, created):
    first = {"channels": [{"id": "other", "name": "Sales"}], "pagination": {"total_pages": 2, "current_page": 1}}
    with requests_mock.Mocker() as mock:
        mock.get(f"{FC_HCM}/channels?page=1", json=first)
        mock.get(f"{FC_HCM}/channels?page=2", json=channels())
        result = run_test(api, mock, zalo={"json": getoa()})
    assert result["freshchat"] == {"ok": True, "detail": "API key works; channel Zalo found"}
    assert [r.qs["page"] for r in mock.request_history[1:]] == [["1"], ["2"]]


# -- a stored secret goes only to the URL it was stored with -------------------------------------------

FOREIGN = "https://collector.example.net/v2"  # never registered: requests-mock raises on a call to it
KEY_AGAIN = "give the API key again: a stored key is only sent to the API URL it was stored with"


@pytest.mark.parametrize("connection", ["shop-hcm", "default"])
def test_topics_never_send_a_stored_key_to_a_url_the_request_names(api, created, connection):
    with requests_mock.Mocker() as mock:
        resp = api.post("/api/freshchat/topics", json={"connection": connection, "api_url": FOREIGN}, headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "cannot load topics", "fields": {"api_key": KEY_AGAIN}}
    assert mock.request_history == []


@pytest.mark.parametrize(
    "connection, url, key",
    [
        ("shop-hcm", FC_HCM.upper() + "/", BODY["freshchat"]["api_key"]),  # its own URL, written otherwise
        ("default", FC_API, "fc-api-key-example"),
    ],
)
def test_topics_send_a_stored_key_to_its_own_url(api, created, connection, url, key):
    with requests_mock.Mocker() as mock:
        mock.get(f"{FC_HCM}/channels", json=channels())
        mock.get(f"{FC_API}/channels", json=channels())
        resp = api.post("/api/freshchat/topics", json={"connection": connection, "api_url": url}, headers=AUTH)
    assert resp.status_code == 200 and resp.get_json()["topics"][0]["name"] == "Zalo"
    [call] = mock.request_history
    assert call.url.lower().startswith(url.lower().rstrip("/") + "/channels?")
    assert call.headers["Authorization"] == "Bearer " + key


def test_topics_send_a_key_typed_in_the_request_to_the_url_typed_with_it(api, created):
    with requests_mock.Mocker() as mock:
        mock.get(f"{FOREIGN}/channels", json=channels())
        resp = api.post(
            "/api/freshchat/topics",
            json={"connection": "shop-hcm", "api_url": FOREIGN, "api_key": "typed-key-for-the-new-url"},
            headers=AUTH,
        )
    assert resp.status_code == 200
    [call] = mock.request_history
    assert call.headers["Authorization"] == "Bearer typed-key-for-the-new-url"


def test_patch_of_the_api_url_alone_is_400_and_the_stored_pair_stays(api, redis, api_settings, created):
    with requests_mock.Mocker() as mock:
        resp = api.patch("/api/connections/shop-hcm", json={"freshchat": {"api_url": FOREIGN}}, headers=AUTH)
        assert resp.status_code == 400
        assert resp.get_json() == {"error": "invalid connection", "fields": {"freshchat.api_key": KEY_AGAIN}}
        result = run_test(api, mock, zalo={"json": getoa()}, freshchat={"json": channels()})
    assert result["freshchat"]["ok"] is True
    fc_call = mock.request_history[-1]
    assert fc_call.url.startswith(f"{FC_HCM}/channels?") and not [r for r in mock.request_history if "example" in r.url]
    settings = store(redis, api_settings).get("shop-hcm").settings
    assert (settings.freshchat_api_url, settings.freshchat_api_key) == (FC_HCM, BODY["freshchat"]["api_key"])


def test_patch_keeps_the_key_when_the_url_is_only_written_otherwise(api, redis, api_settings, created):
    written_otherwise = FC_HCM.replace("https://hcm.freshchat.com", "HTTPS://HCM.FreshChat.com") + "/"
    resp = api.patch("/api/connections/shop-hcm", json={"freshchat": {"api_url": written_otherwise}}, headers=AUTH)
    assert resp.status_code == 200
    assert store(redis, api_settings).get("shop-hcm").settings.freshchat_api_key == BODY["freshchat"]["api_key"]


def test_patch_with_a_new_url_and_its_key_then_uses_the_new_pair(api, created):
    change = {"freshchat": {"api_url": FOREIGN, "api_key": "key-of-the-new-account-00"}}
    assert api.patch("/api/connections/shop-hcm", json=change, headers=AUTH).status_code == 200
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=getoa())
        mock.get(f"{FOREIGN}/channels", json=channels())
        assert api.post("/api/connections/shop-hcm/test", headers=AUTH).get_json()["freshchat"]["ok"] is True
        topics = api.post("/api/freshchat/topics", json={"connection": "shop-hcm"}, headers=AUTH)
        old = api.post("/api/freshchat/topics", json={"connection": "shop-hcm", "api_url": FC_HCM}, headers=AUTH)
    assert topics.status_code == 200 and old.status_code == 400 and old.get_json()["fields"] == {"api_key": KEY_AGAIN}
    calls = [r for r in mock.request_history if "channels" in r.url]
    assert [(r.url.split("?")[0], r.headers["Authorization"]) for r in calls] == [
        (f"{FOREIGN}/channels", "Bearer key-of-the-new-account-00"),
        (f"{FOREIGN}/channels", "Bearer key-of-the-new-account-00"),
    ]


def test_a_stored_key_bound_to_another_url_is_never_used(api, redis, api_settings, created):
    """A record written behind the bridge's back (a hand edit, an old backup) with its URL
    changed: its key is dropped, the connection test calls nobody with it."""
    raw = json.loads(redis.hget("zfb:connections", "shop-hcm"))
    raw["freshchat"]["api_url"] = FOREIGN
    redis.hset("zfb:connections", "shop-hcm", json.dumps(raw))
    with requests_mock.Mocker() as mock:
        result = run_test(api, mock, zalo={"json": getoa()})
    assert result["freshchat"] == {"ok": False, "detail": "no API URL or API key"}
    assert [r.url for r in mock.request_history] == [f"{ZALO_API}/v2.0/oa/getoa"]
    assert api.get("/api/connections/shop-hcm", headers=AUTH).get_json()["freshchat"]["api_key"] == ""


def test_a_key_stored_before_keys_were_bound_stays_with_its_url(api, redis, api_settings, created):
    raw = json.loads(redis.hget("zfb:connections", "shop-hcm"))
    del raw["freshchat"]["api_key_url"]
    redis.hset("zfb:connections", "shop-hcm", json.dumps(raw))
    assert store(redis, api_settings).get("shop-hcm").settings.freshchat_api_key == BODY["freshchat"]["api_key"]
    resp = api.patch("/api/connections/shop-hcm", json={"freshchat": {"api_url": FOREIGN}}, headers=AUTH)
    assert resp.status_code == 400 and resp.get_json()["fields"] == {"freshchat.api_key": KEY_AGAIN}


# -- status and dead letters ---------------------------------------------------------------------------


def test_status_shows_redis_the_heartbeat_and_each_connection(api, redis, created):
    redis.set(keys.HEARTBEAT, time.time() - 3)
    lanes = Lanes(redis)
    lanes.accept("shop-hcm/in:u1", item("zalo:1"))
    lanes.accept("shop-hcm/in:u2", item("zalo:2"))
    lanes.accept("in:u1", item("zalo:3", "default"))
    DeadLetters(redis, lanes, keys=Keys("shop-hcm")).add("shop-hcm/in:u3", item("zalo:4"), "boom")
    resp = api.get("/api/status", headers=AUTH)
    status = resp.get_json()
    assert resp.status_code == 200 and status["redis"] == "ok" and 2 <= status["worker_heartbeat_age"] < 10
    assert status["lanes_pending"] == 3
    hcm, default = status["connections"]["shop-hcm"], status["connections"]["default"]
    assert (hcm["queue_depth"], hcm["dead_letters"], default["queue_depth"], default["dead_letters"]) == (2, 1, 1, 0)
    assert hcm["zalo_token"]["present"] is True and hcm["zalo_token"]["dead"] == ""
    assert api.get("/api/connections/shop-hcm", headers=AUTH).get_json()["status"] == hcm


def test_status_is_503_when_redis_is_down(api, redis_server):
    redis_server.stop()
    try:
        resp = api.get("/api/status", headers=AUTH)
        assert resp.status_code == 503 and resp.get_json()["redis"].startswith("unreachable")
    finally:
        redis_server.start()


def test_dead_letters_are_listed_replayed_and_dropped_per_connection(api, redis, created):
    lanes = Lanes(redis)
    DeadLetters(redis, lanes).add("in:u1", item("zalo:d", "default"), "boom")
    DeadLetters(redis, lanes, keys=Keys("shop-hcm")).add("shop-hcm/in:u1", item("zalo:h"), "boom")
    default = api.get("/api/dead-letters", headers=AUTH).get_json()
    assert default["connection"] == "default" and [d["id"] for d in default["dead_letters"]] == ["zalo:d"]
    hcm = api.get("/api/dead-letters?connection=shop-hcm&limit=5", headers=AUTH)
    assert hcm.status_code == 200 and [d["id"] for d in hcm.get_json()["dead_letters"]] == ["zalo:h"]
    assert api.post("/api/dead-letters/zalo:d/replay?connection=shop-hcm", headers=AUTH).status_code == 404
    resp = api.post("/api/dead-letters/zalo:h/replay?connection=shop-hcm", headers=AUTH)
    assert resp.status_code == 200 and resp.get_json() == {"replayed": "zalo:h", "connection": "shop-hcm"}
    assert Item.loads(redis.lindex(keys.lane("shop-hcm/in:u1"), 0)).id == "zalo:h"
    resp = api.delete("/api/dead-letters/zalo:d", headers=AUTH)
    assert resp.status_code == 200 and resp.get_json() == {"dropped": "zalo:d", "connection": "default"}
    assert api.delete("/api/dead-letters/zalo:d", headers=AUTH).status_code == 404
    assert api.post("/api/dead-letters/zalo:d/replay", headers=AUTH).status_code == 404


@pytest.mark.parametrize("limit", ["abc", "0", "-1", "1001", "2.5"])
def test_a_bad_limit_is_400(api, limit):
    resp = api.get(f"/api/dead-letters?limit={limit}", headers=AUTH)
    assert resp.status_code == 400 and resp.get_json() == {"error": "limit: a whole number from 1 to 1000"}


def test_dead_letters_of_a_bad_or_unknown_connection(api):
    resp = api.get("/api/dead-letters?connection=Bad_Id", headers=AUTH)
    assert resp.status_code == 400 and resp.get_json()["fields"] == {
        "connection": "1 to 40 characters of a-z, 0-9 and -"
    }
    resp = api.get("/api/dead-letters?connection=nope", headers=AUTH)
    assert resp.status_code == 404 and resp.get_json() == {"error": "no connection nope"}


# -- no secret in clear anywhere --------------------------------------------------------------------


def test_no_answer_log_line_or_redis_value_holds_a_secret_in_clear(api, redis, caplog):
    caplog.set_level(logging.DEBUG)
    answers = [api.post("/api/connections", json=body(), headers=AUTH)]
    new_secret = "hcm-app-secret-1111111111"
    answers.append(api.patch("/api/connections/shop-hcm", json={"zalo": {"app_secret": new_secret}}, headers=AUTH))
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json={"error": -216, "message": "Access token is invalid"})
        mock.get(f"{FC_HCM}/channels", status_code=401, json={"message": "Unauthorized"})
        answers.append(api.post("/api/connections/shop-hcm/test", headers=AUTH))
    bad = body(id="shop-bad", zalo={"app_id": "x"})  # a refused body must not be echoed either
    for method, path, kw in [
        ("post", "/api/connections", {"json": bad}),
        ("get", "/api/connections", {}),
        ("get", "/api/connections/shop-hcm", {}),
        ("get", "/api/status", {}),
    ]:
        answers.append(getattr(api, method)(path, headers=AUTH, **kw))
    secrets = [*SECRETS, new_secret, ADMIN]
    assert [a.status_code for a in answers] == [201, 200, 200, 400, 200, 200, 200]
    assert not [a for a in answers if any(s.encode() in a.data for s in secrets)]
    logged = [str(v) for r in caplog.records for v in [r.getMessage(), *r.__dict__.values()]]
    assert logged and not [line for line in logged if any(s in line for s in secrets)]
    assert clear_in_redis(redis, *secrets) == []


# -- flask bridge connections ------------------------------------------------------------------------


@pytest.fixture
def cli(api_settings):
    return create_app(api_settings).test_cli_runner()


def test_cli_adds_from_a_file_or_stdin_and_lists(cli, tmp_path):
    path = tmp_path / "conn.json"
    path.write_text(json.dumps(body()))
    added = cli.invoke(args=["bridge", "connections", "add", str(path)])
    assert added.exit_code == 0 and json.loads(added.output)["id"] == "shop-hcm"
    assert not any(s in added.output for s in SECRETS)
    stdin = cli.invoke(args=["bridge", "connections", "add"], input=json.dumps(body(id="shop-hn", zalo={"oa_id": "2"})))
    assert stdin.exit_code == 0, stdin.output
    listed = cli.invoke(args=["bridge", "connections", "list"]).output.splitlines()
    assert [line.split("\t")[:2] for line in listed] == [
        ["default", "enabled"],
        ["shop-hcm", "enabled"],
        ["shop-hn", "enabled"],
    ]


def test_cli_add_refuses_a_bad_body_with_one_line_per_field(cli):
    result = cli.invoke(args=["bridge", "connections", "add"], input=json.dumps(body(id="BAD", zalo={"oa_id": "x"})))
    assert result.exit_code == 1
    assert "invalid connection" in result.output and "  id: 1 to 40 characters" in result.output
    assert "  zalo.oa_id: digits only" in result.output
    assert cli.invoke(args=["bridge", "connections", "add"], input="{").exit_code == 1


def test_cli_shows_tests_disables_and_removes(cli, redis, api_settings):
    cli.invoke(args=["bridge", "connections", "add"], input=json.dumps(body()))
    shown = cli.invoke(args=["bridge", "connections", "show", "shop-hcm"])
    assert shown.exit_code == 0 and json.loads(shown.output)["zalo"]["app_secret"] == "set"
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=getoa())
        mock.get(f"{FC_HCM}/channels", status_code=401)
        tested = cli.invoke(args=["bridge", "connections", "test", "shop-hcm"])
    assert tested.exit_code == 1
    assert tested.output.splitlines() == [
        "zalo: ok: token works for OA Cửa hàng Minh Khánh (777000111)",
        "freshchat: FAILED: API key refused (401): generate a new one under Admin, APIs for chat",
    ]
    assert cli.invoke(args=["bridge", "connections", "disable", "shop-hcm"]).output == "disabled shop-hcm\n"
    assert store(redis, api_settings).get("shop-hcm").enabled is False
    assert cli.invoke(args=["bridge", "connections", "enable", "shop-hcm"]).exit_code == 0
    assert store(redis, api_settings).get("shop-hcm").enabled is True
    Lanes(redis).accept("shop-hcm/in:u1", item("zalo:1"))
    removed = cli.invoke(args=["bridge", "connections", "remove", "shop-hcm"])
    assert removed.exit_code == 0 and removed.output.startswith("removed shop-hcm; 1 queued item(s) kept")
    missing = cli.invoke(args=["bridge", "connections", "show", "shop-hcm"])
    assert missing.exit_code == 1 and "no connection shop-hcm" in missing.output
    refused = cli.invoke(args=["bridge", "connections", "remove", "default"])
    assert refused.exit_code == 1 and "defined by environment variables" in refused.output


def test_the_dead_letters_command_is_still_there(cli):
    assert cli.invoke(args=["bridge", "dead-letters", "list"]).output == "0 dead letter(s)\n"
