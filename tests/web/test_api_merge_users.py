"""The option merge_users_by_app through the JSON admin API (CONTRACT §7): the connections of one
Zalo app that have it must share one FreshChat account, else a 400 naming the field."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from app import create_app
from config.settings import load_settings
from sandbox.helpers import FC_PUBLIC_PEM

ADMIN = "admin-token-for-the-merge-tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
HCM, HN = "https://hcm.freshchat.com/v2", "https://hn.freshchat.com/v2"
APP = "999000111"
BODY = {
    "id": "shop-hcm",
    "zalo": {
        "app_id": APP,
        "app_secret": "shop-app-secret-0000000000",
        "oa_id": "777000111",
        "oa_secret_key": "hcm-oa-secret-0000000000000",
    },
    "freshchat": {
        "api_url": HCM,
        "api_key": "hcm-freshchat-key-0000000000",
        "channel_id": "topic-hcm",
        "webhook_public_key": FC_PUBLIC_PEM,
    },
    "options": {"merge_users_by_app": True},
}
REFUSED = (
    "connection shop-hcm of the same Zalo app shares people on another FreshChat account "
    f"({HCM}): one person can be one FreshChat user only on one account"
)


def body(conn_id: str, oa_id: str, api_url: str, merge: bool, app_id: str = APP) -> dict:
    found = copy.deepcopy(BODY)
    found["id"] = conn_id
    found["zalo"].update(oa_id=oa_id, app_id=app_id)
    found["freshchat"].update(api_url=api_url, channel_id=f"topic-{conn_id}")
    found["options"] = {"merge_users_by_app": merge}
    return found


@pytest.fixture
def api(settings):
    return create_app(replace(settings, admin_token=ADMIN)).test_client()


def post(api, conn_body: dict):
    return api.post("/api/connections", json=conn_body, headers=AUTH)


def test_the_option_alone_on_its_app_is_accepted_and_shown(api):
    resp = post(api, BODY)
    assert resp.status_code == 201 and resp.get_json()["options"]["merge_users_by_app"] is True
    shown = api.get("/api/connections/default", headers=AUTH).get_json()["options"]
    assert shown["merge_users_by_app"] is False  # no variable sets it for the default connection


def test_a_second_merging_connection_of_the_app_on_another_account_is_refused_naming_the_field(api, redis):
    assert post(api, BODY).status_code == 201
    resp = post(api, body("shop-hn", "777000222", HN, merge=True))
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "invalid connection", "fields": {"options.merge_users_by_app": REFUSED}}
    assert redis.hkeys("zfb:connections") == [b"shop-hcm"]


def test_without_the_option_or_on_the_same_account_or_of_another_app_it_is_accepted(api):
    assert post(api, BODY).status_code == 201
    assert post(api, body("shop-hn", "777000222", HN, merge=False)).status_code == 201
    assert post(api, body("shop-dn", "777000333", HCM + "/", merge=True)).status_code == 201
    assert post(api, body("other-app", "777000444", HN, merge=True, app_id="999000222")).status_code == 201


def test_turning_it_on_or_moving_a_merging_connection_to_another_account_is_refused(api):
    assert post(api, BODY).status_code == 201
    assert post(api, body("shop-hn", "777000222", HN, merge=False)).status_code == 201
    resp = api.patch("/api/connections/shop-hn", json={"options": {"merge_users_by_app": True}}, headers=AUTH)
    assert resp.status_code == 400 and resp.get_json()["fields"] == {"options.merge_users_by_app": REFUSED}
    assert post(api, body("shop-dn", "777000333", HCM, merge=True)).status_code == 201
    moved = {"freshchat": {"api_url": HN, "api_key": "hn-freshchat-key-00000000000"}}
    resp = api.patch("/api/connections/shop-dn", json=moved, headers=AUTH)
    assert resp.status_code == 400 and list(resp.get_json()["fields"]) == ["options.merge_users_by_app"]
    same_account = {"freshchat": {"api_url": HCM, "api_key": "hn-freshchat-key-00000000000"}}
    joined = api.patch(
        "/api/connections/shop-hn", json={**same_account, "options": {"merge_users_by_app": True}}, headers=AUTH
    )
    assert joined.status_code == 200


def test_no_variable_turns_it_on_for_the_default_connection(tmp_path):
    assert load_settings({"MEDIA_DIR": str(tmp_path / "m"), "MERGE_USERS_BY_APP": "true"}).merge_users_by_app is False
