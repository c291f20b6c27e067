"""The worker with several connections: each item is relayed with its own connection's
credentials, and one connection's trouble never holds another's work."""

from __future__ import annotations

import pytest
import requests_mock

from app.bridge import keys
from app.bridge.keys import Keys, lane_for
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.errors import ZaloRateLimited
from app.integrations.zalo.tokens import _fingerprint
from sandbox.helpers import FC_API, ZALO_API, load_fixture, partners_answer_probes
from tests.multi import HCM, HCM_API, OA2, USER, store
from workers.drain import Drainer

CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CS = f"{ZALO_API}/v3.0/oa/message/cs"


@pytest.fixture
def connected(redis, settings):
    store(redis, settings, OA2, HCM)


def queue(ctx, connection: str, name: str, kind: str, lane_id: str) -> str:
    provider = "zalo" if kind in ("user_message", "oa_message") else "freshchat"
    payload = load_fixture(provider, "webhooks", f"{name}.json")
    lane = lane_for(connection, lane_id)
    item = Item(f"{provider}:{name}", provider, payload, now_ms(), event=kind, connection=connection)
    ctx.lanes.accept(lane, item)
    return lane


def test_a_users_message_goes_to_its_connections_account_with_its_key_and_topic(ctx, connected, public_dns):
    lane = queue(ctx, "hcm", "user_send_text", "user_message", f"in:{USER}")
    with requests_mock.Mocker() as m:
        m.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Lan"}})
        m.get(f"{HCM_API}/users", json={"users": []})
        m.post(f"{HCM_API}/users", json={"id": FC_USER})
        m.post(f"{HCM_API}/conversations", json={"conversation_id": CONV, "messages": [{"id": "m1"}]})
        assert Drainer(ctx).drain(lane) == "empty"
    assert all(r.url.startswith((HCM_API, ZALO_API)) for r in m.request_history)
    assert {r.headers["Authorization"] for r in m.request_history if r.url.startswith(HCM_API)} == {"Bearer hcm-fc-key"}
    [profile] = [r for r in m.request_history if r.url.startswith(ZALO_API)]
    assert profile.headers["access_token"] == "hcm-access"
    assert m.request_history[0].qs == {"reference_id": [f"zalo:{HCM['zalo']['oa_id']}:{USER}"]}
    assert m.request_history[-1].json()["channel_id"] == "chan-hcm"
    hcm = ctx.for_connection("hcm")
    assert hcm.mapping.zalo_user(USER)["fc_conversation_id"] == CONV and ctx.mapping.zalo_user(USER) == {}
    assert ctx.redis.hget(keys.conversation_owner(HCM_API), CONV) is None  # alone on its account: no owner


def test_a_conversation_on_an_account_shared_by_connections_records_its_owner(ctx, connected):
    """The account's webhook then finds the conversation's connection in one HGET."""
    ctx.for_connection("oa2").mapping.link_conversation(USER, CONV)
    ctx.for_connection("hcm").mapping.link_conversation(USER, "conv-hcm")
    assert ctx.redis.hget(keys.conversation_owner(FC_API), CONV) == b"oa2"  # oa2 shares default's account
    assert ctx.redis.hget(keys.conversation_owner(HCM_API), "conv-hcm") is None  # hcm is alone on its own


def test_a_reply_goes_with_its_oas_token(ctx, connected):
    oa2 = ctx.for_connection("oa2")
    oa2.mapping.link_conversation(USER, CONV)
    lane = queue(ctx, "oa2", "message_create__agent_text", "agent_message", f"out:{CONV}")
    with requests_mock.Mocker() as m:
        m.post(CS, json={"error": 0, "data": {"message_id": "z-1"}})
        assert Drainer(ctx).drain(lane) == "empty"
    [sent] = m.request_history
    assert sent.headers["access_token"] == "oa2-access" and sent.json()["recipient"] == {"user_id": USER}
    assert oa2.mapping.is_sent_by_us("z-1") and not ctx.mapping.is_sent_by_us("z-1")
    assert ctx.redis.hget(keys.conversation_owner(FC_API), CONV) == b"oa2"


def test_a_minute_quota_refusal_pauses_the_app_not_another_apps_oas(ctx, connected):
    with requests_mock.Mocker() as m:
        m.post(CS, json={"error": -32, "message": "exceeded the limit"})
        with pytest.raises(ZaloRateLimited):
            ctx.zalo.send_text(USER, "hi")
    assert ctx.zalo.limiter.take() > 0
    assert ctx.for_connection("oa2").zalo.limiter.take() > 0  # another OA of the same app: Zalo's limit is per app
    assert ctx.for_connection("hcm").zalo.limiter.take() == 0
    assert ctx.for_connection("hcm").freshchat.limiter.take() == 0


def test_a_dead_token_of_one_oa_does_not_hold_another_oas_replies(ctx, connected):
    ctx.for_connection("oa2").tokens.store("oa2-access", "oa2-refresh", None, seed=_fingerprint("oa2-refresh"))
    ctx.redis.hset(Keys("oa2").zalo_token, "dead", "-14014 Invalid refresh token")
    for connection in ("oa2", "hcm"):
        ctx.for_connection(connection).mapping.link_conversation(USER, CONV)
    stuck = queue(ctx, "oa2", "message_create__agent_text", "agent_message", f"out:{CONV}")
    going = queue(ctx, "hcm", "message_create__agent_text", "agent_message", f"out:{CONV}")
    with requests_mock.Mocker() as m:
        partners_answer_probes(m)
        m.post(CS, json={"error": 0, "data": {"message_id": "z-2"}})
        assert Drainer(ctx).drain(stuck) == "deferred"
        assert Drainer(ctx).drain(going) == "empty"
    assert [r.headers["access_token"] for r in m.request_history if r.url == CS] == ["hcm-access"]
    assert ctx.lanes.head(stuck)[1].attempts == 0  # waiting for the OA to be reconnected, budget untouched
    assert ctx.for_connection("hcm").breaker("zalo").open_for() == 0


def test_a_removed_connections_items_become_its_dead_letters_a_disabled_ones_wait(ctx, redis, settings):
    store(redis, settings, dict(HCM, enabled=False))
    gone = queue(ctx, "gone", "user_send_text", "user_message", f"in:{USER}")
    off = queue(ctx, "hcm", "user_send_text", "user_message", f"in:{USER}")
    with requests_mock.Mocker() as m:
        assert Drainer(ctx).drain(gone) == "empty" and Drainer(ctx).drain(off) == "deferred"
    assert m.call_count == 0
    [dead] = ctx.dead_letters_of("gone").list()
    assert (dead["lane"], dead["reason"]) == (gone, "connection gone no longer exists")
    assert ctx.dead_letters_of("hcm").count() == 0 and ctx.lanes.head(off)[1].attempts == 0
    assert ctx.dead_letters.count() == 0


def test_a_connection_created_a_moment_ago_is_found_not_dead_lettered(ctx, redis, settings):
    assert ctx.for_connection("default") is ctx
    ctx.connections.all()  # this process has read the registry: hcm did not exist yet
    store(redis, settings, HCM)
    assert ctx.for_connection("hcm").settings.zalo_app_id == HCM["zalo"]["app_id"]


def test_a_connections_context_is_kept_until_its_definition_changes(ctx, redis, settings, connected):
    first = ctx.for_connection("hcm")
    assert ctx.for_connection("hcm") is first and ctx.for_connection("default") is ctx
    assert first.settings.freshchat_api_url == HCM_API and first.lanes is ctx.lanes
    store(redis, settings, dict(HCM, freshchat=dict(HCM["freshchat"], api_key="hcm-fc-key-2")))
    ctx.connections.forget_cache()
    assert ctx.for_connection("hcm") is not first
    assert ctx.for_connection("hcm").freshchat.headers["Authorization"] == "Bearer hcm-fc-key-2"
