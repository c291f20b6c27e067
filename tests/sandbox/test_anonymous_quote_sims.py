"""The simulators' anonymous visitors, quotes and agents, over real HTTP."""

from __future__ import annotations

import json

import requests

from sandbox.procs import wait_until
from tests.sandbox import fc, partners, receiver, receiver_server, zalo  # noqa: F401

USER = "246845883529197922"
TOKEN = "sandbox-access-token-0"


def v2(partners, recipient: dict, message: dict) -> dict:
    body = {"recipient": recipient, "message": message}
    return requests.post(partners.zalo_url + "/v2.0/oa/message", json=body, headers={"access_token": TOKEN}).json()


def cs(partners, message: dict, user: str = USER) -> dict:
    body = {"recipient": {"user_id": user}, "message": message}
    return requests.post(partners.zalo_url + "/v3.0/oa/message/cs", json=body, headers={"access_token": TOKEN}).json()


def test_a_user_going_anonymous_writes_anonymous_send_events(partners, zalo, receiver):
    zalo.add_user(USER, "Minh Khánh")
    sent = requests.post(
        partners.zalo_url + "/_sim/actions/phone_send",
        json={"bridge_url": receiver.url, "user_id": USER, "kind": "text", "text": "Cho mình hỏi", "anonymous": True},
    ).json()
    assert sent["statuses"] == [200]
    event = json.loads(receiver.requests[0].raw)
    anonymous_id, conversation_id = zalo.visitor_of(USER)
    assert event["event_name"] == "anonymous_send_text" and event["sender"] == {"id": anonymous_id}
    assert event["recipient"] == {"id": zalo.oa_id} and "user_id_by_app" not in event
    assert event["message"]["conversation_id"] == conversation_id and event["message"]["text"] == "Cho mình hỏi"
    assert not anonymous_id.isdigit()  # never mistaken for an OA user id
    assert zalo.phone()["user_messages"][0]["anonymous"] is True


def test_an_anonymous_visitor_cannot_share_a_location(zalo, receiver):
    zalo.add_user(USER, "Minh Khánh")
    try:
        zalo.phone_send(receiver.url, USER, "location", latitude="10.7", longitude="106.6", anonymous=True)
    except ValueError as exc:
        assert "anonymous visitor" in str(exc)
    else:
        raise AssertionError("a location went out anonymously")
    assert receiver.requests == []


def test_the_v2_api_answers_a_visitor_in_their_conversation_and_echoes_it(partners, zalo, receiver):
    anonymous_id, conversation_id = zalo.visitor_of(USER)
    zalo.echo_url, zalo.echo_delay = receiver.url, 0.0
    answer = v2(partners, {"anonymous_id": anonymous_id, "conversation_id": conversation_id}, {"text": "Dạ"})
    assert answer["error"] == 0 and answer["data"]["message_id"]
    [sent] = zalo.messages_to_visitor(anonymous_id)
    assert sent["recipient"] == {"anonymous_id": anonymous_id, "conversation_id": conversation_id}
    assert zalo.messages_to(USER) == []  # the CS API's record of the user stays theirs alone
    wait_until(lambda: receiver.requests, timeout=3, what="the echo")
    echo = json.loads(receiver.requests[0].raw)
    assert echo["event_name"] == "oa_send_anonymous_text" and echo["recipient"] == {"id": anonymous_id}
    assert echo["message"] == {"text": "Dạ", "msg_id": answer["data"]["message_id"], "conversation_id": conversation_id}


def test_the_v2_api_refuses_users_and_unknown_conversations(partners, zalo):
    zalo.add_user(USER, "Minh Khánh")
    anonymous_id, _ = zalo.visitor_of(USER)
    assert v2(partners, {"user_id": USER}, {"text": "x"})["error"] == -240
    assert v2(partners, {"anonymous_id": anonymous_id, "conversation_id": "other"}, {"text": "x"})["error"] == -201
    assert zalo.messages_to(USER) == []


def test_a_quote_must_name_a_message_zalo_knows(partners, zalo, receiver):
    zalo.add_user(USER, "Minh Khánh")
    quoted = zalo.send_text(receiver.url, USER, "Áo còn size M không?")["message"]["msg_id"]
    assert cs(partners, {"text": "Còn ạ", "quote_message_id": quoted})["error"] == 0
    refused = cs(partners, {"text": "Còn ạ", "quote_message_id": "0" * 20})
    assert (refused["error"], refused["message"]) == (-201, "quote_message_id is invalid")
    assert [m["message"] for m in zalo.messages_to(USER)] == [{"text": "Còn ạ", "quote_message_id": quoted}]


def test_freshchat_keeps_in_reply_to_and_names_agents(partners, fc, receiver):
    headers = {"Authorization": f"Bearer {fc.api_key}"}
    created = requests.post(partners.fc_url + "/users", json={"reference_id": "zalo:1"}, headers=headers).json()
    channel = fc.channel_id
    conv = requests.post(
        partners.fc_url + "/conversations",
        json={
            "channel_id": channel,
            "users": [{"id": created["id"]}],
            "messages": [
                {
                    "message_parts": [{"text": {"content": "hỏi"}}],
                    "actor_type": "user",
                    "actor_id": created["id"],
                    "user_id": created["id"],
                }
            ],
        },
        headers=headers,
    ).json()
    first = fc.conversation(conv["conversation_id"])["messages"][0]["id"]
    sent = fc.send_agent_message(receiver.url, conv["conversation_id"], "đáp", in_reply_to=first)
    assert json.loads(sent.raw)["data"]["message"]["in_reply_to"] == {"message_id": first}
    assert fc.conversation(conv["conversation_id"])["messages"][-1]["in_reply_to"] == {"message_id": first}
    agent = requests.get(f"{partners.fc_url}/agents/{fc.default_agent_id}", headers=headers).json()
    assert {"id", "first_name", "last_name", "email", "avatar", "groups", "is_deactivated", "locale"} <= set(agent)
    assert agent["first_name"] == "Sim"
    missing = requests.get(f"{partners.fc_url}/agents/nobody", headers=headers)
    assert missing.status_code == 404
