"""Secrets at rest: the Zalo pair is sealed in Redis, old clear pairs are resealed, keys rotate."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pytest
import requests
import requests_mock
from cryptography.fernet import Fernet

from app.bridge.secrets_at_rest import Sealer, UnreadableSecret, derive_key, sealer_for
from app.bridge.tokens_store import TOKEN, TokenStore
from app.integrations.zalo.errors import ZaloTokenDead
from app.integrations.zalo.tokens import TokenKeeper, token_health
from config import ConfigError, load_settings
from sandbox.helpers import ZALO_OAUTH, clear_in_redis
from tests.config.test_config import FULL

URL = f"{ZALO_OAUTH}/v4/oa/access_token"
# Long and distinctive, so finding one inside a Fernet token's base64 by chance is impossible.
ACCESS, REFRESH = "zalo-access-4hT9qLmZpW2x", "zalo-refresh-Vb7nKc3RyD8s"
NEW_ACCESS, NEW_REFRESH = "zalo-access-rotated-J6uF", "zalo-refresh-rotated-Xe5G"
KEY_A, KEY_B, KEY_C = (Fernet.generate_key().decode() for _ in range(3))


def keeper(redis, settings, encryption_key: str = "") -> TokenKeeper:
    settings = replace(settings, encryption_key=encryption_key)
    return TokenKeeper(TokenStore.of(redis, settings), settings, requests.Session())


def test_seeding_storing_and_rotating_leave_no_token_in_clear(redis, settings):
    env = replace(settings, zalo_access_token=ACCESS, zalo_refresh_token=REFRESH)
    k = TokenKeeper(TokenStore.of(redis, env), env, requests.Session())
    assert k.access_token() == ACCESS  # seeded from the environment
    assert clear_in_redis(redis, ACCESS, REFRESH) == []
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": "90000"})
        assert k.refresh(ACCESS) == NEW_ACCESS
    assert m.request_history[0].text.startswith(f"refresh_token={REFRESH}&")  # Zalo gets the clear token
    assert clear_in_redis(redis, ACCESS, REFRESH, NEW_ACCESS, NEW_REFRESH) == []
    raw = redis.hgetall(TOKEN)
    assert raw[b"access_token"].startswith(b"gAAAAA") and raw[b"refresh_token"].startswith(b"gAAAAA")
    assert raw[b"lifetime"] == b"90000.0" and raw[b"seed"] == k.state()["seed"].encode()  # the rest stays clear
    assert k.state()["access_token"] == NEW_ACCESS and k.state()["refresh_token"] == NEW_REFRESH


def test_a_clear_pair_from_an_older_version_is_read_then_resealed(redis, settings, caplog):
    caplog.set_level(logging.INFO, logger="zalo.tokens")
    now = time.time()
    redis.hset(
        TOKEN,
        mapping={
            "access_token": ACCESS,
            "refresh_token": REFRESH,
            "updated_at": now,
            "expires_at": now + 90000,
            "lifetime": 90000,
            "seed": "",
        },
    )
    k = keeper(redis, settings)
    assert k.access_token() == ACCESS
    assert clear_in_redis(redis, ACCESS, REFRESH) == []
    assert redis.hget(TOKEN, "expires_at") == str(now + 90000).encode()  # only the tokens were rewritten
    assert k.state()["refresh_token"] == REFRESH
    assert [r.msg for r in caplog.records].count("zalo.token.resealed") == 1


def test_resealing_never_overwrites_a_pair_rotated_meanwhile(redis, settings):
    k = keeper(redis, settings)
    k.store(NEW_ACCESS, NEW_REFRESH, "90000")  # another process rotated after we read the clear pair
    before = redis.hgetall(TOKEN)
    assert k.pair_store.seal_clear({"access_token": ACCESS, "refresh_token": REFRESH}) == []
    assert redis.hgetall(TOKEN) == before and k.state()["refresh_token"] == NEW_REFRESH


def test_a_pair_sealed_with_the_old_key_is_read_after_rotation_and_resealed_with_the_new(redis, settings):
    keeper(redis, settings, KEY_A).store(ACCESS, REFRESH, "90000")
    rotated = keeper(redis, settings, f"{KEY_B},{KEY_A}")
    assert rotated.access_token() == ACCESS
    with requests_mock.Mocker() as m:
        m.post(URL, json={"access_token": NEW_ACCESS, "refresh_token": NEW_REFRESH, "expires_in": "90000"})
        assert rotated.refresh(ACCESS) == NEW_ACCESS
    sealed = redis.hget(TOKEN, "refresh_token").decode()
    assert Sealer([KEY_B.encode()]).unseal(sealed) == NEW_REFRESH
    with pytest.raises(UnreadableSecret):
        Sealer([KEY_A.encode()]).unseal(sealed)


def test_a_pair_no_key_opens_holds_replies_keeps_the_pair_and_says_why(redis, settings, caplog):
    keeper(redis, settings, KEY_A).store(ACCESS, REFRESH, "90000")
    before = {k: v for k, v in redis.hgetall(TOKEN).items()}
    wrong = keeper(redis, settings, KEY_C)
    with pytest.raises(ZaloTokenDead, match="ENCRYPTION_KEY") as info:
        wrong.access_token()
    assert info.value.partner_wide and info.value.retry_after == 300  # replies wait, budgets untouched
    assert wrong.keep_alive() is False
    with pytest.raises(ZaloTokenDead, match="ENCRYPTION_KEY"):
        wrong.refresh(ACCESS)
    after = redis.hgetall(TOKEN)
    assert {k: v for k, v in after.items() if k != b"unreadable"} == before and b"dead" not in after
    alert = token_health({k.decode(): v.decode() for k, v in after.items()}, time.time())["alert"]
    assert "ENCRYPTION_KEY" in alert and "re-connect the OA" in alert
    assert any(r.levelname == "CRITICAL" and r.msg == "zalo.token.unreadable" for r in caplog.records)
    assert keeper(redis, settings, f"{KEY_C},{KEY_A}").access_token() == ACCESS  # the old key is back
    assert b"unreadable" not in redis.hgetall(TOKEN)


def test_a_new_env_refresh_token_replaces_a_dead_pair_even_when_it_is_unreadable(redis, settings):
    keeper(redis, settings, KEY_A).store(ACCESS, REFRESH, "90000")
    redis.hset(TOKEN, mapping={"dead": "-14014 Invalid refresh token", "seed": "old"})
    revived = replace(settings, encryption_key=KEY_C, zalo_access_token=NEW_ACCESS, zalo_refresh_token=NEW_REFRESH)
    assert TokenKeeper(TokenStore.of(redis, revived), revived, requests.Session()).access_token() == NEW_ACCESS
    assert clear_in_redis(redis, NEW_ACCESS, NEW_REFRESH) == []


def test_the_derived_key_is_stable_for_one_secret_key_and_differs_for_another():
    assert derive_key("one-secret-key-0123") == derive_key("one-secret-key-0123")
    assert derive_key("one-secret-key-0123") != derive_key("another-secret-key-0")
    Fernet(derive_key("one-secret-key-0123"))  # a valid Fernet key
    token = sealer_for(load_settings(FULL)).seal(REFRESH)
    assert sealer_for(load_settings(dict(FULL))).unseal(token) == REFRESH  # another process, same deployment
    with pytest.raises(UnreadableSecret):
        sealer_for(load_settings({**FULL, "SECRET_KEY": "t" * 32})).unseal(token)


def test_values_sealed_with_the_derived_key_stay_readable_once_encryption_key_is_set(redis, settings):
    keeper(redis, settings).store(ACCESS, REFRESH, "90000")
    assert keeper(redis, settings, KEY_A).state()["refresh_token"] == REFRESH


def test_a_bad_encryption_key_is_one_line_that_does_not_echo_it():
    bad = "not-a-fernet-key-but-a-secret"
    with pytest.raises(ConfigError) as info:
        load_settings({**FULL, "ENCRYPTION_KEY": f"{KEY_A},{bad}"})
    assert info.value.problems == ["ENCRYPTION_KEY: item 2 of 2 is not a Fernet key (32 url-safe base64 bytes)"]
    assert bad not in str(info.value) and KEY_A not in str(info.value)


def test_good_encryption_keys_load_and_are_masked_in_logs():
    s = load_settings({**FULL, "ENCRYPTION_KEY": f"{KEY_B}, {KEY_A}"})
    assert sealer_for(s).unseal(Sealer([KEY_A.encode()]).seal("x")) == "x"
    assert {KEY_A, KEY_B} <= set(s.secrets())


def test_a_clear_value_is_returned_as_it_is():
    assert Sealer([KEY_A.encode()]).unseal(ACCESS) == ACCESS


def test_whether_a_key_opens_a_sealed_value_is_told_without_decrypting_it(monkeypatch):
    """The registry checks every stored connection's secrets at load this way (its MAC), and
    unseals them only when used."""
    old, new = Fernet.generate_key(), Fernet.generate_key()
    sealed = Sealer([old]).seal("a connection secret")
    decrypts = []
    monkeypatch.setattr(Fernet, "decrypt", lambda *a, **k: decrypts.append(a))
    assert Sealer([new, old]).opens(sealed) and Sealer([old]).opens(sealed)
    assert not Sealer([new]).opens(sealed)  # ENCRYPTION_KEY changed without keeping the old one
    assert not Sealer([old]).opens(sealed[:-4] + "AAAA")  # its MAC no longer matches
    assert not Sealer([old]).opens("gAAAAAnot-a-real-token") and not Sealer([old]).opens("gAAAAA")
    assert Sealer([new]).opens("clear-value-stored-before-sealing")  # read as it is
    assert decrypts == []
