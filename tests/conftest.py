"""Fixtures: one real Redis server per test session, flushed between tests."""

from __future__ import annotations

import pytest
import redis as redis_lib

from sandbox.helpers import make_settings
from sandbox.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis(redis_server):
    if redis_server.proc is None:
        redis_server.start()
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(redis, redis_server, tmp_path):
    return make_settings(redis_server.url, media_dir=str(tmp_path / "media"))


@pytest.fixture
def app(settings):
    from app import create_app

    return create_app(settings)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(settings, redis):
    """A worker context wired to the test Redis (HTTP is intercepted with requests-mock)."""
    from workers.context import WorkerContext

    return WorkerContext(settings, redis)


@pytest.fixture
def public_dns(monkeypatch):
    """Partner hosts in fixtures resolve to a public address (the sandbox has no DNS)."""
    import socket

    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in ("localhost", "127.0.0.1", "::1"):
            return real(host, port, *args, **kwargs)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port or 443))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
