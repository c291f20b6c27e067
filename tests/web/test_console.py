"""The admin console (/admin/): sign-in, session cookie, CSRF, throttling, pages, no secret shown."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlparse

import pytest
import requests_mock

from app import create_app
from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.console import auth
from tests.helpers import FC_PUBLIC_PEM, ZALO_API, ZALO_OAUTH, load_fixture

ADMIN = "console-admin-token-Zq81"
CHANNEL = "6c03caf2-a37f-45a2-a9a3-6e03aa7b85f5"  # the topic in freshchat/answers/channels.json
FC_HCM = "https://hcm.freshchat.com/v2"
# Distinctive values: none may appear in any page or answer.
SECRETS = {
    "zalo.app_secret": "SECRET-app-Kx7Lw2Pq9",
    "zalo.oa_secret_key": "SECRET-oa-Vb3Nm8Rt1",
    "zalo.access_token": "SECRET-access-Hj5Df6Gs4",
    "zalo.refresh_token": "SECRET-refresh-Yu2Io0Pe7",
    "freshchat.api_key": "SECRET-fckey-Qa9Ws3Ed5",
}
FORM = {
    "id": "shop-hcm",
    "name": "Shop HCM",
    "zalo.app_id": "999000111",
    "zalo.oa_id": "777000111",
    "freshchat.api_url": FC_HCM,
    "freshchat.channel_id": CHANNEL,
    "freshchat.webhook_public_key": FC_PUBLIC_PEM,
    "options.resolve_notification": "on",
    "options.resolve_notification_text": "Cảm ơn bạn!",
    "options.receipts": "note",
    "options.agent_signature": "",
    "options.customer_language": "vi",
    "options.agent_language": "en",
    **SECRETS,
}


@pytest.fixture
def console_settings(settings):
    return replace(settings, admin_token=ADMIN)


@pytest.fixture
def web(console_settings):
    return create_app(console_settings).test_client()


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def sign_in(web, token: str = ADMIN, address: str = "10.0.0.1"):
    page = web.get("/admin/sign-in")
    return web.post(
        "/admin/sign-in",
        data={"csrf_token": csrf_of(page), "token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def post_form(web, path: str, data: dict, page_path: str = "/admin/"):
    return web.post(path, data={"csrf_token": csrf_of(web.get(page_path)), **data})


@pytest.fixture
def signed_in(web):
    assert sign_in(web).status_code == 302
    return web


@pytest.fixture
def created(signed_in):
    resp = post_form(signed_in, "/admin/connections/new", FORM, "/admin/connections/new")
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/connections/shop-hcm"
    return signed_in


def session_cookie(resp) -> str:
    return next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("zfb_admin="))


# -- who may enter -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/admin/", "/admin/sign-in", "/admin/connections/new", "/admin/static/console.css"])
def test_the_console_is_404_while_admin_token_is_unset(client, path):
    resp = client.get(path)
    assert resp.status_code == 404 and resp.get_json() == {"error": "not found"}
    assert "Set-Cookie" not in resp.headers


def test_a_page_without_a_session_sends_the_browser_to_sign_in(web):
    resp = web.get("/admin/connections/new")
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/sign-in?next=/admin/connections/new"
    assert web.get("/admin/sign-in").status_code == 200


def test_sign_in_sets_a_signed_httponly_lax_secure_cookie_for_twelve_hours(web):
    resp = sign_in(web)
    cookie = session_cookie(resp)
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/"
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie and "Path=/admin" in cookie
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie).group(1)).timestamp()
    assert abs(expires - (time.time() + 12 * 3600)) < 60
    assert ADMIN not in cookie
    assert web.get("/admin/").status_code == 200


def test_the_cookie_is_not_secure_when_the_bridge_is_plain_http(console_settings):
    web = create_app(replace(console_settings, public_base_url="http://localhost:8000")).test_client()
    assert "Secure" not in session_cookie(sign_in(web))


def test_webhooks_and_the_api_never_get_a_cookie_or_need_a_csrf_token(web):
    resp = web.post("/api/connections", json={}, headers={"Authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 400 and "Set-Cookie" not in resp.headers  # refused by validation, not CSRF
    assert "Set-Cookie" not in web.get("/healthz").headers


def test_after_sign_in_the_browser_goes_where_it_was_going_but_only_inside_the_console(web):
    page = web.get("/admin/sign-in")
    resp = web.post(
        "/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN, "next": "/admin/connections/new"}
    )
    assert resp.headers["Location"] == "/admin/connections/new"
    for target in ("https://evil.example/", "//evil.example/admin/", "/api/status"):
        page = web.get("/admin/sign-in")
        resp = web.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN, "next": target})
        assert resp.headers["Location"] == "/admin/"


def test_a_form_without_its_csrf_token_is_refused(signed_in, redis):
    resp = signed_in.post("/admin/connections/new", data=FORM)
    assert resp.status_code == 400 and "The form has expired" in resp.get_data(as_text=True)
    assert signed_in.post("/admin/sign-out", data={"csrf_token": "forged"}).status_code == 400
    assert signed_in.get("/admin/").status_code == 200  # still signed in
    assert redis.hlen("zfb:connections") == 0


def test_sign_in_itself_needs_the_csrf_token(web):
    web.get("/admin/sign-in")
    assert web.post("/admin/sign-in", data={"token": ADMIN}).status_code == 400


def test_sign_out_ends_the_session(signed_in):
    resp = post_form(signed_in, "/admin/sign-out", {})
    assert resp.status_code == 302 and resp.headers["Location"] == "/admin/sign-in"
    assert "zfb_admin=;" in session_cookie(resp)
    assert signed_in.get("/admin/").status_code == 302


def test_changing_admin_token_signs_every_browser_out(console_settings, signed_in):
    cookie = signed_in.get_cookie("zfb_admin", path="/admin").value
    other = create_app(replace(console_settings, admin_token="a-new-admin-token")).test_client()
    other.set_cookie("zfb_admin", cookie, path="/admin")
    assert other.get("/admin/").status_code == 302
    same = create_app(console_settings).test_client()
    same.set_cookie("zfb_admin", cookie, path="/admin")
    assert same.get("/admin/").status_code == 200  # the same token: the same session still works


def test_a_session_ends_twelve_hours_after_sign_in(signed_in, monkeypatch):
    later = time.time() + 12 * 3600 + 5
    monkeypatch.setattr(auth.time, "time", lambda: later)
    assert signed_in.get("/admin/").status_code == 302


def test_wrong_tokens_are_slowed_down_per_client_address(web, redis):
    for _ in range(auth.FREE_FAILURES - 1):
        assert sign_in(web, "wrong").status_code == 401
    resp = sign_in(web, "wrong")
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    resp = sign_in(web)  # even the right token waits: the wait is no oracle
    assert resp.status_code == 429 and 1 <= int(resp.headers["Retry-After"]) <= 2
    assert "Too many wrong tokens" in resp.get_data(as_text=True)
    assert sign_in(web, address="10.0.0.2").status_code == 302  # another client is not slowed down
    redis.delete(keys.signin_wait("10.0.0.1"))  # the wait is over
    assert sign_in(web, "wrong").headers["Retry-After"] == "4"  # each further failure doubles it
    redis.delete(keys.signin_wait("10.0.0.1"))
    assert sign_in(web).status_code == 302
    assert redis.exists(keys.signin_failures("10.0.0.1"), keys.signin_wait("10.0.0.1")) == 0


def test_the_wait_never_grows_past_a_quarter_hour(redis):
    throttle = auth.SignInThrottle(redis)
    waits = [throttle.failed("10.9.9.9") for _ in range(30)]
    assert waits[: auth.FREE_FAILURES - 1] == [0] * (auth.FREE_FAILURES - 1)
    assert waits[-1] == 900 and 899 <= throttle.wait_left("10.9.9.9") <= 900


def test_the_old_bearer_routes_under_admin_still_answer(web):
    assert web.get("/admin/status", headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    assert web.get("/admin/status").status_code == 404


# -- the dashboard ---------------------------------------------------------------------------------


def test_the_dashboard_shows_each_connection_its_token_queue_and_dead_letters(created, redis):
    now = time.time()
    redis.hset(Keys("shop-hcm").zalo_token, "dead", "-14014 Invalid refresh token")
    redis.set(Keys("shop-hcm").last_webhook("zalo"), now - 120)
    DeadLetters(redis, Lanes(redis), keys=Keys("shop-hcm")).add("shop-hcm/out:c1", item("freshchat:m1"), "boom")
    page = created.get("/admin/").get_data(as_text=True)
    card = page[page.index('id="conn-shop-hcm"') :]
    assert 'id="conn-default"' in page and "Shop HCM" in card
    assert "dead: connect the OA again" in card and "-14014" in card  # the alert says why, in red
    assert "2 minutes ago" in card and 'id="dead-shop-hcm"' in card and ">1</a>" in card
    assert "No worker is running" in page


def item(item_id: str, connection: str = "shop-hcm") -> Item:
    return Item(item_id, "freshchat", {"event": "message_create"}, now_ms(), connection=connection)
