"""The worker's counters, kept in Redis: one small hash per connection.

Workers may run on other hosts than the web, and the web's `/metrics` must still show what
they did, so their counts live where every process can reach them, not in process memory
(app/web/metrics.py reads them at scrape time). Each field is one series: `<family>|<label>|...`,
a whole number (latency sums in milliseconds), so HINCRBY is exact and the hash stays small:
its fields are bounded by directions, partners, partner error codes and histogram buckets.
A relayed message costs two HINCRBY, its latency bucket and the latency sum: the messages
relayed each way are the sum of their buckets (`read`), not a third field.

Counting is best effort: a Redis error here is logged and swallowed, never a reason for an
item to fail or be redone.
"""

from __future__ import annotations

import logging
import re

from redis import Redis
from redis.exceptions import RedisError

from app.bridge.keys import Keys
from app.bridge.outcome import DELIVERED, FAILED, RETRYING, Outcome

log = logging.getLogger("bridge.metrics")
SEP = "|"
# Webhook accepted -> partner accepted. Most messages take tens of milliseconds; retries after an
# outage take minutes, up to the retry horizon (15 min by default).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
INF = "+Inf"
RELAYED, LATENCY, LATENCY_SUM_MS = "relayed", "latency", "latency_sum_ms"
RETRIES, DEAD_LETTERS, PARTNER_ERRORS = "retries", "dead_letters", "partner_errors"
LIMITER_WAITS, LIMITER_WAIT_MS, BILLED = "limiter_waits", "limiter_wait_ms", "billed_replies"
RATINGS = "satisfaction_ratings"  # labelled by the rating, 1 to 5 (app/relay/survey.py)
_CODE = re.compile(r"[^a-z0-9_-]")


def field(*parts: str) -> str:
    return SEP.join(parts)


def bucket_of(seconds: float) -> str:
    """The histogram bucket a latency falls in (non-cumulative: the reader adds them up)."""
    return next((repr(le) for le in LATENCY_BUCKETS if seconds <= le), INF)


def error_code(exc: Exception) -> str:
    """A partner error's label: Zalo's own code (-230), else the HTTP status, else
    `unreachable` (no answer at all). Cut and cleaned: a label value must stay one of few."""
    code = getattr(exc, "code", None)
    code = code if code is not None else getattr(exc, "status", None)
    return _CODE.sub("", str(code).lower())[:16] if code is not None else "unreachable"


class Counters:
    """One connection's counters."""

    def __init__(self, redis: Redis, connection: str):
        self.redis = redis
        self.key = Keys(connection).metrics

    def relayed(self, direction: str, latency_seconds: float, pipe=None) -> None:
        """A message reached the other side, `latency_seconds` after its webhook was accepted."""
        self._add(
            (field(LATENCY, direction, bucket_of(latency_seconds)), 1),
            (field(LATENCY_SUM_MS, direction), max(0, round(latency_seconds * 1000))),
            pipe=pipe,
        )

    def retried(self, direction: str, pipe=None) -> None:
        self._add((field(RETRIES, direction), 1), pipe=pipe)

    def dead_lettered(self, direction: str, pipe=None) -> None:
        self._add((field(DEAD_LETTERS, direction), 1), pipe=pipe)

    def partner_error(self, partner: str, exc: Exception) -> None:
        self._add((field(PARTNER_ERRORS, partner, error_code(exc)), 1))

    def limiter_waited(self, partner: str, waited_ms: int) -> None:
        """A call to `partner` had to wait for the shared rate limiter (slept `waited_ms`)."""
        self._add((field(LIMITER_WAITS, partner), 1), (field(LIMITER_WAIT_MS, partner), max(0, waited_ms)))

    def billed(self, outcome: str) -> None:
        """A reply Zalo bills: `held` (not sent, hold_billed_replies) or `sent`."""
        self._add((field(BILLED, outcome), 1))

    def rated(self, rating: int, pipe=None) -> None:
        """A customer answered the satisfaction survey with `rating` (1 to 5)."""
        self._add((field(RATINGS, str(rating)), 1), pipe=pipe)

    def _add(self, *increments: tuple[str, int], pipe=None) -> None:
        """Count now, or as part of `pipe` (whose owner executes it and handles its errors)."""
        if pipe is not None:
            for name, amount in increments:
                pipe.hincrby(self.key, name, amount)
            return
        pipe = self.redis.pipeline(transaction=False)
        for name, amount in increments:
            pipe.hincrby(self.key, name, amount)
        try:
            pipe.execute()
        except RedisError as exc:
            names = [name for name, _ in increments]
            log.warning("metrics.not_counted", extra={"fields": names, "error": type(exc).__name__})


def on_outcome(outcome: Outcome, pipe) -> None:
    """Subscriber (app/relay/subscribers.py): a relayed message with its latency, a failed try
    that will be retried, a dead letter. Counted under the item's connection, removed or not."""
    counters = Counters(outcome.ctx.redis, outcome.item.connection)
    if outcome.state == DELIVERED and outcome.relayed:
        counters.relayed(outcome.direction, outcome.latency_ms / 1000, pipe)
    elif outcome.state == RETRYING and outcome.error:
        counters.retried(outcome.direction, pipe)
    elif outcome.state == FAILED:
        counters.dead_lettered(outcome.direction, pipe)


def read(redis: Redis, connections: list[str]) -> dict[str, dict[tuple[str, ...], int]]:
    """Every connection's counters, by connection, as {(family, label, ...): value}."""
    pipe = redis.pipeline(transaction=False)
    for connection in connections:
        pipe.hgetall(Keys(connection).metrics)
    return {
        connection: _with_relayed({tuple(k.decode().split(SEP)): int(v) for k, v in raw.items()})
        for connection, raw in zip(connections, pipe.execute(), strict=True)
    }


def _with_relayed(values: dict[tuple[str, ...], int]) -> dict[tuple[str, ...], int]:
    """(relayed, direction): the sum of that direction's latency buckets. A `relayed|<direction>`
    field an older version kept counted the same messages as its buckets, so it is not read."""
    values = {name: n for name, n in values.items() if name[0] != RELAYED}
    for (family, direction, *_), n in list(values.items()):
        if family == LATENCY:
            values[(RELAYED, direction)] = values.get((RELAYED, direction), 0) + n
    return values
