"""One test per finding of the hostile-input probe (issue 17): each would fail on the code the
probe found it in."""

from __future__ import annotations

import http.server
import io
import json
import socket
import threading
import time
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import requests_mock

from app import create_app
from app.bridge.keys import DUE, Keys
from app.media import fetch
from sandbox.helpers import (
    ZALO_API,
    ZALO_OAUTH,
    fc_headers,
    load_fixture,
    post_freshchat,
    post_zalo,
    zalo_body,
    zalo_headers,
)

HOUR = 3600
ADMIN = {"Authorization": "Bearer adm-token-123"}


@pytest.fixture
def windowed(settings):
    """The production replay window (the shared test settings widen it for the old fixtures)."""
    return create_app(replace(settings, replay_window_seconds=12 * HOUR)).test_client()


@pytest.fixture
def admin(settings):
    return create_app(replace(settings, admin_token="adm-token-123")).test_client()


def nothing_queued(redis) -> bool:
    return redis.zcard(DUE) == 0 and not list(redis.scan_iter("zfb:lane:*"))


def zalo_event(ts_ms: int | str | None = None, **changes) -> dict:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["timestamp"] = str(int(time.time() * 1000)) if ts_ms is None else ts_ms
    return {**event, **changes}


def fc_event(name: str = "message_create__agent_text", action_time: str | None = "now") -> dict:
    event = load_fixture("freshchat", "webhooks", f"{name}.json")
    if action_time == "now":
        event["action_time"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    elif action_time is None:
        event.pop("action_time")
    else:
        event["action_time"] = action_time
    return event


# -- an unauthenticated 500 with a traceback ---------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/zalo", "/webhooks/freshchat"])
def test_a_body_nested_10000_deep_is_a_400_not_a_recursion_error(client, redis, path):
    resp = client.post(
        path, data=b'{"a":' * 10_000 + b"1" + b"}" * 10_000, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code in (400, 401) and "error" in resp.get_json()
    assert nothing_queued(redis)


def test_a_body_nested_deeper_than_any_event_is_a_400_before_the_signature(client, redis):
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    resp = post_zalo(client, zalo_event(deep=deep))
    assert resp.status_code == 400 and resp.get_json() == {"error": "body nests deeper than 32 levels"}


def test_a_shallow_body_with_many_brackets_in_its_text_is_no_deep_body(client, redis):
    """The depth is only counted when the body has more opening brackets than MAX_DEPTH: text
    full of them is counted, and passes."""
    event = zalo_event(deep=[[[1]]])
    event["message"]["text"] = "[{" * 40
    resp = post_zalo(client, event)
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}


# -- no replay window -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ts",
    [
        pytest.param(int((time.time() - 10 * 365 * 86400) * 1000), id="ten-years-old"),
        pytest.param(int((time.time() + 365 * 86400) * 1000), id="a-year-ahead"),
        pytest.param(int((time.time() - 13 * HOUR) * 1000), id="13-hours-old"),
        pytest.param("0", id="zero"),
    ],
)
def test_a_signed_zalo_event_outside_the_replay_window_is_refused(windowed, redis, ts, caplog):
    resp = post_zalo(windowed, zalo_event(str(ts)))
    assert resp.status_code == 400 and resp.get_json() == {"error": "event time outside the replay window"}
    assert nothing_queued(redis)
    assert "webhook.outside_replay_window" in caplog.text


def test_a_zalo_redelivery_an_hour_late_is_still_accepted(windowed, redis):
    resp = post_zalo(windowed, zalo_event(int((time.time() - 2 * HOUR) * 1000)))
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}


@pytest.mark.parametrize("action_time", ["2016-01-01T00:00:00.000Z", None, "yesterday", "2030-01-01T00:00:00"])
def test_a_signed_freshchat_event_old_or_without_a_time_is_refused(windowed, redis, action_time):
    resp = post_freshchat(windowed, fc_event(action_time=action_time))
    assert resp.status_code == 400
    assert nothing_queued(redis)


def test_a_fresh_signed_freshchat_event_is_queued(windowed, redis):
    assert post_freshchat(windowed, fc_event()).get_json() == {"ok": True, "duplicate": False}
    assert redis.zcard(DUE) == 1


# -- signed but malformed: nothing the worker cannot handle is queued ------------------------


@pytest.mark.parametrize("ts", ["notanumber", "1.7e12", "-1", {"ms": 1}, True])
def test_a_signed_zalo_event_with_a_non_numeric_timestamp_is_a_400(client, redis, ts):
    resp = post_zalo(client, zalo_event(ts))
    assert resp.status_code == 400 and "timestamp" in resp.get_json()["error"]
    assert nothing_queued(redis)


@pytest.mark.parametrize(
    "message",
    [
        {"msg_id": "m1", "text": 5},
        {"msg_id": "m1", "attachments": "photo"},
        {"msg_id": "m1", "attachments": [{"type": "image", "payload": ["x"]}]},
        {"msg_id": "m1", "attachments": [{"type": "image", "payload": {"url": 7}}]},
    ],
)
def test_a_signed_zalo_message_of_the_wrong_shape_is_a_400(client, redis, message):
    assert post_zalo(client, zalo_event(message=message)).status_code == 400
    assert nothing_queued(redis)


def test_a_signed_resolution_whose_resolve_is_not_an_object_is_a_400(client, redis):
    event = fc_event("conversation_resolution")
    event["data"]["resolve"] = "done"
    resp = post_freshchat(client, event)
    assert resp.status_code == 400 and "resolve" in resp.get_json()["error"]
    assert nothing_queued(redis)


@pytest.mark.parametrize("parts", ["hello", {"text": {"content": "hi"}}, [{"text": "hi"}], [{"image": {"url": 3}}]])
def test_signed_message_parts_that_are_not_a_list_of_parts_are_a_400(client, redis, parts):
    event = fc_event()
    event["data"]["message"]["message_parts"] = parts
    assert post_freshchat(client, event).status_code == 400
    assert nothing_queued(redis)


# -- bodies, lists, OAuth ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/webhooks/zalo", "/webhooks/freshchat"])
def test_a_chunked_body_over_1_mib_is_a_413(client, redis, path):
    raw = b'{"pad":"' + b"x" * (1024 * 1024) + b'"}'
    resp = client.post(
        path,
        input_stream=io.BytesIO(raw),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says of chunked bodies
    )
    assert resp.status_code == 413
    assert nothing_queued(redis)


def test_a_chunked_body_under_1_mib_is_read_whole(client, redis):
    event = zalo_event()
    raw = zalo_body(event)
    resp = client.post(
        "/webhooks/zalo",
        input_stream=io.BytesIO(raw),
        headers={**zalo_headers(raw, event), "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 200 and redis.zcard(DUE) == 1


@pytest.mark.parametrize("path", ["/admin/dead-letters", "/api/dead-letters"])
@pytest.mark.parametrize("limit", ["abc", "-1", "0", "10000000000"])
def test_a_dead_letter_limit_that_is_no_number_is_a_400(admin, path, limit):
    resp = admin.get(f"{path}?limit={limit}", headers=ADMIN)
    assert resp.status_code == 400 and "limit" in resp.get_json()["error"]


def _state(client, link: str) -> str:
    return parse_qs(urlparse(client.get(link).headers["Location"]).query)["state"][0]


def test_oauth_with_the_token_endpoint_unreachable_is_a_502_and_the_state_survives(admin, redis):
    state = _state(admin, admin.post("/api/connections/default/oauth-link", headers=ADMIN).get_json()["url"])
    with requests_mock.Mocker() as m:
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", exc=requests.exceptions.ConnectionError)
        down = admin.get(f"/oauth/zalo/callback?code=abc&state={state}")
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", status_code=503, text="<html>bad gateway</html>")
        still_down = admin.get(f"/oauth/zalo/callback?code=abc&state={state}")
        m.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "a1", "refresh_token": "r1"})
        m.get(f"{ZALO_API}/v2.0/oa/getoa", json=load_fixture("zalo", "answers", "getoa.json"))
        back = admin.get(f"/oauth/zalo/callback?code=abc&state={state}")
        again = admin.get(f"/oauth/zalo/callback?code=abc&state={state}")
    assert down.status_code == 502 and "reload this page to try again" in down.get_json()["error"]
    assert still_down.status_code == 502
    assert back.status_code == 200 and back.get_json()["ok"] is True
    assert again.status_code == 400  # spent once Zalo answered
    assert [r.path for r in m.request_history] == ["/v4/oa/access_token"] * 3 + ["/v2.0/oa/getoa"]


def test_the_oauth_start_takes_no_admin_token_in_its_url_but_a_one_time_link(admin, redis):
    assert admin.get("/oauth/zalo/start?token=adm-token-123").status_code == 404
    made = admin.post("/api/connections/default/oauth-link", headers=ADMIN)
    body = made.get_json()
    assert made.status_code == 201 and body["expires_in"] == 600 and "adm-token-123" not in body["url"]
    assert body["url"].startswith("https://bridge.example.com/oauth/zalo/start?link=")
    assert 0 < redis.ttl(next(redis.scan_iter("zfb:oauth:link:*"))) <= 600
    path = body["url"].removeprefix("https://bridge.example.com")
    assert admin.get(path).status_code == 302
    assert admin.get(path).status_code == 404  # single use
    assert admin.get("/oauth/zalo/start?link=forged").status_code == 404
    assert admin.post("/api/connections/nobody/oauth-link", headers=ADMIN).status_code == 404
    assert admin.post("/api/connections/default/oauth-link").status_code == 401


# -- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/api/status", "/admin/status", "/oauth/zalo/callback", "/nowhere"])
def test_every_answer_carries_the_security_headers(admin, path):
    resp = admin.get(path, headers=ADMIN)
    assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"  # PUBLIC_BASE_URL is https
    assert resp.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Referrer-Policy"] == "no-referrer"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_admin_api_and_oauth_answers_are_never_stored_and_others_may_be(admin):
    for path in ("/api/status", "/admin/status", "/oauth/zalo/callback", "/api/nowhere"):
        assert admin.get(path, headers=ADMIN).headers["Cache-Control"] == "no-store", path
    assert "Cache-Control" not in admin.get("/healthz").headers


def test_no_hsts_over_plain_http(settings):
    plain = create_app(replace(settings, public_base_url="http://localhost:8000")).test_client()
    assert "Strict-Transport-Security" not in plain.get("/healthz").headers


# -- the fetcher resolved a name twice (DNS rebinding) ----------------------------------------


class _Named(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the stdlib's name
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", f"http://second.test:{self.server.server_port}/file")
            self.end_headers()
            return
        self.server.hosts.append(self.headers["Host"])  # before answering: the test reads it right after
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _server(address: str, port: int, name: str) -> http.server.HTTPServer:
    server = http.server.HTTPServer((address, port), _Named)
    server.name, server.hosts = name, []
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()  # shutdown() waits a poll
    return server


@pytest.fixture
def rebinding(monkeypatch):
    """`first.test` and `second.test` resolve to 127.0.0.1 (taken as public here) when first
    asked, then to 127.0.0.2 (private): a server answering "evil" listens there."""
    good = _server("127.0.0.1", 0, "good")
    evil = _server("127.0.0.2", good.server_port, "evil")
    asked: list[str] = []
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if not host.endswith(".test"):
            return real(host, port, *args, **kwargs)
        address = "127.0.0.2" if host in asked else "127.0.0.1"
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    monkeypatch.setattr(fetch, "is_blocked", lambda address: str(address) == "127.0.0.2")
    yield good, evil, asked
    good.shutdown()
    evil.shutdown()


def test_the_media_fetcher_connects_to_the_address_it_checked(rebinding):
    good, evil, asked = rebinding
    port = good.server_port
    got = fetch.download(requests.Session(), f"http://first.test:{port}/file", max_bytes=100, allow_private=False)
    assert got.data == b"good" and evil.hosts == []
    assert good.hosts == [f"first.test:{port}"]  # the Host header keeps the name
    assert asked == ["first.test"]  # resolved once, for the check


def test_every_redirect_hop_goes_to_its_checked_address(rebinding):
    good, evil, asked = rebinding
    port = good.server_port
    got = fetch.download(requests.Session(), f"http://first.test:{port}/hop", max_bytes=100, allow_private=False)
    assert got.data == b"good" and evil.hosts == [] and asked == ["first.test", "second.test"]
    assert good.hosts == [f"second.test:{port}"]


def test_https_keeps_the_hostname_for_sni_and_the_certificate():
    adapter = fetch.PinnedAdapter("93.184.216.34")
    prepared = requests.Request("GET", "https://cdn.zalo.test/a.jpg").prepare()
    pool = adapter.get_connection_with_tls_context(prepared, verify=True)
    assert pool.host == "93.184.216.34"
    assert pool.conn_kw["server_hostname"] == "cdn.zalo.test" and pool.assert_hostname == "cdn.zalo.test"
    assert pool.cert_reqs == "CERT_REQUIRED"


def test_a_freshchat_event_signed_for_one_body_still_fails_for_another(client, redis):
    # Parsing after verification: an unsigned body is never looked into.
    raw = json.dumps(fc_event()).encode()
    resp = client.post("/webhooks/freshchat", data=raw + b" ", headers=fc_headers(raw))
    assert resp.status_code == 401 and nothing_queued(redis)
    assert Keys("default").last_webhook("freshchat") not in {k.decode() for k in redis.scan_iter()}


# -- the web process as the Procfile starts it (real gunicorn) ------------------------------------
# Slow clients holding its threads: app/webserver.py's read deadline is tested in
# tests/web/test_webserver.py, many slow clients at once are measured by bench.slow_clients.


@pytest.fixture
def web(redis_server, tmp_path):
    from bench.slow_clients import start_web

    proc = start_web(tmp_path, redis_server.url)
    yield proc
    proc.stop()


@pytest.mark.e2e
def test_a_chunked_body_over_1_mib_is_a_413_under_gunicorn(web):
    def chunks():
        for _ in range(20):
            yield b"x" * 100_000

    resp = requests.post(web.url + "/webhooks/zalo", data=chunks(), timeout=10)
    assert resp.status_code == 413 and resp.json() == {"error": "body over 1 MiB"}
    assert resp.headers["Server"] == "bridge"  # no "gunicorn/<version>" banner
