"""A snapshot of the bridge's state for operators and the sandbox page (no secrets).

Per connection (`connection_status`): its Zalo token, dead letters, when each partner's webhook
last reached it, its last catch-up from Zalo's history, its queued work and its alerts. The
top-level fields of `bridge_status` are the whole bridge's (lanes, heartbeat) and the `default`
connection's (token, dead letters, errors), as single-OA bridges have always shown them.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from redis import Redis

from app.bridge.keys import DEFAULT, DEFAULT_KEYS, DUE, HEARTBEAT, Keys, lane, lane_connection
from app.bridge.lanes import now_ms
from app.integrations.zalo.tokens import token_health
from app.texts import say

VN = timezone(timedelta(hours=7))

SOURCES = ("zalo", "freshchat")


def bridge_status(redis: Redis, connections=None) -> dict:
    """With the registry (`connections`), also every connection's status under "connections"."""
    token = _token(redis, DEFAULT_KEYS)
    beat = redis.get(HEARTBEAT)
    errors = [e.decode() for e in redis.lrange(DEFAULT_KEYS.errors, 0, 9)]
    status = {
        "lanes_pending": redis.zcard(DUE),
        "lanes_due_now": redis.zcount(DUE, "-inf", now_ms()),
        "dead_letters": redis.zcard(DEFAULT_KEYS.dead_order),
        "worker_heartbeat_age": round(time.time() - float(beat), 1) if beat else None,
        "zalo_token": token_state(token),
        "last_errors": errors,
    }
    if connections is not None:
        status["connections"] = connections_status(redis, connections)
    return status


def connections_status(redis: Redis, connections) -> dict[str, dict]:
    """Every connection's status, by id (the default one first)."""
    depths = queue_depths(redis)
    return {
        c.id: dict(connection_status(redis, c.id, depths.get(c.id), c.settings.agent_language), enabled=c.enabled)
        for c in connections.all()
    }


def connection_status(redis: Redis, connection_id: str, depth: dict | None = None, language: str = "en") -> dict:
    """One connection's status; `depth` as `queue_depths` gives it (read when not given);
    alerts the bridge words itself are in `language`."""
    keys = Keys(connection_id)
    pipe = redis.pipeline(transaction=False)
    pipe.zcard(keys.dead_order)
    for source in SOURCES:
        pipe.get(keys.last_webhook(source))
    pipe.hgetall(keys.catchup)
    dead, *last, catchup = pipe.execute()
    token = token_state(_token(redis, keys))
    last_webhook = {source: float(at) if at else None for source, at in zip(SOURCES, last, strict=True)}
    caught_up = catch_up_state(catchup)
    alerts = [token["alert"], webhook_off_alert(caught_up, last_webhook["zalo"], language)]
    return {
        "zalo_token": token,
        "dead_letters": dead,
        "last_webhook": last_webhook,
        "catch_up": caught_up,
        **(depth or queue_depths(redis).get(connection_id) or _EMPTY),
        "alerts": [named(connection_id, alert) for alert in alerts if alert],
    }


def catch_up_state(raw: dict) -> dict | None:
    """The last finished catch-up: when (epoch seconds), why, and what it found; None before
    the first one."""
    record = {k.decode(): v.decode() for k, v in raw.items()}
    if not record.get("finished_at"):
        return None
    counts = {name: int(record.get(name) or 0) for name in ("chats", "found", "queued", "missed")}
    newest = int(record.get("newest_missed") or 0)
    return {
        "at": int(record["finished_at"]) / 1000,
        "reason": record.get("reason", ""),
        "since": int(record.get("since") or 0) / 1000,
        **counts,
        "newest_missed_at": newest / 1000 if newest else None,
    }


def webhook_off_alert(caught_up: dict | None, last_zalo_webhook: float | None, language: str) -> str:
    """Catch-up had to queue messages that no webhook brought, and no webhook came after the
    newest of them: Zalo may have switched the webhook off. A webhook arriving ends it."""
    if not caught_up or not caught_up["missed"]:
        return ""
    newest = caught_up["newest_missed_at"]
    if last_zalo_webhook and last_zalo_webhook >= newest:
        return ""
    when = datetime.fromtimestamp(newest, VN).strftime("%H:%M %d/%m/%Y")
    return say("webhook_off", language, count=caught_up["missed"], when=when)


def named(connection_id: str, alert: str) -> str:
    """An alert says whose it is; the default connection's read as they always have."""
    return alert if connection_id == DEFAULT else f"connection {connection_id}: {alert}"


def token_state(token: dict) -> dict:
    return {
        "present": bool(token.get("access_token")),
        "dead": token.get("dead", ""),
        "expires_at": float(token.get("expires_at") or 0) or None,
        **token_health(token, time.time()),
    }


_EMPTY = {"lanes_pending": 0, "queued_items": 0}


def queue_depths(redis: Redis) -> dict[str, dict]:
    """Per connection: lanes with work waiting and the items in them (the lane id says whose
    conversation it is: `<connection>/in:<user>`, the default's have no prefix)."""
    lanes = [m.decode() for m, _ in redis.zscan_iter(DUE)]
    pipe = redis.pipeline(transaction=False)
    for lane_id in lanes:
        pipe.llen(lane(lane_id))
    depths: dict[str, dict] = {}
    for lane_id, items in zip(lanes, pipe.execute(), strict=True):
        depth = depths.setdefault(lane_connection(lane_id), dict(_EMPTY))
        depth["lanes_pending"] += 1
        depth["queued_items"] += items
    return depths


def _token(redis: Redis, keys: Keys) -> dict:
    return {k.decode(): v.decode() for k, v in redis.hgetall(keys.zalo_token).items()}
