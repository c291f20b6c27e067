"""The starter on a real Redis: it queues drain jobs for due lanes, never more than needed."""

from __future__ import annotations

from rq import Queue

from app.bridge.keys import WAKE
from app.bridge.lanes import Item, Lanes, now_ms
from workers.starter import QUEUE_NAME, Starter


def item(n: int) -> Item:
    return Item(id=f"t:{n}", kind="test", payload={"n": n}, received_at=now_ms())


def starter(redis, workers: int = 4) -> tuple[Starter, Queue]:
    queue = Queue(QUEUE_NAME, connection=redis)
    return Starter(redis, Lanes(redis), workers, queue), queue


def test_one_job_per_due_lane_up_to_the_number_of_workers(redis):
    s, queue = starter(redis, workers=3)
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    assert s.run_once(block_seconds=0.1) == 1 and queue.count == 1
    assert s.run_once(block_seconds=0.1) == 0  # one waiting job is enough for one lane
    for n in range(2, 10):
        lanes.accept(f"in:{n}", item(n))
    assert s.run_once(block_seconds=0.1) == 2 and queue.count == 3  # capped at the workers
    assert redis.llen(WAKE) == 0  # every ring answered by one look at the due set


def test_leased_and_deferred_lanes_need_no_job(redis):
    s, queue = starter(redis)
    lanes = Lanes(redis)
    lanes.accept("in:a", item(1))
    lanes.accept("in:b", item(2))
    lanes.acquire("in:a")  # being drained: due only when its lease would end
    token = lanes.acquire("in:b")
    raw, head = lanes.head("in:b")
    lanes.defer("in:b", token, raw, head, due_ms=now_ms() + 60000)
    assert s.top_up() == 0 and queue.count == 0


def test_a_dead_workers_lane_gets_a_job_when_its_lease_runs_out(redis):
    import time

    s, queue = starter(redis)
    lanes = Lanes(redis, lease_ms=150)
    lanes.accept("in:a", item(1))
    assert lanes.claim()[0] == "in:a"  # ...and the worker dies holding it
    assert s.top_up() == 0
    time.sleep(0.2)
    assert s.top_up() == 1 and lanes.claim()[0] == "in:a"


def test_a_drain_job_takes_the_lane_it_heard_and_else_looks_at_the_due_set(redis):
    from workers.drain import next_lane

    lanes = Lanes(redis)
    lanes.accept("in:a", Item("z:1", "zalo", {}, 1))
    lanes.accept("in:b", Item("z:2", "zalo", {}, 2))
    assert next_lane(lanes, (b"zfb:wake", b"in:b"))[0] == "in:b"  # the doorbell's lane, first
    assert next_lane(lanes, (b"zfb:wake", b"in:b"))[0] == "in:a"  # held already: the due set's
    assert next_lane(lanes, None) is None


def test_a_pop_that_empties_its_lane_names_the_lanes_due_for_the_next_claim(redis):
    from workers.drain import next_lane

    lanes = Lanes(redis)
    lanes.accept("in:a", Item("z:1", "zalo", {}, 1))
    lane, token, (raw, _) = lanes.claim()
    lanes.accept("in:b", Item("z:2", "zalo", {}, 2))
    assert lanes.pop(lane, token, raw) == (0, None)
    assert lanes.due_seen() == ["in:b"] and lanes.due_seen() is None  # told once
    redis.flushall()
    lanes.accept("in:a", Item("z:3", "zalo", {}, 3))
    lane, token, (raw, _) = lanes.claim()
    assert lanes.pop(lane, token, raw) == (0, None) and lanes.due_seen() == []  # nothing due: no look


def test_what_a_pop_saw_due_is_not_used_once_it_is_old(redis, monkeypatch):
    """A job may end right after its pop; the next job of the process must not trust that
    "nothing was due": a dead worker's lane may be due since, and nothing rings for it."""
    from workers.drain import next_lane

    lanes = Lanes(redis)
    lanes.accept("in:a", Item("z:1", "zalo", {}, 1))
    lane, token, (raw, _) = lanes.claim()
    assert lanes.pop(lane, token, raw) == (0, None)
    lanes.accept("in:b", Item("z:2", "zalo", {}, 2))  # due since, without a look at the due set
    monkeypatch.setattr("app.bridge.lanes.DUE_SEEN_SECONDS", 0)
    assert next_lane(lanes, None)[0] == "in:b"


def test_a_ring_is_answered_in_one_round_trip_after_the_doorbell(redis, round_trips):
    """The doorbell's wait, then one pipeline: its other rings cleared, the due lanes counted,
    the waiting jobs counted; then the jobs queued (rq's own round trips, one per job)."""
    s, queue = starter(redis, workers=4)
    Lanes(redis).accept("in:a", item(1))  # rings the doorbell
    Lanes(redis).accept("in:b", item(2))  # and again
    del round_trips[:]
    assert s.run_once(block_seconds=0.1) == 2
    looks = [c for c in round_trips if b"ZCOUNT" in c]
    assert len(looks) == 1 and b"BLPOP" in round_trips[0]
    assert b"DEL" in looks[0] and b"LLEN" in looks[0] and round_trips[1] is looks[0]
    assert redis.llen(WAKE) == 0 and queue.count == 2
