"""Webhooks of several connections: each event reaches its own connection, verified with its
own key; FreshChat events of a shared account go to the conversation's owner."""

from __future__ import annotations

import json

import pytest
import requests_mock

from app.bridge import keys
from app.bridge.keys import DUE, Keys
from app.bridge.mapping import Mapping
from sandbox.helpers import FC_PRIVATE_KEY, ZALO_OA_ID, ZALO_OA_SECRET, load_fixture, post_freshchat
from tests.multi import (
    HCM,
    HCM_APP,
    HCM_OA,
    HCM_SECRET,
    OA2,
    OA2_ID,
    OA2_SECRET,
    USER,
    post_freshchat_to,
    post_zalo_as,
    store,
    zalo_event,
)

CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"


@pytest.fixture(autouse=True)
def no_partner_calls():
    with requests_mock.Mocker() as m:
        yield m
        assert m.call_count == 0


@pytest.fixture
def connected(redis, settings):
    store(redis, settings, OA2, HCM)


def queued(redis, lane_id: str) -> list[dict]:
    return [json.loads(raw) for raw in redis.lrange(keys.lane(lane_id), 0, -1)]


def test_two_oas_of_one_app_and_an_oa_of_another_app_reach_their_own_connections(client, redis, connected):
    text = "user_send_text"
    assert post_zalo_as(client, zalo_event(text), ZALO_OA_SECRET).status_code == 200
    assert post_zalo_as(client, zalo_event(text, oa_id=OA2_ID), OA2_SECRET).status_code == 200
    assert post_zalo_as(client, zalo_event(text, app_id=HCM_APP, oa_id=HCM_OA), HCM_SECRET).status_code == 200
    lanes = {f"in:{USER}": "default", f"oa2/in:{USER}": "oa2", f"hcm/in:{USER}": "hcm"}
    for lane_id, connection in lanes.items():
        [item] = queued(redis, lane_id)
        assert item["connection"] == connection and item["id"] == "zalo:96d3cdf3af150460909"
    assert {m.decode() for m in redis.zrange(DUE, 0, -1)} == set(lanes)  # the same msg_id is no duplicate
    assert redis.exists(Keys("oa2").seen("zalo", "96d3cdf3af150460909"))
    assert redis.get(Keys("hcm").last_webhook("zalo")) and not redis.get(Keys("hcm").last_webhook("freshchat"))


@pytest.mark.parametrize(
    "event,secret",
    [
        (zalo_event("user_send_text", oa_id=OA2_ID), ZALO_OA_SECRET),  # the other OA's key
        (zalo_event("user_send_text"), OA2_SECRET),
        (zalo_event("user_send_text", app_id=HCM_APP, oa_id=HCM_OA), OA2_SECRET),
        (dict(zalo_event("follow"), oa_id=OA2_ID), ZALO_OA_SECRET),
    ],
)
def test_a_signature_made_with_another_connections_key_is_401(client, redis, connected, event, secret):
    resp = post_zalo_as(client, event, secret)
    assert resp.status_code == 401 and resp.get_json() == {"error": "invalid or missing X-ZEvent-Signature"}
    assert redis.zcard(DUE) == 0


@pytest.mark.parametrize(
    "event",
    [
        zalo_event("user_send_text", oa_id="111222333"),  # an OA no connection has
        zalo_event("user_send_text", app_id="424242", oa_id=ZALO_OA_ID),  # an unknown app
        zalo_event("oa_send_text__console_admin", app_id=HCM_APP, oa_id=OA2_ID),  # OA of the other app
    ],
)
def test_an_unknown_app_or_oa_is_401_and_nothing_is_queued(client, redis, connected, event):
    resp = post_zalo_as(client, event, ZALO_OA_SECRET)
    assert resp.status_code == 401 and resp.get_json() == {"error": "unknown Zalo app or OA"}
    assert redis.zcard(DUE) == 0


def test_a_disabled_connection_takes_no_zalo_events(client, redis, settings):
    store(redis, settings, dict(OA2, enabled=False))
    resp = post_zalo_as(client, zalo_event("user_send_text", oa_id=OA2_ID), OA2_SECRET)
    assert resp.status_code == 401 and redis.zcard(DUE) == 0


def test_the_unsigned_probe_stays_a_200(client, redis, connected):
    resp = client.post("/webhooks/zalo", json={"app_id": HCM_APP, "event_name": "test"})
    assert resp.status_code == 200 and resp.get_json()["ignored"] == "probe without timestamp"


def test_oa_messages_are_routed_by_their_sender_and_echoes_checked_in_that_oas_records(client, redis, connected):
    echo = zalo_event("oa_send_text__api_echo", oa_id=OA2_ID)
    msg_id = echo["message"]["msg_id"]
    Mapping(redis).remember_sent(msg_id)  # the default connection's send: not OA2's echo
    assert post_zalo_as(client, echo, OA2_SECRET).get_json() == {"ok": True, "duplicate": False}
    assert [i["connection"] for i in queued(redis, f"oa2/in:{USER}")] == ["oa2"]
    Mapping(redis, keys=Keys("hcm")).remember_sent(msg_id)
    hcm_echo = zalo_event("oa_send_text__api_echo", app_id=HCM_APP, oa_id=HCM_OA)
    assert post_zalo_as(client, hcm_echo, HCM_SECRET).get_json()["ignored"] == "echo of a message this bridge sent"


def test_an_event_with_a_top_level_oa_id_is_verified_with_that_oas_key(client, redis, connected):
    follow = dict(zalo_event("follow"), oa_id=OA2_ID)
    assert post_zalo_as(client, follow, OA2_SECRET).get_json() == {"ok": True, "duplicate": False}
    assert redis.get(Keys("oa2").last_webhook("zalo")) and not redis.get(Keys().last_webhook("zalo"))
    assert [i["connection"] for i in queued(redis, f"oa2/in:{USER}")] == ["oa2"]  # the follower's lane, that OA's


def agent_text() -> dict:
    return load_fixture("freshchat", "webhooks", "message_create__agent_text.json")


def test_a_connections_freshchat_url_verifies_with_its_own_key(client, redis, connected):
    assert post_freshchat_to(client, "/webhooks/freshchat/hcm", agent_text()).get_json()["duplicate"] is False
    [item] = queued(redis, f"hcm/out:{CONV}")
    assert item["connection"] == "hcm"
    assert redis.get(Keys("hcm").last_webhook("freshchat"))
    resp = post_freshchat_to(client, "/webhooks/freshchat/hcm", agent_text(), private_key=FC_PRIVATE_KEY)
    assert resp.status_code == 401 and len(queued(redis, f"hcm/out:{CONV}")) == 1


def test_an_unknown_or_disabled_connections_freshchat_url_is_404(client, redis, settings):
    store(redis, settings, dict(HCM, enabled=False))
    for path in ("/webhooks/freshchat/nobody", "/webhooks/freshchat/hcm"):
        resp = post_freshchat_to(client, path, agent_text())
        assert resp.status_code == 404 and resp.get_json() == {"error": "not found"}
    assert redis.zcard(DUE) == 0


def test_a_shared_accounts_webhook_goes_to_the_connection_that_owns_the_conversation(client, redis, connected):
    Mapping(redis, keys=Keys("oa2"), owners=keys.conversation_owner(OA2["freshchat"]["api_url"])).link_conversation(
        USER, CONV
    )
    assert post_freshchat(client, agent_text()).status_code == 200  # the default connection's URL
    assert [i["connection"] for i in queued(redis, f"oa2/out:{CONV}")] == ["oa2"]
    assert queued(redis, f"out:{CONV}") == []
    assert redis.exists(Keys("oa2").seen("freshchat", agent_text()["data"]["message"]["id"]))


def test_a_conversation_no_connection_owns_goes_to_the_urls_connection(client, redis, connected):
    event = agent_text()
    post_freshchat_to(client, "/webhooks/freshchat/oa2", event, private_key=FC_PRIVATE_KEY)
    assert [i["connection"] for i in queued(redis, f"oa2/out:{CONV}")] == ["oa2"]


def test_the_owner_on_another_account_is_not_followed(client, redis, connected):
    """A conversation id recorded for the default's account never routes the HCM account's event."""
    redis.hset(keys.conversation_owner(OA2["freshchat"]["api_url"]), CONV, "oa2")
    post_freshchat_to(client, "/webhooks/freshchat/hcm", agent_text())
    assert [i["connection"] for i in queued(redis, f"hcm/out:{CONV}")] == ["hcm"]


def test_a_disabled_owner_still_gets_its_conversations_events(client, redis, settings):
    """Its worker keeps them as dead letters; another OA must not answer its customers."""
    store(redis, settings, dict(OA2, enabled=False))
    redis.hset(keys.conversation_owner(OA2["freshchat"]["api_url"]), CONV, "oa2")
    post_freshchat(client, agent_text())
    assert [i["connection"] for i in queued(redis, f"oa2/out:{CONV}")] == ["oa2"]


def test_a_conversation_from_before_connections_goes_to_the_connection_that_knows_it(client, redis, connected):
    """No owner recorded (the default connection's conversations predate the owner records):
    the event arriving on another connection's URL goes to the connection whose mapping has it."""
    from app.bridge.mapping import Mapping

    Mapping(redis).link_conversation(USER, CONV)  # the old layout: no owner entry
    redis.delete(keys.conversation_owner(OA2["freshchat"]["api_url"]))
    post_freshchat_to(client, "/webhooks/freshchat/oa2", agent_text(), private_key=FC_PRIVATE_KEY)
    assert [i["connection"] for i in queued(redis, f"out:{CONV}")] == ["default"]
    assert queued(redis, f"oa2/out:{CONV}") == []
