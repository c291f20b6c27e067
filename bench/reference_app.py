"""The durable-write floor: a bare WSGI app that LPUSHes the request body to Redis and answers
200. Served by the same gunicorn command line as the bridge (Procfile `web:`), with the same
Redis client settings as the bridge (app/extensions.py), it is what any webhook endpoint that
acknowledges only after a Redis write costs on this machine."""

from __future__ import annotations

import os

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

KEY = "bench:reference"
_redis = Redis.from_url(
    os.environ.get("REDIS_URL", "redis://localhost:6379/0"),
    socket_timeout=5,
    socket_connect_timeout=2,
    retry=Retry(ExponentialBackoff(cap=0.2, base=0.01), 1),
    health_check_interval=30,
)
BODY = b'{"ok":true}'


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    _redis.lpush(KEY, body)
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))])
    return [BODY]
