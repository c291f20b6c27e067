"""A token bucket shared by every worker process through Redis."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from redis import Redis

from app.bridge.keys import DEFAULT_KEYS, Keys
from app.bridge.scripts import LuaScript
from app.errors import FIRST_BACKOFF_MS

RECOVER_MS = 30000  # a cut refill rate is back to 100 % this long after the last cut
RATE_FLOOR = 0.1  # successive cuts halve the rate down to this fraction
TTL_MS = 3600000  # an idle bucket goes after an hour (rate_level.lua: renewed every half hour)
AHEAD_SECONDS = 1.0  # a turn taken ahead (`take_in`) serves the next call of its thread this long

# The bucket refills at (97 % of limit - burst) per window, so no sliding window of `window`
# seconds ever holds more than `limit` calls: burst + refill * window < limit. The 3 % margin
# absorbs network jitter: the partner counts arrivals, which can bunch up after our grants.
# How a rate-limit answer cuts the rate and how it recovers: app/bridge/lua/rate_level.lua.
TAKE, BACKOFF, CALM = LuaScript("rate_take"), LuaScript("rate_backoff"), LuaScript("rate_calm")


@dataclass(frozen=True)
class Grant:
    wait_ms: int  # 0 when the call may go now
    at_ms: int  # when it was granted (what backoff() and calm() compare with)
    streak: int  # rate-limit answers in a row so far; only then must a success say so


class RateLimiter:
    """`wait()` blocks briefly for a token; `penalise()` backs everyone off after a 429;
    `backoff()` after a per-minute quota refusal (Zalo -32), `calm()` after the next success."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        limit: int,
        window_seconds: float = 60.0,
        max_wait_ms: int = 5000,
        clock=time.time,
        sleep=time.sleep,
        keys: Keys = DEFAULT_KEYS,
    ):
        self.redis = redis
        self.max_wait_ms = max_wait_ms
        self.bucket = keys.rate(name)  # its `pause` field is the shared pause (rate_level.lua)
        self.burst = max(1, limit // 100)
        self.rate_per_ms = max(limit * 0.97 - self.burst, 1) / (window_seconds * 1000.0)
        self.clock, self.sleep = clock, sleep
        self.on_wait = lambda slept_ms: None  # told when a call had to wait (the worker counts it)
        self._ahead: tuple[Grant, float, int] | None = None  # a turn taken by `take_in`, unused yet

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _level_inputs(self, now: int) -> dict:
        """What rate_level.lua needs: every script that includes it takes these first."""
        return {
            "bucket": self.bucket,
            "cap": self.burst,
            "rate": repr(self.rate_per_ms),
            "now": now,
            "recover_ms": RECOVER_MS,
        }

    def _take_once(self) -> Grant:
        now = self._now_ms()
        wait, streak = TAKE(self.redis, **self._level_inputs(now))
        return Grant(int(wait), now, int(streak))

    def take_in(self, pipe):
        """Take a turn as part of `pipe` (the send's in-flight record, Effects.take_off: one round
        trip for both); hand back how to read its answer, which keeps a granted turn for this
        thread's next `grant()`. A turn that would have to wait is not kept: `grant()` asks again."""
        now = self._now_ms()
        TAKE(self.redis, client=pipe, **self._level_inputs(now))

        def keep(answer) -> None:
            wait, streak = answer
            if not int(wait):
                self._ahead = (Grant(0, now, int(streak)), time.monotonic(), threading.get_ident())

        return keep

    def _taken_ahead(self) -> Grant | None:
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        grant, at, thread = ahead
        fresh = time.monotonic() - at <= AHEAD_SECONDS and thread == threading.get_ident()
        return grant if fresh else None

    def take(self) -> int:
        """0 when a call may go now, else the milliseconds to wait."""
        return self._take_once().wait_ms

    def grant(self) -> Grant:
        """Sleep until a token is ours; hand back the wait still ahead when the total would
        exceed `max_wait_ms` (pauses renewed by fresh 429s must not keep us sleeping)."""
        ahead = self._taken_ahead()
        if ahead is not None:
            return ahead
        deadline = self._now_ms() + self.max_wait_ms
        slept_ms = 0
        while (grant := self._take_once()).wait_ms > 0:
            if grant.at_ms + grant.wait_ms > deadline:
                break
            self.sleep(grant.wait_ms / 1000.0)
            slept_ms += grant.wait_ms
        if slept_ms or grant.wait_ms:  # only then: nothing extra on the usual path
            self.on_wait(slept_ms)
        return grant

    def wait(self) -> int:
        return self.grant().wait_ms

    def penalise(self, seconds: float) -> None:
        """Stop every process from calling for `seconds` (the partner told us to slow down)."""
        now, pause_ms = self._now_ms(), max(1, int(seconds * 1000))
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(self.bucket, mapping={"pause": now + pause_ms, "renewed": now})
        pipe.pexpire(self.bucket, TTL_MS + pause_ms)  # the bucket outlives its pause
        pipe.execute()

    def backoff(self, granted_at_ms: int, max_seconds: float) -> float:
        """A call granted at `granted_at_ms` hit the partner's quota: pause everyone for
        FIRST_BACKOFF_MS, doubling with each further refusal in a row up to `max_seconds`,
        and halve the refill rate. Returns the shared pause in seconds."""
        pause_ms = BACKOFF(
            self.redis,
            **self._level_inputs(self._now_ms()),
            granted=granted_at_ms,
            first_ms=FIRST_BACKOFF_MS,
            max_ms=int(max_seconds * 1000),
            floor=RATE_FLOOR,
        )
        return int(pause_ms) / 1000.0

    def calm(self, granted_at_ms: int) -> None:
        """A call granted at `granted_at_ms` went through: the next refusal starts a new streak."""
        CALM(self.redis, bucket=self.bucket, granted=granted_at_ms)
