"""Effects: a partner call runs once per key, and its record survives a Redis restart."""

from __future__ import annotations

import threading
import time

from app.bridge.effects import Effects
from app.bridge.keys import DEFAULT_KEYS


def test_second_run_returns_the_recorded_result_without_calling(redis):
    effects, calls = Effects(redis, 60), []
    assert effects.once("k", lambda: calls.append(1) or "first") == "first"
    assert effects.once("k", lambda: calls.append(2) or "second") == "first"
    assert calls == [1]


def test_a_failed_call_records_nothing(redis):
    effects = Effects(redis, 60)
    try:
        effects.once("k", lambda: 1 / 0)
    except ZeroDivisionError:
        pass
    assert effects.once("k", lambda: "retried") == "retried"


def test_the_record_waits_for_redis_to_come_back(redis, redis_server):
    import redis as redis_lib

    client = redis_lib.Redis.from_url(redis_server.url, socket_connect_timeout=0.2)
    effects = Effects(client, 60)

    def partner_call():
        redis_server.stop()  # Redis goes away while the partner is answering
        threading.Timer(0.5, redis_server.start).start()
        return "partner-id"

    assert effects.once("k", partner_call) == "partner-id"
    time.sleep(0.1)
    assert client.get(DEFAULT_KEYS.done("k")) == b'"partner-id"'
