"""Fixtures: one real Redis server per test session, flushed between tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis as redis_lib

from sandbox.helpers import make_settings
from sandbox.redis_server import RedisServer

E2E = Path(__file__).parent / "e2e"


def _reuse_url_builders() -> None:
    """About 700 tests each create an app, and 90 % of create_app is werkzeug compiling the
    same ~50 URL builders again (an AST per rule, then compile()). A builder is a pure function
    of the rule's text, its parsed parts, its defaults and append_unknown (the rule is passed
    in when it is called), so the one compiled first is handed out again: 80 ms -> 25 ms."""
    from werkzeug.routing.rules import Rule

    compile_builder, compiled = Rule._compile_builder, {}

    def reused(self, append_unknown: bool = True):
        defaults = tuple(sorted((k, repr(v)) for k, v in (self.defaults or {}).items()))
        key = (self.rule, tuple(self._trace), defaults, append_unknown)
        if key not in compiled:
            compiled[key] = compile_builder(self, append_unknown)
        return compiled[key]

    Rule._compile_builder = reused


_reuse_url_builders()


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(items):
    """Every test under tests/e2e starts real processes: `-m "not e2e"` (make test-fast) skips them."""
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


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
