"""The one HTTP session builder: proxies from the environment, read once per origin."""

from __future__ import annotations

import requests_mock

from app.integrations.http import build_session


def settings_for(session, url: str) -> dict:
    return session.merge_environment_settings(url, {}, None, None, None)


def test_proxy_environment_is_honoured_per_origin(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    session = build_session()
    assert (
        settings_for(session, "https://openapi.zalo.me/v3.0/oa/message/cs")["proxies"]["https"]
        == "http://proxy.internal:3128"
    )
    assert "https" not in settings_for(session, "https://127.0.0.1:9100/zalo")["proxies"]


def test_the_environment_is_read_once_per_origin(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    session = build_session()
    first = settings_for(session, "https://api.freshchat.com/v2/users")
    first["proxies"].clear()  # a caller editing its copy must not change the remembered one
    monkeypatch.setenv("HTTPS_PROXY", "http://other:3128")
    assert (
        settings_for(session, "https://api.freshchat.com/v2/conversations")["proxies"]["https"]
        == "http://proxy.internal:3128"
    )
    assert settings_for(session, "https://cdn.example.com/a.png")["proxies"]["https"] == "http://other:3128"


def test_every_request_gets_the_default_timeout():
    session = build_session(timeout=7.5)
    with requests_mock.Mocker() as m:
        m.get("https://openapi.zalo.me/ping", json={})
        session.get("https://openapi.zalo.me/ping")
        assert m.request_history[0].timeout == 7.5
