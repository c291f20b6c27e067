"""Token keeper: seeding, proactive refresh, one refresh for concurrent callers, dead tokens."""

from __future__ import annotations

import threading
import time

import pytest
import requests
import requests_mock

from app.integrations.zalo.errors import ZaloTokenDead
from app.integrations.zalo.tokens import TOKEN, TokenKeeper
from tests.helpers import ZALO_OAUTH

URL = f"{ZALO_OAUTH}/v4/oa/access_token"


def keeper(redis, settings):
    return TokenKeeper(redis, settings, requests.Session())


def test_seeded_from_env_then_rotated_pair_wins(redis, settings):
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": "a1", "refresh_token": "r1", "expires_in": "90000"})
        k = keeper(redis, settings)
        assert k.access_token() == "access-0"
        assert k.refresh("access-0") == "a1"
        assert k.access_token() == "a1" and k.state()["refresh_token"] == "r1"
        assert float(k.state()["expires_at"]) > time.time() + 89000


def test_refreshes_ahead_of_expiry(redis, settings):
    k = keeper(redis, settings)
    k.store("old", "r-old", 600)  # ten minutes left: inside the margin
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
        threads = [threading.Thread(target=lambda: results.append(keeper(redis, settings).refresh("access-0")))
                   for _ in range(5)]
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
