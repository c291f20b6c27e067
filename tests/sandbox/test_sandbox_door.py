"""Sandbox mode is not a door: its page, state API and media proxy, and the simulators, answer
only this machine's own clients unless SANDBOX_ALLOW_REMOTE opens them; its published secrets
are refused outside sandbox mode (docs/security.md, "Sandbox mode is not a door")."""

from __future__ import annotations

import time

import pytest
import requests_mock
from werkzeug.test import Client

from app import create_app
from config import ConfigError, load_settings
from config.sandbox import DEFAULTS
from sandbox.helpers import ZALO_APP_ID, load_fixture, make_settings, post_zalo, zalo_body, zalo_headers
from sandbox.server import build_partners

PARTNERS = "http://127.0.0.1:9100"
REMOTE = {"REMOTE_ADDR": "192.0.2.7"}
SANDBOX_ROUTES = ("/sandbox", "/sandbox/api/state", "/sandbox/partners/zalo/cdn/x.png")


@pytest.fixture
def sandbox_settings(redis, redis_server, tmp_path):
    return make_settings(
        redis_server.url,
        media_dir=str(tmp_path / "media"),
        sandbox=True,
        zalo_oa_id=DEFAULTS["zalo_oa_id"],
        zalo_api_base_url=PARTNERS + "/zalo",
        zalo_oauth_base_url=PARTNERS + "/zalo",
        freshchat_api_url=PARTNERS + "/freshchat/v2",
    )


def sandbox_client(settings, monkeypatch, allow: str | None = None, **environ):
    if allow is None:
        monkeypatch.delenv("SANDBOX_ALLOW_REMOTE", raising=False)
    else:
        monkeypatch.setenv("SANDBOX_ALLOW_REMOTE", allow)
    client = create_app(settings).test_client()
    client.environ_base.update(environ)
    return client


@pytest.mark.parametrize("path", SANDBOX_ROUTES)
def test_another_machine_gets_403_and_nothing_is_fetched(sandbox_settings, monkeypatch, path):
    client = sandbox_client(sandbox_settings, monkeypatch, **REMOTE)
    with requests_mock.Mocker() as partners:  # any call to the simulators would be recorded
        resp = client.get(path)
    assert resp.status_code == 403 and "SANDBOX_ALLOW_REMOTE" in resp.get_json()["error"]
    assert partners.request_history == []


def test_a_proxy_or_tunnel_on_this_machine_is_not_this_machine(sandbox_settings, monkeypatch):
    client = sandbox_client(sandbox_settings, monkeypatch)
    assert client.get("/sandbox", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 403
    assert client.get("/sandbox", headers={"Forwarded": "for=198.51.100.1"}).status_code == 403


def test_loopback_gets_the_page_and_its_media(sandbox_settings, monkeypatch):
    for addr in ("127.0.0.1", "::1"):
        client = sandbox_client(sandbox_settings, monkeypatch, REMOTE_ADDR=addr)
        assert client.get("/sandbox").status_code == 200
        with requests_mock.Mocker() as partners:
            partners.get(PARTNERS + "/zalo/cdn/x.png", content=b"png", headers={"Content-Type": "image/png"})
            assert client.get("/sandbox/partners/zalo/cdn/x.png").data == b"png"
        assert [r.url for r in partners.request_history] == [PARTNERS + "/zalo/cdn/x.png"]


def test_the_variable_opens_the_sandbox_on_purpose(sandbox_settings, monkeypatch):
    client = sandbox_client(sandbox_settings, monkeypatch, allow="1", **REMOTE)
    assert client.get("/sandbox").status_code == 200
    shut = sandbox_client(sandbox_settings, monkeypatch, allow="0", **REMOTE)
    assert shut.get("/sandbox").status_code == 403


def test_the_simulators_answer_only_this_machine(monkeypatch):
    monkeypatch.delenv("SANDBOX_ALLOW_REMOTE", raising=False)
    app, _, _ = build_partners()
    for path in ("/", "/zalo/_sim/state", "/freshchat/_sim/state"):
        resp = Client(app).get(path, environ_base=REMOTE)
        assert resp.status_code == 403 and b"SANDBOX_ALLOW_REMOTE" in resp.data, path
        assert Client(app).get(path, environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200, path
    monkeypatch.setenv("SANDBOX_ALLOW_REMOTE", "true")
    opened, _, _ = build_partners()
    assert Client(opened).get("/zalo/_sim/state", environ_base=REMOTE).status_code == 200


def text_event() -> dict:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    return {**event, "timestamp": str(int(time.time() * 1000))}


def test_outside_sandbox_mode_a_webhook_signed_with_the_published_key_is_401(redis, redis_server, tmp_path):
    """As if that key were stored (a connection added with it): settings built without the start-up check."""
    published = DEFAULTS["zalo_oa_secret_key"]
    live = make_settings(redis_server.url, media_dir=str(tmp_path / "m"), zalo_oa_secret_key=published)
    event = text_event()
    raw = zalo_body(event)
    resp = create_app(live).test_client().post("/webhooks/zalo", data=raw, headers=zalo_headers(raw, event, published))
    assert resp.status_code == 401
    assert redis.zcard("zfb:due") == 0
    # the same key in front of this machine's simulator (tests, benchmarks) still verifies
    harness = make_settings(
        redis_server.url, media_dir=str(tmp_path / "m"), zalo_oa_secret_key=published, zalo_api_base_url=PARTNERS
    )
    resp = (
        create_app(harness).test_client().post("/webhooks/zalo", data=raw, headers=zalo_headers(raw, event, published))
    )
    assert resp.status_code == 200
    assert post_zalo(create_app(make_settings(redis_server.url)).test_client(), text_event()).status_code == 200


def test_outside_sandbox_mode_the_published_secrets_stop_the_start():
    env = {
        "SECRET_KEY": "s" * 32,
        "ZALO_APP_ID": ZALO_APP_ID,
        "ZALO_APP_SECRET": DEFAULTS["zalo_app_secret"],
        "ZALO_OA_SECRET_KEY": DEFAULTS["zalo_oa_secret_key"],
        "FRESHCHAT_API_URL": "https://acme.freshchat.com/v2",
        "FRESHCHAT_API_KEY": "k",
        "FRESHCHAT_CHANNEL_ID": "c",
        "FRESHCHAT_WEBHOOK_PUBLIC_KEY": make_settings().freshchat_webhook_public_key,
    }
    with pytest.raises(ConfigError) as refused:
        load_settings(env)
    assert refused.value.problems == [
        "ZALO_APP_SECRET: is the sandbox's published value; set your Zalo app's own",
        "ZALO_OA_SECRET_KEY: is the sandbox's published value; set your Zalo app's own",
    ]
    assert load_settings({**env, "ZALO_API_BASE_URL": "http://127.0.0.1:9100/zalo"}).zalo_oa_secret_key
    assert load_settings({**env, "ZALO_APP_SECRET": "own", "ZALO_OA_SECRET_KEY": "own-key"}).sandbox is False
