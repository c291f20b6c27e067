"""Catch-up: queue what Zalo's history holds and no webhook ever brought.

Zalo gives up on a webhook after about two hours of retries and may switch a failing webhook
off; a message sent meanwhile exists only in Zalo's history. A catch-up reads the OA's recent
chats, then each chat's messages back to the start of its window, and queues every message
through the lanes with the webhook's own dedupe key (its `message_id` is the webhook's
`msg_id`), oldest first. Whatever a webhook already queued is a duplicate, and a webhook that
comes after the catch-up is one too, so neither path relays a message twice.

The window starts where the previous finished catch-up started (less a margin, for clocks
and webhooks in flight): the bridge was receiving webhooks since then, or the triggers of
workers/catchup.py (start, Redis back, web back) queue a catch-up that reads from there. Else it
starts at the horizon (`CATCHUP_HORIZON_SECONDS`, never beyond the dedupe window, so no message
with an expired dedupe key is read again). It starts there for every chat, not at the chat's
last relayed message: a message whose webhook was lost while a later one arrived is older than
the last relayed one and is still found.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from marshmallow import ValidationError
from redis.exceptions import LockError
from rq import Queue

from app.bridge.keys import Keys
from app.bridge.lanes import QUEUE_NAME, now_ms
from app.connections.problem import Problem
from app.connections.store import Connections
from app.errors import PartnerError, RateLimitedError
from app.integrations import events
from app.integrations.zalo.client import HISTORY_PAGE, HistoryTooLong, history_since
from app.integrations.zalo.schemas import history_event
from app.relay.context import RelayContext
from config.settings import Settings

log = logging.getLogger("relay.catchup")
queue_log = logging.getLogger("worker.catchup")
# The job a worker runs, named rather than imported: workers/ sits above the relay
# (as workers/starter.py queues "workers.drain.drain_due").
CATCH_UP_JOB = "workers.catchup.catch_up_job"
JOB_TIMEOUT = 900  # reading 1000 chats at Zalo's pace takes minutes, not a drain job's seconds
# A queued catch-up not started by then is presumed lost (its job vanished with a Redis that
# failed over): the next trigger queues another rather than waiting on it.
PENDING_SECONDS = JOB_TIMEOUT
MARGIN_MS = 5 * 60 * 1000  # overlap with the previous window: clock skew, webhooks in flight
SETTLED_MS = 60 * 1000  # a younger message's webhook may still be on its way: not "missed"
MAX_CHAT_PAGES = 100  # 1000 chats per catch-up
MAX_MESSAGE_PAGES = 50  # 500 messages per chat
RATE_WAITS = 30  # waits for the rate limiter in a row before the catch-up gives up
LOCK_SECONDS = 900  # a catch-up taking longer lets the next trigger start another
HISTORY = "history"  # the reason of the history import an operator chose at first activation
DAY_MS = 86400 * 1000
AGAIN = "again"  # the pending mark of a catch-up that found another running and gave up
FAILURE_FIELDS = ("failed_at", "failed_reason", "error")  # the last failure, until one finishes
ERROR_CHARS = 300


class CatchUpStopped(Exception):
    """The rate limiter kept refusing: the next trigger tries again."""


@dataclass
class Outcome:
    reason: str
    since: int  # epoch ms: the window's start
    started_at: int
    finished_at: int = 0
    chats: int = 0  # chats active in the window
    found: int = 0  # messages in the window
    queued: int = 0  # of them, queued now: no webhook had brought them
    missed: int = 0  # of those, old enough that their webhook should have come
    newest_missed: int = 0  # epoch ms of the newest of those


def catch_up(
    ctx: RelayContext, since_ms: int | None = None, reason: str = "on_demand", sleep=time.sleep
) -> dict | None:
    """Catch one connection up (`ctx` is its worker context); None when another catch-up of it
    is running. An error (a partner's, other than rate limits waited out) is recorded as the
    failure the console shows, then propagates; the window is not, so the next trigger reads
    the same window again."""
    lock = ctx.redis.lock(ctx.keys.catchup_lock, timeout=LOCK_SECONDS, blocking=False)
    if not lock.acquire():
        ctx.redis.set(ctx.keys.catchup_pending, AGAIN, ex=LOCK_SECONDS)  # the running one sees it
        if not lock.acquire():  # taken still: its holder sees AGAIN when it lets go
            log.info("catchup.already_running", extra={"connection": ctx.connection, "reason": reason})
            return None
    try:
        ctx.redis.delete(ctx.keys.catchup_pending)  # this run covers every trigger until now
        outcome = Outcome(reason, window_start(ctx, since_ms), now_ms())
        resumes_from = window_start(ctx, None)
        try:
            _run(ctx, outcome, sleep)
        except Exception as exc:
            _failed(ctx, reason, exc)
            raise
        outcome.finished_at = now_ms()
        _record(ctx, outcome, contiguous=outcome.since <= resumes_from)
        log.info("catchup.finished", extra={"connection": ctx.connection, **asdict(outcome)})
        return asdict(outcome)
    finally:
        _release(ctx, lock, reason)


def _record(ctx: RelayContext, outcome: Outcome, contiguous: bool) -> None:
    """Keep the outcome for the status pages. The next window starts at this one's start only
    when this window reached back to where the last one left off: a narrower one (an operator's
    `--since`) leaves that start alone, so the time before it is still read."""
    record = {k: str(v) for k, v in asdict(outcome).items()}
    if not contiguous:
        del record["started_at"]
    if outcome.reason == HISTORY:  # counted on the dashboard, whatever catch-ups come after
        record |= {"imported": str(outcome.queued), "imported_at": str(outcome.finished_at)}
    pipe = ctx.redis.pipeline()
    pipe.hset(ctx.keys.catchup, mapping=record)  # type: ignore[arg-type]  # redis-py keys `mapping` invariantly
    pipe.hdel(ctx.keys.catchup, *FAILURE_FIELDS)  # a finished run ends the failure shown
    pipe.execute()


def _release(ctx: RelayContext, lock, reason: str) -> None:
    """Let go of the lock, then queue one more catch-up if a job found it taken meanwhile and
    gave up. That job marks AGAIN, then tries the lock once more, so either it got the lock
    after all or the mark was there before this release, and is seen now."""
    try:
        lock.release()
    except LockError:
        pass  # it outlived LOCK_SECONDS; another catch-up may hold the key now
    if ctx.redis.get(ctx.keys.catchup_pending) == AGAIN.encode():
        ctx.redis.set(ctx.keys.catchup_pending, reason, xx=True, ex=LOCK_SECONDS)  # queued, as a trigger's
        queue_job(ctx.redis, ctx.connection, reason)


def _failed(ctx: RelayContext, reason: str, exc: Exception) -> None:
    """Keep the failure beside the last finished catch-up, for the console; a partner's refusal
    is one log line (its words say it all), anything else is left to the caller's traceback."""
    error = str(exc)[:ERROR_CHARS] or type(exc).__name__
    failure = {"failed_at": str(now_ms()), "failed_reason": reason, "error": error}
    ctx.redis.hset(ctx.keys.catchup, mapping=failure)  # type: ignore[arg-type]  # as above
    if isinstance(exc, PartnerError | CatchUpStopped):
        log.warning("catchup.failed", extra={"connection": ctx.connection, "reason": reason, "error": error})


def window_start(ctx: RelayContext, since_ms: int | None) -> int:
    """Epoch ms from which messages are read: `since_ms`, else where the last catch-up began
    (less the margin), else the horizon; never before the horizon."""
    settings = ctx.settings
    horizon = now_ms() - min(settings.catchup_horizon_seconds, settings.dedupe_ttl_seconds) * 1000
    if since_ms is None:
        last = ctx.redis.hget(ctx.keys.catchup, "started_at")
        since_ms = int(last) - MARGIN_MS if last else horizon
    return max(int(since_ms), horizon)


def parse_since(raw: str, now: float | None = None) -> int:
    """`--since`: seconds back from now, or an ISO 8601 time (UTC when it names no offset)."""
    now = time.time() if now is None else now
    text = raw.strip()
    if text.isdigit():
        return int((now - int(text)) * 1000)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"since: expected seconds or an ISO 8601 time, got {raw!r}") from None
    return int((when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000)


def _run(ctx: RelayContext, outcome: Outcome, sleep) -> None:
    users = _active_users(ctx, outcome.since, sleep)
    outcome.chats = len(users)
    found = [m for user in users for m in _messages(ctx, user, outcome.since, sleep)]
    found.sort(key=lambda pair: pair[0])
    outcome.found = len(found)
    for _, item in found:
        _queue(ctx, item, outcome)


def _active_users(ctx: RelayContext, since: int, sleep) -> list[str]:
    """The users of the chats active since `since`, most recent first: recent chats come
    newest first, so the first row older than the window ends the reading."""
    users: dict[str, None] = {}
    for page in range(MAX_CHAT_PAGES):
        rows = _read(lambda page=page: ctx.zalo.recent_chats(page * HISTORY_PAGE, HISTORY_PAGE), sleep)
        for row in rows:
            if int(row.get("time") or 0) < since:
                return list(users)
            users.setdefault(str(row["from_id"] if int(row.get("src", 1)) == 1 else row["to_id"]))
        if len(rows) < HISTORY_PAGE:
            break
    return list(users)


def _messages(ctx: RelayContext, user: str, since: int, sleep) -> list[tuple[tuple[int, int], dict]]:
    """The user's messages since `since` (at most MAX_MESSAGE_PAGES pages), each with a sort
    key: its time, then Zalo's order (newest first) reversed, for messages of one millisecond."""
    found: list[tuple[tuple[int, int], dict]] = []

    def read_page(offset: int) -> list[dict]:
        return _read(lambda: ctx.zalo.conversation(user, offset, HISTORY_PAGE), sleep)

    try:
        for item in history_since(read_page, since, MAX_MESSAGE_PAGES):
            found.append(((int(item.get("time") or 0), -len(found)), item))
    except HistoryTooLong:
        pass  # the newest MAX_MESSAGE_PAGES pages are what one run relays of a chat
    return found


def _read(call, sleep):
    """One history read, waiting while the shared rate limiter (or Zalo's -32) says so."""
    for _ in range(RATE_WAITS):
        try:
            return call()
        except RateLimitedError as exc:
            sleep(exc.retry_after or 1.0)
    raise CatchUpStopped("Zalo's rate limit kept refusing history reads")


def _queue(ctx: RelayContext, item: dict, outcome: Outcome) -> None:
    """Queue a message as its webhook would have; the bridge's own sends are skipped (their
    echoes are too), and what a webhook already queued is a duplicate."""
    if not item.get("message_id") or not item.get("time"):
        return
    try:
        event = history_event(item, ctx.settings.zalo_app_id)
    except ValidationError as exc:  # one odd item must not stop the catch-up of everything else
        log.warning("catchup.bad_item", extra={"error": str(exc.messages)[:500]})
        return
    if not event.queued or (event.kind == events.OA_MESSAGE and ctx.mapping.is_sent_by_us(event.dedupe_id)):
        return
    if not ctx.lanes.accept_event(event, ctx.connection, ctx.settings.dedupe_ttl_seconds):
        return
    outcome.queued += 1
    sent = int(item["time"])
    if outcome.started_at - sent >= SETTLED_MS:
        outcome.missed += 1
        outcome.newest_missed = max(outcome.newest_missed, sent)


def enqueue(redis, connection_id: str, reason: str, since_ms: int | None = None, once_for: int = 0) -> bool:
    """Queue a catch-up of the connection since its last one, unless one is queued and not yet
    started (False then: that one covers this trigger). A window of its own (`since_ms`) is
    always queued. With `once_for`, also only if this trigger did not queue one in that many
    seconds."""
    k = Keys(connection_id)
    if once_for and not redis.set(k.catchup_guard(reason), "1", nx=True, ex=once_for):
        return False
    if since_ms is None and not redis.set(k.catchup_pending, reason, nx=True, ex=PENDING_SECONDS):
        queue_log.info("catchup.merged", extra={"connection": connection_id, "reason": reason})
        return False
    queue_job(redis, connection_id, reason, since_ms)
    return True


def queue_job(redis, connection_id: str, reason: str, since_ms: int | None = None) -> None:
    Queue(QUEUE_NAME, connection=redis).enqueue(
        CATCH_UP_JOB, connection_id, since_ms, reason, job_timeout=JOB_TIMEOUT, result_ttl=0, failure_ttl=3600
    )
    queue_log.info("catchup.queued", extra={"connection": connection_id, "reason": reason})


def on_demand(redis, connections: Connections, connection_id: str, since=None) -> int | None:
    """Queue a catch-up of an enabled connection from Zalo's history, for a worker to run (the
    API and the console's button); `since`: seconds back or an ISO 8601 time (`parse_since`),
    None: since the last one. Answers the window's start (epoch ms), None for "since the last"."""
    conn = connections.get(connection_id)
    if not conn.enabled:
        raise Problem(409, f"connection {connection_id} is disabled")
    try:
        since_ms = parse_since(str(since)) if since not in (None, "") else None
    except ValueError as exc:
        raise Problem(400, str(exc), {"since": str(exc)}) from None
    enqueue(redis, conn.id, "on_demand", since_ms)
    return since_ms


def history_days(settings: Settings) -> int:
    """How many days back a history import may read: the catch-up horizon (never beyond the
    dedupe window), in whole days, at least one."""
    return max(1, min(settings.catchup_horizon_seconds, settings.dedupe_ttl_seconds) // 86400)


def import_history(redis, connections: Connections, connection_id: str, days, settings: Settings) -> int:
    """The operator chose, at the connection's first activation, to bring in the last `days`
    days of the OA's chats: a catch-up from then, each message relayed with its own time
    (app/relay/inbound.py marks a late one with it). Answers the window's start (epoch ms)."""
    conn = connections.get(connection_id)
    if not conn.enabled:
        raise Problem(409, f"connection {connection_id} is disabled")
    most = history_days(settings)
    try:
        count = int(days)
    except (TypeError, ValueError):
        count = 0
    if not 1 <= count <= most:
        raise Problem(400, "invalid query", {"days": f"a whole number from 1 to {most}"})
    since_ms = now_ms() - count * DAY_MS
    enqueue(redis, conn.id, HISTORY, since_ms)
    redis.hset(Keys(conn.id).catchup, mapping={"history_offer": "queued", "history_days": str(count)})
    return since_ms


def decline_history(redis, connection_id: str) -> None:
    """The operator does not want the chats from before: the offer is not shown again."""
    redis.hset(Keys(connection_id).catchup, "history_offer", "declined")
