"""Items that failed for good: kept (no TTL) until an operator replays or drops them."""

from __future__ import annotations

import json
import time
from typing import cast

from redis import Redis

from app.bridge.keys import DEFAULT_KEYS, Keys
from app.bridge.lanes import Item, Lanes


class DeadLetters:
    def __init__(self, redis: Redis, lanes: Lanes, keys: Keys = DEFAULT_KEYS):
        self.redis = redis
        self.lanes = lanes
        self.dead, self.order = keys.dead, keys.dead_order  # hash id -> record, zset id -> failed_at

    def add(self, lane: str, item: Item, reason: str) -> None:
        failed_at = time.time()
        record = {"lane": lane, "item": item.__dict__, "reason": reason, "failed_at": failed_at}
        pipe = self.redis.pipeline()
        pipe.hset(self.dead, item.id, json.dumps(record, ensure_ascii=False))
        pipe.zadd(self.order, {item.id: failed_at})
        pipe.execute()

    def count(self) -> int:
        return self.redis.zcard(self.order)

    def list(self, limit: int = 100) -> list[dict]:
        ids = [i.decode() for i in cast("list[bytes]", self.redis.zrange(self.order, 0, limit - 1))]  # no scores
        return [dict(record, id=i) for i in ids if (record := self.get(i))]

    def get(self, item_id: str) -> dict | None:
        raw = self.redis.hget(self.dead, item_id)
        return json.loads(raw) if raw else None

    def replay(self, item_id: str) -> bool:
        """Put the item back at the end of its lane with a fresh retry budget."""
        record = self.get(item_id)
        if record is None:
            return False
        item = Item(**dict(record["item"], attempts=0, first_failed_at=0, last_error=""))
        self.lanes.accept(record["lane"], item)
        self.drop(item_id)
        return True

    def drop(self, item_id: str) -> bool:
        pipe = self.redis.pipeline()
        pipe.hdel(self.dead, item_id)
        pipe.zrem(self.order, item_id)
        return bool(pipe.execute()[0])
