"""Turn lanes with due work into RQ jobs, and find lanes a dead worker left behind."""

from __future__ import annotations

import logging
import time

from redis import Redis
from rq import Queue

from app.bridge.lanes import WAKE, Lanes, kick_key, lease_key

log = logging.getLogger("worker.dispatch")
QUEUE_NAME = "lanes"
KICK_TTL_MS = 30000   # a queued drain job for a lane makes further kicks pointless for a while
SWEEP_SECONDS = 1.0


CHAIN_SECONDS = 10.0  # keep a job short of its 120 s timeout, long enough to matter under load


def drain_lane(lane: str) -> str:
    """The RQ job: drain one lane, then lanes that woke meanwhile, in this worker process.

    Under load every wake-up taken here instead of by the dispatcher saves an RQ job (about
    35 Redis round trips of bookkeeping); WAKE is only a hint, the lease decides who drains.
    """
    from workers.context import worker_context
    from workers.drain import Drainer

    ctx = worker_context()
    drainer = Drainer(ctx)
    outcome = drainer.drain(lane)
    deadline = time.monotonic() + CHAIN_SECONDS
    while time.monotonic() < deadline and (woken := ctx.redis.lpop(WAKE)) is not None:
        drainer.drain(woken.decode())
    return outcome


class Dispatcher:
    def __init__(self, redis: Redis, lanes: Lanes, queue: Queue | None = None):
        self.redis = redis
        self.lanes = lanes
        self.queue = queue or Queue(QUEUE_NAME, connection=redis)
        self._last_sweep = 0.0

    def kick(self, lane: str) -> bool:
        """Enqueue one drain job for `lane` unless one is already waiting."""
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
