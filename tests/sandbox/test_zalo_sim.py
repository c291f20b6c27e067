"""The Zalo simulator over real HTTP: API, OAuth rotation, uploads, faults and signed webhooks."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.integrations.zalo.signature import verify_signature
from sandbox import zalo_sim
from sandbox.helpers import load_fixture
from sandbox.procs import wait_until
from tests.sandbox import GIF_1X1, PDF, partners, png_bytes, receiver, receiver_server, zalo  # noqa: F401

USER = "246845883529197922"
TOKEN = "sandbox-access-token-0"
REFRESH = "sandbox-refresh-token-0"
SECRET = "sandbox-app-secret"
MB = 1024 * 1024


def send(partners, message, user=USER, token=TOKEN):
    body = {"recipient": {"user_id": user}, "message": message}
    return requests.post(partners.zalo_url + "/v3.0/oa/message/cs", json=body, headers={"access_token": token}).json()


def upload(partners, kind, name, data, content_type, token=TOKEN):
    return requests.post(
        f"{partners.zalo_url}/v2.0/oa/upload/{kind}",
        headers={"access_token": token},
        files={"file": (name, data, content_type)},
    ).json()


def refresh(partners, refresh_token, secret=SECRET, app_id=None):
    data = {"app_id": app_id or partners.zalo.app_id, "grant_type": "refresh_token", "refresh_token": refresh_token}
    return requests.post(partners.zalo_url + "/v4/oa/access_token", data=data, headers={"secret_key": secret}).json()


def user_detail(partners, user_id, token=TOKEN):
    return requests.get(
        partners.zalo_url + "/v3.0/oa/user/detail",
        params={"data": json.dumps({"user_id": user_id})},
        headers={"access_token": token},
    ).json()


def media_message(element):
    return {"attachment": {"type": "template", "payload": {"template_type": "media", "elements": [element]}}}


# -- sending (docs/interface.md, Z8) -------------------------------------------------------


def test_text_is_accepted_and_recorded_in_order(partners, zalo):
    zalo.add_user(USER, "Minh Khánh")
    first, second = send(partners, {"text": "một"}), send(partners, {"text": "hai"})
    assert first["error"] == 0 and first["message"] == "Success"
    assert re.fullmatch(r"[0-9a-f]{20}", first["data"]["message_id"])
    assert first["data"]["user_id"] == USER and first["data"]["sent_time"].isdigit()
    sent = zalo.messages_to(USER)
    assert [m["message"]["text"] for m in sent] == ["một", "hai"]
    assert [m["message_id"] for m in sent] == [first["data"]["message_id"], second["data"]["message_id"]]


def test_text_of_2000_characters_passes_and_2001_is_rejected(partners, zalo):
    zalo.add_user(USER, "Minh")
    assert send(partners, {"text": "ữ" * 2000})["error"] == 0
    refused = send(partners, {"text": "ữ" * 2001})
    assert refused["error"] == -201 and "2000" in refused["message"]
    assert len(zalo.messages_to(USER)) == 1


def test_unknown_user_gets_213_and_a_per_user_error_applies(partners, zalo):
    assert send(partners, {"text": "hi"}, user="999")["error"] == -213
    zalo.add_user("555", "Outside window", send_error=-230)
    assert send(partners, {"text": "hi"}, user="555")["error"] == -230
    assert zalo.state()["messages"] == []


def test_wrong_access_token_gets_216(partners, zalo):
    zalo.add_user(USER, "Minh")
    answer = send(partners, {"text": "hi"}, token="not-the-token")
    assert answer == {"error": -216, "message": "Access token is invalid"}


def test_expired_access_token_gets_216(partners, zalo):
    zalo.add_user(USER, "Minh")
    zalo.expire_access_token()
    assert send(partners, {"text": "hi"})["error"] == -216


def test_image_by_url_and_sticker_are_accepted_but_bad_media_is_not(partners, zalo):
    zalo.add_user(USER, "Minh")
    assert send(partners, media_message({"media_type": "image", "url": "https://x.example/a.jpg"}))["error"] == 0
    assert send(partners, media_message({"media_type": "sticker", "attachment_id": "bfe458bf"}))["error"] == 0
    assert send(partners, media_message({"media_type": "image", "attachment_id": "nope"}))["error"] == -201
    assert send(partners, media_message({"media_type": "video", "url": "https://x"}))["error"] == -201
    assert send(partners, {"attachment": {"type": "file", "payload": {"token": "unknown"}}})["error"] == -201


# -- uploads (docs/interface.md, Z10) --------------------------------------------------------


def test_png_upload_returns_an_attachment_id_usable_in_a_message(partners, zalo):
    zalo.add_user(USER, "Minh")
    png = png_bytes()
    answer = upload(partners, "image", "a.png", png, "image/png")
    assert answer["error"] == 0
    ident = answer["data"]["attachment_id"]
    assert zalo.upload(ident)["data"] == png
    assert requests.get(f"{partners.zalo_url}/_sim/uploads/{ident}").content == png
    assert (
        send(partners, {"text": "ảnh", **media_message({"media_type": "image", "attachment_id": ident})})["error"] == 0
    )


def test_image_limit_is_one_mebibyte(partners, zalo):
    assert upload(partners, "image", "max.png", png_bytes(MB), "image/png")["error"] == 0
    refused = upload(partners, "image", "big.png", png_bytes(MB + 1), "image/png")
    assert refused["error"] == -210 and "1MB" in refused["message"]
    assert len(zalo.state()["uploads"]) == 1


def test_uploads_check_the_type_by_magic_bytes(partners, zalo):
    assert upload(partners, "image", "fake.png", PDF, "image/png")["error"] == -201
    assert upload(partners, "gif", "a.gif", png_bytes(), "image/gif")["error"] == -201
    assert upload(partners, "file", "notes.txt", b"plain text", "text/plain")["error"] == -201
    assert upload(partners, "file", "report.docx", PDF, "application/pdf")["error"] == -201
    assert zalo.state()["uploads"] == []


def test_gif_needs_width_and_height(partners, zalo):
    zalo.add_user(USER, "Minh")
    ident = upload(partners, "gif", "a.gif", GIF_1X1, "image/gif")["data"]["attachment_id"]
    assert send(partners, media_message({"media_type": "gif", "attachment_id": ident}))["error"] == -201
    element = {"media_type": "gif", "attachment_id": ident, "width": 1, "height": 1}
    assert send(partners, media_message(element))["error"] == 0


def test_pdf_upload_returns_a_token_for_a_file_message(partners, zalo):
    zalo.add_user(USER, "Minh")
    answer = upload(partners, "file", "hoa-don.pdf", PDF, "application/pdf")
    token = answer["data"]["token"]
    assert "attachment_id" not in answer["data"]
    assert send(partners, {"attachment": {"type": "file", "payload": {"token": token}}})["error"] == 0
    zalo.expire_upload(token)
    assert send(partners, {"attachment": {"type": "file", "payload": {"token": token}}})["error"] == -100


def test_upload_needs_the_access_token_and_the_file_field(partners, zalo):
    assert upload(partners, "image", "a.png", png_bytes(), "image/png", token="bad")["error"] == -216
    answer = requests.post(
        partners.zalo_url + "/v2.0/oa/upload/image",
        headers={"access_token": TOKEN},
        files={"image": ("a.png", png_bytes(), "image/png")},
    ).json()
    assert answer["error"] == -201


# -- user and OA profile (docs/interface.md, Z11, Z12) ---------------------------------------


def test_user_detail_answers_the_profile(partners, zalo):
    zalo.add_user(USER, "Minh Khánh", "https://s120-ava-talk.zadn.vn/a/120/m.jpg")
    answer = user_detail(partners, USER)
    assert answer["error"] == 0
    data = answer["data"]
    assert data["user_id"] == USER and data["display_name"] == "Minh Khánh"
    assert data["avatar"] == "https://s120-ava-talk.zadn.vn/a/120/m.jpg"
    assert set(data["avatars"]) == {"120", "240"} and data["user_id_by_app"] != USER
    assert re.fullmatch(r"\d\d/\d\d/\d{4}", data["user_last_interaction_date"])


def test_user_detail_of_an_unknown_user_is_201(partners, zalo):
    assert user_detail(partners, "404") == {"error": -201, "message": "user_id is invalid"}
    garbled = requests.get(
        partners.zalo_url + "/v3.0/oa/user/detail", params={"data": "{"}, headers={"access_token": TOKEN}
    ).json()
    assert garbled["error"] == -201


def getoa(partners, token=TOKEN):
    return requests.get(partners.zalo_url + "/v2.0/oa/getoa", headers={"access_token": token})


def test_getoa_answers_the_oa_profile_with_its_follower_count(partners, zalo):
    zalo.add_user(USER, "Minh")
    zalo.add_user("7", "Lan", follower=False)
    answer = getoa(partners)
    assert answer.status_code == 200
    assert answer.json() == {
        "error": 0,
        "message": "Success",
        "data": {
            "oa_id": zalo.oa_id,
            "name": "Sandbox OA",
            "description": "Simulated Zalo Official Account",
            "oa_alias": "sandbox-oa",
            "is_verified": True,
            "oa_type": 2,
            "cate_name": "Sandbox",
            "num_follower": 1,
            "avatar": "https://s160-ava-talk.zadn.vn/sim/oa.jpg",
            "cover": "https://cover-talk.zadn.vn/sim/oa.jpg",
        },
    }


def test_getoa_needs_the_current_access_token(partners, zalo):
    assert getoa(partners, token="wrong").json() == {"error": -216, "message": "Access token is invalid"}
    fresh = refresh(partners, REFRESH)["access_token"]
    assert getoa(partners).json()["error"] == -216  # the refresh killed the old token
    assert getoa(partners, token=fresh).json()["error"] == 0
    zalo.expire_access_token()
    assert getoa(partners, token=fresh).json()["error"] == -216


def test_getoa_is_subject_to_faults(partners, zalo):
    zalo.faults.fail_next("getoa", 1, -32)
    zalo.faults.fail_next("getoa", 1, "http500")
    assert getoa(partners).json()["error"] == -32
    assert getoa(partners).status_code == 500
    assert getoa(partners).json()["error"] == 0
    zalo.faults.down_until("*", time.time() + 60)
    assert getoa(partners).status_code == 503
    assert zalo.faults.calls("getoa") == 4


# -- OAuth v4 (docs/interface.md, Z13, Z14) --------------------------------------------------


def test_refresh_rotates_the_pair_and_kills_the_old_tokens(partners, zalo):
    zalo.add_user(USER, "Minh")
    pair = refresh(partners, REFRESH)
    assert pair["expires_in"] == "90000" and pair["access_token"] != TOKEN and pair["refresh_token"] != REFRESH
    reused = refresh(partners, REFRESH)
    assert reused["error"] == -14014 and reused["error_name"] == "Invalid refresh token"
    assert send(partners, {"text": "old"})["error"] == -216
    assert send(partners, {"text": "new"}, token=pair["access_token"])["error"] == 0
    assert zalo.refresh_count == 1
    assert requests.get(partners.zalo_url + "/_sim/state").json()["refresh_count"] == 1


def test_refresh_needs_the_app_secret_and_app_id(partners, zalo):
    assert refresh(partners, REFRESH, secret="wrong")["error"] == -14004
    assert refresh(partners, REFRESH, app_id="123")["error"] == -14002
    assert zalo.refresh_count == 0
    assert refresh(partners, REFRESH)["access_token"]  # the refresh token survived the refusals


def test_revoked_refresh_token_is_refused(partners, zalo):
    zalo.revoke_refresh_token()
    assert refresh(partners, REFRESH)["error"] == -14014


def test_consent_redirect_gives_a_single_use_code_checked_against_pkce(partners, zalo):
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    resp = requests.get(
        partners.zalo_url + "/v4/oa/permission",
        allow_redirects=False,
        params={
            "app_id": zalo.app_id,
            "redirect_uri": "https://bridge.example/cb",
            "code_challenge": challenge,
            "state": "s1",
        },
    )
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["state"] == ["s1"] and query["oa_id"] == [zalo.oa_id]
    data = {"app_id": zalo.app_id, "grant_type": "authorization_code", "code": query["code"][0]}
    url, headers = partners.zalo_url + "/v4/oa/access_token", {"secret_key": SECRET}
    assert requests.post(url, data={**data, "code_verifier": "wrong"}, headers=headers).json()["error"] == -14005
    assert (
        requests.post(
            url, data={**data, "code": zalo.issue_auth_code(challenge), "code_verifier": verifier}, headers=headers
        ).json()["expires_in"]
        == "90000"
    )
    assert zalo.code_exchanges == 1 and zalo.refresh_count == 0


def test_auth_code_cannot_be_used_twice(partners, zalo):
    code = zalo.issue_auth_code()
    data = {"app_id": zalo.app_id, "grant_type": "authorization_code", "code": code}
    url, headers = partners.zalo_url + "/v4/oa/access_token", {"secret_key": SECRET}
    assert "access_token" in requests.post(url, data=data, headers=headers).json()
    assert requests.post(url, data=data, headers=headers).json()["error"] == -14005


# -- faults (faults.py) ----------------------------------------------------------------------


def test_fail_next_n_then_recover_and_count_calls(partners, zalo):
    zalo.add_user(USER, "Minh")
    zalo.faults.fail_next("message_cs", 2, "http500")
    url = partners.zalo_url + "/v3.0/oa/message/cs"
    body = {"recipient": {"user_id": USER}, "message": {"text": "x"}}
    codes = [requests.post(url, json=body, headers={"access_token": TOKEN}).status_code for _ in range(3)]
    assert codes == [500, 500, 200]
    assert zalo.faults.calls("message_cs") == 3 and len(zalo.messages_to(USER)) == 1


def test_http429_carries_retry_after(partners, zalo):
    zalo.faults.fail_next("user_detail", 1, "http429", retry_after=7)
    resp = requests.get(partners.zalo_url + "/v3.0/oa/user/detail", headers={"access_token": TOKEN})
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "7"


def test_zalo_codes_come_as_http_200(partners, zalo):
    zalo.add_user(USER, "Minh")
    for code in (-32, -213, -216, -230, -320):
        zalo.faults.fail_next("message_cs", 1, code)
        answer = send(partners, {"text": "x"})
        assert answer["error"] == code and answer["message"]
    assert zalo.messages_to(USER) == []


def test_random_fraction_is_seeded_and_repeatable(partners, zalo):
    def run() -> list[int]:
        zalo.faults.clear()
        zalo.faults.fail_fraction("cdn", 0.5, ["http500", "http503"], seed=42)
        return [requests.get(partners.zalo_url + "/cdn/x").status_code for _ in range(60)]

    zalo.add_media("x", b"ok", "text/plain")
    first = run()
    assert first == run()
    assert 15 <= first.count(200) <= 45 and {500, 503} <= set(first)


def test_down_until_answers_503_until_then(partners, zalo):
    zalo.add_media("x", b"ok", "text/plain")
    zalo.faults.down_until("*", time.time() + 0.4)
    assert requests.get(partners.zalo_url + "/cdn/x").status_code == 503
    time.sleep(0.5)
    assert requests.get(partners.zalo_url + "/cdn/x").content == b"ok"


def test_timeout_sleeps_past_the_client_timeout(partners, zalo):
    zalo.faults.fail_next("user_detail", 1, "timeout", seconds=1.0)
    with pytest.raises(requests.Timeout):
        requests.get(partners.zalo_url + "/v3.0/oa/user/detail", headers={"access_token": TOKEN}, timeout=0.3)


def test_slow_call_is_processed_although_the_client_gave_up(partners, zalo):
    zalo.add_user(USER, "Minh")
    zalo.faults.fail_next("message_cs", 1, "slow", seconds=0.6)
    with pytest.raises(requests.Timeout):
        requests.post(
            partners.zalo_url + "/v3.0/oa/message/cs",
            timeout=0.2,
            headers={"access_token": TOKEN},
            json={"recipient": {"user_id": USER}, "message": {"text": "late"}},
        )
    wait_until(lambda: zalo.messages_to(USER), timeout=10, what="the slow call carried out")  # not a fixed 0.6 s
    assert [m["message"]["text"] for m in zalo.messages_to(USER)] == ["late"]


def test_latency_applies_to_every_call(partners, zalo):
    zalo.add_media("x", b"ok", "text/plain")
    zalo.faults.latency("*", 150)
    started = time.monotonic()
    requests.get(partners.zalo_url + "/cdn/x")
    requests.get(partners.zalo_url + "/cdn/x")
    assert time.monotonic() - started >= 0.3


def test_faults_are_configurable_over_http(partners, zalo):
    zalo.add_user(USER, "Minh")
    url = partners.zalo_url + "/_sim/faults"
    assert requests.post(url, json={"rules": [{"endpoint": "message_cs", "next": 5, "outcome": "-230"}]}).ok
    assert send(partners, {"text": "x"})["error"] == -230
    assert requests.get(url).json()["calls"]["message_cs"] == 1
    assert requests.delete(url).json()["rules"] == []
    assert send(partners, {"text": "x"})["error"] == 0
    assert requests.post(url, json={"endpoint": "x", "next": 1, "outcome": "explode"}).status_code == 400
    assert requests.post(url, json={"endpoint": "x", "nxet": 1}).status_code == 400


# -- webhooks to the bridge (docs/interface.md, Z4-Z7) ---------------------------------------


def test_user_event_is_signed_and_duplicates_are_identical(zalo, receiver):
    sent = zalo.send_text(receiver.url, USER, "Xin chào 👋", duplicates=3)
    assert sent.statuses == [200, 200, 200] and len(receiver.requests) == 3
    assert {r.raw for r in receiver.requests} == {sent.raw}
    first = receiver.requests[0]
    assert verify_signature(
        first.headers["x-zevent-signature"],
        app_id=zalo.app_id,
        raw_body=first.raw,
        timestamp=sent["timestamp"],
        oa_secret_key=zalo.oa_secret_key,
    )
    assert not verify_signature(
        first.headers["x-zevent-signature"],
        app_id=zalo.app_id,
        raw_body=first.raw,
        timestamp=sent["timestamp"],
        oa_secret_key="another-key",
    )
    assert [r.headers.get("num-retry") for r in receiver.requests] == [None, "1", "2"]


def test_sign_gives_the_bytes_and_headers_deliver_posts(zalo, receiver):
    event = {
        "app_id": zalo.app_id,
        "event_name": "user_send_text",
        "timestamp": "1700000000000",
        "sender": {"id": USER},
        "message": {"text": "Xin chào", "msg_id": "m1"},
    }
    raw, headers = zalo.sign(event)
    assert raw == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()  # UTF-8, compact
    assert set(headers) == {"Content-Type", "X-ZEvent-Signature"}
    assert verify_signature(
        headers["X-ZEvent-Signature"],
        app_id=zalo.app_id,
        raw_body=raw,
        timestamp="1700000000000",
        oa_secret_key=zalo.oa_secret_key,
    )
    zalo.deliver(receiver.url, event)
    assert receiver.requests[0].raw == raw
    assert receiver.requests[0].headers["x-zevent-signature"] == headers["X-ZEvent-Signature"]


def test_sign_leaves_the_console_probe_unsigned(zalo):
    assert zalo.sign({"app_id": zalo.app_id, "oa_id": zalo.oa_id})[1] == {"Content-Type": "application/json"}


def test_user_event_envelope_matches_zalo(zalo, receiver):
    sent = zalo.send_user_event(
        receiver.url,
        "user_send_text",
        USER,
        zalo_sim.text_message("hi"),
        timestamp_ms=1700000000000,
        msg_id="96d3cdf3af150460909",
    )
    event = json.loads(receiver.requests[0].raw)
    assert list(event) == ["app_id", "sender", "user_id_by_app", "recipient", "event_name", "message", "timestamp"]
    assert event == sent and event["timestamp"] == "1700000000000"
    assert event["sender"] == {"id": USER} and event["recipient"] == {"id": zalo.oa_id}
    assert event["message"] == {"text": "hi", "msg_id": "96d3cdf3af150460909"}
    assert zalo.state()["users"][0]["user_id"] == USER  # a user who writes exists


def test_image_event_points_at_the_cdn(partners, zalo, receiver):
    png = png_bytes()
    sent = zalo.send_image(receiver.url, USER, "p1.png", png, "image/png", caption="Ảnh lỗi")
    assert sent["event_name"] == "user_send_image" and sent["message"]["text"] == "Ảnh lỗi"
    url = sent["message"]["attachments"][0]["payload"]["url"]
    assert url == partners.zalo_url + "/cdn/p1.png"
    fetched = requests.get(url)
    assert fetched.content == png and fetched.headers["Content-Type"] == "image/png"


def test_file_event_carries_name_size_and_checksum(zalo, receiver):
    sent = zalo.send_file(receiver.url, USER, "Báo giá.pdf", PDF)
    payload = sent["message"]["attachments"][0]["payload"]
    assert payload["name"] == "Báo giá.pdf" and payload["size"] == str(len(PDF)) and payload["type"] == "pdf"
    assert payload["checksum"] == hashlib.md5(PDF).hexdigest()


def test_oa_echo_of_a_sent_message_and_of_a_console_message(partners, zalo, receiver):
    zalo.add_user(USER, "Minh")
    message_id = send(partners, {"text": "từ bridge"})["data"]["message_id"]
    echo = zalo.send_oa_echo(receiver.url)
    assert echo["event_name"] == "oa_send_text" and echo["message"] == {"text": "từ bridge", "msg_id": message_id}
    assert echo["sender"] == {"id": zalo.oa_id} and echo["recipient"] == {"id": USER}
    console = zalo.send_admin_message(receiver.url, USER, "gõ trong console", admin_id="42")
    assert console["sender"] == {"id": zalo.oa_id, "admin_id": "42"}
    assert console["message"]["msg_id"] not in {m["message_id"] for m in zalo.messages_to(USER)}


def test_auto_echo_follows_every_accepted_send(partners, zalo, receiver):
    zalo.add_user(USER, "Minh")
    zalo.echo_url = receiver.url
    message_id = send(partners, {"text": "echo me"})["data"]["message_id"]
    deadline = time.monotonic() + 10  # returns as soon as it is there
    while not receiver.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert json.loads(receiver.requests[0].raw)["message"]["msg_id"] == message_id


def test_follow_seen_and_probe_events(partners, zalo, receiver):
    zalo.add_user(USER, "Minh")
    message_id = send(partners, {"text": "x"})["data"]["message_id"]
    follow = zalo.send_follow(receiver.url, USER)
    assert follow["follower"] == {"id": USER} and follow["oa_id"] == zalo.oa_id and "sender" not in follow
    seen = zalo.send_seen(receiver.url, USER)
    assert seen["event_name"] == "user_seen_message" and seen["message"] == {"msg_ids": [message_id]}
    assert seen["sender"] == {"id": zalo.oa_id}
    zalo.send_probe(receiver.url)
    assert "x-zevent-signature" not in receiver.requests[-1].headers
    assert "timestamp" not in json.loads(receiver.requests[-1].raw)


def test_delivery_records_the_bridge_answers(zalo, receiver):
    receiver.status = 503
    first = zalo.send_text(receiver.url, USER, "x")
    assert first.statuses == [503] and first["statuses"] == [503] and "statuses" not in first
    receiver.status = 200
    again = zalo.deliver(receiver.url, first["event"])  # a redelivery sends the same bytes
    assert again["statuses"] == [200] and receiver.requests[1].raw == first.raw
    assert zalo.send_text("http://127.0.0.1:9/nowhere", USER, "x").statuses == [None]
    assert [w["statuses"] for w in zalo.state()["webhooks"]] == [[503], [200], [None]]


def test_http_actions_drive_the_simulator(partners, zalo, receiver):
    url = partners.zalo_url + "/_sim/actions/"
    assert requests.post(url + "add_user", json={"user_id": "7", "display_name": "Lan"}).ok
    answer = requests.post(url + "text", json={"bridge_url": receiver.url, "user_id": "7", "text": "hi"}).json()
    assert answer["statuses"] == [200] and answer["event"]["message"]["text"] == "hi"
    assert requests.post(url + "explode", json={}).status_code == 404


def test_state_shows_tokens_uploads_and_users(partners, zalo):
    zalo.add_user(USER, "Minh")
    upload(partners, "image", "a.png", png_bytes(), "image/png")
    state = requests.get(partners.zalo_url + "/_sim/state").json()
    assert state["tokens"]["access_token"] == TOKEN and state["tokens"]["access_valid"] is True
    assert state["uploads"][0]["kind"] == "image" and "data" not in state["uploads"][0]
    assert [u["display_name"] for u in state["users"]] == ["Minh"]
    assert requests.post(partners.zalo_url + "/_sim/reset").ok and zalo.state()["users"] == []


# -- reply windows, quota and the movable clock ---------------------------------------------


def advance(partners, seconds):
    resp = requests.post(partners.zalo_url + "/_sim/clock", json={"advance_seconds": seconds})
    assert resp.status_code == 200
    return resp.json()


def test_answers_carry_the_reply_quota_inside_48_hours_none_after_and_minus_230_after_7_days(partners, zalo):
    zalo.add_user(USER, "Minh")
    assert send(partners, {"text": "free"})["data"]["quota"] == {"quota_type": "reply"}
    assert advance(partners, 49 * 3600)["offset_seconds"] == 49 * 3600
    assert send(partners, {"text": "x"})["error"] == -216  # 25 h passed for the token too
    pair = refresh(partners, REFRESH)
    billed = send(partners, {"text": "billed"}, token=pair["access_token"])
    assert billed["error"] == 0 and "quota" not in billed["data"]
    advance(partners, 5 * 86400)
    token = refresh(partners, pair["refresh_token"])["access_token"]
    assert send(partners, {"text": "too late"}, token=token)["error"] == -230
    assert [m["message"]["text"] for m in zalo.messages_to(USER)] == ["free", "billed"]


def test_a_reply_names_the_users_message_and_events_follow_the_moved_clock(partners, zalo, receiver):
    advance(partners, -47 * 3600)
    sent = zalo.send_text(receiver.url, USER, "hỏi giá")
    assert abs(int(sent["timestamp"]) / 1000 - (time.time() - 47 * 3600)) < 5
    advance(partners, 47 * 3600)
    body = {"recipient": {"message_id": sent["message"]["msg_id"]}, "message": {"text": "dạ"}}
    answer = requests.post(partners.zalo_url + "/v3.0/oa/message/cs", json=body, headers={"access_token": TOKEN})
    assert answer.json()["data"]["user_id"] == USER and answer.json()["data"]["quota"] == {"quota_type": "reply"}
    body["recipient"] = {"message_id": "0" * 20}
    unknown = requests.post(partners.zalo_url + "/v3.0/oa/message/cs", json=body, headers={"access_token": TOKEN})
    assert unknown.json()["error"] == -201


def test_received_and_reaction_events(partners, zalo, receiver):
    zalo.add_user(USER, "Minh")
    message_id = send(partners, {"text": "x"})["data"]["message_id"]
    received = zalo.send_received(receiver.url, USER)
    assert received["event_name"] == "user_received_message" and received["message"] == {"msg_id": message_id}
    assert received["sender"] == {"id": zalo.oa_id} and received["recipient"] == {"id": USER}
    reacted = zalo.send_reaction(receiver.url, USER, message_id, "/-strong")
    assert reacted["sender"] == {"id": USER} and reacted["message"] == {"msg_id": message_id, "react_icon": "/-strong"}
    assert zalo.phone()["reactions"] == [{"user_id": USER, "msg_id": message_id, "react_icon": "/-strong"}]


# -- history reads (listrecentchat, conversation) -------------------------------------------


def history(partners, path, token=TOKEN, **query):
    resp = requests.get(
        f"{partners.zalo_url}/v2.0/oa/{path}", params={"data": json.dumps(query)}, headers={"access_token": token}
    )
    return resp.json()


def test_conversation_pages_ten_at_a_time_newest_first_both_directions(partners, zalo, receiver):
    zalo.add_user(USER, "Minh Khánh")
    for i in range(12):
        zalo.send_text(receiver.url, USER, f"tin {i}", timestamp_ms=1764650000000 + i * 1000)
    send(partners, {"text": "Dạ shop đây ạ"})
    first = history(partners, "conversation", user_id=USER, offset=0, count=10)
    rest = history(partners, "conversation", user_id=USER, offset=10, count=10)
    past = history(partners, "conversation", user_id=USER, offset=20, count=10)
    assert first["error"] == 0 and len(first["data"]) == 10 and len(rest["data"]) == 3 and past["data"] == []
    items = first["data"] + rest["data"]
    assert items[0]["src"] == 0 and items[0]["message"] == "Dạ shop đây ạ"
    assert [i["message"] for i in items[1:]] == [f"tin {i}" for i in reversed(range(12))]
    shape = set(load_fixture("zalo", "answers", "conversation.json")["data"][0])
    assert all(set(i) == shape for i in items)
    oldest = items[-1]
    assert oldest["from_id"] == USER and oldest["to_id"] == zalo.oa_id and oldest["time"] == 1764650000000
    assert oldest["sent_time"] == "11:33:20 02/12/2025" and oldest["from_display_name"] == "Minh Khánh"


def test_history_message_ids_are_the_webhooks_msg_ids_even_when_webhooks_are_off(partners, zalo, receiver):
    zalo.set_webhooks(False)
    dropped = zalo.send_text(receiver.url, USER, "không ai nhận")
    assert dropped.statuses == [] and receiver.requests == []
    (item,) = history(partners, "conversation", user_id=USER, offset=0, count=10)["data"]
    assert item["message_id"] == dropped["message"]["msg_id"] and item["time"] == int(dropped["timestamp"])
    late = zalo.redeliver(receiver.url, item["message_id"])
    assert late.statuses == [200] and json.loads(receiver.requests[0].raw) == dict(dropped)


def test_recent_chats_lists_each_chat_once_by_latest_activity(partners, zalo, receiver):
    for n, user in enumerate(["111", "222", "333"]):
        zalo.send_text(receiver.url, user, f"hello {n}", timestamp_ms=1764650000000 + n * 1000)
    zalo.send_text(receiver.url, "111", "again", timestamp_ms=1764650009000)
    zalo.send_admin_message(receiver.url, "222", "from the console")
    rows = history(partners, "listrecentchat", offset=0, count=10)["data"]
    assert [(r["src"], r["message"]) for r in rows] == [(0, "from the console"), (1, "again"), (1, "hello 2")]
    assert rows[0]["from_id"] == zalo.oa_id and rows[0]["to_id"] == "222"
    assert [r["message"] for r in history(partners, "listrecentchat", offset=1, count=1)["data"]] == ["again"]


def test_history_shows_media_as_zalo_does(partners, zalo, receiver):
    zalo.send_image(receiver.url, USER, "a.png", png_bytes(), "image/png")
    zalo.send_user_event(receiver.url, "user_send_location", USER, zalo_sim.location_message("10.7", "106.7"))
    location, photo = history(partners, "conversation", user_id=USER, offset=0, count=10)["data"]
    assert photo["type"] == "photo" and photo["url"] == zalo.media_url("a.png") and photo["message"] == ""
    assert location["type"] == "location" and json.loads(location["location"]) == {
        "latitude": "10.7",
        "longitude": "106.7",
    }


@pytest.mark.parametrize("query", [{"offset": 0, "count": 11}, {"offset": -1, "count": 10}, {"count": 0}])
def test_a_page_zalo_does_not_serve_is_refused(partners, zalo, query):
    assert history(partners, "conversation", user_id=USER, **query)["error"] == -201


def test_history_needs_a_valid_token(partners, zalo):
    assert history(partners, "listrecentchat", token="stale", offset=0, count=10)["error"] == -216
