"""Tell one item's failure from a partner-wide outage, so an outage never uses up budgets.

Each failing item has a retry budget (RETRY_HORIZON_SECONDS) so that one message cannot hold
its conversation back for long. During an outage every item fails, though, and spending their
budgets would turn an hour-long Zalo outage into a pile of dead letters. So when an item fails
with a retryable error the breaker asks: is the partner down for everyone?

- the partner answered a call (anything but a 5xx or 429) in the last OK_WINDOW seconds: no,
  it is this item;
- otherwise one process probes the partner with a cheap read (Zalo `getoa`, FreshChat
  `GET /channels`); a retryable failure of the probe opens the breaker for OPEN_SECONDS:
  items of that partner then wait without calling it and without spending their budget.

All state is in Redis, shared by every worker process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from redis import Redis

from app.bridge.keys import DEFAULT_KEYS, Keys
from app.errors import PartnerError, RetryableError

log = logging.getLogger("bridge.breaker")
OK_WINDOW_SECONDS = 20.0  # a success this recent proves the partner is up
OPEN_SECONDS = 5.0  # how long a failed probe keeps the breaker open
MARK_OK_EVERY = 1.0  # per process: one Redis write a second at most on the hot path
READ_OPEN_EVERY = 0.5  # per process: how often the hot path asks Redis whether it is open


class Breaker:
    def __init__(self, redis: Redis, partner: str, probe: Callable[[], object], keys: Keys = DEFAULT_KEYS):
        self.redis = redis
        self.partner = partner
        self.ok_key, self.open_key = keys.breaker_ok(partner), keys.breaker_open(partner)
        self.probing_key = keys.breaker_probing(partner)
        self.probe = probe
        self._marked_at = 0.0
        self._read_at = 0.0
        self._open_until = 0.0

    def mark_ok(self) -> None:
        """A call to the partner just worked (throttled: one write a second per process)."""
        now = time.monotonic()
        if now - self._marked_at < MARK_OK_EVERY:
            return
        self._marked_at = now
        self.redis.set(self.ok_key, time.time(), ex=int(OK_WINDOW_SECONDS) + 1)

    def open_for(self, seen: tuple[float, dict[str, int]] | None = None) -> float:
        """Seconds the breaker stays open (0 when calls may go); asked before every item, so
        Redis is read at most every READ_OPEN_EVERY seconds per process. `seen`: what the
        lane's take read of the open marks (app/bridge/lanes.py `marks_seen`), a read already
        made: the first item of a lane costs no round trip of its own."""
        if seen is not None and self.open_key in seen[1]:
            self._saw(seen[0], seen[1][self.open_key])
        now = time.monotonic()
        if now - self._read_at >= READ_OPEN_EVERY:
            self._saw(now, self.redis.pttl(self.open_key))
        return max(0.0, self._open_until - now)

    def _saw(self, at: float, ttl_ms: int) -> None:
        """The open mark's PTTL as read at monotonic time `at` (-2: no mark)."""
        self._read_at = at
        self._open_until = at + ttl_ms / 1000.0 if ttl_ms and ttl_ms > 0 else 0.0

    def partner_down(self) -> bool:
        """Whether the partner fails for everyone right now (probing it if nobody knows)."""
        if self.redis.exists(self.ok_key):
            return False
        if self.redis.exists(self.open_key):
            return True
        if not self.redis.set(self.probing_key, "1", nx=True, px=int(OPEN_SECONDS * 1000)):
            return True  # another process is probing: assume the worst, spend no budget
        return self._probe()

    def _probe(self) -> bool:
        try:
            self.probe()
        except RetryableError as exc:
            log.warning("breaker.open", extra={"partner": self.partner, "error": str(exc)[:200]})
            self.redis.set(self.open_key, "1", px=int(OPEN_SECONDS * 1000))
            self._read_at = 0.0
            return True
        except PartnerError as exc:  # it answered: reachable, so the item's failure is its own
            log.info("breaker.probe_refused", extra={"partner": self.partner, "error": str(exc)[:200]})
        self._marked_at = 0.0
        self.mark_ok()
        return False
