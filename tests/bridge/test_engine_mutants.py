"""Delivery-engine rules that mutation testing (`make mutants`) found no fast test holding: an
accepted webhook is on REDIS_WAIT_REPLICAS replicas or refused (the shortage marked once), and
the engine's Redis records expire (an effect's result and its in-flight record, the breaker's
"it answered" mark and its probe lock). Real redis-servers: a primary with a real replica."""

from __future__ import annotations

import logging

import pytest
import redis as redis_lib

from app.bridge.breaker import OK_WINDOW_SECONDS, OPEN_SECONDS, Breaker
from app.bridge.effects import Effects
from app.bridge.keys import DEFAULT_KEYS, REPLICAS_SHORT
from app.bridge.keys import lane as lane_key
from app.bridge.lanes import SHORT_KEPT, Item, Lanes, NotReplicated, now_ms
from app.errors import RetryableError
from app.integrations.zalo.errors import ZaloOutcomeUnknown
from sandbox.procs import wait_until
from sandbox.redis_server import RedisServer

STARTED, ENDED = "redis.replicas_short_started", "redis.replicas_short_ended"


def item(n: int) -> Item:
    return Item(id=f"t:{n}", kind="test", payload={"n": n}, received_at=now_ms())


def seen(n: int) -> str:
    return DEFAULT_KEYS.seen("t", str(n))


def lines(caplog, message: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == message)


@pytest.fixture
def primary():
    server = RedisServer(appendonly=False).start()
    yield server
    server.stop()


def test_without_its_replica_an_accepted_item_is_refused_and_the_shortage_logged_once(primary, caplog):
    client = redis_lib.Redis.from_url(primary.url)
    lanes = Lanes(client, replicas=1, wait_ms=20)
    caplog.set_level(logging.INFO, logger="bridge.lanes")
    with pytest.raises(NotReplicated, match="write reached 0 of 1 replicas"):
        lanes.accept("in:a", item(1), seen(1), 60)
    with pytest.raises(NotReplicated):  # the partner's redelivery: a duplicate waits too
        lanes.accept("in:a", item(1), seen(1), 60)
    assert lines(caplog, STARTED) == 1
    assert 0 < client.ttl(REPLICAS_SHORT) <= SHORT_KEPT
    assert lanes.replica_state() == {"wanted": 1, "connected": 0, "short": True}
    assert [Item.loads(r).id for r in client.lrange(lane_key("in:a"), 0, -1)] == ["t:1"]  # kept once


def test_with_its_replica_an_item_is_accepted_once_and_the_shortage_ends(primary, caplog):
    client = redis_lib.Redis.from_url(primary.url)
    client.set(REPLICAS_SHORT, 1)  # an earlier refusal
    replica = RedisServer(appendonly=False, extra_args=("--replicaof", "127.0.0.1", str(primary.port))).start()
    try:
        lanes = Lanes(client, replicas=1, wait_ms=2000)
        wait_until(lambda: lanes.replica_state()["connected"] == 1, timeout=15, what="the replica online")
        caplog.set_level(logging.INFO, logger="bridge.lanes")
        assert lanes.accept("in:a", item(1), seen(1), 60) is True
        assert lines(caplog, ENDED) == 1 and not client.exists(REPLICAS_SHORT)
        assert lanes.accept("in:a", item(1), seen(1), 60) is False  # a duplicate
        assert lanes.accept("in:a", item(2), seen(2), 60) is True
        assert lines(caplog, ENDED) == 1 and lines(caplog, STARTED) == 0
        copy = redis_lib.Redis(port=replica.port)
        assert [Item.loads(r).id for r in copy.lrange(lane_key("in:a"), 0, -1)] == ["t:1", "t:2"]
        assert 0 < copy.ttl(seen(1)) <= 60
        assert lanes.replica_state() == {"wanted": 1, "connected": 1, "short": False}
    finally:
        replica.stop()


def test_no_replica_wanted_means_no_replica_state(redis):
    assert Lanes(redis).replica_state() is None


def test_an_effects_result_and_its_in_flight_record_expire_with_the_dedupe_window(redis):
    effects = Effects(redis, 60)
    assert effects.once("k", lambda: "sent") == "sent"
    assert 0 < redis.ttl(DEFAULT_KEYS.done("k")) <= 60

    def unanswered():
        effects.take_off(to="user-1")
        raise ZaloOutcomeUnknown("Zalo timed out")

    with pytest.raises(ZaloOutcomeUnknown):
        effects.once("u", unanswered, reconcile=lambda flight: None)
    assert effects.in_flight("u")["to"] == "user-1"
    assert 0 < redis.ttl(DEFAULT_KEYS.done("u")) <= 60  # the record waits where the result will go


def test_the_breakers_marks_expire_so_a_stale_answer_or_probe_never_decides(redis):
    up = Breaker(redis, "zalo", lambda: None)
    up.mark_ok()
    assert OK_WINDOW_SECONDS * 1000 < redis.pttl(DEFAULT_KEYS.breaker_ok("zalo")) <= (OK_WINDOW_SECONDS + 1) * 1000

    def failing():
        raise RetryableError("HTTP 503")

    down = Breaker(redis, "freshchat", failing)
    assert down.partner_down()
    assert 0 < redis.pttl(DEFAULT_KEYS.breaker_probing("freshchat")) <= OPEN_SECONDS * 1000
    assert 0 < redis.pttl(DEFAULT_KEYS.breaker_open("freshchat")) <= OPEN_SECONDS * 1000
