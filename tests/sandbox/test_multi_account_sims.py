"""Several Zalo OAs (of one app or several) in one simulator, and a second FreshChat account."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.integrations.freshchat.signature import verify_signature as fc_verify
from app.integrations.zalo.signature import verify_signature
from sandbox.freshchat_sim import FreshchatSimulator
from sandbox.server import start_in_thread
from tests.sandbox import partners, receiver, receiver_server, zalo  # noqa: F401

USER = "246845883529197922"
TOKEN = "sandbox-access-token-0"  # the first OA's (config/sandbox.py)
APP_B, APP_B_SECRET = "3000000000000000003", "app-b-secret"


def send(partners, token, text="hi", user=USER):
    body = {"recipient": {"user_id": user}, "message": {"text": text}}
    return requests.post(partners.zalo_url + "/v3.0/oa/message/cs", json=body, headers={"access_token": token}).json()


def refresh(partners, app_id, secret, refresh_token):
    data = {"app_id": app_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
    return requests.post(partners.zalo_url + "/v4/oa/access_token", data=data, headers={"secret_key": secret}).json()


@pytest.fixture
def second(zalo):
    """A second OA of the first OA's app."""
    return zalo.add_oa(zalo.app_id, "2000000000000000022", "oa2-secret-key", zalo.app_secret)


@pytest.fixture
def other_app(zalo):
    """An OA of another app."""
    return zalo.add_oa(APP_B, "4000000000000000004", "oa-b-secret-key", APP_B_SECRET)


# -- API calls find their OA by token ------------------------------------------------------


def test_each_oa_sends_with_its_own_token_and_records_which_oa_and_token(partners, zalo, second):
    zalo.add_user(USER, "Minh")
    second.add_user(USER, "Minh (OA 2)")
    assert send(partners, TOKEN, "first OA")["error"] == 0
    assert send(partners, "sim-access-2000000000000000022-0", "second OA")["error"] == 0
    assert [(m["message"]["text"], m["oa_id"], m["access_token"]) for m in zalo.messages_to(USER)] == [
        ("first OA", zalo.oa_id, TOKEN)
    ]
    assert [(m["message"]["text"], m["oa_id"], m["access_token"]) for m in second.messages_to(USER)] == [
        ("second OA", "2000000000000000022", "sim-access-2000000000000000022-0")
    ]


def test_users_are_per_oa_and_an_unknown_token_is_refused(partners, zalo, second):
    second.add_user(USER, "Minh")
    assert send(partners, TOKEN)["error"] == -213  # the user follows the second OA only
    assert send(partners, "sim-access-2000000000000000022-0")["error"] == 0
    assert send(partners, "no-such-token")["error"] == -216
    assert zalo.messages_to(USER) == [] and len(second.messages_to(USER)) == 1


def test_getoa_answers_the_oa_of_the_token(partners, zalo, other_app):
    got = requests.get(partners.zalo_url + "/v2.0/oa/getoa", headers={"access_token": other_app.access_token}).json()
    assert got["error"] == 0 and got["data"]["oa_id"] == other_app.oa_id


def test_a_dead_token_on_one_oa_leaves_the_other_oa_of_its_app_working(partners, zalo, second):
    zalo.add_user(USER, "Minh")
    second.add_user(USER, "Minh")
    second.expire_access_token()
    second.revoke_refresh_token()
    assert send(partners, second.access_token)["error"] == -216
    assert refresh(partners, zalo.app_id, zalo.app_secret, second.refresh_token)["error"] == -14014
    assert send(partners, TOKEN)["error"] == 0


# -- OAuth per OA, with its app's secret ----------------------------------------------------


def test_refresh_rotates_only_the_pair_of_the_oa_it_belongs_to(partners, zalo, second, other_app):
    first_pair = (zalo.access_token, zalo.refresh_token)
    rotated = refresh(partners, APP_B, APP_B_SECRET, "sim-refresh-4000000000000000004-0")
    assert rotated["access_token"] == other_app.access_token and other_app.refresh_count == 1
    assert (zalo.access_token, zalo.refresh_token) == first_pair and zalo.refresh_count == 0
    rotated2 = refresh(partners, zalo.app_id, zalo.app_secret, "sim-refresh-2000000000000000022-0")
    assert rotated2["access_token"] == second.access_token and second.refresh_count == 1
    assert (zalo.access_token, zalo.refresh_token) == first_pair


def test_refresh_needs_the_oas_own_app_and_app_secret(partners, zalo, other_app):
    # another app's refresh token, or another app's secret, does not work
    assert refresh(partners, zalo.app_id, zalo.app_secret, other_app.refresh_token)["error"] == -14014
    assert refresh(partners, APP_B, zalo.app_secret, other_app.refresh_token)["error"] == -14004
    assert other_app.refresh_count == 0


def test_an_app_has_one_secret_and_an_oa_id_is_unique(zalo, second):
    with pytest.raises(ValueError):
        zalo.add_oa(zalo.app_id, "2000000000000000033", "k", "another-secret")
    with pytest.raises(ValueError):
        zalo.add_oa(zalo.app_id, second.oa_id, "k", zalo.app_secret)


def test_consent_page_issues_a_code_for_the_named_oa(partners, zalo, second):
    params = {"app_id": zalo.app_id, "oa_id": second.oa_id, "redirect_uri": "https://bridge.example/cb"}
    resp = requests.get(partners.zalo_url + "/v4/oa/permission", params=params, allow_redirects=False)
    assert f"oa_id={second.oa_id}" in resp.headers["Location"]
    code = resp.headers["Location"].split("code=")[1].split("&")[0]
    data = {"app_id": zalo.app_id, "grant_type": "authorization_code", "code": code}
    got = requests.post(
        partners.zalo_url + "/v4/oa/access_token", data=data, headers={"secret_key": zalo.app_secret}
    ).json()
    assert got["access_token"] == second.access_token and second.code_exchanges == 1 and zalo.code_exchanges == 0


# -- faults and rate limits are per app -------------------------------------------------------


def test_a_minus_32_storm_on_one_app_hits_all_its_oas_and_no_other_app(partners, zalo, second, other_app):
    for oa in (zalo, second, other_app):
        oa.add_user(USER, "Minh")
    second.faults.fail_fraction("message_cs", 1.0, [-32])
    assert zalo.faults is second.faults and other_app.faults is not zalo.faults
    assert send(partners, TOKEN)["error"] == -32
    assert send(partners, second.access_token)["error"] == -32
    assert send(partners, other_app.access_token)["error"] == 0


def test_faults_over_http_name_their_app(partners, zalo, other_app):
    other_app.add_user(USER, "Minh")
    zalo.add_user(USER, "Minh")
    rule = {"endpoint": "message_cs", "next": 1, "outcome": -32}
    assert requests.post(partners.zalo_url + f"/_sim/faults?app_id={APP_B}", json=rule).ok
    assert other_app.faults.snapshot()["rules"][0]["remaining"] == 1 and zalo.faults.snapshot()["rules"] == []
    assert send(partners, TOKEN)["error"] == 0
    assert send(partners, other_app.access_token)["error"] == -32


def test_an_apps_rate_limit_is_shared_by_its_oas(partners, zalo, second, other_app):
    for oa in (zalo, second, other_app):
        oa.add_user(USER, "Minh")
    zalo.rate_limit(zalo.app_id, 3)
    answers = [send(partners, token)["error"] for token in (TOKEN, second.access_token, TOKEN, second.access_token)]
    assert answers == [0, 0, 0, -32]
    assert send(partners, other_app.access_token)["error"] == 0
    assert send(partners, "no-such-token")["error"] == -216  # not counted, not limited
    zalo.rate_limit(zalo.app_id, None)
    assert send(partners, TOKEN)["error"] == 0


# -- webhooks: each OA signs with its own OA Secret Key ----------------------------------------


def test_each_oa_signs_its_webhooks_with_its_own_secret_and_names_itself(zalo, other_app, receiver):
    sent = other_app.send_text(receiver.url, USER, "xin chào")
    assert sent["app_id"] == APP_B and sent["recipient"] == {"id": other_app.oa_id}
    (got,) = receiver.requests
    signature, stamp = got.headers["x-zevent-signature"], sent["timestamp"]
    assert verify_signature(signature, app_id=APP_B, raw_body=got.raw, timestamp=stamp, oa_secret_key="oa-b-secret-key")
    assert not verify_signature(
        signature, app_id=APP_B, raw_body=got.raw, timestamp=stamp, oa_secret_key=zalo.oa_secret_key
    )
    assert sent["user_id_by_app"] == other_app.user_id_by_app(USER) != zalo.user_id_by_app(USER)
    assert other_app.state()["users"][0]["user_id"] == USER and zalo.state()["users"] == []


def test_actions_and_phone_over_http_pick_the_oa_by_oa_id(partners, zalo, second, receiver):
    body = {"oa_id": second.oa_id, "bridge_url": receiver.url, "user_id": USER, "kind": "text", "text": "alo"}
    assert requests.post(partners.zalo_url + "/_sim/actions/phone_send", json=body).json()["statuses"] == [200]
    assert json.loads(receiver.requests[0].raw)["recipient"] == {"id": second.oa_id}
    phone = requests.get(partners.zalo_url + "/_sim/phone", params={"oa_id": second.oa_id}).json()
    assert [m["message"]["text"] for m in phone["user_messages"]] == ["alo"]
    assert requests.get(partners.zalo_url + "/_sim/phone").json()["user_messages"] == []
    assert requests.get(partners.zalo_url + "/_sim/phone", params={"oa_id": "404"}).status_code == 404


def test_phone_view_never_shows_the_token_a_message_was_sent_with(partners, zalo):
    zalo.add_user(USER, "Minh")
    send(partners, TOKEN)
    (message,) = requests.get(partners.zalo_url + "/_sim/phone").json()["oa_messages"]
    assert message["oa_id"] == zalo.oa_id and "access_token" not in message


def test_state_lists_added_oas_and_reset_removes_them(partners, zalo, second, other_app):
    assert [o["oa_id"] for o in zalo.state()["oas"]] == [second.oa_id, other_app.oa_id]
    other_app.faults.fail_next("message_cs", 1, -32)
    zalo.reset()
    assert list(zalo.oas()) == [zalo.oa_id] and zalo.state()["oas"] == []
    assert zalo.app_faults(APP_B) is zalo.faults  # the app is gone: its rules too
    assert send(partners, "sim-access-4000000000000000004-0")["error"] == -216


# -- a second FreshChat account under its own prefix ------------------------------------------


@pytest.fixture(scope="module")
def two_accounts():
    fc2 = FreshchatSimulator("topic-2", "second-api-key")
    base, _, fc, stop = start_in_thread(freshchat_accounts={"/freshchat2": fc2})
    yield base, fc, fc2
    stop()


def test_second_account_has_its_own_api_key_and_data(two_accounts):
    base, fc, fc2 = two_accounts
    fc.reset()
    fc2.reset()
    create = {"reference_id": "zalo:1", "first_name": "Minh"}
    url = f"{base}/freshchat2/v2/users"
    second = requests.post(url, json=create, headers={"Authorization": "Bearer second-api-key"})
    assert second.status_code == 201
    refused = requests.post(url, json=create, headers={"Authorization": f"Bearer {fc.api_key}"})
    assert refused.status_code == 401
    assert len(fc2.state()["users"]) == 1 and fc.state()["users"] == []
    assert fc2.base_url == base + "/freshchat2"
    index = requests.get(base + "/").json()
    assert index["freshchat2"]["api_url"] == base + "/freshchat2/v2" and index["freshchat2"]["channel_id"] == "topic-2"


def test_second_account_signs_with_its_own_key(two_accounts, receiver):
    _, fc, fc2 = two_accounts
    fc2.reset()
    conversation = _conversation(fc2, "topic-2")
    fc2.send_agent_message(receiver.url, conversation, "chào chị")
    (got,) = receiver.requests
    signature = got.headers["x-freshchat-signature"]
    assert fc_verify(signature, raw_body=got.raw, public_key_pem=fc2.public_key_pem)
    assert not fc_verify(signature, raw_body=got.raw, public_key_pem=fc.public_key_pem)


def test_add_channel_opens_a_second_topic_until_reset(two_accounts):
    base, fc, _ = two_accounts
    fc.reset()
    fc.add_channel("topic-b", "Zalo B")
    assert _conversation(fc, "topic-b")
    channels = requests.get(f"{base}/freshchat/v2/channels", headers={"Authorization": f"Bearer {fc.api_key}"})
    assert {c["id"] for c in channels.json()["channels"]} == {fc.channel_id, "topic-b"}
    fc.reset()
    assert "topic-b" not in fc.channels


def _conversation(fc, channel_id: str) -> str:
    """A conversation created over the API, as the bridge would."""
    auth = {"Authorization": f"Bearer {fc.api_key}"}
    user = requests.post(fc.base_url + "/v2/users", json={"reference_id": "zalo:9", "first_name": "A"}, headers=auth)
    body = {"channel_id": channel_id, "users": [{"id": user.json()["id"]}], "messages": []}
    created = requests.post(fc.base_url + "/v2/conversations", json=body, headers=auth)
    assert created.status_code in (200, 201), created.text
    return created.json()["conversation_id"]


# -- the consent page: the OA admin picks which of the app's OAs to allow ------------------------

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
HOSTILE_STATE = 'shop-3.s1"><script>alert(1)</script>'


@pytest.fixture
def spare(zalo):
    """An OA of the first OA's app that has not allowed the app yet."""
    return zalo.add_oa(zalo.app_id, "2000000000000000044", "oa4-key", zalo.app_secret, granted=False, name="Shop Mới")


def consent(partners, app_id, language="vi", **extra):
    challenge = base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest()).rstrip(b"=").decode()
    params = {"app_id": app_id, "redirect_uri": "https://bridge.example/cb", "code_challenge": challenge}
    return requests.get(
        partners.zalo_url + "/v4/oa/permission",
        params={**params, "state": HOSTILE_STATE, **extra},
        headers={"Accept-Language": language},
        allow_redirects=False,
    )


def test_an_oa_that_has_not_allowed_the_app_has_no_token_pair(partners, spare):
    assert (spare.access_token, spare.refresh_token) == ("", "")
    got = requests.get(partners.zalo_url + "/v2.0/oa/getoa", headers={"access_token": ""}).json()
    assert got["error"] == -216


def test_consent_page_lists_the_apps_oas_with_the_one_not_allowing_it_yet_picked(
    partners, zalo, second, spare, other_app
):
    resp = consent(partners, zalo.app_id)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/html")
    page = resp.text
    listed = re.findall(r'name="oa_id" id="oa-(\d+)" value="\d+"\s*(checked)?', page)
    assert listed == [(zalo.oa_id, ""), (second.oa_id, ""), (spare.oa_id, "checked")]  # not the other app's
    assert "Shop Mới (2000000000000000044):\n  chưa cấp quyền" in page and ">Cho phép</button>" in page
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    assert hidden["app_id"] == zalo.app_id and hidden["redirect_uri"] == "https://bridge.example/cb"
    assert hidden["state"] == "shop-3.s1&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" and "<script>" not in page
    assert zalo.code_exchanges == second.code_exchanges == spare.code_exchanges == 0


def test_consent_page_in_english_for_an_english_browser(partners, zalo, spare):
    page = consent(partners, zalo.app_id, language="en-US,en;q=0.9").text
    assert '<html lang="en">' in page and ">Allow</button>" in page and "not allowed yet" in page


def test_allowing_the_picked_oa_gives_a_code_for_its_own_token_pair(partners, zalo, second, spare):
    page = consent(partners, zalo.app_id).text
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    hidden["state"] = HOSTILE_STATE  # the browser sends the value it shows, unescaped
    resp = requests.get(
        partners.zalo_url + "/v4/oa/permission", params={**hidden, "oa_id": spare.oa_id}, allow_redirects=False
    )
    assert resp.status_code == 302
    back = urlsplit(resp.headers["Location"])
    query = parse_qs(back.query)
    assert (back.netloc, back.path) == ("bridge.example", "/cb")
    assert query["oa_id"] == [spare.oa_id] and query["state"] == [HOSTILE_STATE]
    data = {
        "app_id": zalo.app_id,
        "grant_type": "authorization_code",
        "code": query["code"][0],
        "code_verifier": VERIFIER,
    }
    url = partners.zalo_url + "/v4/oa/access_token"
    pair = requests.post(url, data=data, headers={"secret_key": zalo.app_secret}).json()
    assert pair["access_token"] == spare.access_token and pair["refresh_token"] == spare.refresh_token
    got = requests.get(partners.zalo_url + "/v2.0/oa/getoa", headers={"access_token": pair["access_token"]}).json()
    assert (got["data"]["oa_id"], got["data"]["name"]) == (spare.oa_id, "Shop Mới")
    assert (spare.code_exchanges, zalo.code_exchanges, second.code_exchanges) == (1, 0, 0)
    assert consent(partners, zalo.app_id).text.count("checked") == 1  # all allowed now: the first is picked
    assert re.search(rf'id="oa-{zalo.oa_id}" value="\d+"\s*checked', consent(partners, zalo.app_id).text)


def test_consent_page_refuses_a_redirect_that_is_no_web_address(partners, zalo, second):
    got = consent(partners, zalo.app_id, redirect_uri="javascript:alert(1)").json()
    assert got["error"] == -14003


def test_one_person_on_two_oas_of_an_app_has_an_id_per_oa_and_one_user_id_by_app(partners, zalo, second, receiver):
    """As Zalo gives one person (zalo.md §3.8): the OA-scoped ids differ, user_id_by_app does not,
    in webhooks, in user/detail and in the state the sandbox page shows."""
    zalo.add_user(USER, "Lan", person="lan")
    second.add_user("246845883529100022", "Lan", person="lan")
    first = zalo.send_text(receiver.url, USER, "shop 1")
    other = second.send_text(receiver.url, "246845883529100022", "shop 2")
    assert first["user_id_by_app"] == other["user_id_by_app"] != zalo.user_id_by_app("someone else")
    query = {"data": json.dumps({"user_id": "246845883529100022"})}
    headers = {"access_token": "sim-access-2000000000000000022-0"}
    detail = requests.get(partners.zalo_url + "/v3.0/oa/user/detail", params=query, headers=headers).json()["data"]
    assert detail["user_id_by_app"] == first["user_id_by_app"]
    assert [u["user_id_by_app"] for u in second.state()["users"]] == [first["user_id_by_app"]]
