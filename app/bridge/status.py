"""A snapshot of the bridge's state for operators and the sandbox page (no secrets)."""

from __future__ import annotations

import time

from redis import Redis

from app.bridge.keys import DEFAULT_KEYS, DUE, HEARTBEAT
from app.bridge.lanes import now_ms
from app.integrations.zalo.tokens import TOKEN, token_health


def bridge_status(redis: Redis) -> dict:
    token = {k.decode(): v.decode() for k, v in redis.hgetall(TOKEN).items()}
    beat = redis.get(HEARTBEAT)
    errors = [e.decode() for e in redis.lrange(DEFAULT_KEYS.errors, 0, 9)]
    return {
        "lanes_pending": redis.zcard(DUE),
        "lanes_due_now": redis.zcount(DUE, "-inf", now_ms()),
        "dead_letters": redis.zcard(DEFAULT_KEYS.dead_order),
        "worker_heartbeat_age": round(time.time() - float(beat), 1) if beat else None,
        "zalo_token": {
            "present": bool(token.get("access_token")),
            "dead": token.get("dead", ""),
            "expires_at": float(token.get("expires_at") or 0) or None,
            **token_health(token, time.time()),
        },
        "last_errors": errors,
    }
