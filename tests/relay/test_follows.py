"""Follow and unfollow (issue 26 point 2): a private note where the user has a conversation,
never a customer message; a reply refused with -213 names the unfollow the bridge saw."""

from __future__ import annotations

import dataclasses

import pytest
import requests_mock

from app.bridge.keys import DEFAULT_KEYS
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from sandbox.helpers import FC_API, ZALO_API, load_fixture, partners_answer_probes
from workers.context import WorkerContext
from workers.drain import Drainer

USER = "246845883529197922"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
NOTES = f"{FC_API}/conversations/{CONV}/messages"
UNFOLLOWED_AT = "05:13 15/11/2023 (UTC+7)"  # unfollow.json's timestamp, 1700000010000


def run(ctx, event: dict) -> str:
    classified = to_event(event)
    item = Item(f"zalo:{classified.dedupe_id}", "zalo", event, now_ms(), event=classified.kind)
    ctx.lanes.accept(classified.lane, item)
    return Drainer(ctx).drain(classified.lane)


def event(name: str, **changes) -> dict:
    return {**load_fixture("zalo", "webhooks", f"{name}.json"), **changes}


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        mock.post(NOTES, json={"id": "note-1"})
        partners_answer_probes(mock)
        yield mock


def known_user(ctx):
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)


def posts(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "POST"]


def private(text: str) -> dict:
    return {"message_parts": [{"text": {"content": text}}], "message_type": "private", "actor_type": "system"}


def test_an_unfollow_is_a_private_note_saying_replies_may_be_refused_and_is_recorded(ctx, m):
    known_user(ctx)
    assert run(ctx, event("unfollow")) == "empty"
    assert posts(m) == [
        private(
            f"🔕 The customer unfollowed the OA at {UNFOLLOWED_AT}. Zalo may refuse further replies (error -213) "
            "until they follow it again or write to the OA."
        )
    ]
    assert [r.url for r in m.request_history] == [NOTES]
    assert ctx.redis.get(DEFAULT_KEYS.unfollowed(USER)) == b"1700000010000"


def test_a_follow_back_is_a_note_and_ends_the_record(ctx, m):
    known_user(ctx)
    run(ctx, event("unfollow"))
    run(ctx, event("follow", timestamp="1700000020000"))
    assert posts(m)[-1] == private(
        f"🔔 The customer followed the OA at {UNFOLLOWED_AT}; the OA can message them again."
    )
    assert ctx.redis.get(DEFAULT_KEYS.unfollowed(USER)) is None


def test_an_older_follow_arriving_late_does_not_end_a_newer_unfollow(ctx, m):
    known_user(ctx)
    run(ctx, event("unfollow"))
    run(ctx, event("follow", timestamp="1700000000000"))
    assert ctx.redis.get(DEFAULT_KEYS.unfollowed(USER)) == b"1700000010000"


def test_the_note_is_in_the_agents_language(settings, redis, m):
    ctx = WorkerContext(dataclasses.replace(settings, agent_language="vi"), redis)
    known_user(ctx)
    run(ctx, event("unfollow"))
    assert posts(m)[0]["message_parts"][0]["text"]["content"] == (
        f"🔕 Khách hàng đã bỏ quan tâm OA lúc {UNFOLLOWED_AT}. Zalo có thể từ chối các trả lời tiếp theo "
        "(mã lỗi -213) cho đến khi khách quan tâm lại hoặc nhắn tin cho OA."
    )


@pytest.mark.parametrize("name", ["follow", "unfollow"])
def test_a_user_without_a_conversation_gets_no_user_no_conversation_no_note(ctx, m, name):
    assert run(ctx, event(name)) == "empty"
    assert m.request_history == []
    assert (ctx.redis.get(DEFAULT_KEYS.unfollowed(USER)) is not None) == (name == "unfollow")


def test_a_redelivered_unfollow_is_one_note(ctx, m):
    known_user(ctx)
    run(ctx, event("unfollow"))
    run(ctx, event("unfollow"))
    assert len(posts(m)) == 1


# -- a reply refused because the user does not follow -------------------------------------------


def agent_reply(ctx, m) -> str:
    reply = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
    m.post(f"{ZALO_API}/v3.0/oa/message/cs", json={"error": -213, "message": "User has not followed OA"})
    lane = f"out:{CONV}"
    ctx.lanes.accept(lane, Item("freshchat:r1", "freshchat", reply, now_ms(), event="agent_message"))
    return Drainer(ctx).drain(lane)


def test_a_reply_refused_with_213_names_the_unfollow_the_bridge_saw(ctx, m):
    known_user(ctx)
    run(ctx, event("unfollow"))
    agent_reply(ctx, m)
    refused = posts(m)[-1]["message_parts"][0]["text"]["content"]
    assert "error -213" in refused and refused.endswith(
        f"The customer unfollowed the OA at {UNFOLLOWED_AT}.\nMessage: “Chào anh, em kiểm tra đơn hàng ngay ạ.”"
    )


def test_a_reply_refused_with_213_without_a_seen_unfollow_says_nothing_of_one(ctx, m):
    known_user(ctx)
    agent_reply(ctx, m)
    refused = posts(m)[-1]["message_parts"][0]["text"]["content"]
    assert "error -213" in refused and "unfollowed" not in refused
