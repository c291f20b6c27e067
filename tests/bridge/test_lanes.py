"""Lanes on a real Redis: dedupe, order, lease ownership, deferral and release."""

from __future__ import annotations

import os
import socket
import time

from app.bridge.keys import DEFAULT_KEYS, DUE, WAKE, Keys, lease
from app.bridge.keys import lane as lane_key
from app.bridge.lanes import Item, Lanes, lease_holder, now_ms
from sandbox.procs import wait_until


def item(n: int) -> Item:
    return Item(id=f"t:{n}", kind="test", payload={"n": n}, received_at=now_ms())


def test_accept_dedupes_appends_and_wakes_once(redis):
    lanes = Lanes(redis)
    assert lanes.accept("in:a", item(1), DEFAULT_KEYS.seen("t", "1"), 60)
    assert not lanes.accept("in:a", item(1), DEFAULT_KEYS.seen("t", "1"), 60)
    assert lanes.accept("in:a", item(2), DEFAULT_KEYS.seen("t", "2"), 60)
    assert [Item.loads(r).id for r in redis.lrange(lane_key("in:a"), 0, -1)] == ["t:1", "t:2"]
    assert redis.lrange(WAKE, 0, -1) == [b"in:a"]  # one wake-up per newly pending lane
    assert redis.ttl(DEFAULT_KEYS.seen("t", "1")) > 0


def test_only_one_holder_and_only_the_holder_pops(redis):
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    token = lanes.acquire("in:a")
    assert token and lanes.acquire("in:a") is None
    raw, head = lanes.head("in:a")
    assert lanes.pop("in:a", "someone-else", raw) == (-1, None)
    assert lanes.pop("in:a", token, raw) == (0, None)  # empty: the lane is given up with the pop
    assert redis.zscore(DUE, "in:a") is None and lanes.acquire("in:a") is None
    assert lanes.release("in:a", token) == -1  # nothing left to release


def test_a_lease_names_the_host_and_process_holding_it(redis):
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    lanes.accept("in:b", item(2))
    first, second = lanes.acquire("in:a"), lanes.acquire("in:b")
    assert redis.get(lease("in:a")).decode() == first
    assert lease_holder(first) == lease_holder(second) == (socket.gethostname(), os.getpid())
    assert first != second  # still unique per lease: a stale holder cannot act on a new one


def test_pop_hands_back_the_next_head_and_keeps_the_lease(redis):
    lanes = Lanes(redis)
    for n in (1, 2, 3):
        lanes.accept("in:a", item(n))
    token = lanes.acquire("in:a")
    raw, _ = lanes.head("in:a")
    left, following = lanes.pop("in:a", token, raw)
    assert left == 1 and Item.loads(following).id == "t:2"  # work left, not how much
    assert lanes.pop("in:a", token, raw) == (-2, None)  # the old head is gone: nothing popped
    assert lanes.pop("in:a", token, following)[0] == 1 and lanes.acquire("in:a") is None


def test_deferred_lane_is_not_acquired_before_it_is_due_and_keeps_order(redis):
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    token = lanes.acquire("in:a")
    raw, head = lanes.head("in:a")
    head.attempts = 1
    assert lanes.defer("in:a", token, raw, head, due_ms=now_ms() + 150) == 1
    lanes.accept("in:a", item(2))  # a later message must wait behind the retrying one
    assert lanes.acquire("in:a") is None
    time.sleep(0.2)
    assert lanes.acquire("in:a")
    assert lanes.head("in:a")[1].id == "t:1" and lanes.head("in:a")[1].attempts == 1


def test_expired_lease_lets_another_worker_take_over(redis):
    lanes = Lanes(redis, lease_ms=100)
    lanes.accept("in:a", item(1))
    first = lanes.acquire("in:a")
    time.sleep(0.15)
    second = lanes.acquire("in:a")
    raw, _ = lanes.head("in:a")
    assert second and lanes.pop("in:a", first, raw) == (-1, None) and lanes.pop("in:a", second, raw) == (0, None)


def test_release_keeps_lane_scheduled_when_work_arrived_meanwhile(redis):
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    lanes.accept("in:a", item(2))
    token = lanes.acquire("in:a")
    raw, _ = lanes.head("in:a")
    lanes.pop("in:a", token, raw)
    lanes.accept("in:a", item(3))
    assert lanes.release("in:a", token) == 1 and "in:a" in lanes.due_lanes()


def test_work_arriving_after_the_emptying_pop_wakes_the_lane(redis):
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    redis.delete(WAKE)
    token = lanes.acquire("in:a")
    lanes.pop("in:a", token, lanes.head("in:a")[0])
    lanes.accept("in:a", item(2))
    assert redis.lrange(WAKE, 0, -1) == [b"in:a"] and lanes.acquire("in:a")


def test_only_the_holder_renews_or_releases_its_lease(redis):
    lanes = Lanes(redis, lease_ms=60000)
    lanes.accept("in:a", item(1))
    token = lanes.acquire("in:a")
    redis.pexpire(lease("in:a"), 1000)
    assert not lanes.renew("in:a", "someone-else")
    assert redis.pttl(lease("in:a")) <= 1000  # not extended by a stranger
    assert lanes.release("in:a", "someone-else") == -1
    assert redis.get(lease("in:a")) == token.encode()  # still ours
    assert lanes.renew("in:a", token) and redis.pttl(lease("in:a")) > 1000


def test_keep_asks_redis_only_once_a_tenth_of_the_lease_has_passed(redis):
    lanes = Lanes(redis, lease_ms=3000)  # a tenth is 300 ms: room for a loaded machine's pauses
    lanes.accept("in:a", item(1))
    token = lanes.acquire("in:a")
    redis.set(lease("in:a"), "someone-else")  # cannot happen while the lease is young...
    assert lanes.keep("in:a", token)  # ...so a young lease is not looked at
    lanes._held[token] -= 0.301  # its own record of the last renewal, made older than a tenth
    assert not lanes.keep("in:a", token)  # now Redis is asked: not ours
    redis.set(lease("in:a"), token)
    assert lanes.keep("in:a", token) and redis.pttl(lease("in:a")) > 2500  # renewed


def test_a_slow_item_that_makes_progress_keeps_its_lane(redis, settings):
    """The holder renews on progress, so nobody else drains the lane meanwhile."""
    from workers.context import WorkerContext
    from workers.drain import Drainer

    ctx = WorkerContext(settings, redis)
    # A lease with room for a loaded machine's pauses between two renewals (300 ms had none).
    ctx.lanes.lease_ms = 2000
    rival = Lanes(redis, lease_ms=2000)
    stolen, renewed = [], []

    def slow(ctx_, item_, progress):
        for _ in range(3):  # each turn waits out half the lease: one and a half leases in all
            half_gone = lambda: redis.pttl(lease("in:a")) < 1000  # noqa: E731
            wait_until(half_gone, timeout=10, interval=0.05, what="half the lease gone")
            progress()
            renewed.append(redis.pttl(lease("in:a")) > 1000)  # the lease's own record: renewed
            stolen.append(rival.acquire("in:a"))

    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    assert Drainer(ctx, {"test": slow}).drain("in:a") == "empty"
    assert renewed == [True] * 3 and stolen == [None] * 3


def test_claim_takes_the_lane_waiting_longest_and_skips_held_ones(redis):
    lanes = Lanes(redis)
    for n, lane in enumerate(("in:old", "in:new")):
        lanes.accept(lane, item(n))
        time.sleep(0.01)
    first = lanes.claim()
    assert first[0] == "in:old"
    assert lanes.claim()[0] == "in:new" and lanes.claim() is None  # both held now
    assert lanes.renew("in:old", first[1])


def test_a_take_tells_its_connections_open_breaker_marks_once_and_for_that_lane_only(redis):
    lanes, hcm = Lanes(redis), Keys("hcm")
    redis.set(hcm.breaker_open("zalo"), "1", px=5000)
    lanes.accept("hcm/out:c", item(1))
    before = time.monotonic()
    assert lanes.take("hcm/out:c")
    at, marks = lanes.marks_seen("hcm/out:c")
    assert before <= at <= time.monotonic()
    assert set(marks) == {hcm.breaker_open("zalo"), hcm.breaker_open("freshchat")}
    assert 4000 < marks[hcm.breaker_open("zalo")] <= 5000 and marks[hcm.breaker_open("freshchat")] == -2
    assert lanes.marks_seen("hcm/out:c") is None  # told once: a later item's breaker reads for itself
    lanes.accept("in:a", item(2))
    assert lanes.take("in:a") and lanes.marks_seen("hcm/out:c") is None  # not another lane's


def test_a_held_lane_is_due_again_only_when_its_lease_ends(redis):
    lanes = Lanes(redis, lease_ms=5000)  # long enough that a loaded machine's pauses stay inside it
    lanes.accept("in:a", item(1))
    before = now_ms()
    token = lanes.acquire("in:a")
    assert lanes.due_count() == 0 and redis.zscore(DUE, "in:a") >= before + 5000
    lanes.accept("in:a", item(2))  # new work for a held lane keeps the holder's time
    assert lanes.due_count() == 0
    assert lanes.renew("in:a", token) and lanes.release("in:a", token) == 1 and lanes.due_count() == 1


def test_an_item_written_by_a_newer_version_is_still_read(redis):
    import json

    raw = json.dumps(dict(item(1).__dict__, shiny_new_field=True))
    assert Item.loads(raw).id == "t:1"


def ids(redis, lane: str) -> list[str]:
    return [Item.loads(r).id for r in redis.lrange(lane_key(lane), 0, -1)]


def calls(redis) -> dict[str, int]:
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in redis.info("commandstats").items()}


def test_a_timer_lane_holds_one_waiting_item_replaced_or_kept(redis):
    lanes = Lanes(redis)
    later = now_ms() + 60000
    lanes.schedule("win:warm", item(0), later, replace=True)  # the script loaded
    redis.config_resetstat()
    assert lanes.schedule("win:a", item(1), later, replace=True) == 1
    assert calls(redis) == {
        "config": 1,
        "evalsha": 1,
        "llen": 1,
        "rpush": 1,
        "zadd": 1,
    }  # an empty lane: no lease to ask
    assert lanes.schedule("win:a", item(2), later + 5, replace=True) == 2  # a newer message moves it
    assert ids(redis, "win:a") == ["t:2"] and redis.zscore(DUE, "win:a") == later + 5
    assert lanes.schedule("win:a", item(3), later + 9, replace=False) == 0  # debounce: the first time stays
    assert ids(redis, "win:a") == ["t:2"] and redis.zscore(DUE, "win:a") == later + 5
    assert redis.llen(WAKE) == 0  # nothing is due now: no doorbell
    assert lanes.cancel("win:a") and redis.zscore(DUE, "win:a") is None and ids(redis, "win:a") == []
    redis.config_resetstat()
    assert not lanes.cancel("win:a")  # nothing waits (a second reply in a row): 3 commands, not 4
    assert calls(redis) == {"config": 1, "evalsha": 1, "exists": 1, "del": 1}


def test_a_timer_set_while_a_worker_holds_the_lane_waits_behind_its_head(redis):
    lanes = Lanes(redis)
    lanes.schedule("rcpt:c", item(1), now_ms(), replace=False)
    token = lanes.acquire("rcpt:c")
    leased_until = redis.zscore(DUE, "rcpt:c")
    assert lanes.schedule("rcpt:c", item(2), now_ms() + 60000, replace=False) == 1  # a change after the read
    assert lanes.schedule("rcpt:c", item(3), now_ms() + 60000, replace=True) == 2
    assert ids(redis, "rcpt:c") == ["t:1", "t:3"] and redis.zscore(DUE, "rcpt:c") == leased_until
    assert not lanes.cancel("rcpt:c") and ids(redis, "rcpt:c") == ["t:1", "t:3"]
    assert token
