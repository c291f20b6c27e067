"""One clear line when Redis goes away, one when it is back, and a backoff in between.

Without it every child, loop turn and request printed a traceback while Redis was down (3 014
lines in 15 s, tried as a new user would), which buries the one fact an operator needs: which
Redis, and that the bridge keeps trying."""

from __future__ import annotations

import logging
import time

from config.redis_url import masked

FIRST_WAIT, LONGEST_WAIT = 1.0, 30.0


class RedisOutage:
    def __init__(self, log: logging.Logger, redis_url: str, clock=time.monotonic):
        self.log = log
        self.url = masked(redis_url)
        self.clock = clock
        self.since: float | None = None
        self.wait = FIRST_WAIT
        self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, exc: Exception) -> float:
        """Record a failure; return how long to wait before the next try (doubling, capped)."""
        self.failures += 1
        if self.since is None:
            self.since, self.wait = self.clock(), FIRST_WAIT
            self.log.error(
                "redis.unreachable",
                extra={"redis_url": self.url, "error": f"{type(exc).__name__}: {exc}"[:200], "retry_in": self.wait},
            )
            return self.wait
        self.wait = min(self.wait * 2, LONGEST_WAIT)
        self.log.debug("redis.still_unreachable", extra={"redis_url": self.url, "retry_in": self.wait})
        return self.wait

    def recovered(self) -> bool:
        """Called after each success: True when it ends an outage (said once in the log)."""
        if self.since is None:
            return False
        self.log.warning(
            "redis.back",
            extra={
                "redis_url": self.url,
                "down_seconds": round(self.clock() - self.since, 1),
                "failures": self.failures,
            },
        )
        self.since, self.failures = None, 0
        return True
