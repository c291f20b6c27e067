"""When to catch up from Zalo's history (app/relay/catchup.py), and the RQ job that does it.

The supervisor's starter loop asks `Triggers` once per tick: at start, after Redis came back and
after a web process (re)started, and every minute whether a connection that had Zalo webhooks
has had none for `CATCHUP_QUIET_SECONDS`. Those checks cost a few Redis reads; the catch-up
itself runs as an RQ job on the lanes queue, so the starter never waits for Zalo, and a Redis
lock lets one catch-up of a connection run at a time.

Triggers are merged, never dropped: while a queued catch-up has not started, another trigger
(several workers starting at once) adds nothing, since that catch-up, starting later, covers it.
Once it has started, a trigger queues one more: the running one may have read Zalo's history
before the messages this trigger is about were written. No time guard: a worker started again
seconds after its previous start still catches up what was written while it was down.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from app.bridge.keys import WEB_STARTED, Keys
from app.errors import PartnerError
from app.relay.catchup import CatchUpStopped, catch_up, enqueue
from workers.context import WorkerContext, worker_context

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger("worker.catchup")
QUIET_CHECK_SECONDS = 60.0
WEB_CHECK_SECONDS = 10.0


def catch_up_job(connection_id: str, since_ms: int | None = None, reason: str = "on_demand") -> dict | None:
    """The RQ job: catch one connection up. A partner's refusal is already recorded and logged
    in one line (app/relay/catchup.py): the job ends there, without RQ's traceback."""
    try:
        return catch_up(worker_context().for_connection(connection_id), since_ms, reason)
    except (PartnerError, CatchUpStopped):
        return None


class Triggers:
    def __init__(self, redis, settings: Settings, clock=time.time, monotonic=time.monotonic):
        self.redis = redis
        self.quiet_seconds = settings.catchup_quiet_seconds
        self.connections = WorkerContext(settings, redis).connections
        self.clock, self.monotonic = clock, monotonic
        self.quiet_check_at = monotonic() + QUIET_CHECK_SECONDS
        self.web_check_at = 0.0
        self.web_seen = None  # the web start last seen; the first look only learns it

    def check_web_restart(self) -> int:
        """Every few seconds: a web process started since the last look (it was down, or
        restarted) ⇒ catch every connection up, as after a Redis outage."""
        if self.monotonic() < self.web_check_at:
            return 0
        self.web_check_at = self.monotonic() + WEB_CHECK_SECONDS
        started, seen = self.redis.get(WEB_STARTED), self.web_seen
        self.web_seen = started
        return self.everyone("web") if seen is not None and started != seen else 0

    def everyone(self, reason: str) -> int:
        """At start ("start"), after a Redis outage ("redis") and a web restart ("web"): every
        enabled connection (merged with a catch-up already queued for it)."""
        return sum(enqueue(self.redis, c.id, reason) for c in self._enabled())

    def check_quiet(self) -> int:
        """Once a minute: connections whose Zalo webhooks stopped, each caught up at most once
        per quiet period while they stay silent."""
        if self.monotonic() < self.quiet_check_at or not self.quiet_seconds:
            return 0
        self.quiet_check_at = self.monotonic() + QUIET_CHECK_SECONDS
        enabled = self._enabled()
        pipe = self.redis.pipeline(transaction=False)
        for connection in enabled:
            pipe.get(Keys(connection.id).last_webhook("zalo"))
        now = self.clock()
        quiet = [
            c for c, at in zip(enabled, pipe.execute(), strict=True) if at and now - float(at) > self.quiet_seconds
        ]
        return sum(enqueue(self.redis, c.id, "quiet", once_for=self.quiet_seconds) for c in quiet)

    def _enabled(self):
        return [c for c in self.connections.all() if c.enabled]
