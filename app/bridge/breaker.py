"""Tell one item's failure from a partner-wide outage, so an outage never uses up budgets.

Each failing item has a retry budget (RETRY_HORIZON_SECONDS) so that one message cannot hold
its conversation back for long. During an outage every item fails, though, and spending their
budgets would turn an hour-long Zalo outage into a pile of dead letters. So when an item fails
with a retryable error the breaker asks: is the partner down for everyone?

- a call to that partner succeeded in the last OK_WINDOW seconds: no, it is this item;
- otherwise one process probes the partner with a cheap read (Zalo `getoa`, FreshChat
  `GET /channels`); a retryable failure of the probe opens the breaker for OPEN_SECONDS:
  items of that partner then wait without calling it and without spending their budget.

All state is in Redis, shared by every worker process.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from redis import Redis

from app.bridge.lanes import PREFIX
from app.integrations.errors import PartnerError, RetryableError

log = logging.getLogger("bridge.breaker")
OK_WINDOW_SECONDS = 20.0   # a success this recent proves the partner is up
OPEN_SECONDS = 5.0         # how long a failed probe keeps the breaker open
MARK_OK_EVERY = 1.0        # per process: one Redis write a second at most on the hot path
READ_OPEN_EVERY = 0.5      # per process: how often the hot path asks Redis whether it is open


def _ok_key(partner: str) -> str:
    return f"{PREFIX}breaker:{partner}:ok"


def _open_key(partner: str) -> str:
    return f"{PREFIX}breaker:{partner}:open"


def _probe_key(partner: str) -> str:
    return f"{PREFIX}breaker:{partner}:probing"


class Breaker:
    def __init__(self, redis: Redis, partner: str, probe: Callable[[], object]):
        self.redis = redis
        self.partner = partner
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
        self.redis.set(_ok_key(self.partner), time.time(), ex=int(OK_WINDOW_SECONDS) + 1)

    def open_for(self) -> float:
        """Seconds the breaker stays open (0 when calls may go); asked before every item, so
        Redis is read at most every READ_OPEN_EVERY seconds per process."""
        now = time.monotonic()
        if now - self._read_at >= READ_OPEN_EVERY:
            self._read_at = now
            ttl = self.redis.pttl(_open_key(self.partner))
            self._open_until = now + ttl / 1000.0 if ttl and ttl > 0 else 0.0
        return max(0.0, self._open_until - now)

    def partner_down(self) -> bool:
        """Whether the partner fails for everyone right now (probing it if nobody knows)."""
        if self.redis.exists(_ok_key(self.partner)):
            return False
        if self.redis.exists(_open_key(self.partner)):
            return True
        if not self.redis.set(_probe_key(self.partner), "1", nx=True, px=int(OPEN_SECONDS * 1000)):
            return True  # another process is probing: assume the worst, spend no budget
        return self._probe()

    def _probe(self) -> bool:
        try:
            self.probe()
        except RetryableError as exc:
            log.warning("breaker.open", extra={"partner": self.partner, "error": str(exc)[:200]})
            self.redis.set(_open_key(self.partner), "1", px=int(OPEN_SECONDS * 1000))
            self._read_at = 0.0
            return True
        except PartnerError as exc:  # it answered: reachable, so the item's failure is its own
            log.info("breaker.probe_refused", extra={"partner": self.partner, "error": str(exc)[:200]})
        self._marked_at = 0.0
        self.mark_ok()
        return False
