"""Several connections in one bridge, with real processes against the simulators.

Three connections: `default` (the environment's OA of app B, FreshChat account 1, its topic),
`b2` (a second OA of app B, FreshChat account 2) and `a1` (the OA of another app A, FreshChat
account 1 but another topic). They are stored with ConnectionStore before the bridge starts,
as POST /api/connections would store them. Every message must reach the right account and
topic, every reply must leave with the right OA's token, and a -32 storm on app A plus a dead
token on `default` must not slow `b2` down.
"""

from __future__ import annotations

import signal
import statistics
import time

import pytest

from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from config.sandbox import DEFAULTS
from sandbox.connections import simulated_record
from sandbox.freshchat_sim import FreshchatSimulator
from sandbox.helpers import make_settings
from sandbox.procs import Bridge, wait_until
from sandbox.server import start_in_thread
from tests.e2e.test_delivery import END, send_until_accepted

APP_A, APP_A_SECRET = "5000000000000000005", "app-a-secret"
B2 = {"oa_id": "2000000000000000222", "oa_secret_key": "b2-oa-secret-key"}
A1 = {"oa_id": "6000000000000000006", "oa_secret_key": "a1-oa-secret-key"}
TOPIC_A1, TOPIC_B2 = "topic-a1", "topic-b2"
FC2_KEY = "fc2-api-key"
STORM_SECONDS = 20
RECOVERY_SECONDS = 60
SAMPLES = 10


def uid(n: int) -> str:
    return f"83{n:017d}"


@pytest.fixture(scope="module")
def partners():
    """Its own partners server: Zalo plus a second FreshChat account under /freshchat2."""
    fc2 = FreshchatSimulator(TOPIC_B2, FC2_KEY)
    base, zalo, fc, stop = start_in_thread(freshchat_accounts={"/freshchat2": fc2})
    yield base, zalo, fc, fc2
    stop()


@pytest.fixture
def world(partners, redis, redis_server, tmp_path):
    """The simulators with three OAs and two accounts, the connections stored, the bridge up."""
    base, zalo, fc, fc2 = partners
    for sim in (zalo, fc, fc2):
        sim.reset()
    b2 = zalo.add_oa(zalo.app_id, B2["oa_id"], B2["oa_secret_key"], zalo.app_secret)
    a1 = zalo.add_oa(APP_A, A1["oa_id"], A1["oa_secret_key"], APP_A_SECRET)
    fc.add_channel(TOPIC_A1, "Zalo A1")
    bridge = Bridge(redis_server.url, base, fc.public_key_pem_rsa_label, tmp_path)
    store_connections(redis, redis_server.url, bridge.env, base, b2, a1, fc, fc2)
    try:
        bridge.start_all(workers=2)
        fc.webhook_url = bridge.url + "/webhooks/freshchat"  # account 1 echoes its API posts
        fc2.webhook_url = bridge.url + "/webhooks/freshchat/b2"
        oas = {"default": zalo, "b2": b2, "a1": a1}
        accounts = {"default": (fc, DEFAULTS["freshchat_channel_id"]), "b2": (fc2, TOPIC_B2), "a1": (fc, TOPIC_A1)}
        yield bridge, oas, accounts
    finally:
        bridge.stop(signal.SIGKILL)  # nothing is asked of how it stops
        fc.webhook_url = fc2.webhook_url = None


def store_connections(redis, redis_url, env, base, b2, a1, fc, fc2) -> None:
    """b2 and a1 as the admin API stores them: sealed with the bridge's own key."""
    settings = make_settings(redis_url, secret_key=env["SECRET_KEY"])
    store = ConnectionStore(redis, settings, sealer_for(settings))
    for conn_id, oa, account, api_url, topic in (
        ("b2", b2, fc2, base + "/freshchat2/v2", TOPIC_B2),
        ("a1", a1, fc, base + "/freshchat/v2", TOPIC_A1),
    ):
        freshchat = {
            "api_url": api_url,
            "api_key": account.api_key,
            "channel_id": topic,
            "webhook_public_key": account.public_key_pem_rsa_label,
        }
        store.put(simulated_record(conn_id, f"Connection {conn_id}", oa, freshchat))


def freshchat_hook(bridge, conn_id: str) -> str:
    return bridge.url + ("/webhooks/freshchat" if conn_id == "default" else f"/webhooks/freshchat/{conn_id}")


def user_messages(fc, text: str) -> list[dict]:
    """Every user message carrying `text` in one account, with its conversation's channel."""
    found = []
    for conv in fc.state()["conversations"]:
        for m in conv["messages"]:
            texts = [p["text"]["content"] for p in m["message_parts"] if "text" in p]
            if m["actor_type"] == "user" and text in texts:
                found.append({"conversation_id": conv["conversation_id"], "channel_id": conv["channel_id"], **m})
    return found


def write(bridge, oa, user: str, text: str) -> None:
    sent = oa.send_text(bridge.url + "/webhooks/zalo", user, text)
    assert sent.statuses == [200], f"the bridge refused {oa.oa_id}'s webhook: {sent.statuses}"


def open_conversations(bridge, oas, accounts, user: str) -> dict[str, str]:
    """The same Zalo user id writes to every OA: one conversation per connection, each in its
    connection's account and topic (one Zalo user seen through two OAs is two FreshChat users)."""
    for conn_id, oa in oas.items():
        write(bridge, oa, user, f"hello {conn_id}")
    conversations = {}
    for conn_id, (fc, topic) in accounts.items():
        wait_until(
            lambda fc=fc, c=conn_id: user_messages(fc, f"hello {c}"),
            timeout=20,
            what=f"{conn_id}'s first message in its FreshChat account",
        )
        (message,) = user_messages(fc, f"hello {conn_id}")
        assert message["channel_id"] == topic, f"{conn_id}'s message is in topic {message['channel_id']}"
        conversations[conn_id] = message["conversation_id"]
    return conversations


def reply(bridge, accounts, conversations, conn_id: str, text: str) -> float:
    """An agent reply in the connection's account; the time its webhook was accepted."""
    fc = accounts[conn_id][0]
    hook = freshchat_hook(bridge, conn_id)
    send_until_accepted(fc, hook, lambda: fc.send_agent_message(hook, conversations[conn_id], text))
    return time.time()


def texts_to(oa, user: str) -> list[str]:
    return [m["message"].get("text", "") for m in oa.messages_to(user)]


def end_of_run(bridge, oas, accounts, conversations, user: str) -> None:
    """Reply END last through each of `oas` and wait for it: its lane delivers in order, so a
    duplicate (or a misrouted copy) of an earlier reply would have landed before it."""
    for conn_id in oas:
        reply(bridge, accounts, conversations, conn_id, END)
    for conn_id, oa in oas.items():
        wait_until(lambda oa=oa: END in texts_to(oa, user), timeout=30, what=f"the end marker via {conn_id}")


# -- routing ------------------------------------------------------------------------------------


def test_each_message_lands_in_its_connections_account_and_topic_and_replies_use_its_oas_token(world):
    bridge, oas, accounts = world
    user = uid(1)
    conversations = open_conversations(bridge, oas, accounts, user)
    for conn_id, (fc, _) in accounts.items():
        others = [c for c, (other, _) in accounts.items() if other is fc and c != conn_id]
        assert len(fc.conversations_of(user_messages(fc, f"hello {conn_id}")[0]["actor_id"])) == 1
        for other in others:  # account 1 holds two connections: each its own FreshChat user
            assert (
                user_messages(fc, f"hello {conn_id}")[0]["actor_id"]
                != user_messages(fc, f"hello {other}")[0]["actor_id"]
            )
    assert {c: len(user_messages(accounts["b2"][0], f"hello {c}")) for c in oas} == {"default": 0, "b2": 1, "a1": 0}

    for conn_id in oas:
        reply(bridge, accounts, conversations, conn_id, f"reply via {conn_id}")
    for conn_id, oa in oas.items():
        wait_until(
            lambda oa=oa, c=conn_id: f"reply via {c}" in texts_to(oa, user), timeout=20, what=f"{conn_id}'s reply"
        )
    end_of_run(bridge, oas, accounts, conversations, user)  # a reply sent twice or through a wrong OA lands first
    for conn_id, oa in oas.items():
        sent = oa.messages_to(user)
        assert [m["message"]["text"] for m in sent] == [f"reply via {conn_id}", END], conn_id
        assert (sent[0]["oa_id"], sent[0]["access_token"]) == (oa.oa_id, oa.access_token), conn_id


# -- isolation: a storm on one app and a dead token on one OA --------------------------------------


def delivery_latencies(bridge, oa, accounts, conversations, user: str, label: str) -> list[float]:
    """Reply to `b2` one at a time; seconds from the accepted webhook to the message in Zalo."""
    latencies = []
    for i in range(SAMPLES):
        text = f"{label} #{i}"
        accepted = reply(bridge, accounts, conversations, "b2", text)
        wait_until(lambda t=text: t in texts_to(oa, user), timeout=20, interval=0.01, what=f"b2 reply {text}")
        record = next(m for m in oa.messages_to(user) if m["message"]["text"] == text)
        latencies.append(max(0.0, record["time"] - accepted))
    return latencies


def test_a_storm_on_one_app_and_a_dead_token_leave_the_third_connection_fast(world):
    bridge, oas, accounts = world
    user = uid(2)
    conversations = open_conversations(bridge, oas, accounts, user)
    b2, a1, default = oas["b2"], oas["a1"], oas["default"]
    before = statistics.median(delivery_latencies(bridge, b2, accounts, conversations, user, "before"))

    a1.faults.fail_fraction("message_cs", 1.0, [-32])  # every message_cs of app A
    storm_ends = time.monotonic() + STORM_SECONDS
    default.expire_access_token()
    default.revoke_refresh_token()
    storm_replies = [f"storm #{i}" for i in range(6)]
    for text in storm_replies:
        reply(bridge, accounts, conversations, "a1", text)
    for i in range(3):
        reply(bridge, accounts, conversations, "default", f"dead token #{i}")
    during = statistics.median(delivery_latencies(bridge, b2, accounts, conversations, user, "during"))
    assert time.monotonic() < storm_ends, "the storm ended before b2's replies were measured"
    print(f"\nb2 p50 delivery: {before * 1000:.0f} ms before, {during * 1000:.0f} ms during the storm")
    assert during <= max(2 * before, before + 0.2), (before, during)
    assert texts_to(a1, user) == [], "app A answered -32 to everything: nothing can have been sent"

    time.sleep(max(0.0, storm_ends - time.monotonic()))
    a1.faults.clear()
    wait_until(
        lambda: set(storm_replies) <= set(texts_to(a1, user)),
        timeout=RECOVERY_SECONDS,
        interval=0.5,
        what="a1's storm replies after the storm",
    )
    end_of_run(bridge, {"a1": a1}, accounts, conversations, user)  # a late duplicate lands first
    assert texts_to(a1, user) == storm_replies + [END]  # once each, in order
    assert texts_to(default, user) == []  # the dead token: nothing sent, and nothing through another OA
    assert texts_to(b2, user) == [f"before #{i}" for i in range(SAMPLES)] + [f"during #{i}" for i in range(SAMPLES)]
