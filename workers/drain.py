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
from collections.abc import Callable

from app.bridge import keys
from app.bridge.lanes import Item, NotDue, now_ms
from app.errors import PartnerError, PermanentError, RetryableError
from app.integrations import events
from app.logs import context_id
from app.operations.counters import Counters
from app.operations.journal import DIRECTION_OF_KIND, Journal
from app.operations.status import remember_error
from workers.context import ConnectionUnavailable

log = logging.getLogger("worker.drain")
LANE_SLICE_SECONDS = 2.0  # then the lane goes back to the due set, behind lanes waiting longer
JOB_SLICE_SECONDS = 5.0  # then the job ends and RQ hands the worker a fresh one
IDLE_WAIT_SECONDS = 0.5  # an idle job waits this long for the doorbell before it ends
DISABLED_RETRY_SECONDS = 30.0  # how often a disabled connection's lanes look again
UNEXPECTED_MAX_ATTEMPTS = 5  # a bug should reach an operator soon, not retry for a day
# The partner an item of each kind delivers to: its outage makes the item wait, not fail.
DELIVERS_TO = {"zalo": "freshchat", "freshchat": "zalo"}
# What became of an item, as the journal shows it (app/operations/journal.py).
DELIVERED, RETRYING, FAILED = "delivered", "retrying", "failed"
WAITING = "waiting"  # a timer item reached before its time: not an outcome, nothing to journal


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
    drained = 0
    while time.monotonic() < deadline:
        claimed = ctx.lanes.claim()
        if claimed:
            drainer.drain_held(*claimed)
            drained += 1
        elif not ctx.redis.blpop([keys.WAKE], timeout=IDLE_WAIT_SECONDS):
            break
    return drained


def handlers() -> dict[str, Callable]:
    """Per provider (an item's `kind`), the handler that dispatches on the item's event kind."""
    from app.integrations.freshchat import schemas as freshchat
    from app.integrations.zalo import schemas as zalo
    from app.relay import agent_view, inbound, outbound

    return {
        "zalo": by_event({**inbound.HANDLERS, **agent_view.HANDLERS}, zalo.to_event),
        "freshchat": by_event(outbound.HANDLERS, freshchat.to_event),
    }


def by_event(table: dict[str, Callable], to_event: Callable) -> Callable:
    """Run the function `table` names for the item's event kind. An item queued before items
    carried their kind is classified by the web's own `to_event`, so upgrades lose nothing."""

    def handle(ctx, item: Item, progress) -> None:
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
        return handler(ctx, item, progress)

    return handle


def dead_letter_notes() -> dict[str, Callable]:
    from app.relay import notes

    return {"zalo": notes.inbound_dead_letter, "freshchat": notes.outbound_dead_letter}


class Drainer:
    def __init__(self, ctx, handler_map: dict[str, Callable] | None = None, notes: dict[str, Callable] | None = None):
        self.ctx = ctx
        self.handlers = handler_map or handlers()
        self.notes = dead_letter_notes() if notes is None else notes

    def drain(self, lane: str) -> str:
        """Process `lane` if it is due and free; return what happened (for logs and tests)."""
        token = self.ctx.lanes.acquire(lane)
        if token is None:
            return "busy-or-not-due"
        return self.drain_held(lane, token)

    def drain_held(self, lane: str, token: str) -> str:
        """Process the lane we hold until it is empty, deferred or its slice ends."""
        try:
            head = self.ctx.lanes.head(lane)
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
        """Process the head; return the outcome and the next head when the lane goes on."""
        context_id.set(item.id)
        try:
            state, retry_in = self._process(lane, item, token)
        except LeaseLost:
            # Another worker owns the lane now and re-runs this head: stop before more partner
            # calls; the effects recorded so far keep that re-run from repeating them.
            log.warning("worker.lease_lost", extra={"lane": lane, "item": item.id})
            return "lost-lease", None
        journal = Journal(self.ctx.redis, item.connection)
        if retry_in is not None:
            due_ms = now_ms() + int(retry_in * 1000)
            if self.ctx.lanes.defer(lane, token, raw, item, due_ms=due_ms) > 0 and state == RETRYING:
                journal.record(lane, item, RETRYING, reason=item.last_error, next_try=due_ms / 1000)
            return "deferred", None
        left, following = self.ctx.lanes.pop(lane, token, raw)
        if left >= 0:  # else another worker owns the lane and records what it does
            failed = state == FAILED
            journal.record(
                lane, item, state, reason=item.last_error if failed else "", dead_letter=item.id if failed else None
            )
        if left <= 0:
            return ("empty" if left == 0 else "lost-lease"), None
        return "done", (following, Item.loads(following))

    def _process(self, lane: str, item: Item, token: str) -> tuple[str, float | None]:
        """(DELIVERED or FAILED, None) when the item is finished (delivered, reported or
        dead-lettered), else (RETRYING, the delay before the next try)."""
        try:
            ctx = self.ctx.for_connection(item.connection)
        except ConnectionUnavailable as exc:
            if not exc.removed:
                return RETRYING, DISABLED_RETRY_SECONDS  # a disabled connection's messages wait for it
            self._unroutable(lane, item, str(exc))
            return FAILED, None
        breaker = ctx.breaker(DELIVERS_TO.get(item.kind, ""))
        if wait := breaker.open_for():
            return RETRYING, wait + random.uniform(0, 1)  # the partner is down for everyone: wait, spend nothing

        def progress() -> None:
            if not self.ctx.lanes.renew(lane, token):
                raise LeaseLost(lane)

        try:
            answer = self.handlers[item.kind](ctx, item, progress)
            if answer != events.NOT_RELAYED and item.event in events.MESSAGES:
                _relayed(ctx, lane, item)
            return DELIVERED, None
        except LeaseLost:
            raise
        except NotDue as exc:
            return WAITING, max(0.0, (exc.due_ms - now_ms()) / 1000)
        except RetryableError as exc:
            return _retried(self._retry(ctx, lane, item, exc))
        except PermanentError as exc:
            self._dead(ctx, lane, item, f"permanent: {exc}")
        except Exception as exc:  # a bug or an unexpected answer: retry a few times, then stop
            log.exception("worker.item_failed", extra={"lane": lane})
            if item.attempts + 1 < UNEXPECTED_MAX_ATTEMPTS:
                return _retried(self._retry(ctx, lane, item, exc))
            self._dead(ctx, lane, item, f"unexpected: {type(exc).__name__}: {exc}")
        return FAILED, None

    def _retry(self, ctx, lane: str, item: Item, exc: Exception) -> float | None:
        """The delay before the next try, or None when the item's budget is spent (dead letter)."""
        item.last_error = str(exc)[:300]
        retry_after = getattr(exc, "retry_after", None) or 0.0
        if getattr(exc, "waiting", False):
            return retry_after  # a known wait (an unknown outcome settling): no attempt, no budget
        if self._partner_wide(ctx, exc):
            item.first_failed_at = 0  # not this item's fault: its budget starts afresh later
            self._note_error(ctx, lane, item)
            ctx.counters.retried(direction(item))
            wait = max(retry_after, ctx.breaker(exc.partner).open_for(), ctx.settings.retry_base_seconds)
            return wait + random.uniform(0, min(1.0, wait / 2))  # spread the restart after a pause
        now = now_ms()
        item.attempts += 1
        item.first_failed_at = item.first_failed_at or now
        self._note_error(ctx, lane, item)
        if now - item.first_failed_at > ctx.settings.retry_horizon_seconds * 1000:
            self._dead(ctx, lane, item, f"gave up after {item.attempts} attempts: {item.last_error}")
            return None
        delay = backoff(item.attempts, ctx.settings.retry_base_seconds, ctx.settings.retry_max_seconds)
        ctx.counters.retried(direction(item))
        return max(delay, retry_after)

    @staticmethod
    def _partner_wide(ctx, exc: Exception) -> bool:
        """Rate limits, a dead token and outages hold every conversation of the connection (or
        of its Zalo app, FreshChat account) alike: no budget spent."""
        if not isinstance(exc, PartnerError) or exc.partner not in DELIVERS_TO.values():
            return False
        return getattr(exc, "partner_wide", False) or ctx.breaker(exc.partner).partner_down()

    def _dead(self, ctx, lane: str, item: Item, reason: str) -> None:
        """Last resort: keep the item for an operator and tell the agent in the conversation."""
        log.error("worker.dead_letter", extra={"lane": lane, "item": item.id, "reason": reason[:300]})
        ctx.dead_letters.add(lane, item, reason)
        ctx.counters.dead_lettered(direction(item))
        item.last_error = reason
        remember_error(ctx.redis, ctx.keys, reason, lane=lane, item=item.id)  # not a retry: no item_retry line
        note = self.notes.get(item.kind)
        try:
            note and note(ctx, item, reason)
        except PartnerError as exc:  # the dead letter is kept and listed; the note is a courtesy
            log.warning(
                "worker.dead_letter_note_failed", extra={"lane": lane, "item": item.id, "error": str(exc)[:300]}
            )
        except Exception:  # a bug: its traceback is what finds it
            log.exception("worker.dead_letter_note_failed", extra={"lane": lane, "item": item.id})

    def _unroutable(self, lane: str, item: Item, reason: str) -> None:
        """An item of a removed connection: nobody can deliver it, so it is kept among that
        connection's dead letters (replayed once the connection is added again)."""
        log.error("worker.dead_letter", extra={"lane": lane, "item": item.id, "reason": reason})
        self.ctx.dead_letters_of(item.connection).add(lane, item, reason)
        Counters(self.ctx.redis, item.connection).dead_lettered(direction(item))
        item.last_error = reason

    def _note_error(self, ctx, lane: str, item: Item) -> None:
        remember_error(ctx.redis, ctx.keys, item.last_error, lane=lane, item=item.id)
        log.warning("worker.item_retry", extra={"lane": lane, "attempts": item.attempts, "error": item.last_error})


def direction(item: Item) -> str:
    """ "in" (Zalo -> FreshChat) or "out", by the partner the item came from."""
    return DIRECTION_OF_KIND.get(item.kind, "")


def _relayed(ctx, lane: str, item: Item) -> None:
    """The partner accepted the message: one line an operator can read, and the counters."""
    latency_ms = max(0, now_ms() - item.received_at)
    way = direction(item)
    log.info(
        "relay.delivered",
        extra={"connection": item.connection, "direction": way, "lane": lane, "latency_ms": latency_ms},
    )
    ctx.counters.relayed(way, latency_ms / 1000)


def _retried(delay: float | None) -> tuple[str, float | None]:
    """`_retry`'s answer as an outcome: None there means the budget is spent (a dead letter)."""
    return (FAILED, None) if delay is None else (RETRYING, delay)


def backoff(attempts: int, base: float, cap: float) -> float:
    """Exponential backoff with jitter: spreads retries so a recovering partner is not stampeded."""
    ceiling = min(cap, base * (2 ** max(0, attempts - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
