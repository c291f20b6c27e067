"""Shared resources (Redis, lanes, connections, media store) built once per process from Settings."""

from __future__ import annotations

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from app.bridge.lanes import Lanes
from app.bridge.secrets_at_rest import sealer_for
from app.connections import ConnectionStore, Registry


def connect_redis(settings) -> Redis:
    """Short timeouts: a webhook must answer 503 quickly when Redis is away, not hang."""
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=5,
        socket_connect_timeout=2,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 1),
        health_check_interval=30,
    )


def init_app(app, settings) -> None:
    from app.media.store import build_media_store

    redis = connect_redis(settings)
    app.extensions["redis"] = redis
    app.extensions["lanes"] = Lanes(redis, lease_ms=settings.lease_seconds * 1000)
    app.extensions["connections"] = Registry(ConnectionStore(redis, settings, sealer_for(settings)), settings)
    app.extensions["media_store"] = build_media_store(settings)
