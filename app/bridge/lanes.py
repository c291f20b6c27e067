"""Per-conversation FIFO lanes in Redis: the bridge's source of truth for order and retries.

Why not RQ dependency chains: rq.md §3.5/§3.6 shows 2.12 re-running finished parents after
their dependents and 3.0 stalling chains. A lane is a Redis list per conversation plus a lease:
only the lease holder touches the head, the head leaves the list only after it is done, and a
failed head keeps the whole lane waiting. RQ jobs are only "drain this lane" wake-ups.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from redis import Redis

PREFIX = "zfb:"
DUE = PREFIX + "due"          # zset lane -> epoch ms when the lane may run next
WAKE = PREFIX + "wake"        # list of lanes with fresh work (a hint; DUE is the truth)


def lane_key(lane: str) -> str:
    return f"{PREFIX}lane:{lane}"


def lease_key(lane: str) -> str:
    return f"{PREFIX}lease:{lane}"


def kick_key(lane: str) -> str:
    return f"{PREFIX}kick:{lane}"


def now_ms() -> int:
    return int(time.time() * 1000)


# Dedupe, append and schedule in one atomic step: a 200 means the item is in the lane.
ACCEPT = """
if ARGV[1] ~= '' and redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[2]) == false then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[3])
if redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4]) == 1 then
  redis.call('RPUSH', KEYS[4], ARGV[4])
end
return 1
"""

# Take the lease only when the lane has due work and nobody holds it. Either way this
# drain job has started, so the lane may be kicked again.
ACQUIRE = """
redis.call('DEL', KEYS[3])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local due = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not due or tonumber(due) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return 1
"""

# Remove the head only if we still own the lane and the head is the item we processed; hand
# back the next head (one round trip per message), or give the lane up when it is empty.
POP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {-1} end
if redis.call('LINDEX', KEYS[2], 0) ~= ARGV[2] then return {-2} end
redis.call('LPOP', KEYS[2])
local left = redis.call('LLEN', KEYS[2])
if left == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[4])
  return {0}
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {left, redis.call('LINDEX', KEYS[2], 0)}
"""

# Give the lane up. Empty: forget it. Otherwise (deferred or yielded): due at ARGV[3].
RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
if ARGV[2] ~= '' and redis.call('LINDEX', KEYS[2], 0) == ARGV[2] then
  redis.call('LSET', KEYS[2], 0, ARGV[4])
end
redis.call('DEL', KEYS[1])
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[3], ARGV[5])
  return 0
end
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[5])
return 1
"""

RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


@dataclass
class Item:
    """One unit of work in a lane: a partner event plus its retry bookkeeping."""

    id: str
    kind: str
    payload: dict
    received_at: int
    attempts: int = 0
    first_failed_at: int = 0
    last_error: str = ""

    def dumps(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def loads(cls, raw: str | bytes) -> "Item":
        return cls(**json.loads(raw))


class Lanes:
    """Accept, lease, pop and defer items of per-conversation lanes."""

    def __init__(self, redis: Redis, lease_ms: int = 30000):
        self.redis = redis
        self.lease_ms = lease_ms
        self._accept = redis.register_script(ACCEPT)
        self._acquire = redis.register_script(ACQUIRE)
        self._pop = redis.register_script(POP)
        self._release = redis.register_script(RELEASE)
        self._renew = redis.register_script(RENEW)

    def accept(self, lane: str, item: Item, dedupe_key: str = "", dedupe_ttl: int = 0) -> bool:
        """Queue `item` unless `dedupe_key` was seen; False means a duplicate."""
        keys = [dedupe_key or PREFIX + "nodedupe", lane_key(lane), DUE, WAKE]
        args = [dedupe_key, dedupe_ttl, item.dumps(), lane, now_ms()]
        return bool(self._accept(keys=keys, args=args))

    def acquire(self, lane: str) -> str | None:
        """A lease token when this caller may drain `lane` now, else None."""
        token = secrets.token_hex(8)
        keys = [lease_key(lane), DUE, kick_key(lane)]
        got = self._acquire(keys=keys, args=[lane, now_ms(), token, self.lease_ms])
        return token if got else None

    def head(self, lane: str) -> tuple[str, Item] | None:
        raw = self.redis.lindex(lane_key(lane), 0)
        return None if raw is None else (raw.decode(), Item.loads(raw))

    def pop(self, lane: str, token: str, raw: str) -> tuple[int, str | None]:
        """Drop the processed head: (items left, next head). 0 left means the lane was given
        up; <0 means we lost the lease (someone else owns the lane) and nothing changed."""
        got = self._pop(keys=[lease_key(lane), lane_key(lane), DUE], args=[token, raw, self.lease_ms, lane])
        nxt = got[1] if len(got) > 1 else None
        return int(got[0]), nxt.decode() if isinstance(nxt, bytes) else nxt

    def release(self, lane: str, token: str, *, due_ms: int | None = None,
                raw: str = "", updated: Item | None = None) -> int:
        """Give up the lease; with `updated`, rewrite the head (retry bookkeeping) first."""
        keys = [lease_key(lane), lane_key(lane), DUE]
        args = [token, raw if updated else "", due_ms or now_ms(),
                updated.dumps() if updated else "", lane]
        return int(self._release(keys=keys, args=args))

    def renew(self, lane: str, token: str) -> bool:
        return bool(self._renew(keys=[lease_key(lane)], args=[token, self.lease_ms]))

    def due_lanes(self, limit: int = 500) -> list[str]:
        """Lanes whose work is due now (including ones a dead worker left behind)."""
        found = self.redis.zrangebyscore(DUE, "-inf", now_ms(), start=0, num=limit)
        return [x.decode() for x in found]

    def pending_counts(self) -> dict:
        return {"lanes": self.redis.zcard(DUE), "due_now": self.redis.zcount(DUE, "-inf", now_ms())}
