"""Keep enough drain jobs queued for the due lanes, and no more.

Drain jobs (workers/drain.py) claim lanes themselves, so nothing here decides which lane runs:
the starter only looks at how many lanes are due and how many jobs wait, and tops the queue up
to `min(due lanes, workers)`. It wakes on the doorbell that accepting a webhook rings, and at
least once a second, which is how deferred lanes and lanes of a dead worker (due again when
their lease ends) get a job.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue

from app.bridge import keys
from app.bridge.lanes import QUEUE_NAME, Lanes

log = logging.getLogger("worker.starter")
JOB_TIMEOUT = 120  # far above a drain job's slice: RQ must never kill one mid-message


class Starter:
    def __init__(self, redis: Redis, lanes: Lanes, workers: int, queue: Queue | None = None):
        self.redis = redis
        self.lanes = lanes
        self.workers = workers
        self.queue = queue or Queue(QUEUE_NAME, connection=redis)

    def run_once(self, block_seconds: float = 1.0) -> int:
        """Wait for the doorbell (or the timeout), then queue the jobs missing; return how many."""
        rang = self.redis.blpop([keys.WAKE], timeout=block_seconds)
        return self.top_up(answer_rings=bool(rang))

    def top_up(self, answer_rings: bool = False) -> int:
        """One round trip: the lanes due, the jobs waiting, and (after a ring) the doorbell's
        other rings cleared, since this one look at the due set answers every ring so far."""
        pipe = self.redis.pipeline(transaction=False)
        if answer_rings:
            pipe.delete(keys.WAKE)
        self.lanes.count_due(pipe)
        pipe.llen(self.queue.key)  # rq's Queue.count, read in the same round trip
        *_, due, waiting = pipe.execute()
        missing = min(due, self.workers) - waiting
        for _ in range(max(0, missing)):
            self.queue.enqueue("workers.drain.drain_due", job_timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=3600)
        return max(0, missing)
