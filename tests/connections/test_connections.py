"""Connections: effective settings, sealed storage, Zalo routing, shared FreshChat accounts."""

from __future__ import annotations

from app.bridge.secrets_at_rest import sealer_for
from app.connections.store import ConnectionStore, Registry
from sandbox.helpers import ZALO_APP_ID, ZALO_OA_ID, clear_in_redis

RECORD = {
    "id": "shop-hcm",
    "name": "Shop HCM",
    "enabled": True,
    "zalo": {
        "app_id": "999000111",
        "app_secret": "hcm-app-secret-0000000000",
        "oa_id": "777000111",
        "oa_secret_key": "hcm-oa-secret-0000000000000",
    },
    "freshchat": {
        "api_url": "https://hcm.freshchat.com/v2",
        "api_key": "hcm-freshchat-key-0000000000",
        "channel_id": "chan-hcm",
        "webhook_public_key": "",
    },
    "options": {"resolve_notification": True, "resolve_notification_text": "Cảm ơn!"},
}


def registry(redis, settings) -> Registry:
    return Registry(ConnectionStore(redis, settings, sealer_for(settings)), settings)


def test_a_stored_connection_has_its_own_effective_settings_and_no_secret_in_clear(redis, settings):
    reg = registry(redis, settings)
    reg.store.put(RECORD)
    conn = reg.get("shop-hcm")
    assert conn.settings.zalo_app_secret == "hcm-app-secret-0000000000"
    assert conn.settings.freshchat_api_url == "https://hcm.freshchat.com/v2"
    assert conn.settings.resolve_notification is True
    assert conn.settings.redis_url == settings.redis_url  # deployment settings stay
    for secret in ("hcm-app-secret-0000000000", "hcm-oa-secret-0000000000000", "hcm-freshchat-key-0000000000"):
        assert not clear_in_redis(redis, secret)


def test_zalo_events_find_their_connection_by_app_and_oa(redis, settings):
    reg = registry(redis, settings)
    reg.store.put(RECORD)
    reg.store.put(dict(RECORD, id="shop-hn", zalo=dict(RECORD["zalo"], oa_id="777000222")))
    assert reg.for_zalo(ZALO_APP_ID, ZALO_OA_ID).id == "default"
    assert reg.for_zalo("999000111", "777000111").id == "shop-hcm"
    assert reg.for_zalo("999000111", "777000222").id == "shop-hn"
    assert reg.for_zalo("999000111", "000") is None and reg.for_zalo("123", "777000111") is None


def test_connections_on_one_freshchat_account_are_found_together(redis, settings):
    reg = registry(redis, settings)
    reg.store.put(RECORD)
    reg.store.put(dict(RECORD, id="shop-hn", zalo=dict(RECORD["zalo"], oa_id="777000222")))
    assert [c.id for c in reg.sharing_account(reg.get("shop-hn"))] == ["shop-hn", "shop-hcm"]
    assert [c.id for c in reg.sharing_account(reg.default)] == ["default"]


def test_a_stored_connection_never_inherits_the_default_connections_credentials(redis, settings):
    reg = registry(redis, settings)
    reg.store.put({"id": "bare", "zalo": {"app_id": "1", "oa_id": "2"}, "freshchat": {}})
    conn = reg.get("bare")
    assert conn.settings.zalo_access_token == "" and conn.settings.zalo_refresh_token == ""
    assert conn.settings.freshchat_api_key == "" and conn.settings.zalo_app_secret == ""
    assert settings.zalo_access_token  # the default connection has one


def test_one_unreadable_connection_does_not_hide_the_others(redis, settings):
    import json

    from app.connections.store import STORE

    reg = registry(redis, settings)
    reg.store.put(RECORD)
    broken = dict(RECORD, id="broken", zalo=dict(RECORD["zalo"], app_secret="gAAAAAnot-a-real-token"))
    redis.hset(STORE, "broken", json.dumps(broken))
    assert [c.id for c in reg.all()] == ["default", "shop-hcm"]


def test_a_disabled_connections_oa_is_not_taken_by_a_catch_all(redis, settings):
    from dataclasses import replace

    base = replace(settings, zalo_oa_id="")  # the default matches any OA of its app
    reg = Registry(ConnectionStore(redis, base, sealer_for(base)), base)
    reg.store.put(dict(RECORD, enabled=False, zalo=dict(RECORD["zalo"], app_id=ZALO_APP_ID)))
    assert reg.for_zalo(ZALO_APP_ID, "777000111") is None
    assert reg.for_zalo(ZALO_APP_ID, "someone-else").id == "default"
