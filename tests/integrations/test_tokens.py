"""Token keeper: seeding, proactive refresh, one refresh for concurrent callers, dead tokens."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs

import pytest
import requests
import requests_mock

from app.bridge.tokens_store import LOCK, TOKEN, TokenStore
from app.integrations.zalo import tokens
from app.integrations.zalo.client import ZaloClient
from app.integrations.zalo.errors import ZaloRetryable, ZaloTokenDead
from app.integrations.zalo.tokens import TokenKeeper
from sandbox.helpers import ZALO_API, ZALO_APP_ID, ZALO_OAUTH, load_fixture

URL = f"{ZALO_OAUTH}/v4/oa/access_token"
CS = f"{ZALO_API}/v3.0/oa/message/cs"
DAY = 86400


class FakeClock:
    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def keeper(redis, settings, clock=time.time):
    return TokenKeeper(TokenStore.of(redis, settings), settings, requests.Session(), clock=clock)


def client_for(k, settings):
    return ZaloClient(k.session, settings, k)


def ok(message_id: str = "m1") -> dict:
    return {"json": {"error": 0, "message": "Success", "data": {"message_id": message_id}}}


def test_seeded_from_env_then_rotated_pair_wins(redis, settings):
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": "a1", "refresh_token": "r1", "expires_in": "90000"})
        k = keeper(redis, settings)
        assert k.access_token() == "access-0"
        assert k.refresh("access-0") == "a1"
        assert k.access_token() == "a1" and k.state()["refresh_token"] == "r1"
        assert float(k.state()["expires_at"]) > time.time() + 89000


def test_refreshes_ahead_of_expiry(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.store("old", "r-old", "3600")
    clock.sleep(3000)  # ten minutes left: under a fifth of the hour
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": "new", "refresh_token": "r-new", "expires_in": "90000"})
        assert k.access_token() == "new"
        assert "refresh_token=r-old" in m.request_history[0].text


def test_concurrent_refreshers_rotate_once_and_never_reuse_the_old_token(redis, settings):
    calls = []

    def oauth(request, context):
        calls.append(request.text)
        time.sleep(0.2)
        return {"access_token": f"a{len(calls)}", "refresh_token": f"r{len(calls)}", "expires_in": "90000"}

    with requests_mock.Mocker() as m:
        m.post(URL, json=oauth)
        keeper(redis, settings).access_token()
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(keeper(redis, settings).refresh("access-0")))
            for _ in range(5)
        ]
        [t.start() for t in threads]
        [t.join() for t in threads]
    assert len(calls) == 1 and results == ["a1"] * 5


def test_dead_refresh_token_is_loud_and_sticky(redis, settings, caplog):
    k = keeper(redis, settings)
    with requests_mock.Mocker() as m:
        m.post(URL, json={"error": -14014, "error_name": "Invalid refresh token"})
        with pytest.raises(ZaloTokenDead):
            k.refresh("access-0")
        with pytest.raises(ZaloTokenDead):
            k.access_token()
        assert m.call_count == 1
    assert "-14014" in redis.hget(TOKEN, "dead").decode()
    assert any(r.levelname == "CRITICAL" and r.msg == "zalo.token.dead" for r in caplog.records)


def test_new_env_refresh_token_revives_a_dead_pair(redis, settings):
    from dataclasses import replace

    redis.hset(TOKEN, mapping={"access_token": "x", "refresh_token": "y", "dead": "-14014", "seed": "old"})
    k = keeper(redis, replace(settings, zalo_access_token="fresh-a", zalo_refresh_token="fresh-r"))
    assert k.access_token() == "fresh-a"


def test_a_refresh_sends_exactly_the_documented_request(redis, settings):
    k = keeper(redis, settings)
    k.access_token()  # seeds the pair from the environment
    with requests_mock.Mocker() as m:
        m.post(URL, json=load_fixture("zalo", "oauth", "access_token__refreshed.json"))
        assert k.refresh("access-0") == "RfBh5NdqsWzhcX8b-access-2"
    sent = m.request_history[0]
    assert sent.method == "POST" and sent.url == URL
    assert parse_qs(sent.text, strict_parsing=True) == {
        "refresh_token": ["refresh-0"],
        "app_id": [ZALO_APP_ID],
        "grant_type": ["refresh_token"],
    }
    assert sent.headers["secret_key"] == "app-secret-example"
    assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
    state = k.state()
    assert state["refresh_token"] == "L2Y2BO9Prn_I1SkM-refresh-2" and float(state["lifetime"]) == 90000


def test_a_one_hour_token_is_not_refreshed_on_every_call(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.store("a1", "r1", "3600")
    client = client_for(k, settings)
    with requests_mock.Mocker() as m:
        m.post(CS, [ok()] * 6)
        m.post(URL, json={"access_token": "a2", "refresh_token": "r2", "expires_in": "3600"})
        for _ in range(5):
            clock.sleep(60)
            assert client.send_text("u1", "hi") == "m1"
        assert [r.headers["access_token"] for r in m.request_history] == ["a1"] * 5
        clock.sleep(2600)  # 11 minutes left of 60: under a fifth
        client.send_text("u1", "hi")
    assert [r.url for r in m.request_history][5:] == [URL, CS]
    assert m.request_history[-1].headers["access_token"] == "a2" and k.state()["refresh_token"] == "r2"


def test_a_25_hour_token_refreshes_only_when_a_fifth_is_left(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    with requests_mock.Mocker() as m:
        m.post(URL, json=load_fixture("zalo", "oauth", "access_token__refreshed.json"))
        k.store("a1", "r1", "90000")
        clock.sleep(71000)  # 19 000 s left, more than 18 000
        assert k.access_token() == "a1" and m.call_count == 0
        clock.sleep(1500)  # 17 500 s left
        assert k.access_token() == "RfBh5NdqsWzhcX8b-access-2" and m.call_count == 1
        assert k.access_token() == "RfBh5NdqsWzhcX8b-access-2" and m.call_count == 1
    assert float(k.state()["expires_at"]) == clock() + 90000


def test_without_expires_in_only_an_auth_error_refreshes(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    client = client_for(k, settings)
    with requests_mock.Mocker() as m:
        m.post(URL, json=load_fixture("zalo", "oauth", "access_token__no_expires_in.json"))
        m.post(CS, [ok()] * 5 + [{"json": {"error": -216, "message": "Access token is invalid"}}, ok("m2")])
        assert k.refresh("access-0") == "RfBh5NdqsWzhcX8b-access-2"
        assert k.state()["expires_at"] == "0"  # lifetime unknown, not guessed
        for _ in range(5):
            clock.sleep(30 * DAY)  # whatever the clock says
            client.send_text("u1", "hi")
        assert m.call_count == 6  # the refresh above and 5 sends
        assert client.send_text("u1", "hi") == "m2"
    assert [r.url for r in m.request_history][6:] == [CS, URL, CS]
    assert parse_qs(m.request_history[7].text)["refresh_token"] == ["L2Y2BO9Prn_I1SkM-refresh-2"]


def test_a_pair_stored_before_lifetimes_were_recorded_derives_its_own(redis, settings):
    now = time.time()
    redis.hset(
        TOKEN,
        mapping={
            "access_token": "a1",
            "refresh_token": "r1",
            "updated_at": now - 80000,
            "expires_at": now + 10000,
            "seed": "",
        },
    )  # 25 h pair, 10 000 s left
    k = keeper(redis, settings)
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": "a2", "refresh_token": "r2", "expires_in": "90000"})
        assert k.access_token() == "a2"
    assert parse_qs(m.request_history[0].text)["refresh_token"] == ["r1"]


def test_a_failed_early_refresh_keeps_using_the_valid_token(redis, settings, caplog):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.store("a1", "r1", "90000")
    clock.sleep(80000)
    with requests_mock.Mocker() as m:
        m.post(URL, status_code=503)
        assert k.access_token() == "a1" and k.access_token() == "a1"
        assert m.call_count == 1  # retried later, not on every call
    assert any(r.msg == "zalo.token.refresh_postponed" for r in caplog.records)


def test_keep_alive_rotates_an_old_pair_once_across_two_callers(redis, settings):
    clock = FakeClock()
    keeper(redis, settings, clock).store("a1", "r1", "90000")
    clock.sleep(8 * DAY)
    calls, results = [], []

    def oauth(request, context):
        calls.append(parse_qs(request.text)["refresh_token"])
        time.sleep(0.2)
        return {"access_token": "a2", "refresh_token": "r2", "expires_in": "90000"}

    with requests_mock.Mocker() as m:
        m.post(URL, json=oauth)
        threads = [
            threading.Thread(target=lambda: results.append(keeper(redis, settings, clock).keep_alive()))
            for _ in range(2)
        ]
        [t.start() for t in threads]
        [t.join() for t in threads]
        assert keeper(redis, settings, clock).keep_alive() is False  # now fresh
    assert calls == [["r1"]] and sorted(results) == [False, True]
    state = keeper(redis, settings).state()
    assert state["refresh_token"] == "r2" and float(state["refresh_issued_at"]) == clock()


def test_keep_alive_leaves_a_fresh_pair_alone(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.access_token()  # the environment's pair counts as issued now
    clock.sleep(6 * DAY)
    with requests_mock.Mocker() as m:
        assert k.keep_alive() is False
        assert m.call_count == 0


def test_keep_alive_logs_partner_trouble_instead_of_raising(redis, settings, caplog):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.store("a1", "r1", "90000")
    clock.sleep(8 * DAY)
    with requests_mock.Mocker() as m:
        m.post(
            URL,
            [{"status_code": 502}, {"json": load_fixture("zalo", "oauth", "access_token__invalid_refresh_token.json")}],
        )
        assert k.keep_alive() is False and k.state()["refresh_token"] == "r1"
        assert any(r.msg == "zalo.token.keepalive_failed" for r in caplog.records)
        assert k.keep_alive() is False and "-14014" in k.state()["dead"]
        assert k.keep_alive() is False and m.call_count == 2  # a dead pair is not tried again


def test_keep_alive_skips_while_someone_holds_the_lock(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.store("a1", "r1", "90000")
    clock.sleep(8 * DAY)
    assert redis.lock(LOCK, timeout=5).acquire(blocking=False)
    with requests_mock.Mocker() as m:
        assert k.keep_alive() is False and m.call_count == 0
    assert k.state()["refresh_token"] == "r1"


def test_a_refresh_waits_for_the_lock_at_most_its_timeout(redis, settings, monkeypatch):
    monkeypatch.setattr(tokens, "LOCK_SECONDS", 0.3)
    keeper(redis, settings).access_token()
    assert redis.lock(LOCK, timeout=5).acquire(blocking=False)
    started = time.monotonic()
    with requests_mock.Mocker() as m:
        with pytest.raises(ZaloRetryable):
            keeper(redis, settings).refresh("access-0")
        assert m.call_count == 0
    # It gave up after its own 0.3 s, long before the holder's lock (5 s) would have let it in.
    assert 0.25 <= time.monotonic() - started < 4.0


def test_a_lock_lost_mid_refresh_is_logged_and_the_message_goes_on(redis, settings, caplog):
    def slow_oauth(request, context):  # so slow that the lock expired and someone else took it
        redis.set(LOCK, "someone-else")
        return {"access_token": "a2", "refresh_token": "r2", "expires_in": "90000"}

    k = keeper(redis, settings)
    k.access_token()
    with requests_mock.Mocker() as m:
        m.post(URL, json=slow_oauth)
        assert k.refresh("access-0") == "a2"
    assert redis.get(LOCK) == b"someone-else"  # their lock is not ours to delete
    assert k.state()["refresh_token"] == "r2"
    assert any(r.msg == "zalo.token.lock_lost" for r in caplog.records)


def test_a_rotation_without_a_new_refresh_token_keeps_its_age(redis, settings):
    clock = FakeClock()
    k = keeper(redis, settings, clock)
    k.store("a1", "r1", "90000")
    issued = clock()
    clock.sleep(8 * DAY)
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": "a2", "expires_in": "90000"})
        assert k.refresh("a1") == "a2"
    state = k.state()
    assert state["refresh_token"] == "r1" and float(state["refresh_issued_at"]) == issued


def test_the_starter_loop_checks_the_pair_now_and_then_and_survives_redis_errors(settings, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from app.bridge.outage import RedisOutage
    from workers import supervisor as sup

    class Stub:
        settings = None
        stopping = False
        loops = 0
        outage = RedisOutage(sup.log, "redis://127.0.0.1:1/0", clock=lambda: 0.0)

        def reap(self):
            self.loops += 1
            self.stopping = self.loops >= 4

    checks = []

    def keep_alive(self):
        checks.append(time.monotonic())
        if len(checks) == 1:
            raise RedisConnectionError("gone")
        return False

    stub = Stub()
    stub.settings = settings
    monkeypatch.setattr(sup, "TOKEN_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(TokenKeeper, "keep_alive", keep_alive)
    monkeypatch.setattr("workers.starter.Starter.run_once", lambda self, block_seconds: None)
    monkeypatch.setattr(sup.time, "sleep", lambda s: None)
    sup.run_starter(stub)
    assert len(checks) == 4  # the Redis error was logged, the loop went on
    monkeypatch.setattr(sup, "TOKEN_CHECK_SECONDS", 300.0)
    checks.clear()
    stub.stopping, stub.loops = False, 0
    sup.run_starter(stub)
    assert len(checks) == 1  # at start-up, then not before five minutes
