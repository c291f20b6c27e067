"""merge_users_by_app with real processes (CONTRACT §7): one person writing to two OAs of one
Zalo app, whose connections share a FreshChat account and have the option, is one FreshChat
user with two conversations, each in its connection's topic; an agent's reply in each goes out
through that conversation's OA, with that OA's token.

Both connections are stored (the default connection, of the same app and account, cannot have
the option: no variable sets it); the person has their own user id on each OA and one
`user_id_by_app`, as Zalo gives them. Their first messages are sent at the same moment, to two
workers: one FreshChat user all the same.
"""

from __future__ import annotations

import signal
import threading

import pytest

from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore
from sandbox.connections import simulated_record
from sandbox.helpers import make_settings
from sandbox.procs import Bridge, wait_until
from tests.e2e.test_connections import texts_to, user_messages
from tests.e2e.test_delivery import send_until_accepted

pytestmark = pytest.mark.e2e

OAS = {"shop-hn": ("2000000000000000711", "hn-oa-secret-key"), "shop-hcm": ("2000000000000000712", "hcm-oa-secret-key")}
PERSON_IDS = {"shop-hn": "8370000000000000001", "shop-hcm": "8370000000000000902"}  # one person, two OA-scoped ids


@pytest.fixture
def merged(sims, redis, redis_server, tmp_path):
    base, zalo, fc = sims
    bridge = Bridge(redis_server.url, base, fc.public_key_pem_rsa_label, tmp_path)
    settings = make_settings(redis_server.url, secret_key=bridge.env["SECRET_KEY"])
    store = ConnectionStore(redis, settings, sealer_for(settings))
    oas = {}
    for conn_id, (oa_id, secret) in OAS.items():
        oa = oas[conn_id] = zalo.add_oa(zalo.app_id, oa_id, secret, zalo.app_secret)
        oa.add_user(PERSON_IDS[conn_id], "Lan", person="lan")
        fc.add_channel(f"topic-{conn_id}", conn_id)
        freshchat = {
            "api_url": base + "/freshchat/v2",
            "api_key": fc.api_key,
            "channel_id": f"topic-{conn_id}",
            "webhook_public_key": fc.public_key_pem_rsa_label,
        }
        record = simulated_record(conn_id, conn_id, oa, freshchat)
        store.put(dict(record, options={"merge_users_by_app": True}))
    try:
        bridge.start_all(workers=2)
        fc.webhook_url = bridge.url + "/webhooks/freshchat"  # the account's one webhook URL
        yield bridge, oas, fc
    finally:
        bridge.stop(signal.SIGKILL)
        fc.webhook_url = None


def test_one_person_on_two_oas_is_one_freshchat_user_with_a_conversation_per_oa_answered_through_each(merged):
    bridge, oas, fc = merged
    by_app = {oa.user_id_by_app(PERSON_IDS[c]) for c, oa in oas.items()}
    assert len(by_app) == 1 and len(set(PERSON_IDS.values())) == 2  # one person, two OA user ids

    start = threading.Barrier(len(oas))

    def first_message(conn_id: str) -> None:
        start.wait()
        sent = oas[conn_id].send_text(bridge.url + "/webhooks/zalo", PERSON_IDS[conn_id], f"hello {conn_id}")
        assert sent.statuses == [200]

    senders = [threading.Thread(target=first_message, args=(c,)) for c in oas]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(10)
    for conn_id in oas:
        wait_until(lambda c=conn_id: user_messages(fc, f"hello {c}"), timeout=30, what=f"{conn_id}'s first message")

    messages = {c: user_messages(fc, f"hello {c}")[0] for c in oas}
    assert {m["actor_id"] for m in messages.values()} == {messages["shop-hn"]["actor_id"]}  # one FreshChat user
    assert {c: m["channel_id"] for c, m in messages.items()} == {c: f"topic-{c}" for c in oas}
    conversations = {c: m["conversation_id"] for c, m in messages.items()}
    assert len(set(conversations.values())) == 2
    assert len(fc.conversations_of(messages["shop-hn"]["actor_id"])) == 2
    assert len(fc.users_by_reference(f"zalo:app:{oas['shop-hn'].app_id}:{by_app.pop()}")) == 1

    hook = bridge.url + "/webhooks/freshchat"
    for conn_id in oas:
        text = f"reply in {conn_id}'s conversation"
        send_until_accepted(fc, hook, lambda c=conn_id, t=text: fc.send_agent_message(hook, conversations[c], t))
    for conn_id, oa in oas.items():
        user = PERSON_IDS[conn_id]
        wait_until(lambda oa=oa, u=user: texts_to(oa, u), timeout=30, what=f"the reply through {conn_id}")
        (sent,) = oa.messages_to(user)
        assert sent["message"]["text"] == f"reply in {conn_id}'s conversation"
        assert (sent["oa_id"], sent["access_token"]) == (oa.oa_id, oa.access_token)
