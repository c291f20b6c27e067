"""What an operator sees and does: a Redis outage in the log, SIGTERM, restarts."""

from __future__ import annotations

import time

import redis as redis_lib

from app.bridge.keys import HEARTBEAT
from sandbox.procs import Bridge, wait_until
from tests.redis_server import RedisServer


def test_a_redis_outage_is_one_line_then_one_line_when_it_is_back(partners, tmp_path):
    base, _, fc = partners
    server = RedisServer()  # not started yet: the worker comes up while Redis is away
    bridge = Bridge(server.url, base, fc.public_key_pem_rsa_label, tmp_path)
    bridge.env["REDIS_URL"] = server.url.replace("redis://", "redis://:pw-4711@")
    bridge.start("worker")
    try:
        wait_until(lambda: "redis.unreachable" in bridge.log("worker"), timeout=20, what="the outage line")
        time.sleep(4)  # several retries happen meanwhile
        server.extra_args = ["--requirepass", "pw-4711"]
        server.start()
        client = redis_lib.Redis.from_url(bridge.env["REDIS_URL"])
        wait_until(lambda: client.get(HEARTBEAT), timeout=40, what="the worker's heartbeat after Redis is back")
        wait_until(lambda: "redis.back" in bridge.log("worker"), timeout=5, what="the recovery line")
        log = bridge.log("worker")
        assert log.count("redis.unreachable") == 1 and log.count("redis.back") == 1, log
        assert "Traceback" not in log and "child_died" not in log, log
        assert "pw-4711" not in log and "redis://:***@127.0.0.1" in log
    finally:
        bridge.stop()
        server.stop()
