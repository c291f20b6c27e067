"""Drain lanes: process each lane's items head first, retry with backoff, dead-letter for good.

`drain_due` is the one RQ job: it claims whichever lane is due first, drains it for at most
LANE_SLICE_SECONDS, and claims the next, until nothing is due or JOB_SLICE_SECONDS have passed.
So RQ's per-job bookkeeping is paid once per slice, not once per message, and a warm shutdown
(RQ lets the current job finish) takes at most a slice.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import cast

from app.bridge import keys
from app.bridge.lanes import Item, Lanes, NotDue, now_ms
from app.bridge.outcome import DELIVERED, DIRECTION_OF_KIND, FAILED, RETRYING, Outcome, Relayed, Subscriber
from app.bridge.replies import text
from app.errors import PartnerError, PermanentError, RetryableError
from app.integrations import events
from app.logs import context_id
from app.relay import rules
from app.relay import subscribers as after_delivery
from app.relay.context import Progress
from app.relay.subscribers import publish, publish_with
from workers.context import ConnectionUnavailable, WorkerContext

log = logging.getLogger("worker.drain")
LANE_SLICE_SECONDS = 2.0  # then the lane goes back to the due set, behind lanes waiting longer
JOB_SLICE_SECONDS = 5.0  # then the job ends and RQ hands the worker a fresh one
IDLE_WAIT_SECONDS = 0.5  # an idle job waits this long for the doorbell before it ends
DISABLED_RETRY_SECONDS = 30.0  # how often a disabled connection's lanes look again
UNEXPECTED_MAX_ATTEMPTS = 5  # a bug should reach an operator soon, not retry for a day
# The partner an item of each kind delivers to: its outage makes the item wait, not fail.
DELIVERS_TO = {"zalo": "freshchat", "freshchat": "zalo"}
# What became of an item (DELIVERED, RETRYING, FAILED) is an Outcome: app/bridge/outcome.py.


class LeaseLost(Exception):
    """Our lease on the lane ran out while we worked on its head."""


def drain_due() -> int:
    """The RQ job: drain due lanes for one job slice; return how many lanes it drained.

    With nothing due it listens on the doorbell for IDLE_WAIT_SECONDS before it ends: a message
    arriving then is drained at once, without a new RQ job (measured: median end-to-end latency
    at half the maximum inbound rate 20-26 ms without this wait, see docs/delivery.md)."""
    from workers.context import worker_context

    ctx = worker_context()
    drainer = Drainer(ctx)
    deadline = time.monotonic() + JOB_SLICE_SECONDS
    drained, rung = 0, None
    while time.monotonic() < deadline:
        claimed = next_lane(ctx.lanes, rung)
        if claimed:
            drainer.drain_held(*claimed)
            drained, rung = drained + 1, None
        elif not (rung := ctx.redis.blpop([keys.WAKE], timeout=IDLE_WAIT_SECONDS)):
            break
    return drained


def next_lane(lanes: Lanes, rung: Sequence[bytes | str] | None) -> tuple | None:
    """Claim the lane whose doorbell we heard (`rung`, BLPOP's answer); else one of those the
    last pop found due when it emptied its lane (none due: no round trip); else the due set's
    first. Every way ends in `take.lua`, which leases only a lane due and free."""
    if rung and (claimed := lanes.claim([text(rung[1])])):
        return claimed
    return lanes.claim(lanes.due_seen())


def handlers() -> dict[str, Callable]:
    """Per provider (an item's `kind`), the handler that dispatches on the item's event kind."""
    from app import commands
    from app.integrations.freshchat import schemas as freshchat
    from app.integrations.zalo import schemas as zalo
    from app.operations import template_status
    from app.relay import agent_view, follows, inbound, outbound, shared_info, survey

    zalo_handlers = {
        **inbound.HANDLERS,
        **agent_view.HANDLERS,
        **survey.HANDLERS,
        **template_status.HANDLERS,
        **follows.HANDLERS,
        **shared_info.HANDLERS,
    }
    return {
        "zalo": by_event(zalo_handlers, zalo.to_event),
        "freshchat": by_event({**outbound.HANDLERS, **commands.HANDLERS}, freshchat.to_event),
    }


def by_event(table: dict[str, Callable], to_event: Callable) -> Callable:
    """Run the function `table` names for the item's event kind, unless a pre-delivery rule
    (app/relay/rules.py) takes the item first. An item queued before items carried their kind
    is classified by the web's own `to_event`, so upgrades lose nothing."""

    def handle(ctx: WorkerContext, item: Item, progress: Progress) -> object:
        kind = item.event
        if not kind:
            event = to_event(item.payload)
            if not event.queued:
                log.info("worker.not_relayed", extra={"item": item.id, "why": event.reason})
                return events.NOT_RELAYED
            kind = event.kind
        handler = table.get(kind)
        if handler is None:  # queued by a newer version: retried, then a dead letter to replay
            raise LookupError(f"no handler for {item.kind} event {kind!r}")
        taken = rules.first(ctx, item, progress, kind)
        return handler(ctx, item, progress) if taken is None else taken

    return handle


class Drainer:
    def __init__(
        self,
        ctx: WorkerContext,
        handler_map: dict[str, Callable] | None = None,
        subscribers: tuple[Subscriber, ...] | None = None,
    ):
        self.ctx = ctx
        self.handlers = handler_map or handlers()
        self.subscribers = after_delivery.SUBSCRIBERS if subscribers is None else subscribers

    def drain(self, lane: str) -> str:
        """Process `lane` if it is due and free; return what happened (for logs and tests)."""
        taken = self.ctx.lanes.take(lane)
        if taken is None:
            return "busy-or-not-due"
        return self.drain_held(lane, *taken)

    def drain_held(self, lane: str, token: str, head: tuple[str, Item] | None) -> str:
        """Process the lane we hold (`head`: its head when we took it) until it is empty,
        deferred or its slice ends."""
        try:
            deadline = time.monotonic() + LANE_SLICE_SECONDS
            while head is not None and time.monotonic() < deadline:
                outcome, head = self._step(lane, token, *head)
                if outcome != "done":
                    return outcome  # the lease is already given up (or lost)
        except Exception:
            self.ctx.lanes.release(lane, token)  # the head stays; the lane is due again at once
            raise
        self.ctx.lanes.release(lane, token)
        return "empty" if head is None else "yielded"

    def _step(self, lane: str, token: str, raw: str, item: Item) -> tuple[str, tuple | None]:
        """Process the head, record its fate in the lane, then publish its outcome to the
        subscribers (app/relay/subscribers.py): the one place they are called. Return what
        happened and the next head when the lane goes on."""
        context_id.set(item.id)
        try:
            outcome, retry_in = self._process(lane, item, token)
        except LeaseLost:
            # Another worker owns the lane now and re-runs this head: stop before more partner
            # calls; the effects recorded so far keep that re-run from repeating them.
            log.warning("worker.lease_lost", extra={"lane": lane, "item": item.id})
            return "lost-lease", None
        if retry_in is None and outcome is not None and outcome.state == DELIVERED:
            # The pop and what the subscribers record go in one round trip. Had our lease been
            # lost meanwhile (left < 0), the worker now holding the lane records it too: a
            # journal line written twice, a message counted twice, nothing sent twice.
            popping = partial(self.ctx.lanes.pop, lane, token, raw)
            left, following = publish_with(outcome, popping, self.subscribers)
            return self._next(left, following)
        if retry_in is None:
            left, following = self.ctx.lanes.pop(lane, token, raw)  # left < 0: the lease was lost
        else:
            due_ms = now_ms() + int(retry_in * 1000)
            left, following = self.ctx.lanes.defer(lane, token, raw, item, due_ms=due_ms), None
            outcome = outcome and replace(outcome, reason=item.last_error, next_try=due_ms / 1000)
        if outcome is not None and left >= 0:  # else another worker owns the lane and publishes what it does
            publish(outcome, self.subscribers)
        if retry_in is not None:
            return "deferred", None
        return self._next(left, following)

    @staticmethod
    def _next(left: int, following: str | None) -> tuple[str, tuple | None]:
        """What a pop leaves: the lane empty (given up), lost to another worker, or its next head."""
        if left <= 0:
            return ("empty" if left == 0 else "lost-lease"), None
        return "done", (following, Item.loads(cast(str, following)))  # a lane with items left has a head

    def _process(self, lane: str, item: Item, token: str) -> tuple[Outcome | None, float | None]:
        """(a DELIVERED or FAILED outcome, None) when the item is finished (delivered, reported
        or dead-lettered), else (a RETRYING outcome, the delay before the next try); no outcome
        for a timer reached before its time."""
        try:
            ctx = self.ctx.for_connection(item.connection)
        except ConnectionUnavailable as exc:
            if not exc.removed:  # a disabled connection's messages wait for it
                return Outcome(self.ctx, lane, item, RETRYING), DISABLED_RETRY_SECONDS
            return self._unroutable(lane, item, str(exc)), None
        breaker = ctx.breaker(DELIVERS_TO.get(item.kind, ""))
        if wait := breaker.open_for(self.ctx.lanes.marks_seen(lane)):  # down for everyone: wait, spend nothing
            return Outcome(ctx, lane, item, RETRYING), wait + random.uniform(0, 1)

        def progress() -> None:
            if not self.ctx.lanes.keep(lane, token):
                raise LeaseLost(lane)

        try:
            answer = self.handlers[item.kind](ctx, item, progress)
            return delivered(ctx, lane, item, answer), None
        except LeaseLost:
            raise
        except NotDue as exc:
            return None, max(0.0, (exc.due_ms - now_ms()) / 1000)
        except RetryableError as exc:
            return self._retry(ctx, lane, item, exc)
        except PermanentError as exc:
            return self._dead(ctx, lane, item, f"permanent: {exc}"), None
        except Exception as exc:  # a bug or an unexpected answer: retry a few times, then stop
            log.exception("worker.item_failed", extra={"lane": lane})
            if item.attempts + 1 < UNEXPECTED_MAX_ATTEMPTS:
                return self._retry(ctx, lane, item, exc)
            return self._dead(ctx, lane, item, f"unexpected: {type(exc).__name__}: {exc}"), None

    def _retry(self, ctx: WorkerContext, lane: str, item: Item, exc: Exception) -> tuple[Outcome, float | None]:
        """A RETRYING outcome and the delay before the next try, or a FAILED one when the item's
        budget is spent (a dead letter)."""
        item.last_error = str(exc)[:300]
        retry_after = getattr(exc, "retry_after", None) or 0.0
        if getattr(exc, "waiting", False):  # a known wait (an unknown outcome settling): no attempt, no budget
            return Outcome(ctx, lane, item, RETRYING), retry_after
        failed = Outcome(ctx, lane, item, RETRYING, error=item.last_error)
        if self._partner_wide(ctx, exc):
            item.first_failed_at = 0  # not this item's fault: its budget starts afresh later
            _log_retry(lane, item)
            partner = cast(PartnerError, exc).partner  # partner-wide: a PartnerError
            wait = max(retry_after, ctx.breaker(partner).open_for(), ctx.settings.retry_base_seconds)
            return failed, wait + random.uniform(0, min(1.0, wait / 2))  # spread the restart after a pause
        now = now_ms()
        item.attempts += 1
        item.first_failed_at = item.first_failed_at or now
        _log_retry(lane, item)
        if now - item.first_failed_at > ctx.settings.retry_horizon_seconds * 1000:
            reason = f"gave up after {item.attempts} attempts: {item.last_error}"
            return replace(self._dead(ctx, lane, item, reason), error=failed.error), None
        delay = backoff(item.attempts, ctx.settings.retry_base_seconds, ctx.settings.retry_max_seconds)
        return failed, max(delay, retry_after)

    @staticmethod
    def _partner_wide(ctx: WorkerContext, exc: Exception) -> bool:
        """Rate limits, a dead token and outages hold every conversation of the connection (or
        of its Zalo app, FreshChat account) alike: no budget spent."""
        if not isinstance(exc, PartnerError) or exc.partner not in DELIVERS_TO.values():
            return False
        return getattr(exc, "partner_wide", False) or ctx.breaker(exc.partner).partner_down()

    def _dead(self, ctx: WorkerContext, lane: str, item: Item, reason: str) -> Outcome:
        """Last resort: keep the item for an operator (the subscribers tell the agents)."""
        log.error("worker.dead_letter", extra={"lane": lane, "item": item.id, "reason": reason[:300]})
        ctx.dead_letters.add(lane, item, reason)
        item.last_error = reason
        return Outcome(ctx, lane, item, FAILED, reason=reason, dead_letter=item.id)

    def _unroutable(self, lane: str, item: Item, reason: str) -> Outcome:
        """An item of a removed connection: nobody can deliver it, so it is kept among that
        connection's dead letters (replayed once the connection is added again)."""
        log.error("worker.dead_letter", extra={"lane": lane, "item": item.id, "reason": reason})
        self.ctx.dead_letters_of(item.connection).add(lane, item, reason)
        item.last_error = reason
        return Outcome(self.ctx, lane, item, FAILED, reason=reason, dead_letter=item.id, removed=True)


def delivered(ctx: WorkerContext, lane: str, item: Item, answer: object) -> Outcome:
    """The handler finished: a relayed message (not NOT_RELAYED, and a message kind) is one
    line an operator can read, with its latency; the handler's `Relayed` goes to the subscribers."""
    relayed = answer != events.NOT_RELAYED and item.event in events.MESSAGES
    latency_ms = max(0, now_ms() - item.received_at) if relayed else 0
    if relayed:
        extra = {"connection": item.connection, "direction": direction(item), "lane": lane, "latency_ms": latency_ms}
        log.info("relay.delivered", extra=extra)
    learned = answer if isinstance(answer, Relayed) else None
    return Outcome(ctx, lane, item, DELIVERED, relayed=relayed, latency_ms=latency_ms, learned=learned)


def direction(item: Item) -> str:
    """ "in" (Zalo -> FreshChat) or "out", by the partner the item came from."""
    return DIRECTION_OF_KIND.get(item.kind, "")


def _log_retry(lane: str, item: Item) -> None:
    log.warning("worker.item_retry", extra={"lane": lane, "attempts": item.attempts, "error": item.last_error})


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: spreads retries so a recovering partner is not stampeded."""
    ceiling = min(cap, base * (2 ** max(0, attempts - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
