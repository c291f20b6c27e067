"""After delivery: what happens because of an outcome, registered in one place.

The worker delivers an item, records its fate in the lane, and publishes one `Outcome`
(app/bridge/outcome.py) here, at one place (workers/drain.py `Drainer._step`). Each subscriber
below is called with it, in this order, and with one Redis pipeline it adds its writes to; the
pipeline is executed once, after the last subscriber. A subscriber that must call a partner (a
note to the agents) makes that call itself, inside its turn.

A new after-delivery feature is a function `on_outcome(outcome, pipe)` in its own module and one
line below; nothing in the relay or drain code changes.

A subscriber never costs a message or repeats a delivery: by the time it runs the item is
already popped from (or deferred in) its lane. One that raises is logged (`worker.subscriber_failed`,
with its traceback) and the others still run; a Redis error when the pipeline executes is logged
(`worker.outcome_not_recorded`) and what it carried is lost (counts, a journal line, a timer).
"""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from app.bridge.outcome import Outcome, Subscriber
from app.operations import counters, journal, status
from app.relay import notes, survey, windows

log = logging.getLogger("worker.subscribers")

SUBSCRIBERS: tuple[Subscriber, ...] = (
    journal.on_outcome,  # the console's recent events and "relayed today"
    counters.on_outcome,  # counters: relayed (with latency), retried, dead-lettered
    status.on_outcome,  # the connection's last errors
    windows.on_outcome,  # reply windows: a user's newest message sets their timer; a reply answers it (billed note)
    notes.on_outcome,  # a dead letter's note to the agents
    survey.on_outcome,  # a resolved conversation's rating question (option satisfaction_survey)
)


def publish(outcome: Outcome, subscribers: tuple[Subscriber, ...] = SUBSCRIBERS) -> None:
    """Call every subscriber with `outcome`, then execute their writes in one round trip."""
    pipe = outcome.ctx.redis.pipeline(transaction=False)
    for subscriber in subscribers:
        try:
            subscriber(outcome, pipe)
        except Exception:
            extra = {"subscriber": _name(subscriber), "item": outcome.item.id, "state": outcome.state}
            log.exception("worker.subscriber_failed", extra=extra)
    try:
        pipe.execute()
    except RedisError as exc:
        log.warning("worker.outcome_not_recorded", extra={"item": outcome.item.id, "error": type(exc).__name__})


def _name(subscriber: Subscriber) -> str:
    return f"{getattr(subscriber, '__module__', '')}.{getattr(subscriber, '__qualname__', repr(subscriber))}"
