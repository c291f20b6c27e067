"""POST /webhooks/freshchat: RSA signature (both key labels), filtering, dedupe, status codes."""

from __future__ import annotations

import json

import pytest
import requests_mock

from app.bridge.keys import DUE
from app.bridge.keys import lane as lane_key
from sandbox.helpers import FC_PUBLIC_PEM, fc_headers, load_fixture, make_settings, post_freshchat

CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"


@pytest.fixture(autouse=True)
def no_partner_calls():
    with requests_mock.Mocker() as m:
        yield m
        assert m.call_count == 0


def queued(redis) -> list[str]:
    return [json.loads(raw)["id"] for raw in redis.lrange(lane_key(f"out:{CONV}"), 0, -1)]


def fixture(name: str) -> dict:
    return load_fixture("freshchat", "webhooks", f"{name}.json")


def test_agent_message_is_queued_once_per_message_id(client, redis):
    answers = [post_freshchat(client, fixture("message_create__agent_text")).get_json() for _ in range(3)]
    assert [a["duplicate"] for a in answers] == [False, True, True]
    assert queued(redis) == ["freshchat:a834cd45-0000-4000-8000-000000000001"]


@pytest.mark.parametrize(
    "name",
    [
        "message_create__legacy_msg_parts",
        "message_create__bot_text",
        "message_create__bot_quick_replies",
        "message_create__agent_file_without_url",
        "conversation_resolution",
        "conversation_reopen",
        "conversation_assignment",
    ],
)
def test_relayed_kinds_are_queued(client, redis, name):
    assert post_freshchat(client, fixture(name)).get_json()["ok"] is True
    assert len(queued(redis)) == 1


@pytest.mark.parametrize(
    "name,why",
    [("message_create__private_note", "private note"), ("message_create__user_actor", "actor user is not relayed")],
)
def test_private_notes_and_user_posts_are_not_relayed(client, redis, name, why):
    resp = post_freshchat(client, fixture(name))
    assert resp.status_code == 200 and resp.get_json()["ignored"] == why
    assert redis.zcard(DUE) == 0


def test_system_message_in_an_agents_name_is_not_relayed(client, redis):
    resp = post_freshchat(client, fixture("message_create__agent_system_reopened"))
    assert resp.status_code == 200 and resp.get_json()["ignored"] == "system message"
    assert redis.zcard(DUE) == 0


def test_unknown_message_type_is_not_relayed(client, redis):
    event = fixture("message_create__agent_text")
    event["data"]["message"]["message_type"] = "csat"
    assert post_freshchat(client, event).get_json()["ignored"] == "message_type csat is not relayed"
    assert redis.zcard(DUE) == 0


def test_bots_private_note_flag_is_not_relayed(client, redis):
    event = fixture("message_create__bot_text")
    event["data"]["message"]["botsPrivateNote"] = True
    assert post_freshchat(client, event).get_json()["ignored"] == "private note"


def test_a_dropped_message_and_an_unknown_action_are_both_acknowledged(client, redis, caplog):
    """Neither is retried by FreshChat; only the unknown action is worth a warning, with its name."""
    caplog.set_level("DEBUG", logger="webhooks")
    dropped = post_freshchat(client, fixture("message_create__private_note"))
    unknown = post_freshchat(
        client,
        {
            "action": "conversation_teleport",
            "actor": {"actor_type": "agent"},
            "action_time": "2026-01-01T00:00:00.000Z",
            "data": {},
        },
    )
    assert dropped.status_code == unknown.status_code == 200
    assert dropped.get_json() == {"ok": True, "ignored": "private note"}
    assert unknown.get_json() == {"ok": True, "ignored": "unknown event conversation_teleport"}
    logged = [
        (r.levelname, r.getMessage(), r.event_name)
        for r in caplog.records
        if r.name == "webhooks" and r.getMessage() in ("webhook.ignored", "webhook.unknown_event")
    ]
    assert logged == [
        ("INFO", "webhook.ignored", "message_create"),
        ("WARNING", "webhook.unknown_event", "conversation_teleport"),
    ]
    assert redis.zcard(DUE) == 0


@pytest.mark.parametrize(
    "name,kind", [("message_create__agent_text", "agent_message"), ("conversation_resolution", "conversation_state")]
)
def test_the_queued_item_carries_its_event_kind(client, redis, name, kind):
    post_freshchat(client, fixture(name))
    assert [json.loads(raw)["event"] for raw in redis.lrange(lane_key(f"out:{CONV}"), 0, -1)] == [kind]


@pytest.mark.parametrize("header", [None, "", "bm90IGEgc2lnbmF0dXJl", "%%%"])
def test_bad_or_missing_signature_is_401(client, redis, header):
    raw = json.dumps(fixture("message_create__agent_text")).encode()
    headers = {"X-Freshchat-Signature": header} if header is not None else {}
    resp = client.post("/webhooks/freshchat", data=raw, headers=headers)
    assert resp.status_code == 401 and resp.get_json() == {"error": "invalid or missing X-Freshchat-Signature"}
    assert redis.zcard(DUE) == 0


def test_signature_of_a_different_body_is_401(client):
    raw = json.dumps(fixture("message_create__agent_text")).encode()
    resp = client.post("/webhooks/freshchat", data=raw + b" ", headers=fc_headers(raw))
    assert resp.status_code == 401


@pytest.mark.parametrize("body", [b"nope", b"[]", b"12"])
def test_signed_body_that_is_not_an_object_is_400(client, body):
    assert client.post("/webhooks/freshchat", data=body, headers=fc_headers(body)).status_code == 400


def test_signed_message_without_ids_is_400(client):
    event = fixture("message_create__agent_text")
    del event["data"]["message"]["conversation_id"]
    assert post_freshchat(client, event).status_code == 400


def test_body_over_one_mib_is_413(client):
    raw = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert client.post("/webhooks/freshchat", data=raw, headers=fc_headers(raw)).status_code == 413


def test_redis_down_is_503(client, redis_server):
    redis_server.stop()
    try:
        assert post_freshchat(client, fixture("message_create__agent_text")).status_code == 503
    finally:
        redis_server.start()


@pytest.mark.parametrize("variant", ["rsa_label", "one_line_escaped"])
def test_freshchat_key_formats_are_accepted(redis, redis_server, tmp_path, variant):
    from app import create_app

    body = "".join(FC_PUBLIC_PEM.strip().splitlines()[1:-1])
    key = {
        "rsa_label": f"-----BEGIN RSA PUBLIC KEY-----\n{body}\n-----END RSA PUBLIC KEY-----",
        "one_line_escaped": FC_PUBLIC_PEM.replace("\n", "\\n"),
    }[variant]
    app = create_app(make_settings(redis_server.url, media_dir=str(tmp_path), freshchat_webhook_public_key=key))
    assert post_freshchat(app.test_client(), fixture("message_create__agent_text")).status_code == 200


@pytest.mark.parametrize("inner", ["resolved", ["x"], {"conversation": "c-1"}, {"conversation": 7}])
def test_a_signed_state_event_of_an_odd_shape_is_a_400_not_a_500(client, redis, inner):
    event = load_fixture("freshchat", "webhooks", "conversation_resolution.json")
    event["data"]["resolve"] = inner
    resp = post_freshchat(client, event)
    assert resp.status_code == 400 and redis.zcard(DUE) == 0
