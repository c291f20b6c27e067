"""After delivery: what happens because of an outcome, registered in one place.

The worker delivers an item, records its fate in the lane, and publishes one `Outcome`
(app/bridge/outcome.py) here, at one place (workers/drain.py `Drainer._step`). Each subscriber
below is called with it, in this order, and with one Redis pipeline it adds its writes to; the
pipeline is executed once, after the last subscriber. A subscriber that must call a partner (a
note to the agents) makes that call itself, inside its turn.

A new after-delivery feature is a function `on_outcome(outcome, pipe)` in its own module and one
line below; nothing in the relay or drain code changes.

A subscriber never costs a message or repeats a delivery: a delivered item's pop goes first in
the subscribers' own pipeline (`publish_with`, one round trip for the lane and every record),
any other outcome is published once the item is popped from (or deferred in) its lane. One that
raises is logged (`worker.subscriber_failed`, with its traceback) and the others still run; a
Redis error when the pipeline executes is logged (`worker.outcome_not_recorded`) and what it
carried is lost (counts, a journal line, a timer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from redis.client import Pipeline
from redis.exceptions import RedisError

from app.bridge.outcome import Outcome, Subscriber
from app.operations import counters, journal, status
from app.relay import notes, survey, windows

log = logging.getLogger("worker.subscribers")
T = TypeVar("T")

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
    _call(outcome, subscribers, pipe)
    try:
        pipe.execute()
    except RedisError as exc:
        _not_recorded(outcome, exc)


def publish_with(outcome: Outcome, record: Callable[[Pipeline], Callable[[Any], T]], subscribers=SUBSCRIBERS) -> T:
    """`publish`, with the lane's own record of the outcome (the worker's pop) first in the
    same round trip: `record(pipe)` adds it and hands back how to read its answer, which is
    returned. A Redis error of that record is raised (as the record alone would); the
    subscribers' errors are logged as `publish` logs them."""
    pipe = outcome.ctx.redis.pipeline(transaction=False)
    read = record(pipe)
    _call(outcome, subscribers, pipe)
    answers = pipe.execute(raise_on_error=False)
    if isinstance(answers[0], Exception):
        raise answers[0]
    for failed in (a for a in answers[1:] if isinstance(a, RedisError)):
        _not_recorded(outcome, failed)
    return read(answers[0])


def _call(outcome: Outcome, subscribers: tuple[Subscriber, ...], pipe: Pipeline) -> None:
    for subscriber in subscribers:
        try:
            subscriber(outcome, pipe)
        except Exception:
            extra = {"subscriber": _name(subscriber), "item": outcome.item.id, "state": outcome.state}
            log.exception("worker.subscriber_failed", extra=extra)


def _not_recorded(outcome: Outcome, exc: Exception) -> None:
    log.warning("worker.outcome_not_recorded", extra={"item": outcome.item.id, "error": type(exc).__name__})


def _name(subscriber: Subscriber) -> str:
    return f"{getattr(subscriber, '__module__', '')}.{getattr(subscriber, '__qualname__', repr(subscriber))}"
