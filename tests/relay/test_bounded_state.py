"""Redis does not grow with messages: every key the relay writes belongs to a family of
app/bridge/keys.py with a declared bound, the per-message ones expire, and more messages leave
no more keys without a TTL (real Redis, the real relay and drain; partners mocked)."""

from __future__ import annotations

import dataclasses
import inspect
import re

import pytest
import requests_mock

from app.bridge import keys
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from app.relay import agent_view
from sandbox.helpers import FC_API, ZALO_API, ZALO_OA_ID, load_fixture, partners_answer_probes
from workers.context import WorkerContext
from workers.drain import Drainer

USER = "246845883529197922"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
DEDUPE_SECONDS = 600  # per-message keys live this long here; what lives longer must be bounded


def test_every_key_family_declares_what_bounds_it():
    members = {
        n for n, _ in inspect.getmembers(keys.Keys) if not n.startswith("_") and n not in ("media", "connection")
    }
    assert set(keys.KEYS_BOUNDS) == members
    assert [shape for shape in keys.FAMILIES if keys.bound_of(shape) is None] == []


@pytest.fixture
def m(public_dns):
    zalo_ids = (f"z-{n}" for n in range(1000))
    fc_ids = (f"fc-{n}" for n in range(1000))
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.get(f"{ZALO_API}/v3.0/oa/user/detail", json={"error": 0, "data": {"display_name": "Lan"}})
        mock.post(
            f"{ZALO_API}/v3.0/oa/message/cs", json=lambda r, c: {"error": 0, "data": {"message_id": next(zalo_ids)}}
        )
        mock.get(f"{FC_API}/users", json={"users": []})
        mock.post(f"{FC_API}/users", json={"id": "fc-user-1"})
        mock.put(re.compile(f"{FC_API}/users/.*"), json={})
        mock.post(f"{FC_API}/conversations", json={"conversation_id": CONV})
        mock.post(f"{FC_API}/conversations/{CONV}/messages", json=lambda r, c: {"id": next(fc_ids)})
        yield mock


def zalo(ctx, name: str, **changes) -> None:
    event = {**load_fixture("zalo", "webhooks", f"{name}.json"), "timestamp": str(now_ms()), **changes}
    classified = to_event(event, oa_id=ZALO_OA_ID)
    ctx.lanes.accept(
        classified.lane, Item(f"zalo:{classified.dedupe_id}", "zalo", event, now_ms(), event=classified.kind)
    )
    Drainer(ctx).drain(classified.lane)


def agent(ctx, msg_id: str) -> None:
    event = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
    message = {**event["data"]["message"], "id": msg_id, "conversation_id": CONV}
    event["data"]["message"] = {**message, "message_parts": [{"text": {"content": f"Dạ, {msg_id}"}}]}
    ctx.lanes.accept(f"out:{CONV}", Item(f"freshchat:{msg_id}", "freshchat", event, now_ms(), event="agent_message"))
    Drainer(ctx).drain(f"out:{CONV}")


def exchange(ctx, n: int, m) -> None:
    """A user's message, an agent's reply, its receipts and their note, a reaction to it."""
    zalo(ctx, "user_send_text", message={"text": f"Câu hỏi {n}", "msg_id": f"u-{n}"})
    agent(ctx, f"a-{n}")
    reply = ctx.mapping.receipts_in(CONV)[-1][0]
    zalo(ctx, "user_received_message", message={"msg_id": reply})
    zalo(ctx, "user_seen_message", message={"msg_ids": [reply]})
    Drainer(ctx).drain(keys.receipts_lane(CONV))
    zalo(ctx, "user_reacted_message", message={"msg_id": reply, "react_icon": "/-heart"})


def lasting_keys(redis) -> set[str]:
    """Keys that outlive the dedupe window: without a TTL, or a longer one."""
    return {k.decode() for k in redis.scan_iter() if redis.ttl(k) == -1 or redis.ttl(k) > DEDUPE_SECONDS}


def assert_bounded(redis) -> None:
    for name in (k.decode() for k in redis.scan_iter()):
        bound = keys.bound_of(name)
        assert bound is not None, f"{name}: a key keys.py does not name"
        if bound == keys.TTL:
            assert redis.ttl(name) > 0, f"{name}: its family must expire"


def test_a_relayed_exchange_leaves_only_bounded_keys_and_more_messages_no_more_lasting_keys(
    settings, redis, m, monkeypatch
):
    """What outlives the dedupe window is per user, conversation or connection: four more
    exchanges in the same conversation add no key to it (a key per message would)."""
    monkeypatch.setattr(agent_view, "RECEIPTS_NOTE_DELAY_MS", 0)
    ctx = WorkerContext(dataclasses.replace(settings, dedupe_ttl_seconds=DEDUPE_SECONDS), redis)
    exchange(ctx, 1, m)
    assert ctx.mapping.receipts_in(CONV)[-1][1]["reported"] == "seen"  # the round trip went through
    assert_bounded(redis)
    lasting = lasting_keys(redis)
    for n in range(2, 6):
        exchange(ctx, n, m)
    assert_bounded(redis)
    assert lasting_keys(redis) - lasting == set()
    assert len(ctx.mapping.receipts_in(CONV)) == 5
