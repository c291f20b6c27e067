"""A token bucket shared by every worker process through Redis."""

from __future__ import annotations

import time

from redis import Redis

from app.bridge.lanes import PREFIX

# The bucket refills at (97 % of limit - burst) per window, so no sliding window of `window`
# seconds ever holds more than `limit` calls: burst + refill * window < limit. The 3 % margin
# absorbs network jitter: the partner counts arrivals, which can bunch up after our grants.
TAKE = """
local cap = tonumber(ARGV[1]); local rate = tonumber(ARGV[2]); local now = tonumber(ARGV[3])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > now then return pause - now end
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap; local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + (now - ts) * rate)
if tokens >= 1 then
  redis.call('HSET', KEYS[1], 'tokens', tokens - 1, 'ts', now)
  redis.call('PEXPIRE', KEYS[1], 3600000)
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
return math.ceil((1 - tokens) / rate)
"""


class RateLimiter:
    """`wait()` blocks briefly for a token; `penalise()` backs everyone off after a 429/-32."""

    def __init__(self, redis: Redis, name: str, limit: int, window_seconds: float = 60.0,
                 max_wait_ms: int = 5000):
        self.redis = redis
        self.max_wait_ms = max_wait_ms
        self.keys = [f"{PREFIX}rl:{name}", f"{PREFIX}rl:{name}:pause"]
        self.burst = max(1, limit // 100)
        self.rate_per_ms = max(limit * 0.97 - self.burst, 1) / (window_seconds * 1000.0)
        self._take = redis.register_script(TAKE)

    def take(self) -> int:
        """0 when a call may go now, else the milliseconds to wait."""
        now = int(time.time() * 1000)
        return int(self._take(keys=self.keys, args=[self.burst, repr(self.rate_per_ms), now]))

    def wait(self) -> int:
        """Sleep until a token is ours; return the wait still ahead when the total would
        exceed `max_wait_ms` (pauses renewed by fresh 429s must not keep us sleeping)."""
        deadline = time.monotonic() * 1000 + self.max_wait_ms
        while (delay := self.take()) > 0:
            if time.monotonic() * 1000 + delay > deadline:
                return delay
            time.sleep(delay / 1000.0)
        return 0

    def penalise(self, seconds: float) -> None:
        """Stop every process from calling for `seconds` (the partner told us to slow down)."""
        until = int((time.time() + seconds) * 1000)
        self.redis.set(self.keys[1], until, px=max(1, int(seconds * 1000)))
