"""POST /webhooks/zalo: every status code of docs/interface.md §3.1, dedupe, and no partner calls."""

from __future__ import annotations

import json

import pytest
import requests_mock

from app.bridge.keys import DUE
from app.bridge.keys import lane as lane_key
from sandbox.helpers import load_fixture, post_zalo, zalo_body, zalo_headers

USER = "246845883529197922"
VECTOR_BODY = (
    b'{"app_id":"360846524940903967","sender":{"id":"246845883529197922"},"user_id_by_app":'
    b'"552177279717587730","recipient":{"id":"388613280878808645"},"event_name":"user_send_text",'
    b'"message":{"text":"message","msg_id":"96d3cdf3af150460909"},"timestamp":"1543908534740"}'
)
VECTOR_MAC = "mac=f2861c40729dd9398cea27acbb30d6bf4869c7a57b9038202a9d0f44a80fe214"


@pytest.fixture(autouse=True)
def no_partner_calls():
    """A webhook request must never call Zalo or FreshChat: any HTTP call fails the test."""
    with requests_mock.Mocker() as m:
        yield m
        assert m.call_count == 0


def queued(redis, user=USER) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(lane_key(f"in:{user}"), 0, -1)]


def test_reference_test_vector_is_accepted(client, redis):
    resp = client.post(
        "/webhooks/zalo",
        data=VECTOR_BODY,
        headers={"X-ZEvent-Signature": VECTOR_MAC, "Content-Type": "application/json"},
    )
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}
    assert [i["id"] for i in queued(redis)] == ["zalo:96d3cdf3af150460909"]
    assert redis.zscore(DUE, f"in:{USER}") is not None


def test_bare_digest_without_mac_prefix_is_accepted(client, redis):
    resp = client.post("/webhooks/zalo", data=VECTOR_BODY, headers={"X-ZEvent-Signature": VECTOR_MAC[4:]})
    assert resp.status_code == 200


@pytest.mark.parametrize("header", [None, "", "mac=" + "0" * 64, VECTOR_MAC.upper()[:-1] + "0"])
def test_bad_or_missing_signature_is_401(client, redis, header):
    headers = {"X-ZEvent-Signature": header} if header is not None else {}
    resp = client.post("/webhooks/zalo", data=VECTOR_BODY, headers=headers)
    assert resp.status_code == 401
    assert resp.get_json() == {"error": "invalid or missing X-ZEvent-Signature"}
    assert queued(redis) == []


def test_signature_over_a_modified_body_is_401(client, redis):
    tampered = VECTOR_BODY.replace(b'"text":"message"', b'"text":"messagE"')
    assert tampered != VECTOR_BODY
    resp = client.post("/webhooks/zalo", data=tampered, headers={"X-ZEvent-Signature": VECTOR_MAC})
    assert resp.status_code == 401 and queued(redis) == []


def test_signature_made_with_another_secret_is_401(client, redis):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    raw = zalo_body(event)
    resp = client.post("/webhooks/zalo", data=raw, headers=zalo_headers(raw, event, secret="other"))
    assert resp.status_code == 401


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_body_not_a_json_object_is_400(client, body):
    resp = client.post("/webhooks/zalo", data=body, headers={"X-ZEvent-Signature": VECTOR_MAC})
    assert resp.status_code == 400 and "error" in resp.get_json()


def test_signed_but_invalid_event_is_400(client, redis):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    del event["message"]["msg_id"]
    resp = post_zalo(client, event)
    assert resp.status_code == 400 and "msg_id" in resp.get_json()["error"]
    assert queued(redis) == []


def test_body_over_one_mib_is_413(client, redis):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["message"]["text"] = "x" * (1024 * 1024)
    resp = post_zalo(client, event)
    assert resp.status_code == 413 and queued(redis) == []


def sized_event(size: int) -> dict:
    """A valid text event whose serialised body is exactly `size` bytes."""
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["message"]["text"] = ""
    event["message"]["text"] = "x" * (size - len(zalo_body(event)))
    assert len(zalo_body(event)) == size
    return event


def test_the_limit_is_one_mebibyte_exactly(client, redis):
    """1 MiB is 1 048 576 bytes: a body of 1 000 001 bytes is still accepted."""
    assert post_zalo(client, sized_event(1_000_001)).status_code == 200
    assert post_zalo(client, sized_event(1024 * 1024)).status_code == 200
    assert post_zalo(client, sized_event(1024 * 1024 + 1)).status_code == 413


def test_unsigned_console_probe_without_timestamp_is_200_and_dropped(client, redis):
    resp = client.post("/webhooks/zalo", json={"app_id": "360846524940903967", "event_name": "test"})
    assert resp.status_code == 200 and resp.get_json()["ignored"] == "probe without timestamp"
    assert redis.zcard(DUE) == 0


def test_same_event_three_times_is_queued_once(client, redis):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    answers = [post_zalo(client, event).get_json() for _ in range(3)]
    assert [a["duplicate"] for a in answers] == [False, True, True]
    assert len(queued(redis)) == 1


@pytest.mark.parametrize(
    "name",
    ["user_seen_message", "user_received_message", "user_reacted_message", "user_recieved_message__deskie"],
)
def test_receipts_and_reactions_join_the_users_lane_next_to_the_echo_of_the_same_message(client, redis, name):
    """They name the OA's message id, as its echo does: neither may pass for a duplicate."""
    echo = post_zalo(client, load_fixture("zalo", "webhooks", "oa_send_text__api_echo.json"))
    resp = post_zalo(client, load_fixture("zalo", "webhooks", f"{name}.json"))
    assert echo.get_json()["duplicate"] is False and resp.get_json() == {"ok": True, "duplicate": False}
    assert [i["event"] for i in queued(redis)] == ["oa_message", "reaction" if "react" in name else "receipt"]


@pytest.mark.parametrize(
    "name,kind",
    [
        ("follow", "follow"),
        ("unfollow", "follow"),
        ("user_submit_info", "shared_info"),
        ("user_submit_info__full_address", "shared_info"),
    ],
)
def test_a_persons_own_events_join_their_lane(client, redis, name, kind):
    resp = post_zalo(client, load_fixture("zalo", "webhooks", f"{name}.json"))
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}
    assert [i["event"] for i in queued(redis)] == [kind]


def test_a_shared_form_with_junk_inside_is_still_accepted(client, redis):
    """What the person shared is read by the worker, field by field: nothing in it is a 400."""
    event = {**load_fixture("zalo", "webhooks", "user_submit_info.json"), "info": ["not", "a", "form"]}
    assert post_zalo(client, event).get_json() == {"ok": True, "duplicate": False}
    assert [i["event"] for i in queued(redis)] == ["shared_info"]


@pytest.mark.parametrize(
    "name,msg_id",
    [("oa_send_text__api_echo", "41b2c3d4e5f6a7b8c9d0"), ("oa_send_text__other_tool", "51b2c3d4e5f6a7b8c9d0")],
)
def test_oa_sends_without_an_admin_are_queued_for_the_worker_to_match(client, redis, name, msg_id):
    """Only the worker's send records tell our echoes from another tool's messages."""
    resp = post_zalo(client, load_fixture("zalo", "webhooks", f"{name}.json"))
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}
    assert [i["id"] for i in queued(redis)] == [f"zalo:{msg_id}"]
    assert redis.zscore(DUE, f"in:{USER}") is not None


def test_an_echo_of_a_recorded_send_is_dropped_at_the_webhook(client, redis):
    from app.bridge.mapping import Mapping

    event = load_fixture("zalo", "webhooks", "oa_send_text__api_echo.json")
    Mapping(redis).remember_sent(event["message"]["msg_id"], text="Dạ, em kiểm tra ngay ạ")
    resp = post_zalo(client, event)
    assert resp.get_json() == {"ok": True, "ignored": "echo of a message this bridge sent"}
    assert queued(redis) == []


def webhook_logs(caplog) -> list[tuple[str, str, str]]:
    return [
        (r.levelname, r.getMessage(), r.event_name)
        for r in caplog.records
        if r.name == "webhooks" and r.getMessage() in ("webhook.recorded", "webhook.unknown_event")
    ]


def test_a_known_ignored_event_and_an_unknown_one_are_both_acknowledged(client, redis, caplog):
    """Neither is retried by Zalo; only the unknown one is worth a warning, with its name."""
    caplog.set_level("DEBUG", logger="webhooks")
    new = {"app_id": "360846524940903967", "event_name": "user_did_a_new_thing", "timestamp": "1543908534740"}
    chatnow = {**load_fixture("zalo", "webhooks", "follow.json"), "event_name": "user_click_chatnow"}
    known = post_zalo(client, chatnow)
    unknown = post_zalo(client, new)
    assert known.status_code == unknown.status_code == 200
    assert known.get_json() == {"ok": True, "recorded": "user_click_chatnow"}
    assert unknown.get_json() == {"ok": True, "ignored": "unknown event user_did_a_new_thing"}
    assert webhook_logs(caplog) == [
        ("INFO", "webhook.recorded", "user_click_chatnow"),
        ("WARNING", "webhook.unknown_event", "user_did_a_new_thing"),
    ]
    assert redis.zcard(DUE) == 0


@pytest.mark.parametrize(
    "name,kind", [("user_send_text", "user_message"), ("oa_send_text__console_admin", "oa_message")]
)
def test_the_queued_item_carries_its_event_kind(client, redis, name, kind):
    post_zalo(client, load_fixture("zalo", "webhooks", f"{name}.json"))
    assert [i["event"] for i in queued(redis)] == [kind]


def test_console_message_is_queued_on_the_users_lane(client, redis):
    resp = post_zalo(client, load_fixture("zalo", "webhooks", "oa_send_text__console_admin.json"))
    assert resp.status_code == 200
    assert [i["id"] for i in queued(redis)] == ["zalo:31b2c3d4e5f6a7b8c9d0"]


def test_redis_down_is_503_then_the_redelivery_is_queued_once(client, redis, redis_server):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    redis_server.stop()
    try:
        resp = post_zalo(client, event)
        assert resp.status_code == 503 and resp.get_json() == {"error": "queue unavailable, retry later"}
    finally:
        redis_server.start()
    assert post_zalo(client, event).get_json() == {"ok": True, "duplicate": False}
    assert post_zalo(client, event).get_json()["duplicate"] is True
    assert len(queued(redis)) == 1


def test_answers_never_echo_secrets(client):
    resp = client.post("/webhooks/zalo", data=VECTOR_BODY, headers={"X-ZEvent-Signature": "mac=bad"})
    assert b"oa-secret-key-example" not in resp.data and b"360846524940903967" not in resp.data


def test_an_anonymous_visitors_message_is_queued_on_its_own_lane(client, redis):
    resp = post_zalo(client, load_fixture("zalo", "webhooks", "anonymous_send_text.json"))
    assert resp.get_json() == {"ok": True, "duplicate": False}
    [item] = queued(redis, user="anon:2a8f6c1d9e3b47f5a0c2")
    assert (item["id"], item["event"]) == ("zalo:aa11c3d4e5f6a7b8c9d0", "user_message")
    assert queued(redis) == []


def test_the_echo_of_an_answer_to_a_visitor_is_dropped_at_the_webhook(client, redis):
    from app.bridge.mapping import Mapping

    Mapping(redis).remember_sent("aa55c3d4e5f6a7b8c9d0", text="Dạ còn size M ạ.")
    resp = post_zalo(client, load_fixture("zalo", "webhooks", "oa_send_anonymous_text.json"))
    assert resp.get_json() == {"ok": True, "ignored": "echo of a message this bridge sent"}
