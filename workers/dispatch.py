"""Turn lanes with due work into drain jobs, and find lanes a dead worker left behind.

An RQ job costs about 25 Redis round trips of RQ's own bookkeeping, several times what
relaying a text costs. So a drain job, once it has drained its lane, stays a little: it takes
wake-ups already waiting, then "lingers" for lanes the dispatcher hands it directly. The
dispatcher hands a lane to a lingering job when one is free and only otherwise enqueues an
RQ job; a lingering job stops as soon as RQ jobs wait (so they are never stuck behind it),
after CHAIN_SECONDS, or when its worker is asked to stop. Handing off is only a shortcut:
the lease still decides who drains, and a hand-off lost to a crash is found by the sweep.
"""

from __future__ import annotations

import logging
import secrets
import time

from redis import Redis
from rq import Queue

from app.bridge.lanes import PREFIX, WAKE, Lanes, kick_key, lease_key

log = logging.getLogger("worker.dispatch")
QUEUE_NAME = "lanes"
QUEUE_KEY = Queue.redis_queue_namespace_prefix + QUEUE_NAME
KICK_TTL_MS = 30000   # a queued drain job for a lane makes further kicks pointless for a while
HAND_KICK_TTL_MS = 2000  # a hand-off is taken within milliseconds, or was lost with its job
SWEEP_SECONDS = 1.0
HANDOFF = PREFIX + "handoff"      # lanes handed straight to lingering drain jobs
LINGERING = PREFIX + "lingering"  # zset: lingering job -> when it stops waiting (Redis time)
CHAIN_SECONDS = 5.0   # then back to RQ: bounded job time and a warm shutdown within seconds
LINGER_SECONDS = 0.5  # wait for a hand-off this long (well under the Redis socket timeout)

# Hand `lane` to a free lingering job (each hand-off claims one): 1. -1 when a job for the
# lane is already queued or handed (its kick key), 0 when no lingering job is free.
HAND = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local now = redis.call('TIME')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now[1] + now[2] / 1e6)
if #redis.call('ZPOPMIN', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('SET', KEYS[3], '1', 'PX', ARGV[2])
return 1
"""

# A waiting wake-up first; stop when RQ jobs wait; else register as lingering (1).
LINGER = """
local woken = redis.call('LPOP', KEYS[1])
if woken then return woken end
if redis.call('LLEN', KEYS[2]) > 0 then return 0 end
local now = redis.call('TIME')
redis.call('ZADD', KEYS[3], now[1] + now[2] / 1e6 + ARGV[2], ARGV[1])
return 1
"""

_stopping = False


def stop_chaining() -> None:
    """The worker was asked to stop: finish the lane in hand, take no more."""
    global _stopping
    _stopping = True


def drain_lane(lane: str) -> str:
    """The RQ job: drain `lane`, then lanes that are waiting or handed to us, for a while."""
    from workers.context import worker_context
    from workers.drain import Drainer

    ctx = worker_context()
    drainer = Drainer(ctx)
    outcome = drainer.drain(lane)
    chain = Chain(ctx.redis)
    deadline = time.monotonic() + CHAIN_SECONDS
    while not _stopping and time.monotonic() < deadline and (following := chain.next_lane()):
        drainer.drain(following)
    return outcome


class Chain:
    """Where a drain job finds its next lane without a new RQ job."""

    def __init__(self, redis: Redis):
        self.redis = redis
        self.me = secrets.token_hex(8)
        self._linger = redis.register_script(LINGER)

    def next_lane(self) -> str | None:
        got = self._linger(keys=[WAKE, QUEUE_KEY, LINGERING], args=[self.me, LINGER_SECONDS - 0.1])
        if isinstance(got, bytes):
            return got.decode()
        return self._wait_for_hand_off() if got == 1 else None

    def _wait_for_hand_off(self) -> str | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.blpop([HANDOFF], timeout=LINGER_SECONDS)
        pipe.zrem(LINGERING, self.me)  # a no-op when the dispatcher claimed us
        popped = pipe.execute()[0]
        return popped[1].decode() if popped else None


class Dispatcher:
    def __init__(self, redis: Redis, lanes: Lanes, queue: Queue | None = None):
        self.redis = redis
        self.lanes = lanes
        self.queue = queue or Queue(QUEUE_NAME, connection=redis)
        self._hand = redis.register_script(HAND)
        self._last_sweep = 0.0

    def kick(self, lane: str) -> bool:
        """Hand `lane` to a lingering drain job, else enqueue one; once per waiting lane."""
        handed = self._hand(keys=[LINGERING, HANDOFF, kick_key(lane)], args=[lane, HAND_KICK_TTL_MS])
        if handed:
            return handed == 1
        if not self.redis.set(kick_key(lane), "1", nx=True, px=KICK_TTL_MS):
            return False
        self.queue.enqueue(drain_lane, lane, job_timeout=120, result_ttl=0, failure_ttl=3600)
        return True

    def run_once(self, block_seconds: float = 1.0) -> int:
        """Wait for a wake-up, then kick it and (once a second) every due, unleased lane."""
        popped = self.redis.blpop([WAKE], timeout=block_seconds)
        kicked = self.kick(popped[1].decode()) if popped else 0
        if time.monotonic() - self._last_sweep >= SWEEP_SECONDS:
            self._last_sweep = time.monotonic()
            kicked += sum(self.kick(lane) for lane in self._orphaned_or_due())
        return int(kicked)

    def _orphaned_or_due(self) -> list[str]:
        lanes = self.lanes.due_lanes()
        if not lanes:
            return []
        pipe = self.redis.pipeline()
        for lane in lanes:
            pipe.exists(lease_key(lane))
        return [lane for lane, leased in zip(lanes, pipe.execute()) if not leased]
