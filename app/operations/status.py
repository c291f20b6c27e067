"""A snapshot of the bridge's state for operators and the sandbox page (no secrets).

Per connection (`connection_status`): its Zalo token, dead letters, when each partner's webhook
last reached it, its last catch-up from Zalo's history, its queued work, its alerts and last
errors, the messages relayed today each way, and its problems in words (app/operations/problems.py). The
top-level fields of `bridge_status` are the whole bridge's (lanes, heartbeat) and the `default`
connection's (token, dead letters, errors), as single-OA bridges have always shown them.
"""

from __future__ import annotations

import json
import time

from redis import Redis
from redis.client import Pipeline

from app.bridge.keys import DEFAULT, DEFAULT_KEYS, DUE, HEARTBEAT, Keys, is_timer_lane, lane, lane_connection
from app.bridge.lanes import now_ms
from app.bridge.outcome import FAILED, Outcome
from app.bridge.replies import text
from app.connections.checks import read_check
from app.connections.store import Connection, Registry
from app.integrations.zalo.tokens import token_health
from app.operations import problems
from app.operations.journal import Journal, relayed_counts

HEARTBEAT_MAX_AGE = 30  # seconds: an older worker heartbeat means no worker runs (/readyz, workers/health.py)
SOURCES = ("zalo", "freshchat")
ALERTED = ("webhook_off",)  # problems also raised as alerts: /readyz fails on them
ERRORS_SHOWN = 10
ERRORS_KEPT = 50


def remember_error(
    redis: Redis, keys: Keys, error: str, lane: str = "", item: str = "", pipe: Pipeline | None = None
) -> None:
    """One line of a connection's "last errors": retries, dead letters, and the failures the
    bridge handles without either (a refusal reported to the agent, a rejected access token).
    Written at once, or as part of `pipe` (its owner executes it)."""
    entry = json.dumps({"at": time.time(), "lane": lane, "item": item, "error": error})
    target = redis.pipeline() if pipe is None else pipe
    target.lpush(keys.errors, entry)
    target.ltrim(keys.errors, 0, ERRORS_KEPT - 1)
    if pipe is None:
        target.execute()


def on_outcome(outcome: Outcome, pipe: Pipeline) -> None:
    """Subscriber (app/relay/subscribers.py): the error of a failed try, then a dead letter's
    reason, as lines of the connection's last errors (a removed connection has none to show)."""
    if outcome.removed:
        return
    ctx, lane, item = outcome.ctx, outcome.lane, outcome.item.id
    if outcome.error:
        remember_error(ctx.redis, ctx.keys, outcome.error, lane=lane, item=item, pipe=pipe)
    if outcome.state == FAILED:  # not a retry: no item_retry line
        remember_error(ctx.redis, ctx.keys, outcome.reason, lane=lane, item=item, pipe=pipe)


def bridge_status(redis: Redis, connections: Registry | None = None) -> dict:
    """With the registry (`connections`), also every connection's status under "connections"."""
    token = _token(redis, DEFAULT_KEYS)
    beat = redis.get(HEARTBEAT)
    errors = [text(e) for e in redis.lrange(DEFAULT_KEYS.errors, 0, ERRORS_SHOWN - 1)]
    depths = queue_depths(redis)
    status = {
        "lanes_pending": sum(d["lanes_pending"] for d in depths.values()),
        "lanes_due_now": redis.zcount(DUE, "-inf", now_ms()),
        "dead_letters": redis.zcard(DEFAULT_KEYS.dead_order),
        "worker_heartbeat_age": round(time.time() - float(beat), 1) if beat else None,
        "zalo_token": token_state(token),
        "last_errors": errors,
        "reconciled": reconciled(redis, DEFAULT_KEYS),
    }
    if connections is not None:
        status["connections"] = connections_status(redis, connections, depths)
    return status


def connections_status(redis: Redis, connections: Registry, depths: dict | None = None) -> dict[str, dict]:
    """Every connection's status, by id (the default one first): one pipelined read for them
    all, however many there are (/readyz with a thousand connections)."""
    depths = queue_depths(redis) if depths is None else depths
    everyone = connections.all()
    pipe = redis.pipeline(transaction=False)
    for c in everyone:
        _ask(pipe, c.id)
    read = pipe.execute()
    return {
        c.id: dict(_status(c.id, read[i * READS : (i + 1) * READS], depths.get(c.id) or _EMPTY, c), enabled=c.enabled)
        for i, c in enumerate(everyone)
    }


def connection_status(
    redis: Redis,
    connection_id: str,
    depth: dict | None = None,
    connection: Connection | None = None,
    language: str | None = None,
) -> dict:
    """One connection's status; `depth` as `queue_depths` gives it (read when not given).
    With the `connection` itself, its problems also count a token pair given in its settings
    (the default connection's environment) that no worker has stored yet, what its settings get
    wrong, and the last connection test's refusals; the alerts the bridge words itself are in its
    agents' `language` (unless given; English without either)."""
    pipe = redis.pipeline(transaction=False)
    _ask(pipe, connection_id)
    read = pipe.execute()
    depth = depth or queue_depths(redis).get(connection_id) or _EMPTY
    return _status(connection_id, read, depth, connection, language)


READS = 7 + len(SOURCES)  # the replies `_ask` queues for one connection


def _ask(pipe, connection_id: str) -> None:
    """Queue on `pipe` the reads of one connection's status (READS replies, in `_status`'s order)."""
    keys = Keys(connection_id)
    pipe.zcard(keys.dead_order)
    pipe.lrange(keys.errors, 0, ERRORS_SHOWN - 1)
    pipe.hgetall(keys.reconcile)
    for source in SOURCES:
        pipe.get(keys.last_webhook(source))
    pipe.hgetall(keys.catchup)
    pipe.get(keys.last_check)
    pipe.hgetall(keys.zalo_token)
    pipe.mget(Journal(pipe, connection_id).relayed_today_keys())


def _status(connection_id: str, read: list, depth: dict, connection=None, language: str | None = None) -> dict:
    dead, errors, settled, *last, catchup, checked, stored_token, relayed = read
    check = read_check(checked)
    token = token_state(_decoded(stored_token), check)
    status = {
        "zalo_token": token,
        "dead_letters": dead,
        "reconciled": _counts(settled),
        "last_webhook": {source: float(at) if at else None for source, at in zip(SOURCES, last, strict=True)},
        "catch_up": catch_up_state(catchup),
        "history": history_state(catchup),
        **depth,
        "last_errors": [e.decode() for e in errors],
        "relayed_today": relayed_counts(relayed),
    }
    settings = getattr(connection, "settings", None)
    seeded = bool(settings and (settings.zalo_access_token or settings.zalo_refresh_token))
    status["problems"] = problems.find(status, token_given=seeded, now=time.time(), settings=settings, check=check)
    language = language or (settings.agent_language if settings else "en")
    alerts = [token["alert"], *(problems.as_alert(p, language) for p in status["problems"] if p["code"] in ALERTED)]
    status["alerts"] = [named(connection_id, alert) for alert in alerts if alert]
    return status


def catch_up_state(raw: dict) -> dict | None:
    """The last finished catch-up: when (epoch seconds; None before the first), why, and what
    it found, and under "failed" the last failure since (when, why, the error); None before
    the first catch-up."""
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if not record.get("finished_at") and not record.get("failed_at"):
        return None
    counts = {name: int(record.get(name) or 0) for name in ("chats", "found", "queued", "missed")}
    newest = int(record.get("newest_missed") or 0)
    failed = record.get("failed_at") and {
        "at": int(record["failed_at"]) / 1000,
        "reason": record.get("failed_reason", ""),
        "error": record.get("error", ""),
    }
    return {
        "at": int(record["finished_at"]) / 1000 if record.get("finished_at") else None,
        "failed": failed or None,
        "reason": record.get("reason", ""),
        "since": int(record.get("since") or 0) / 1000,
        **counts,
        "newest_missed_at": newest / 1000 if newest else None,
    }


def history_state(raw: dict) -> dict:
    """The history import offered at a connection's first activation: `offer` ("open" until
    the operator chooses, "queued", "declined"; "" for a connection activated before the offer
    existed), the days chosen, and once done how many messages it queued (`imported`)."""
    record = {k.decode(): v.decode() for k, v in raw.items()}
    imported = record.get("imported")
    return {
        "offer": record.get("history_offer", ""),
        "days": int(record.get("history_days") or 0),
        "imported": int(imported) if imported is not None else None,
        "imported_at": int(record["imported_at"]) / 1000 if record.get("imported_at") else None,
    }


def reconciled(redis: Redis, keys: Keys) -> dict:
    """Per partner, how sends of unknown outcome were settled: `found` (delivered after all,
    not sent again), `not_found` (sent again), `unreadable` (the partner could not be read:
    sent again blind, as before reconciliation)."""
    return _counts(redis.hgetall(keys.reconcile))


def _counts(raw: dict) -> dict:
    counts: dict[str, dict] = {}
    for field, value in raw.items():
        partner, _, outcome = field.decode().partition(":")
        counts.setdefault(partner, {})[outcome] = int(value)
    return counts


def named(connection_id: str, alert: str) -> str:
    """An alert says whose it is; the default connection's read as they always have."""
    return alert if connection_id == DEFAULT else f"connection {connection_id}: {alert}"


def token_state(token: dict, check: dict | None = None) -> dict:
    """The stored pair in words. `accepted`: Zalo gave it (OAuth, a refresh) or the last
    connection test (`check`), made since it was stored, passed with it; a pasted pair is not
    accepted before. `refused`: that test's words when it failed."""
    check = check or {}
    tested = check.get("zalo")
    if tested and float(check.get("at") or 0) < float(token.get("updated_at") or 0):
        tested = None  # a test of an earlier pair says nothing of this one
    return {
        "present": bool(token.get("access_token")),
        "dead": token.get("dead", ""),
        "expires_at": float(token.get("expires_at") or 0) or None,
        "accepted": bool(token.get("accepted")) or bool(tested and tested.get("ok")),
        "refused": tested["detail"] if tested and not tested.get("ok") else "",
        **token_health(token, time.time()),
    }


_EMPTY = {"lanes_pending": 0, "queued_items": 0, "timers": 0, "oldest_due_at": None}


def queue_depths(redis: Redis) -> dict[str, dict]:
    """Per connection: lanes with work waiting, the items in them, and since when the longest
    waiting lane has been due (epoch s; None when none is due: a lane a worker holds or that
    waits for a retry is due later). The lane id says whose conversation it is:
    `<connection>/in:<user>`, the default's have no prefix. Timer lanes (a reply window's
    reminder, a receipts note) wait for hours by design: counted apart, not as queued work."""
    lanes = [(m.decode(), due) for m, due in redis.zscan_iter(DUE)]
    pipe = redis.pipeline(transaction=False)
    for lane_id, _ in lanes:
        pipe.llen(lane(lane_id))
    now = now_ms()
    depths: dict[str, dict] = {}
    for (lane_id, due), items in zip(lanes, pipe.execute(), strict=True):
        depth = depths.setdefault(lane_connection(lane_id), dict(_EMPTY))
        if is_timer_lane(lane_id):
            depth["timers"] += 1
        else:
            depth["lanes_pending"] += 1
            depth["queued_items"] += items
        if due <= now and (depth["oldest_due_at"] is None or due / 1000 < depth["oldest_due_at"]):
            depth["oldest_due_at"] = due / 1000
    return depths


def _token(redis: Redis, keys: Keys) -> dict:
    return _decoded(redis.hgetall(keys.zalo_token))


def _decoded(raw: dict) -> dict:
    return {text(k): text(v) for k, v in raw.items()}
