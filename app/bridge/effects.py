"""Exactly-once effects on top of at-least-once jobs: remember each partner call's result."""

from __future__ import annotations

import json
from typing import Any, Callable

from redis import Redis

from app.bridge.lanes import PREFIX


class Effects:
    """`once(key, fn)` runs fn only if no earlier run recorded a result for key.

    The result is written right after the partner's success; the one window left is a
    crash between the partner answering and this write (documented in docs/delivery.md).
    """

    def __init__(self, redis: Redis, ttl_seconds: int):
        self.redis = redis
        self.ttl = ttl_seconds

    def once(self, key: str, fn: Callable[[], Any]) -> Any:
        cached = self.redis.get(PREFIX + "done:" + key)
        if cached is not None:
            return json.loads(cached)
        result = fn()
        self.redis.set(PREFIX + "done:" + key, json.dumps(result), ex=self.ttl)
        return result

    def forget(self, key: str) -> None:
        """Drop a remembered result that turned out stale (e.g. an expired Zalo attachment_id)."""
        self.redis.delete(PREFIX + "done:" + key)
