"""When the worker catches up from Zalo's history: at start, after Redis and after a web process
started again, and when a connection's Zalo webhooks have gone quiet. Triggers firing together
queue one catch-up; none is dropped: one firing after a catch-up started queues another."""

from __future__ import annotations

import requests_mock
from rq import Queue

from app.bridge.keys import WEB_STARTED, Keys
from app.relay.catchup import catch_up
from sandbox.helpers import ZALO_API, partners_answer_probes
from tests.multi import HCM, OA2, store
from workers.catchup import QUIET_CHECK_SECONDS, WEB_CHECK_SECONDS, Triggers
from workers.starter import QUEUE_NAME

RECENT = f"{ZALO_API}/v2.0/oa/listrecentchat"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def jobs(redis) -> list[tuple]:
    return [(j.func_name, *j.args) for j in Queue(QUEUE_NAME, connection=redis).jobs]


def test_start_queues_one_catch_up_per_enabled_connection_whichever_worker_asks_first(redis, settings):
    store(redis, settings, OA2, dict(HCM, enabled=False))
    first, second = Triggers(redis, settings), Triggers(redis, settings)
    assert first.everyone("start") == 2
    assert second.everyone("start") == 0  # another worker machine starting at the same time
    assert first.everyone("redis") == 0  # Redis back before they started: the queued ones cover it
    assert sorted(jobs(redis)) == [
        ("workers.catchup.catch_up_job", "default", None, "start"),
        ("workers.catchup.catch_up_job", "oa2", None, "start"),
    ]


def zalo_history(reading) -> requests_mock.Mocker:
    """Zalo with no chats in its history; `reading()` runs while a catch-up reads it."""
    mock = requests_mock.Mocker()
    partners_answer_probes(mock)

    def recent(request, context):
        reading()
        return {"error": 0, "message": "Success", "data": []}

    mock.get(RECENT, json=recent)
    return mock


def test_a_trigger_after_the_catch_up_started_queues_another_and_a_quick_restart_catches_up(
    redis, settings, ctx, public_dns
):
    triggers = Triggers(redis, settings)
    assert triggers.everyone("start") == 1
    Queue(QUEUE_NAME, connection=redis).empty()  # a worker took the job
    fired = []
    with zalo_history(lambda: fired.append(triggers.everyone("web"))):
        assert catch_up(ctx, None, "start") is not None
    assert fired == [1]  # the run had started: it may have read Zalo before what this is about
    assert jobs(redis) == [("workers.catchup.catch_up_job", "default", None, "web")]
    Queue(QUEUE_NAME, connection=redis).empty()
    with zalo_history(lambda: None):
        assert catch_up(ctx, None, "web") is not None
    assert Triggers(redis, settings).everyone("start") == 1  # a worker started again seconds later


def test_a_catch_up_finding_another_running_gives_up_and_the_running_one_queues_it_again(
    redis, settings, ctx, public_dns
):
    inside = []
    with zalo_history(lambda: inside.append(catch_up(ctx, None, "redis"))):  # another worker's job
        assert catch_up(ctx, None, "start") is not None
    assert inside == [None]
    assert jobs(redis) == [("workers.catchup.catch_up_job", "default", None, "start")]
    assert Triggers(redis, settings).everyone("web") == 0  # merged into the one just queued


def test_a_connection_quiet_for_longer_than_the_setting_is_caught_up_once_per_quiet_period(redis, settings):
    store(redis, settings, OA2, HCM)
    clock, ticks = Clock(), Clock()
    triggers = Triggers(redis, settings, clock=clock, monotonic=ticks)
    quiet = settings.catchup_quiet_seconds
    redis.set(Keys("default").last_webhook("zalo"), clock.now - quiet - 1)  # went quiet
    redis.set(Keys("oa2").last_webhook("zalo"), clock.now - 5)  # busy; hcm never had a webhook
    assert triggers.check_quiet() == 0  # checks run once a minute, not every tick
    ticks.now += QUIET_CHECK_SECONDS
    assert triggers.check_quiet() == 1
    assert jobs(redis) == [("workers.catchup.catch_up_job", "default", None, "quiet")]
    ticks.now += QUIET_CHECK_SECONDS
    assert triggers.check_quiet() == 0  # still quiet: not again within the quiet period
    redis.delete(Keys("default").catchup_guard("quiet"))  # the period is over,
    redis.delete(Keys("default").catchup_pending)  # and the queued catch-up has started
    ticks.now += QUIET_CHECK_SECONDS
    assert triggers.check_quiet() == 1


def test_a_web_process_that_started_again_catches_every_connection_up_once(redis, settings):
    from app import create_app

    store(redis, settings, OA2)
    ticks = Clock()
    triggers = Triggers(redis, settings, monotonic=ticks)
    create_app(settings)  # the web that was running when the worker started
    assert triggers.check_web_restart() == 0  # the first look only learns when it started
    ticks.now += WEB_CHECK_SECONDS
    assert triggers.check_web_restart() == 0 and jobs(redis) == []
    redis.set(WEB_STARTED, 1.0)  # stands for a later start (create_app stamps the time)
    assert triggers.check_web_restart() == 0  # looked at most every WEB_CHECK_SECONDS
    ticks.now += WEB_CHECK_SECONDS
    assert triggers.check_web_restart() == 2
    assert sorted(jobs(redis)) == [
        ("workers.catchup.catch_up_job", "default", None, "web"),
        ("workers.catchup.catch_up_job", "oa2", None, "web"),
    ]
    ticks.now += WEB_CHECK_SECONDS
    assert triggers.check_web_restart() == 0  # the same start is caught up once


def test_the_starter_loop_catches_up_at_start_and_once_redis_is_back(redis, settings, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from app.bridge.outage import RedisOutage
    from workers import supervisor as sup

    ticks = []

    class Stub:
        stopping = False
        outage = RedisOutage(sup.log, settings.redis_url, clock=lambda: 0.0)

        def reap(self):
            self.stopping = len(ticks) >= 3

    def run_once(self, block_seconds):
        ticks.append(jobs(redis))
        redis.delete(Keys("default").catchup_pending)  # a worker started the queued catch-up
        if len(ticks) == 2:
            raise RedisConnectionError("gone")  # webhooks are answered 503 until it is back

    stub = Stub()
    stub.settings = settings
    monkeypatch.setattr("workers.starter.Starter.run_once", run_once)
    monkeypatch.setattr(sup, "_sleep_unless_stopping", lambda supervisor, seconds: None)
    sup.run_starter(stub)
    start = ("workers.catchup.catch_up_job", "default", None, "start")
    assert ticks == [[start], [start], [start, ("workers.catchup.catch_up_job", "default", None, "redis")]]
    assert not stub.outage.ongoing
