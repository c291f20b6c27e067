"""The dispatcher's hand-off to lingering drain jobs, on a real Redis."""

from __future__ import annotations

import threading
import time

from rq import Queue

from app.bridge.lanes import WAKE, Lanes
from workers.dispatch import HANDOFF, LINGERING, QUEUE_NAME, Chain, Dispatcher


def linger_in_thread(redis) -> tuple[threading.Thread, list]:
    got: list = []
    thread = threading.Thread(target=lambda: got.append(Chain(redis).next_lane()))
    thread.start()
    deadline = time.monotonic() + 2
    while not redis.zcard(LINGERING) and time.monotonic() < deadline:
        time.sleep(0.005)
    return thread, got


def test_a_lingering_job_gets_the_lane_and_no_rq_job_is_made(redis):
    dispatcher = Dispatcher(redis, Lanes(redis))
    thread, got = linger_in_thread(redis)
    assert dispatcher.kick("in:a")
    thread.join(2)
    assert got == ["in:a"] and Queue(QUEUE_NAME, connection=redis).count == 0
    assert redis.zcard(LINGERING) == 0 and redis.llen(HANDOFF) == 0


def test_without_a_lingering_job_the_lane_becomes_one_rq_job(redis):
    dispatcher = Dispatcher(redis, Lanes(redis))
    assert dispatcher.kick("in:a") and not dispatcher.kick("in:a")  # one queued job per lane
    assert Queue(QUEUE_NAME, connection=redis).count == 1 and redis.llen(HANDOFF) == 0


def test_each_lingering_job_takes_one_hand_off(redis):
    dispatcher = Dispatcher(redis, Lanes(redis))
    thread, got = linger_in_thread(redis)
    assert dispatcher.kick("in:a") and dispatcher.kick("in:b")
    thread.join(2)
    assert got == ["in:a"] and Queue(QUEUE_NAME, connection=redis).count == 1


def test_waiting_wake_ups_come_first_and_queued_rq_jobs_end_the_chain(redis):
    chain = Chain(redis)
    redis.rpush(WAKE, "in:a")
    assert chain.next_lane() == "in:a"
    Queue(QUEUE_NAME, connection=redis).enqueue("workers.dispatch.drain_lane", "in:b")
    started = time.monotonic()
    assert chain.next_lane() is None and time.monotonic() - started < 0.2  # no lingering
    assert redis.zcard(LINGERING) == 0


def test_a_lingering_job_that_went_away_is_not_handed_anything(redis):
    redis.zadd(LINGERING, {"dead-job": 1.0})  # its linger ended long ago (Redis time)
    assert Dispatcher(redis, Lanes(redis)).kick("in:a")
    assert redis.llen(HANDOFF) == 0 and Queue(QUEUE_NAME, connection=redis).count == 1


def test_a_lane_already_handed_off_is_not_handed_again(redis):
    dispatcher = Dispatcher(redis, Lanes(redis))
    first, got = linger_in_thread(redis)
    assert dispatcher.kick("in:a")
    first.join(2)
    second, _ = linger_in_thread(redis)
    assert not dispatcher.kick("in:a")  # e.g. the sweep, before the drain took the lease
    assert redis.llen(HANDOFF) == 0 and Queue(QUEUE_NAME, connection=redis).count == 0
    Lanes(redis).acquire("in:a")  # the drain starts: the lane may be kicked again
    assert dispatcher.kick("in:a")
    second.join(2)
