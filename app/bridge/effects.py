"""Exactly-once effects on top of at-least-once jobs: remember each partner call's result."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from redis import Redis
from redis.exceptions import RedisError

from app.bridge.keys import DEFAULT_KEYS, Keys

log = logging.getLogger("bridge.effects")
MARK_PATIENCE_SECONDS = 120


class Effects:
    """`once(key, fn)` runs fn only if no earlier run recorded a result for key.

    The result is written right after the partner's success; the one window left is a
    crash between the partner answering and this write (documented in docs/delivery.md).
    """

    def __init__(self, redis: Redis, ttl_seconds: int, keys: Keys = DEFAULT_KEYS):
        self.redis = redis
        self.ttl = ttl_seconds
        self.keys = keys

    def once(self, key: str, fn: Callable[[], Any], also: Callable[[Any, Any], None] | None = None) -> Any:
        """`also(pipe, result)` may add writes that go in the same round trip as the record."""
        cached = self.recorded(key)
        if cached is not None:
            return cached
        result = fn()
        self._remember(key, result, also)
        return result

    def recorded(self, key: str) -> Any | None:
        """The result an earlier `once(key, ...)` stored, without running anything; None if none."""
        cached = self.redis.get(self.keys.done(key))
        return None if cached is None else json.loads(cached)

    def _remember(self, key: str, result: Any, also=None) -> None:
        """The partner already acted: losing this write would mean a duplicate, so wait for
        Redis to come back (e.g. a restart) instead of giving up."""
        deadline = time.monotonic() + MARK_PATIENCE_SECONDS
        delay = 0.05
        while True:
            try:
                pipe = self.redis.pipeline(transaction=False)
                pipe.set(self.keys.done(key), json.dumps(result), ex=self.ttl)
                if also:
                    also(pipe, result)
                pipe.execute()
                return
            except RedisError:
                if time.monotonic() > deadline:
                    raise
                log.warning("effects.mark_retry", extra={"key": key})
                time.sleep(delay)
                # Stay quick: once Redis is back, this write must land before another worker
                # takes over the lane (its lease may have expired during the outage).
                delay = min(delay * 2, 0.1)

    def forget(self, key: str) -> None:
        """Drop a remembered result that turned out stale (e.g. an expired Zalo attachment_id)."""
        self.redis.delete(self.keys.done(key))
