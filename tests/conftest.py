"""Fixtures: one real Redis server per test session, flushed between tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis as redis_lib
from redis import connection as redis_connection

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


# `make test` runs the suite on pytest-xdist workers (`-n 4 --dist loadfile`): a worker runs a
# file's tests one after the other, so their module fixtures (the shared stack of
# tests/e2e/conftest.py) start once and a test needing its own bridge still comes first. These
# run apart from their file, each test a unit of its own, and are handed out first: the longest
# waits of the suite (seconds measured on `make test`), and none uses a module fixture: each starts
# its own bridge, on its worker's own Redis and simulators. Most of an e2e test is waiting on
# processes, so 4 workers overlap it on 2 cores.
APART = (
    "tests/e2e/test_never_lose.py::test_three_minute_zalo_outage_past_the_retry_horizon_loses_nothing",  # 190 s
    "tests/e2e/test_delivery.py::",  # each test of the file: 15 to 40 s
)


def apart(nodeid: str) -> int | None:
    return next((n for n, prefix in enumerate(APART) if nodeid.startswith(prefix)), None)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(items):
    """Every test under tests/e2e starts real processes: `-m "not e2e"` (make test-fast) skips them.
    On an xdist worker the collection is ordered as the units are to be handed out: the tests
    APART first, then the e2e files, then the fast ones filling the gaps at the end."""
    for item in items:
        if E2E in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)
    if os.environ.get("PYTEST_XDIST_WORKER"):

        def rank(item) -> tuple[int, int]:
            n = apart(item.nodeid)
            return (0, n) if n is not None else (1 if item.get_closest_marker("e2e") else 2, 0)

        items.sort(key=rank)  # stable: a file's tests keep their order


@pytest.hookimpl(optionalhook=True)  # only when xdist is loaded: `-p no:xdist` still runs
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with the tests APART each a unit of their own. (`--dist loadgroup` would
    say it with marks, but xdist 3.8 groups by rewriting node ids, which pytest 9.2 no longer
    lets it do: it silently hands every test out alone, pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling  # here: only an xdist run has it to import

    config.option.loadscopereorder = False  # hand units out in the collection's order, not by size

    class FilesAndApart(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if apart(nodeid) is not None else super()._split_scope(nodeid)

    return FilesAndApart(config, log)


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
def round_trips(monkeypatch) -> list[bytes]:
    """Every round trip to Redis, as the bytes sent (a pipeline or a script is one). Patched on
    `Connection` itself: bench.redis_cost (run by tests/bench in the same process) leaves its own
    attribute there, which would hide a patch of the base class."""
    sent: list[bytes] = []
    real = redis_connection.Connection.send_packed_command

    def send(self, command, check_health=True):
        sent.append(b"".join(command) if isinstance(command, list) else command)
        return real(self, command, check_health)

    monkeypatch.setattr(redis_connection.Connection, "send_packed_command", send)
    return sent


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
