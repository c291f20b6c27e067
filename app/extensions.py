"""Shared resources (Redis, lanes, connections, media store) built once per process from Settings.

The web process keeps them on its Flask app (`init_app`); a request reads them through the typed
accessors below (`redis()`, `settings()`, ...), so a reader and mypy know what each one is.
"""

from __future__ import annotations

from flask import Flask, current_app
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from app.bridge.lanes import Lanes
from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore, Registry
from app.media.store import LocalMediaStore, S3MediaStore, build_media_store
from config.redis_url import SENTINEL_SCHEME, parse_sentinel_url
from config.settings import Settings


def connect_redis(settings: Settings) -> Redis:
    """Short timeouts: a webhook must answer 503 quickly when Redis is away, not hang.

    `redis+sentinel://` asks the sentinels for the current primary on every new connection,
    so after a failover the next command reaches the new primary (redis-py's Sentinel pool)."""
    options = {
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.01), 1),
        "health_check_interval": 30,
    }
    if not settings.redis_url.startswith(SENTINEL_SCHEME):
        return Redis.from_url(settings.redis_url, **options)
    target = parse_sentinel_url(settings.redis_url)
    sentinel = Sentinel(
        target.sentinels,
        socket_timeout=1,
        socket_connect_timeout=1,
        sentinel_kwargs={"password": target.password, "socket_timeout": 1, "socket_connect_timeout": 1},
    )
    return sentinel.master_for(target.master, db=target.db, password=target.password, **options)


def init_app(app: Flask, settings: Settings) -> None:
    redis = connect_redis(settings)
    app.extensions["redis"] = redis
    app.extensions["lanes"] = Lanes(
        redis,
        lease_ms=settings.lease_seconds * 1000,
        replicas=settings.redis_wait_replicas,
        wait_ms=settings.redis_wait_timeout_ms,
    )
    app.extensions["connections"] = Registry(ConnectionStore(redis, settings, sealer_for(settings)), settings)
    app.extensions["media_store"] = build_media_store(settings)


# What init_app (and create_app's SETTINGS) keep on the current app, typed.


def settings() -> Settings:
    return current_app.config["SETTINGS"]


def redis() -> Redis:
    return current_app.extensions["redis"]


def lanes() -> Lanes:
    return current_app.extensions["lanes"]


def connections() -> Registry:
    return current_app.extensions["connections"]


def media_store() -> LocalMediaStore | S3MediaStore:
    return current_app.extensions["media_store"]
