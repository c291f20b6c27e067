"""The bridge end to end with real processes: gunicorn + worker, real Redis, simulators."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from sandbox.procs import wait_until
from tests.e2e.test_delivery import END, end_of_run


def user_messages(fc, reference_prefix: str) -> list[dict]:
    """Every message posted as a FreshChat user whose reference_id ends with the Zalo id."""
    users = [u for u in fc.state()["users"] if u["reference_id"].endswith(reference_prefix)]
    return [m for u in users for c in fc.conversations_of(u["id"]) for m in c["messages"] if m["actor_type"] == "user"]


def texts(messages: list[dict]) -> list[str]:
    return [p["text"]["content"] for m in messages for p in m["message_parts"] if "text" in p]


def test_two_workers_hitting_216_refresh_once_and_deliver_both(make_bridge, sims):
    _, zalo, fc = sims
    bridge = make_bridge(workers=2, WORKER_CONCURRENCY="1")
    hook = bridge.url + "/webhooks/zalo"
    for user in ("4444000044440004", "5555000055550005"):
        zalo.send_text(hook, user, "hi")
    wait_until(
        lambda: len(user_messages(fc, ":4444000044440004")) + len(user_messages(fc, ":5555000055550005")) == 2,
        timeout=20,
        what="both users in FreshChat",
    )
    conversations = [fc.conversations_of(u["id"])[0]["conversation_id"] for u in fc.state()["users"]]
    zalo.expire_access_token()  # both workers now hold a token Zalo answers -216 to
    refreshes_before = zalo.state()["refresh_count"]
    fc_hook = bridge.url + "/webhooks/freshchat"
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda c: fc.send_agent_message(fc_hook, c, "reply after expiry"), conversations))
    wait_until(
        lambda: sum(len(zalo.messages_to(u)) for u in ("4444000044440004", "5555000055550005")) == 2,
        timeout=20,
        what="both replies delivered",
    )
    assert zalo.state()["refresh_count"] - refreshes_before == 1


# -- the tests below share one bridge (tests/e2e/conftest.py) ------------------------------------


def test_same_event_three_times_and_five_concurrent_first_messages(shared):
    bridge, zalo, fc = shared
    hook = bridge.url + "/webhooks/zalo"
    sent = zalo.send_text(hook, "1111000011110001", "chỉ một lần", duplicates=3)
    assert [s for s in sent["statuses"]] == [200, 200, 200]
    with ThreadPoolExecutor(5) as pool:
        list(pool.map(lambda i: zalo.send_text(hook, "2222000022220002", f"first #{i}"), range(5)))
    wait_until(
        lambda: len(user_messages(fc, ":2222000022220002")) >= 5 and len(user_messages(fc, ":1111000011110001")) >= 1,
        timeout=20,
        what="6 messages in FreshChat",
    )
    end_of_run(bridge, zalo, fc, dict.fromkeys(["1111000011110001", "2222000022220002"]), outbound=False)
    assert texts(user_messages(fc, ":1111000011110001")) == ["chỉ một lần", END]  # a duplicate lands before END
    *firsts, end = texts(user_messages(fc, ":2222000022220002"))
    assert sorted(firsts) == [f"first #{i}" for i in range(5)] and end == END
    assert len([u for u in fc.state()["users"] if u["reference_id"].endswith(":2222000022220002")]) == 1
    new_user = next(u for u in fc.state()["users"] if u["reference_id"].endswith(":2222000022220002"))
    assert new_user["first_name"] == "Zalo User 0002 Zalo"


def test_redis_stopped_answers_503_and_the_redelivery_is_relayed_once(shared, redis_server):
    bridge, zalo, fc = shared
    hook = bridge.url + "/webhooks/zalo"
    redis_server.stop()
    try:
        first = zalo.send_text(hook, "3333000033330003", "sent while Redis was down")
        assert first["statuses"] == [503]
    finally:
        redis_server.start()
    again = zalo.deliver(hook, first["event"])  # Zalo redelivers the same event
    assert again["statuses"] == [200]
    wait_until(lambda: user_messages(fc, ":3333000033330003"), timeout=30, what="relay after Redis restart")
    end_of_run(bridge, zalo, fc, {"3333000033330003": None}, outbound=False)
    assert texts(user_messages(fc, ":3333000033330003")) == ["sent while Redis was down", END]
