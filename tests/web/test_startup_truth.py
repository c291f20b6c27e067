"""Start-up that tells the truth: settings nothing could work with are refused or warned about,
the worker's connection test at start is recorded, and /readyz, the status and the console
name what is wrong without the web calling a partner."""

from __future__ import annotations

import dataclasses
import json

import pytest
import requests_mock

from app import create_app
from app.bridge.keys import HEARTBEAT, Keys
from app.connections.checks import last_check
from app.operations.problems import CODES, settings_problems
from app.operations.startup import ConnectionTests
from app.texts import TEXTS
from config import ConfigError, load_settings
from sandbox.helpers import FC_API, FC_PUBLIC_PEM, ZALO_API, ZALO_OAUTH, load_fixture

GETOA = f"{ZALO_API}/v2.0/oa/getoa"
CHANNELS = f"{FC_API}/channels"
REFRESH = f"{ZALO_OAUTH}/v4/oa/access_token"


def live_env(**extra) -> dict:
    env = {
        "SECRET_KEY": "s" * 32,
        "ZALO_APP_ID": "1",
        "ZALO_APP_SECRET": "app-secret",
        "ZALO_OA_SECRET_KEY": "oa-secret",
        "FRESHCHAT_API_URL": "https://acme.freshchat.com/v2",
        "FRESHCHAT_API_KEY": "fc-key",
        "FRESHCHAT_CHANNEL_ID": "c1",
        "FRESHCHAT_WEBHOOK_PUBLIC_KEY": FC_PUBLIC_PEM,
    }
    return {**env, **extra}


def getoa() -> dict:
    return load_fixture("zalo", "answers", "getoa.json")


def channels(channel_id: str) -> dict:
    answer = load_fixture("freshchat", "answers", "channels.json")
    answer["channels"][0]["id"] = channel_id
    return answer


def test_a_freshchat_url_without_v2_is_refused_at_start():
    with pytest.raises(ConfigError) as caught:
        load_settings(live_env(FRESHCHAT_API_URL="https://acme.freshchat.com"))
    assert caught.value.problems == [
        "FRESHCHAT_API_URL: must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)"
    ]
    assert load_settings(live_env(FRESHCHAT_API_URL="https://acme.freshchat.com/v2/")).freshchat_api_url.endswith("/v2")


@pytest.mark.parametrize(
    ("url", "local"),
    [
        (None, True),  # unset: http://localhost:$PORT
        ("http://127.0.0.1:8000", True),
        ("http://0.0.0.0:8000", True),
        ("http://[::1]:8000", True),
        ("http://bridge.localhost", True),
        ("https://bridge.example.com", False),
        ("https://203.0.113.7", False),
    ],
)
def test_live_mode_names_a_public_url_only_this_machine_reaches(url, local):
    settings = load_settings(live_env(**({"PUBLIC_BASE_URL": url} if url else {})))
    expected = [("public_url_local", {"url": settings.public_base_url})] if local else []
    assert settings_problems(settings) == expected


def test_sandbox_mode_has_no_settings_problems():
    assert settings_problems(load_settings({"SANDBOX": "true", "MEDIA_DIR": "/tmp/zfb-startup-test/media"})) == []


def test_the_web_warns_at_start_and_readyz_and_the_status_name_it(settings, redis, capsys):
    local = dataclasses.replace(settings, public_base_url="http://localhost:8000", admin_token="admin-token-0123")
    client = create_app(local).test_client()  # its log handler writes to stderr
    warnings = [line for line in capsys.readouterr().err.splitlines() if " WARNING " in line]
    assert [line.split(" startup: ")[1] for line in warnings] == ["startup.public_url_local url=http://localhost:8000"]
    redis.set(HEARTBEAT, 0)
    body = client.get("/readyz").get_json()
    assert body["problem_codes"][0] == "public_url_local"
    assert body["connections"]["default"]["problem_codes"] == body["problem_codes"]
    status = client.get("/api/connections/default", headers={"Authorization": "Bearer admin-token-0123"}).get_json()
    (problem, *_) = status["status"]["problems"]
    assert problem["code"] == "public_url_local"
    assert (
        problem["what"]
        == "PUBLIC_BASE_URL is http://localhost:8000: Zalo, FreshChat and customers cannot open media links."
    )


def test_a_connection_whose_url_lacks_v2_is_named(settings, redis):
    client = create_app(dataclasses.replace(settings, freshchat_api_url="https://acme.freshchat.com")).test_client()
    assert "freshchat_url_no_v2" in client.get("/readyz").get_json()["problem_codes"]


def test_the_start_test_records_what_the_partners_refuse_and_the_web_only_reads_it(ctx, settings, redis):
    with requests_mock.Mocker() as mock:
        mock.get(GETOA, json=getoa())
        mock.get(CHANNELS, status_code=401, json={"message": "unauthorized"})
        ConnectionTests(ctx).run()
    zalo_call, fc_call = mock.request_history
    assert (zalo_call.url, zalo_call.headers["access_token"]) == (GETOA, "access-0")
    assert fc_call.url == CHANNELS + "?page=1&items_per_page=100"
    assert fc_call.headers["Authorization"] == "Bearer fc-api-key-example"
    recorded = last_check(redis, "default")
    assert recorded["zalo"]["ok"] is True
    assert recorded["freshchat"] == {
        "ok": False,
        "detail": "API key refused (401): generate a new one under Admin, APIs for chat",
    }
    with requests_mock.Mocker() as none_allowed:  # any partner call from the web would raise
        body = create_app(settings).test_client().get("/readyz").get_json()
    assert none_allowed.request_history == []
    assert body["problem_codes"][:1] == ["freshchat_refused"]
    assert "401" not in json.dumps(body)  # /readyz needs no token: codes, never the texts


def test_a_stale_access_token_at_start_is_refreshed_not_reported(ctx, redis):
    refreshed = load_fixture("zalo", "oauth", "access_token__refreshed.json")
    with requests_mock.Mocker() as mock:
        mock.get(
            GETOA,
            [{"json": {"error": -216, "message": "Access token is invalid"}}, {"json": getoa()}],
        )
        mock.post(REFRESH, json=refreshed)
        mock.get(CHANNELS, json=channels(ctx.settings.freshchat_channel_id))
        result = ConnectionTests(ctx).test(ctx.connections.get("default"))
    calls = [(c.method, c.url.split("?")[0]) for c in mock.request_history]
    assert calls == [("GET", GETOA), ("GET", CHANNELS), ("POST", REFRESH), ("GET", GETOA), ("GET", CHANNELS)]
    assert mock.request_history[2].text == "refresh_token=refresh-0&app_id=360846524940903967&grant_type=refresh_token"
    assert mock.request_history[3].headers["access_token"] == refreshed["access_token"]
    assert result["zalo"]["ok"] and result["freshchat"]["ok"]
    assert last_check(redis, "default")["zalo"]["ok"] is True


def test_only_failed_connections_are_tested_again(ctx, redis):
    with requests_mock.Mocker() as mock:
        mock.get(GETOA, json=getoa())
        mock.get(CHANNELS, json=channels(ctx.settings.freshchat_channel_id))
        ConnectionTests(ctx).run()
        assert len(mock.request_history) == 2
        ConnectionTests(ctx).run(only_failed=True)
        assert len(mock.request_history) == 2  # it passed: nothing to test again
        record = last_check(redis, "default")
        record["freshchat"]["ok"] = False
        redis.set(Keys("default").last_check, json.dumps(record))
        ConnectionTests(ctx).run(only_failed=True)
        assert len(mock.request_history) == 4
    assert last_check(redis, "default")["freshchat"]["ok"] is True


def test_every_new_problem_reads_in_both_languages():
    for code in ("public_url_local", "freshchat_url_no_v2", "zalo_refused", "freshchat_refused"):
        assert code in CODES
        for part in ("what", "fix"):
            assert set(TEXTS[f"problem.{code}.{part}"]) == {"vi", "en"}


def test_the_web_refuses_to_start_with_a_short_admin_token(monkeypatch, capsys):
    monkeypatch.setattr("os.environ", live_env(ADMIN_TOKEN="admin123", METRICS_TOKEN="m" * 24))
    with pytest.raises(SystemExit) as stopped:
        create_app()
    how_to = 'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
    assert stopped.value.code == 2
    assert capsys.readouterr().err == f"config error: ADMIN_TOKEN: shorter than 24 characters; {how_to}\n"
