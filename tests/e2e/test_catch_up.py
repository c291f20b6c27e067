"""Catch-up end to end: messages Zalo recorded while the bridge was down and whose webhooks it
dropped reach FreshChat once each, in order, with their original time, when the worker starts,
however soon after its previous start."""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta, timezone

from app.bridge.keys import DEFAULT_KEYS
from sandbox.procs import wait_until
from tests.e2e.test_delivery import END, end_of_run

USERS = [f"70000000000000{n:04d}" for n in range(5)]
VN = timezone(timedelta(hours=7))


def user_texts(fc, zalo_user: str) -> list[list[str]]:
    """Each FreshChat message from the user, as its text parts."""
    users = [u for u in fc.state()["users"] if u["reference_id"].endswith(f":{zalo_user}")]
    messages = [
        m for u in users for c in fc.conversations_of(u["id"]) for m in c["messages"] if m["actor_type"] == "user"
    ]
    return [[p["text"]["content"] for p in m["message_parts"] if "text" in p] for m in messages]


def settled(redis, before: bytes | None = None) -> None:
    """A catch-up finished after `before` (the last one's finish) and none runs: it queued all it will."""

    def done():
        finished = redis.hget(DEFAULT_KEYS.catchup, "finished_at")
        return finished and finished != before and not redis.exists(DEFAULT_KEYS.catchup_lock)

    wait_until(done, timeout=15, what="the catch-up finished")


def test_messages_whose_webhooks_were_dropped_arrive_once_in_order_with_their_time(make_bridge, sims, redis):
    _, zalo, fc = sims
    zalo.set_webhooks(False)  # the bridge is down and Zalo has given up retrying
    start = int(time.time() * 1000) - 30 * 60 * 1000
    sent = {user: [] for user in USERS}
    for i in range(30):
        user = USERS[i % 5]
        event = zalo.send_text(
            "http://127.0.0.1:9/unused", user, f"{user[-4:]} #{i:02d}", timestamp_ms=start + i * 1000
        )
        assert event.statuses == []
        sent[user].append(event)
    bridge = make_bridge()  # the worker catches up as it starts
    wait_until(lambda: sum(len(user_texts(fc, u)) for u in USERS) >= 30, timeout=25, what="30 messages in FreshChat")
    settled(redis)
    zalo.set_webhooks(True)
    end_of_run(bridge, zalo, fc, dict.fromkeys(USERS), outbound=False)  # a duplicate in a user's lane lands first
    for user in USERS:
        expected = []
        for event in sent[user]:
            when = datetime.fromtimestamp(int(event["timestamp"]) / 1000, VN).strftime("%H:%M %d/%m/%Y")
            expected.append([f"[Delivered late - originally sent {when} (UTC+7)]", event["message"]["text"]])
        assert user_texts(fc, user) == expected + [[END]]
    late = zalo.redeliver(bridge.url + "/webhooks/zalo", sent[USERS[2]][3]["message"]["msg_id"])
    assert late.statuses == [200]
    end_of_run(bridge, zalo, fc, {USERS[2]: None}, outbound=False, text="after the late one")
    assert sum(len(user_texts(fc, u)) for u in USERS) == 30 + 5 + 1  # the late webhook was a duplicate


def test_a_bridge_started_again_seconds_after_its_last_start_catches_up_what_came_meanwhile(make_bridge, sims, redis):
    _, zalo, fc = sims
    bridge = make_bridge()
    first = wait_until(lambda: redis.hget(DEFAULT_KEYS.catchup, "finished_at"), timeout=15, what="the start's catch-up")
    started = time.monotonic()
    bridge.kill("web", signal.SIGTERM)
    bridge.kill("worker0", signal.SIGTERM)
    zalo.set_webhooks(False)  # nobody answers: these exist only in Zalo's history
    sent = {user: [] for user in USERS}
    for i in range(30):
        user = USERS[i % 5]
        event = zalo.send_text("http://127.0.0.1:9/unused", user, f"{user[-4:]} down #{i:02d}")
        sent[user].append(event["message"]["text"])
    bridge.start("web")
    bridge.start("worker0", "worker")
    assert time.monotonic() - started < 60  # well inside the two minutes a start used to be ignored
    wait_until(lambda: sum(len(user_texts(fc, u)) for u in USERS) >= 30, timeout=25, what="30 messages in FreshChat")
    settled(redis, before=first)
    zalo.set_webhooks(True)
    end_of_run(bridge, zalo, fc, dict.fromkeys(USERS), outbound=False)  # a duplicate in a user's lane lands first
    assert {user: [parts[-1] for parts in user_texts(fc, user)] for user in USERS} == {
        user: texts + [END] for user, texts in sent.items()
    }
