"""The shared token bucket never lets more than `limit` calls into any window."""

from __future__ import annotations

import threading
import time

import pytest

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
    limiter, slept = ctx.freshchat.limiter, []
    limiter.sleep = slept.append  # what it would sleep, recorded instead of timed
    limiter.penalise(patience / 1000 + 1.0)
    assert limiter.wait() > patience and slept == []


def test_renewed_pauses_do_not_add_up_past_the_patience(redis):
    # Injected time (a timer thread renewing the pause raced the sleep on a busy machine).
    clock = FakeClock(time.time())
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.sleep(seconds * 0.75)
        if len(slept) == 1:
            limiter.penalise(2.0)  # another 429 three quarters into the first pause
        clock.sleep(seconds * 0.25)

    limiter = RateLimiter(redis, "r", 1000, max_wait_ms=3000, clock=clock, sleep=sleep)
    limiter.penalise(2.0)
    started = clock()
    assert limiter.wait() > 0  # handed back: the renewed pause ends past the patience
    assert slept == [2.0] and clock() - started <= 3.0


class FakeClock:
    """Injected time: a test drives minutes of traffic without sleeping."""

    def __init__(self, start: float = 1_800_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def fake_limiter(redis, clock, limit=6000, **kw):
    kw.setdefault("max_wait_ms", 60000)
    return RateLimiter(redis, "z", limit, window_seconds=60.0, clock=clock, sleep=clock.sleep, **kw)


def test_refusals_in_a_row_double_the_pause_up_to_the_cap_and_a_success_ends_the_streak(redis):
    clock = FakeClock()
    limiter = fake_limiter(redis, clock)
    pauses = []
    for _ in range(5):
        grant = limiter.grant()  # sleeps (fake) through the previous pause
        pauses.append(limiter.backoff(grant.at_ms, max_seconds=6.0))
    assert pauses == [1.0, 2.0, 4.0, 6.0, 6.0]
    assert limiter.take() == 6000  # everyone waits the shared pause
    clock.sleep(6.0)
    grant = limiter.grant()
    assert grant.streak == 5
    limiter.calm(grant.at_ms)
    assert limiter.grant().streak == 0
    assert limiter.backoff(limiter.grant().at_ms, max_seconds=6.0) == 1.0


def test_refusals_of_calls_already_in_flight_count_once(redis):
    """Four workers' calls granted before the first refusal: one pause of 1 s, not 8."""
    clock = FakeClock()
    limiter = fake_limiter(redis, clock)
    grants = [limiter.grant() for _ in range(4)]
    pauses = []
    for grant in grants:
        clock.sleep(0.05)
        pauses.append(limiter.backoff(grant.at_ms, 30.0))
    assert pauses == pytest.approx([1.0, 0.95, 0.9, 0.85], abs=0.002)  # what is left of the one pause
    clock.sleep(0.4)
    limiter.calm(grants[0].at_ms)  # an older success does not end the newer streak
    clock.sleep(0.5)
    assert limiter.grant().streak == 1


def test_no_streak_no_extra_state_on_the_hot_path(redis):
    limiter = fake_limiter(redis, FakeClock())
    assert limiter.grant().streak == 0 and limiter.take() == 0


def granted_within(limiter, clock, seconds: float) -> int:
    """Empty the bucket, let `seconds` pass, count the calls granted."""
    while limiter.take() == 0:
        pass
    clock.sleep(seconds)
    count = 0
    while limiter.take() == 0:
        count += 1
    return count


def test_a_refusal_halves_the_rate_which_recovers_linearly_over_30_s(redis):
    clock = FakeClock()
    limiter = fake_limiter(redis, clock)  # refills 96 calls a second
    assert granted_within(limiter, clock, 0.5) == 48
    limiter.backoff(limiter.grant().at_ms, 60.0)
    clock.sleep(1.0)  # the pause
    assert 24 <= granted_within(limiter, clock, 0.5) <= 26  # ~0.52 of the rate
    clock.sleep(13.5)
    assert 35 <= granted_within(limiter, clock, 0.5) <= 37  # ~0.75
    clock.sleep(15.0)
    assert granted_within(limiter, clock, 0.5) == 48


def test_cuts_stop_at_a_tenth_of_the_rate(redis):
    clock = FakeClock()
    limiter = fake_limiter(redis, clock)
    for _ in range(8):
        limiter.backoff(limiter.grant().at_ms, 0.001)  # a pause of 1 ms: only the cuts count
        clock.sleep(0.002)
    assert 4 <= granted_within(limiter, clock, 0.5) <= 5  # 10 % of 48


CS = "https://openapi.zalo.me/v3.0/oa/message/cs"


def zalo_client(redis, settings, limiter):
    import requests

    from app.bridge.tokens_store import TokenStore
    from app.integrations.zalo.client import ZaloClient
    from app.integrations.zalo.tokens import TokenKeeper

    session = requests.Session()
    return ZaloClient(session, settings, TokenKeeper(TokenStore.of(redis, settings), settings, session), limiter)


def test_a_stray_refusal_costs_a_second_and_a_success_ends_the_streak(redis, settings, monkeypatch):
    import requests_mock

    from app.integrations.zalo.errors import ZaloRateLimited

    clock = FakeClock()
    monkeypatch.setattr("app.integrations.zalo.errors._seconds_to_next_minute", lambda: 60 - clock() % 60)
    client = zalo_client(redis, settings, fake_limiter(redis, clock, limit=4000))
    refused = {"json": {"error": -32, "message": "Reached the limit of API calls"}}
    ok = {"json": {"error": 0, "message": "Success", "data": {"message_id": "m1"}}}
    with requests_mock.Mocker() as m:
        m.post(CS, [refused, ok, refused])
        with pytest.raises(ZaloRateLimited) as first:
            client.send_text("u1", "hi")
        started = clock()
        assert client.send_text("u1", "hi") == "m1"  # waits out the shared pause, then goes
        with pytest.raises(ZaloRateLimited) as again:
            client.send_text("u1", "hi")
    assert first.value.retry_after == 1.0 and clock() - started == pytest.approx(1.0, abs=0.01)
    assert again.value.retry_after == 1.0  # the success in between ended the streak
    assert [r.json() for r in m.request_history] == [{"recipient": {"user_id": "u1"}, "message": {"text": "hi"}}] * 3
    assert all(r.headers["access_token"] == "access-0" for r in m.request_history)


@pytest.mark.parametrize("zalo_window", ["fixed", "sliding"])
def test_an_overloaded_quota_is_never_exceeded_and_costs_few_refusals(redis, settings, monkeypatch, zalo_window):
    """Zalo lets 50 calls a minute through (someone else uses the rest of the quota) and
    answers -32 to every call over that; the bridge is configured for 100. Over 10 busy
    minutes the bridge never sends more than its limit in any minute, gets a few -32s a
    minute, not dozens, and still uses most of what Zalo lets through."""
    import requests_mock

    from app.integrations.zalo.errors import ZaloRateLimited

    clock = FakeClock()
    monkeypatch.setattr("app.integrations.zalo.errors._seconds_to_next_minute", lambda: 60 - clock() % 60)
    client = zalo_client(redis, settings, fake_limiter(redis, clock, limit=100, max_wait_ms=5000))
    sent, accepted, refused = [], [], []

    def zalo(request, context):
        now = clock()
        sent.append(now)
        if zalo_window == "fixed":
            used = sum(1 for t in accepted if t // 60 == now // 60)
        else:
            used = sum(1 for t in accepted if now - 60 < t <= now)
        if used >= 50:
            refused.append(now)
            return {"error": -32, "message": "Reached the limit of API calls"}
        accepted.append(now)
        return {"error": 0, "message": "Success", "data": {"message_id": str(len(accepted))}}

    with requests_mock.Mocker() as m:
        m.post(CS, json=zalo)
        end = clock() + 600
        while clock() < end:
            try:
                client.send_text("u1", "hi")
            except ZaloRateLimited as exc:  # the lane is deferred, other lanes keep trying
                clock.sleep(0.01 if exc.code == -32 else exc.retry_after)
            clock.sleep(0.01)  # the worker's own time per message
    worst = max(sum(1 for s in sent if t0 <= s < t0 + 60) for t0 in sent)
    assert worst <= 100
    minutes = [int(t // 60) for t in sent]
    per_minute = {mi: minutes.count(mi) for mi in set(minutes)}
    refusals = {mi: sum(1 for t in refused if t // 60 == mi) for mi in per_minute}
    assert max(refusals.values()) <= 8
    assert len(accepted) >= 0.85 * 50 * 10


def takes(redis, call) -> int:
    """How many turns `call` asked Redis for (rate_take.lua runs as EVALSHA)."""
    redis.config_resetstat()
    call()
    return redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)


def taken_ahead(redis, limiter: RateLimiter) -> None:
    pipe = redis.pipeline(transaction=False)
    pipe.set("other", "1")
    keep = limiter.take_in(pipe)
    keep(pipe.execute()[-1])


def test_a_turn_taken_with_the_in_flight_record_serves_the_next_call_once(redis):
    """take_in puts the turn in another round trip (the send's in-flight record); the send's
    grant() then uses it instead of asking Redis again, once, in the thread that took it."""
    limiter = RateLimiter(redis, "ahead", 6000)
    taken_ahead(redis, limiter)
    assert redis.hget(limiter.bucket, "tokens") is not None  # the turn was taken in the pipeline
    grants = []
    assert takes(redis, lambda: grants.append(limiter.grant())) == 0 and grants[0].wait_ms == 0
    assert takes(redis, limiter.grant) == 1  # the next call takes its own


def test_a_turn_taken_ahead_is_not_used_by_another_thread_or_late(redis, monkeypatch):
    limiter = RateLimiter(redis, "late", 6000)
    taken_ahead(redis, limiter)

    def in_another_thread():
        worker = threading.Thread(target=limiter.grant)
        worker.start()
        worker.join()

    assert takes(redis, in_another_thread) == 1
    taken_ahead(redis, limiter)
    monkeypatch.setattr("app.bridge.ratelimit.AHEAD_SECONDS", -1.0)
    assert takes(redis, limiter.grant) == 1


def test_a_turn_that_would_wait_is_not_kept(redis):
    limiter = RateLimiter(redis, "paused", 6000)
    limiter.penalise(5.0)
    taken_ahead(redis, limiter)
    assert limiter._ahead is None and limiter.take() > 0
