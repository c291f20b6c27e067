"""A token bucket shared by every worker process through Redis."""

from __future__ import annotations

import time
from dataclasses import dataclass

from redis import Redis

from app.bridge.keys import DEFAULT_KEYS, Keys

FIRST_BACKOFF_MS = 1000   # the shared pause after the first rate-limit answer of a streak
RECOVER_MS = 30000        # a cut refill rate is back to 100 % this long after the last cut
RATE_FLOOR = 0.1          # successive cuts halve the rate down to this fraction

# The bucket refills at (97 % of limit - burst) per window, so no sliding window of `window`
# seconds ever holds more than `limit` calls: burst + refill * window < limit. The 3 % margin
# absorbs network jitter: the partner counts arrivals, which can bunch up after our grants.
# A rate-limit answer cuts the refill rate to `factor` (slow_at = when); it climbs back
# linearly over RECOVER_MS, so tokens are the integral of rate * factor since the last grant.
LEVEL = """
local function area(t, f0, s, r)
  local d = t - s
  if d <= 0 then return f0 * d end
  if d >= r then return f0 * r + (1 - f0) * r / 2 + (d - r) end
  return f0 * d + (1 - f0) * d * d / (2 * r)
end
local function level(b, cap, rate, now, r)
  local tokens = tonumber(b[1]) or cap; local ts = tonumber(b[2]) or now
  local f0 = tonumber(b[3]); local s = tonumber(b[4])
  if not f0 then return math.min(cap, tokens + (now - ts) * rate), 1 end
  local factor = f0 + (1 - f0) * math.max(0, math.min(1, (now - s) / r))
  return math.min(cap, tokens + (area(now, f0, s, r) - area(ts, f0, s, r)) * rate), factor
end
local cap = tonumber(ARGV[1]); local rate = tonumber(ARGV[2]); local now = tonumber(ARGV[3])
local r = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'factor', 'slow_at', 'streak', 'streak_at')
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
"""

# -> {ms to wait (0: go now), length of the current rate-limit streak}
TAKE = LEVEL + """
local streak = tonumber(b[5]) or 0
if pause > now then return {pause - now, streak} end
local tokens, factor = level(b, cap, rate, now, r)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], 3600000)
  return {0, streak}
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
return {math.ceil((1 - tokens) / (rate * factor)), streak}
"""

# ARGV[5] = when the refused call was granted, [6] first pause, [7] longest pause, [8] floor.
# A refusal of a call granted before the last counted one was already in flight when we
# backed off: it tells nothing new, so it neither doubles the pause nor cuts the rate again.
BACKOFF = LEVEL + """
local granted = tonumber(ARGV[5])
if (tonumber(b[6]) or -1) >= granted then return math.max(pause - now, 0) end
local tokens, factor = level(b, cap, rate, now, r)
local streak = (tonumber(b[5]) or 0) + 1
local wait = math.floor(math.min(tonumber(ARGV[6]) * 2 ^ (streak - 1), tonumber(ARGV[7])))
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now, 'factor', math.max(tonumber(ARGV[8]), factor / 2),
           'slow_at', now, 'streak', streak, 'streak_at', now)
redis.call('PEXPIRE', KEYS[1], 3600000)
if wait > 0 and now + wait > pause then redis.call('SET', KEYS[2], now + wait, 'PX', wait) end
return math.max(wait, pause - now)
"""

# A success ends the streak, unless it was granted before the streak's last refusal.
CALM = """
if (tonumber(redis.call('HGET', KEYS[1], 'streak_at')) or -1) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'streak', 0)
end
return 0
"""


@dataclass(frozen=True)
class Grant:
    wait_ms: int     # 0 when the call may go now
    at_ms: int       # when it was granted (what backoff() and calm() compare with)
    streak: int      # rate-limit answers in a row so far; only then must a success say so


class RateLimiter:
    """`wait()` blocks briefly for a token; `penalise()` backs everyone off after a 429;
    `backoff()` after a per-minute quota refusal (Zalo -32), `calm()` after the next success."""

    def __init__(self, redis: Redis, name: str, limit: int, window_seconds: float = 60.0,
                 max_wait_ms: int = 5000, clock=time.time, sleep=time.sleep, keys: Keys = DEFAULT_KEYS):
        self.redis = redis
        self.max_wait_ms = max_wait_ms
        self.keys = [keys.rate(name), keys.rate_pause(name)]
        self.burst = max(1, limit // 100)
        self.rate_per_ms = max(limit * 0.97 - self.burst, 1) / (window_seconds * 1000.0)
        self.clock, self.sleep = clock, sleep
        self._take = redis.register_script(TAKE)
        self._backoff = redis.register_script(BACKOFF)
        self._calm = redis.register_script(CALM)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _args(self, now: int) -> list:
        return [self.burst, repr(self.rate_per_ms), now, RECOVER_MS]

    def _take_once(self) -> Grant:
        now = self._now_ms()
        wait, streak = self._take(keys=self.keys, args=self._args(now))
        return Grant(int(wait), now, int(streak))

    def take(self) -> int:
        """0 when a call may go now, else the milliseconds to wait."""
        return self._take_once().wait_ms

    def grant(self) -> Grant:
        """Sleep until a token is ours; hand back the wait still ahead when the total would
        exceed `max_wait_ms` (pauses renewed by fresh 429s must not keep us sleeping)."""
        deadline = self._now_ms() + self.max_wait_ms
        while (grant := self._take_once()).wait_ms > 0:
            if grant.at_ms + grant.wait_ms > deadline:
                return grant
            self.sleep(grant.wait_ms / 1000.0)
        return grant

    def wait(self) -> int:
        return self.grant().wait_ms

    def penalise(self, seconds: float) -> None:
        """Stop every process from calling for `seconds` (the partner told us to slow down)."""
        until = int((self.clock() + seconds) * 1000)
        self.redis.set(self.keys[1], until, px=max(1, int(seconds * 1000)))

    def backoff(self, granted_at_ms: int, max_seconds: float) -> float:
        """A call granted at `granted_at_ms` hit the partner's quota: pause everyone for
        FIRST_BACKOFF_MS, doubling with each further refusal in a row up to `max_seconds`,
        and halve the refill rate. Returns the shared pause in seconds."""
        args = self._args(self._now_ms()) + [granted_at_ms, FIRST_BACKOFF_MS,
                                             int(max_seconds * 1000), RATE_FLOOR]
        return int(self._backoff(keys=self.keys, args=args)) / 1000.0

    def calm(self, granted_at_ms: int) -> None:
        """A call granted at `granted_at_ms` went through: the next refusal starts a new streak."""
        self._calm(keys=self.keys[:1], args=[granted_at_ms])
