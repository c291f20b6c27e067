"""Upgrading from the last version without connections: its Redis keeps working as `default`.

tests/fixtures/upgrade/redis-before-connections.json is the Redis of a bridge at commit 80131f1 (before connections)
(made by make_dump.py there): mappings of two users, a rotated token pair stored in clear,
dedupe keys, one dead letter and one queued, undelivered item each way. The simulators are put
back as they were when the dump was made; then the current bridge starts on that Redis.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
import requests

from sandbox.procs import wait_until
from tests.e2e.test_delivery import END, end_of_run

DUMP = Path(__file__).resolve().parents[1] / "fixtures" / "upgrade" / "redis-before-connections.json"
ADMIN_TOKEN = "upgrade-admin-token-0123456789"


def raw(value) -> bytes:
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value.encode()


def load_dump(redis, keys: list[dict]) -> None:
    """Every key as it was, with the TTL it had left."""
    writers = {
        "string": lambda k, v: redis.set(k, raw(v)),
        "hash": lambda k, v: redis.hset(k, mapping={raw(f): raw(x) for f, x in v.items()}),
        "list": lambda k, v: redis.rpush(k, *[raw(x) for x in v]),
        "set": lambda k, v: redis.sadd(k, *[raw(x) for x in v]),
        "zset": lambda k, v: redis.zadd(k, {raw(m): s for m, s in v}),
    }
    for entry in keys:
        writers[entry["type"]](raw(entry["key"]), entry["value"])
        if entry["ttl_ms"] > 0:
            redis.pexpire(raw(entry["key"]), entry["ttl_ms"])


def restore_simulators(zalo, fc, meta: dict) -> None:
    """The partners as the old bridge left them: its users, conversations and the rotated pair."""
    with zalo.lock:
        zalo.users.update(meta["zalo"]["users"])
        zalo.sent.extend(meta["zalo"]["sent"])
        zalo.access_token, zalo.refresh_token = meta["zalo"]["access_token"], meta["zalo"]["refresh_token"]
        zalo.access_expires_at = time.time() + zalo.access_ttl
    with fc.lock:
        fc.users.update(meta["freshchat"]["users"])
        fc.conversations.update(meta["freshchat"]["conversations"])
        fc.latest.update(meta["freshchat"]["latest"])
        fc.agents.update(meta["freshchat"]["agents"])


def user_texts(fc, conversation_id: str) -> list[str]:
    messages = fc.conversation(conversation_id)["messages"]
    return [
        p["text"]["content"] for m in messages if m["actor_type"] == "user" for p in m["message_parts"] if "text" in p
    ]


def zalo_texts(zalo) -> list[str]:
    return [m["message"].get("text", "") for m in zalo.sent]


def admin(bridge, method: str, path: str):
    resp = requests.request(
        method, bridge.url + "/admin" + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.fixture
def upgraded(redis, make_bridge, sims):
    _, zalo, fc = sims
    dump = json.loads(DUMP.read_text())
    load_dump(redis, dump["keys"])
    restore_simulators(zalo, fc, dump["meta"])
    bridge = make_bridge(ADMIN_TOKEN=ADMIN_TOKEN)
    return bridge, zalo, fc, dump["meta"]


def test_queued_items_are_delivered_once_with_the_old_mappings_and_token_pair(upgraded):
    bridge, zalo, fc, meta = upgraded
    first, second = meta["users"]
    conversations = meta["conversations"]
    # as the dump left them (the new bridge may already be at work when the test starts)
    old_users, old_conversations = len(meta["freshchat"]["users"]), len(meta["freshchat"]["conversations"])
    old_sent = [m["message"].get("text", "") for m in meta["zalo"]["sent"]]

    inbound, outbound = meta["queued"]["inbound"], meta["queued"]["outbound"]
    wait_until(lambda: inbound in user_texts(fc, conversations[first]), timeout=30, what="the queued Zalo message")
    wait_until(lambda: outbound in zalo_texts(zalo), timeout=30, what="the queued agent reply")
    end_of_run(bridge, zalo, fc, {first: None}, outbound=False)  # a second copy lands first
    end_of_run(bridge, zalo, fc, {second: conversations[second]}, inbound=False)
    assert user_texts(fc, conversations[first]).count(inbound) == 1
    assert zalo_texts(zalo) == old_sent + [outbound, END]  # nothing sent twice, nothing else sent
    (reply,) = [m for m in zalo.sent if m["message"].get("text") == outbound]
    assert reply["user_id"] == second
    # the old mappings: no second FreshChat user or conversation for either user
    assert (len(fc.users), len(fc.conversations)) == (old_users, old_conversations)
    # the pair stored in clear was read: sent with its access token, or (once 25 h have passed
    # since the dump) after one refresh with its single-use refresh token
    assert reply["access_token"] == meta["zalo"]["access_token"] or zalo.refresh_count == 1


def test_a_redelivered_old_webhook_is_a_duplicate(upgraded):
    bridge, zalo, fc, meta = upgraded
    first = meta["users"][0]
    # Zalo redelivers within its retries, minutes after the first try, and the dump is loaded as if
    # made just now (its keys keep the TTLs they had left): so the redelivery is stamped now, which
    # the replay window accepts however long ago the dump was made; its msg_id is the old one.
    event = {**meta["delivered_zalo_event"], "timestamp": str(int(time.time() * 1000))}
    wait_until(lambda: meta["queued"]["inbound"] in user_texts(fc, meta["conversations"][first]), timeout=30)
    before = user_texts(fc, meta["conversations"][first])
    assert zalo.deliver(bridge.url + "/webhooks/zalo", event).statuses == [200]
    end_of_run(bridge, zalo, fc, {first: None}, outbound=False)  # a copy of the old one lands first
    assert user_texts(fc, meta["conversations"][first]) == before + [END]
    assert before.count(event["message"]["text"]) == 1


def test_the_old_dead_letter_is_listed_and_replays_once(upgraded):
    bridge, zalo, fc, meta = upgraded
    second = meta["users"][1]
    text = meta["dead_letter_text"]
    letters = admin(bridge, "GET", "/dead-letters")["dead_letters"]
    assert len(letters) == 1 and text in json.dumps(letters[0], ensure_ascii=False), letters
    assert text not in user_texts(fc, meta["conversations"][second])
    admin(bridge, "POST", f"/dead-letters/{letters[0]['id']}/replay")
    wait_until(lambda: text in user_texts(fc, meta["conversations"][second]), timeout=30, what="the replayed message")
    end_of_run(bridge, zalo, fc, {second: None}, outbound=False)  # a second replay lands first
    assert user_texts(fc, meta["conversations"][second]).count(text) == 1
    assert admin(bridge, "GET", "/dead-letters")["dead_letters"] == []
