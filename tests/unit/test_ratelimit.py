"""The shared token bucket never lets more than `limit` calls into any window."""

from __future__ import annotations

import threading
import time

from app.bridge.ratelimit import RateLimiter


def test_no_window_ever_holds_more_than_the_limit(redis):
    limit, window = 20, 1.0
    stamps, lock = [], threading.Lock()

    def caller():
        limiter = RateLimiter(redis, "t", limit, window_seconds=window, max_wait_ms=2000)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            if limiter.wait() == 0:
                with lock:
                    stamps.append(time.monotonic())

    threads = [threading.Thread(target=caller) for _ in range(6)]  # driven far above the limit
    [t.start() for t in threads]
    [t.join() for t in threads]
    worst = max(sum(1 for s in stamps if t0 <= s < t0 + window) for t0 in stamps)
    assert worst <= limit
    assert len(stamps) >= limit * 2  # and it does not starve: ~limit per window gets through


def test_penalty_stops_everyone_until_it_expires(redis):
    limiter = RateLimiter(redis, "p", 1000)
    limiter.penalise(0.3)
    assert 200 <= RateLimiter(redis, "p", 1000).take() <= 300
    time.sleep(0.32)
    assert limiter.take() == 0


def test_a_wait_longer_than_the_patience_is_handed_back_not_slept(redis, settings):
    """A worker holding a lane's lease never sleeps past a third of it for a token."""
    from workers.context import WorkerContext

    ctx = WorkerContext(settings, redis)
    patience = ctx.freshchat.limiter.max_wait_ms
    assert patience == min(5000, settings.lease_seconds * 1000 // 3)
    ctx.freshchat.limiter.penalise(patience / 1000 + 1.0)
    started = time.monotonic()
    assert ctx.freshchat.limiter.wait() > patience and time.monotonic() - started < 0.05


def test_renewed_pauses_do_not_add_up_past_the_patience(redis):
    limiter = RateLimiter(redis, "r", 1000, max_wait_ms=300)
    limiter.penalise(0.2)
    renew = threading.Timer(0.15, lambda: limiter.penalise(0.2))  # another 429 meanwhile
    renew.start()
    started = time.monotonic()
    assert limiter.wait() > 0 and time.monotonic() - started < 0.3
    renew.join()
