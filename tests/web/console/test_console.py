"""The admin console (/admin/): sign-in, session cookie, CSRF, throttling, pages, no secret shown."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from email.utils import parsedate_to_datetime
from io import BytesIO
from urllib.parse import parse_qs, urlparse

import pytest
import requests_mock
from markupsafe import escape
from rq import Queue

from app import create_app
from app.bridge import keys
from app.bridge.deadletters import DeadLetters
from app.bridge.keys import Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.connections.checks import record_check
from app.integrations.zalo.events_catalog import webhook_retry_advice
from app.operations.journal import Journal
from app.operations.problems import problem_text
from app.texts import vn_time
from app.web import wrong_tokens
from app.web.console import auth
from sandbox.helpers import FC_PUBLIC_PEM, ZALO_API, ZALO_OAUTH, load_fixture, zalo_body, zalo_headers
from workers.starter import QUEUE_NAME

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
    for _ in range(wrong_tokens.FREE_FAILURES - 1):
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
    throttle = wrong_tokens.SignInThrottle(redis)
    waits = [throttle.failed("10.9.9.9") for _ in range(30)]
    assert waits[: wrong_tokens.FREE_FAILURES - 1] == [0] * (wrong_tokens.FREE_FAILURES - 1)
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


def test_the_dashboard_shows_when_an_accepted_webhook_came_set_in_its_accept_step(signed_in, redis):
    """The last-webhook time of a queued event is written by accept.lua, not by a separate SET:
    the card shows it all the same."""

    def card():
        page = signed_in.get("/admin/").get_data(as_text=True)
        return page[page.index('id="conn-default"') :].split("</article>")[0]

    assert "Zalo: never" in card()
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    raw = zalo_body(event)
    resp = signed_in.post("/webhooks/zalo", data=raw, headers=zalo_headers(raw, event))
    assert resp.get_json() == {"ok": True, "duplicate": False} and redis.zcard(keys.DUE) == 1
    assert "Zalo: never" not in card() and "FreshChat: never" in card()


def test_conversations_waiting_counts_what_the_cards_count_not_the_timers(created, redis):
    lanes = Lanes(redis)
    lanes.accept("shop-hcm/in:u-1", Item("zalo:a1", "zalo", {}, now_ms(), connection="shop-hcm"))
    lanes.accept("shop-hcm/in:u-1", Item("zalo:a2", "zalo", {}, now_ms(), connection="shop-hcm"))
    timer = Item("window:u-1:1", "zalo", {"zalo_user": "u-1"}, now_ms(), connection="shop-hcm")
    lanes.schedule("shop-hcm/" + keys.window_lane("u-1"), timer, now_ms() + 3600_000, replace=True)
    lanes.schedule(keys.receipts_lane("c-1"), timer, now_ms() + 3600_000, replace=True)
    page = created.get("/admin/").get_data(as_text=True)
    assert "Conversations waiting: 1." in page
    assert re.search(r'id="queue-shop-hcm">2 message\(s\) in 1 conversation\(s\)<', page)
    assert re.search(r'id="queue-default">0 message\(s\) in 0 conversation\(s\)<', page)


def test_last_errors_read_as_when_then_what(created, redis):
    from app.operations.status import remember_error

    remember_error(redis, Keys("shop-hcm"), "zalo -230: no interaction in 7 days", lane="shop-hcm/out:c1")
    redis.rpush(Keys("shop-hcm").errors, "an error kept by an older version")
    page = created.get("/admin/").get_data(as_text=True)
    card = page[page.index('id="conn-shop-hcm"') :]
    shown = card[card.index("Last errors") : card.index("</details>")]
    assert re.search(r"<code>\d\d:\d\d \d\d/\d\d/\d{4} \(UTC\+7\) zalo -230: no interaction in 7 days</code>", shown)
    assert "<code>an error kept by an older version</code>" in shown and '"lane"' not in shown


def test_the_dashboard_shows_the_last_catch_up_and_that_zalo_may_have_switched_the_webhook_off(created, redis):
    now = time.time()
    redis.set(Keys("shop-hcm").last_webhook("zalo"), now - 3 * 3600)
    newest = int((now - 3600) * 1000)
    outcome = {"reason": "quiet", "since": 0, "started_at": 0, "finished_at": int(now * 1000) - 120_000}
    outcome |= {"chats": 2, "found": 3, "queued": 2, "missed": 2, "newest_missed": newest}
    redis.hset(Keys("shop-hcm").catchup, mapping=outcome)
    page = created.get("/admin/").get_data(as_text=True)
    card = page[page.index('id="conn-shop-hcm"') :]
    shown = card[card.index('id="catch-up-shop-hcm"') :]
    assert shown.index("2 minutes ago") < shown.index("Zalo webhooks had gone quiet") < shown.index("</dd>")
    assert "3 message(s) read in Zalo's history, 2 queued" in shown and "2 no webhook brought" in shown
    off = problem_text("webhook_off", "en", count=2, when=vn_time(newest))
    problems = card[card.index('id="problems-shop-hcm"') : card.index("</ul>")]
    assert off["what"] in problems and "Zalo Developers → your app → Webhook" in problems
    redis.set(Keys("shop-hcm").last_webhook("zalo"), now)  # a webhook came: Zalo sends again
    card = created.get("/admin/").get_data(as_text=True).split('id="conn-shop-hcm"')[1]
    assert off["what"] not in card and "Zalo webhooks had gone quiet" in card
    assert 'id="catch-up-default"' in page and "never" in page.split('id="catch-up-default"')[1].split("</dd>")[0]


def test_a_failed_catch_up_shows_as_failed_with_its_reason_not_never(created, redis):
    failed_at = int(time.time() * 1000) - 120_000
    error = "Zalo HTTP 503 on /v2.0/oa/listrecentchat"
    redis.hset(Keys("shop-hcm").catchup, mapping={"failed_at": failed_at, "failed_reason": "quiet", "error": error})
    page = created.get("/admin/").get_data(as_text=True)
    shown = page.split('id="catch-up-shop-hcm"')[1].split("</dd>")[0]
    assert "failed 2 minutes ago (Zalo webhooks had gone quiet): " + error in shown and "never" not in shown
    done = {"reason": "start", "since": 0, "started_at": 0, "finished_at": failed_at - 3600_000, "found": 4}
    redis.hset(Keys("shop-hcm").catchup, mapping=done)
    shown = created.get("/admin/").get_data(as_text=True).split('id="catch-up-shop-hcm"')[1].split("</dd>")[0]
    assert shown.index(error) < shown.index("Last finished:") < shown.index("1 hour ago")
    assert "4 message(s) read in Zalo's history, 0 queued" in shown


def test_catch_up_now_queues_what_the_api_queues_and_says_so(created, redis):
    page = "/admin/connections/shop-hcm"
    assert 'id="catch-up"' in created.get(page).get_data(as_text=True)
    queued = Queue(QUEUE_NAME, connection=redis)
    resp = post_form(created, page + "/catch-up", {}, page)
    assert resp.status_code == 302 and resp.headers["Location"] == page
    assert "Activate the connection first" in created.get(page).get_data(as_text=True) and queued.jobs == []
    post_form(created, page + "/enabled", {"enabled": "1"}, page)
    assert created.post(page + "/catch-up", data={"csrf_token": "forged"}).status_code == 400 and queued.jobs == []
    post_form(created, page + "/catch-up", {}, page)
    assert "Catch-up queued" in created.get(page).get_data(as_text=True)
    assert [(j.func_name, *j.args) for j in queued.jobs] == [
        ("workers.catchup.catch_up_job", "shop-hcm", None, "on_demand")
    ]


def item(item_id: str, connection: str = "shop-hcm") -> Item:
    return Item(item_id, "freshchat", {"event": "message_create"}, now_ms(), connection=connection)


# -- a connection's form ----------------------------------------------------------------------------


def test_a_connection_added_through_the_form_is_stored_as_the_api_would_and_starts_inactive(created):
    shown = created.get("/api/connections/shop-hcm", headers={"Authorization": f"Bearer {ADMIN}"}).get_json()
    assert shown["enabled"] is False and shown["name"] == "Shop HCM"
    assert shown["zalo"] == {
        "app_id": "999000111",
        "app_secret": "set",
        "oa_id": "777000111",
        "oa_secret_key": "set",
        "access_token": "set",
        "refresh_token": "set",
    }
    assert shown["freshchat"]["api_url"] == FC_HCM and shown["freshchat"]["api_key"] == "set"
    assert shown["options"]["resolve_notification"] is True and shown["options"]["hold_billed_replies"] is False
    assert shown["status"]["zalo_token"]["present"]  # the pasted pair is the connection's pair now
    page = created.get("/admin/connections/shop-hcm").get_data(as_text=True)
    assert "Connection saved" in page and 'id="activate"' in page
    assert 'value="https://bridge.example.com/webhooks/freshchat/shop-hcm"' in page


def test_the_fields_come_in_the_order_of_zalos_setup_pages(created):
    page = created.get("/admin/connections/shop-hcm").get_data(as_text=True)
    names = ["zalo.app_id", "zalo.app_secret", "zalo.oa_secret_key", "zalo.oa_id", "freshchat.api_url"]
    positions = [page.index(f'name="{name}"') for name in names]
    assert positions == sorted(positions)


def test_errors_show_next_to_their_field_and_typed_secrets_are_not_echoed(signed_in, redis):
    bad = dict(FORM, **{"zalo.app_id": "12ab", "freshchat.webhook_public_key": "not a key", "freshchat.api_url": ""})
    resp = post_form(signed_in, "/admin/connections/new", bad, "/admin/connections/new")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and redis.hlen("zfb:connections") == 0
    field = page[page.index('name="zalo.app_id"') :]
    assert field.index('id="error-zalo-app_id"') < field.index("<label")  # before the next field's label
    assert re.search(r'id="error-zalo-app_id"[^>]*>digits only<', page)
    assert re.search(r'id="error-freshchat-webhook_public_key"[^>]*>not a PEM or base64 RSA public key<', page)
    assert re.search(r'id="error-freshchat-api_url"[^>]*>', page)
    assert 'value="12ab"' in page and "Shop HCM" in page  # what was typed stays, except the secrets
    assert not [s for s in SECRETS.values() if s in page]


@pytest.mark.parametrize(
    "language, words",
    [
        ("en", "must end in /v2 (the chat URL plus /v2, e.g. https://acme.freshchat.com/v2)"),
        ("vi", "phải kết thúc bằng /v2 (URL chat thêm /v2, ví dụ https://acme.freshchat.com/v2)"),
    ],
)
def test_an_api_url_without_v2_is_refused_next_to_its_field_as_at_start(signed_in, redis, language, words):
    bad = dict(FORM, **{"freshchat.api_url": "https://hcm.freshchat.com"})
    new = "/admin/connections/new"
    resp = signed_in.post(
        new, data={"csrf_token": csrf_of(signed_in.get(new)), **bad}, headers={"Accept-Language": language}
    )
    assert resp.status_code == 400 and redis.hlen("zfb:connections") == 0
    page = resp.get_data(as_text=True)
    assert re.search(r'id="error-freshchat-api_url"[^>]*>' + re.escape(words) + "<", page)
    assert 'value="https://hcm.freshchat.com"' in page  # what was typed stays, to be corrected


def test_saving_keeps_a_secret_left_empty_and_replaces_one_typed_in(created, console_settings, redis):
    from app.bridge.secrets_at_rest import sealer_for
    from app.connections.store import ConnectionStore

    edit = {k: v for k, v in FORM.items() if k != "id" and k not in SECRETS}
    edit.update({"name": "Shop HCM 2", "freshchat.api_key": "SECRET-new-fckey-Mn4"})
    resp = post_form(created, "/admin/connections/shop-hcm", edit, "/admin/connections/shop-hcm")
    assert resp.status_code == 302
    conn = ConnectionStore(redis, console_settings, sealer_for(console_settings)).get("shop-hcm")
    assert conn.name == "Shop HCM 2" and conn.settings.freshchat_api_key == "SECRET-new-fckey-Mn4"
    assert conn.settings.zalo_app_secret == SECRETS["zalo.app_secret"]
    assert conn.settings.resolve_notification is True


def test_activate_and_deactivate(created):
    post_form(created, "/admin/connections/shop-hcm/enabled", {"enabled": "1"}, "/admin/connections/shop-hcm")
    page = created.get("/admin/connections/shop-hcm").get_data(as_text=True)
    assert "Connection activated" in page and 'id="deactivate"' in page
    post_form(created, "/admin/connections/shop-hcm/enabled", {"enabled": "0"}, "/admin/connections/shop-hcm")
    assert 'id="activate"' in created.get("/admin/connections/shop-hcm").get_data(as_text=True)


def test_the_default_connection_is_read_only(signed_in):
    page = signed_in.get("/admin/connections/default").get_data(as_text=True)
    assert "defined by environment variables" in page and 'id="save"' not in page and 'id="activate"' not in page
    assert re.search(r'name="zalo.app_id"[^>]*disabled', page)
    resp = post_form(signed_in, "/admin/connections/default", {"name": "x"}, "/admin/connections/default")
    assert resp.status_code == 409 and "environment variables" in resp.get_data(as_text=True)


def test_test_connection_says_per_side_what_works(created):
    answer = load_fixture("zalo", "answers", "getoa.json")
    answer["data"]["oa_id"] = "777000111"
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=answer)
        mock.get(f"{FC_HCM}/channels", status_code=401)
        resp = post_form(created, "/admin/connections/shop-hcm/test", {}, "/admin/connections/shop-hcm")
    page = resp.get_data(as_text=True)
    assert re.search(r'id="test-zalo" class="good"><strong>Zalo: works</strong> — token works for OA', page)
    assert re.search(
        r'id="test-freshchat" class="bad"><strong>FreshChat: does not work</strong> — API key refused', page
    )
    assert mock.request_history[0].headers["access_token"] == SECRETS["zalo.access_token"]


def test_a_pasted_token_pair_is_alive_only_once_zalo_accepted_it_and_a_refusal_says_why(created):
    def token_shown() -> str:
        page = created.get("/admin/").get_data(as_text=True)
        return page.split('id="token-shop-hcm">')[1].split("</dd>")[0]

    form = "/admin/connections/shop-hcm"
    assert "stored, not yet accepted by Zalo: test the connection" in token_shown() and "alive" not in token_shown()
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json={"error": -216, "message": "Access token is invalid"})
        mock.get(f"{FC_HCM}/channels", json=load_fixture("freshchat", "answers", "channels.json"))
        post_form(created, form + "/test", {}, form)
    refused = token_shown()
    assert '<span class="bad">refused at the last test: ' in refused and "-216" in refused and "alive" not in refused
    assert "-216" in created.get(form).get_data(as_text=True).split('id="token-pair">')[1].split("</p>")[0]
    answer = load_fixture("zalo", "answers", "getoa.json")
    answer["data"]["oa_id"] = "777000111"
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=answer)
        mock.get(f"{FC_HCM}/channels", json=load_fixture("freshchat", "answers", "channels.json"))
        post_form(created, form + "/test", {}, form)
    assert '<span class="good">alive</span>' in token_shown()
    fresh = {"zalo.access_token": "SECRET-access-new-Zz9", "zalo.refresh_token": "SECRET-refresh-new-Zz9"}
    post_form(created, form, {k: v for k, v in FORM.items() if k != "id"} | fresh, form)  # a new pair pasted
    assert "stored, not yet accepted by Zalo" in token_shown()


def test_connect_with_zalo_starts_pkce_from_the_session_and_comes_back_to_the_page(created, redis):
    resp = post_form(created, "/admin/connections/shop-hcm/connect-zalo", {}, "/admin/connections/shop-hcm")
    target = urlparse(resp.headers["Location"])
    query = parse_qs(target.query)
    assert resp.status_code == 302 and target.path == "/v4/oa/permission" and ADMIN not in resp.headers["Location"]
    assert query["app_id"] == ["999000111"] and query["state"][0].startswith("shop-hcm.")
    with requests_mock.Mocker() as mock:
        mock.post(
            f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "a9", "refresh_token": "r9", "expires_in": 90000}
        )
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=getoa("777000111"))
        back = created.get(f"/oauth/zalo/callback?code=abc&oa_id=777000111&state={query['state'][0]}")
    assert back.status_code == 302 and back.headers["Location"] == "/admin/connections/shop-hcm?zalo=connected"
    assert mock.request_history[0].headers["secret_key"] == SECRETS["zalo.app_secret"]
    page = created.get(back.headers["Location"]).get_data(as_text=True)
    assert "Zalo OA connected" in page
    assert redis.exists(Keys("shop-hcm").oauth_return(query["state"][0])) == 0


def getoa(oa_id: str) -> dict:
    answer = load_fixture("zalo", "answers", "getoa.json")
    answer["data"]["oa_id"] = oa_id
    return answer


def stored_access_token(redis, console_settings) -> str:
    import requests

    from app.bridge.secrets_at_rest import sealer_for
    from app.bridge.tokens_store import TokenStore
    from app.connections.store import ConnectionStore

    conn = ConnectionStore(redis, console_settings, sealer_for(console_settings)).get("shop-hcm")
    return TokenStore.of(redis, conn.settings, Keys("shop-hcm")).state()["access_token"]


def connect_state(created) -> str:
    resp = post_form(created, "/admin/connections/shop-hcm/connect-zalo", {}, "/admin/connections/shop-hcm")
    return parse_qs(urlparse(resp.headers["Location"]).query)["state"][0]


def test_zalo_granting_another_oa_comes_back_with_the_reason(created):
    back = created.get(f"/oauth/zalo/callback?code=abc&oa_id=123&state={connect_state(created)}")
    assert back.headers["Location"] == "/admin/connections/shop-hcm?zalo=other_oa&oa=123"
    page = created.get(back.headers["Location"]).get_data(as_text=True)
    assert "Zalo connected OA 123, but this connection is for OA 777000111: nothing was stored." in page


@pytest.mark.parametrize(
    "language, words",
    [
        ("en", "Zalo connected OA 388613280878808645, but this connection is for OA 777000111: nothing was stored."),
        ("vi", "Zalo đã kết nối OA 388613280878808645, nhưng kết nối này dành cho OA 777000111: chưa lưu gì cả."),
    ],
)
def test_a_token_zalo_says_serves_another_oa_is_not_stored_and_the_page_names_both(
    created, redis, console_settings, language, words
):
    with requests_mock.Mocker() as mock:
        mock.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "a9", "refresh_token": "r9"})
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", json=getoa("388613280878808645"))
        back = created.get(f"/oauth/zalo/callback?code=abc&state={connect_state(created)}")
    assert back.headers["Location"] == "/admin/connections/shop-hcm?zalo=other_oa&oa=388613280878808645"
    page = created.get(back.headers["Location"], headers={"Accept-Language": language}).get_data(as_text=True)
    assert words in page and stored_access_token(redis, console_settings) == SECRETS["zalo.access_token"]


def test_the_page_shows_only_digits_for_the_other_oa(created):
    page = created.get("/admin/connections/shop-hcm?zalo=other_oa&oa=<b>9</b>").get_data(as_text=True)
    assert "<b>9</b>" not in page and "&lt;b&gt;" not in page and "different OA" in page


def test_zalo_unreachable_for_getoa_stores_nothing_and_says_to_connect_again(created, redis, console_settings):
    with requests_mock.Mocker() as mock:
        mock.post(f"{ZALO_OAUTH}/v4/oa/access_token", json={"access_token": "a9", "refresh_token": "r9"})
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", status_code=502, text="bad gateway")
        back = created.get(f"/oauth/zalo/callback?code=abc&state={connect_state(created)}")
    assert back.headers["Location"] == "/admin/connections/shop-hcm?zalo=oa_unknown"
    page = created.get(back.headers["Location"]).get_data(as_text=True)
    assert "Could not ask Zalo which OA the new token serves: nothing was stored." in page
    assert stored_access_token(redis, console_settings) == SECRETS["zalo.access_token"]


def test_an_unknown_connection_is_a_404_page(signed_in):
    resp = signed_in.get("/admin/connections/nobody")
    assert resp.status_code == 404 and "no connection nobody" in resp.get_data(as_text=True)


# -- events and dead letters ---------------------------------------------------------------------


def dead(redis, *ids: str) -> DeadLetters:
    letters = DeadLetters(redis, Lanes(redis), keys=Keys("shop-hcm"))
    for item_id in ids:
        letters.add("shop-hcm/out:c1", item(item_id), f"Zalo refused {item_id}")
    return letters


def test_dead_letters_are_listed_with_their_reason(created, redis):
    dead(redis, "freshchat:m1", "freshchat:m2")
    page = created.get("/admin/connections/shop-hcm/events").get_data(as_text=True)
    assert 'id="dl-freshchat:m1"' in page and "Zalo refused freshchat:m2" in page and "message_create" in page


def test_the_events_page_has_its_own_title_and_one_forget_form(created):
    page = created.get("/admin/connections/shop-hcm/events").get_data(as_text=True)
    [title] = re.findall(r"<title>(.*?)</title>", page, re.S)
    assert title == "Events · Shop HCM · Zalo ⇄ FreshChat bridge"
    assert page.count('id="forget-form"') == 1


def test_replay_and_drop_one_or_many(created, redis):
    letters = dead(redis, "freshchat:m1", "freshchat:m2", "freshchat:m3")
    events = "/admin/connections/shop-hcm/events"
    path = "/admin/connections/shop-hcm/dead-letters"
    resp = post_form(created, path, {"replay_one": "freshchat:m1"}, events)
    assert resp.status_code == 302 and redis.llen(keys.lane("shop-hcm/out:c1")) == 1
    post_form(created, path, {"action": "drop", "ids": ["freshchat:m2", "freshchat:m3"]}, events)
    assert letters.count() == 0 and redis.llen(keys.lane("shop-hcm/out:c1")) == 1
    page = created.get(events).get_data(as_text=True)
    assert "2 dropped." in page and "No dead letters." in page


def test_a_dropped_dead_letters_event_says_dropped_and_links_to_nothing(created, redis):
    dead(redis, "freshchat:m1")
    Journal(redis, "shop-hcm").record(
        "shop-hcm/out:c1",
        item("freshchat:m1"),
        "failed",
        reason="Zalo refused freshchat:m1",
        dead_letter="freshchat:m1",
    )
    events = "/admin/connections/shop-hcm/events"
    assert 'href="#dl-freshchat:m1"' in created.get(events).get_data(as_text=True)
    post_form(created, "/admin/connections/shop-hcm/dead-letters", {"drop_one": "freshchat:m1"}, events)
    page = created.get(events).get_data(as_text=True)
    row = page[page.index('id="event-1"') : page.index("</tr>", page.index('id="event-1"'))]
    assert ">dropped</span>" in row and "Zalo refused freshchat:m1" in row and "href" not in row
    assert 'id="event-2"' not in page and "No dead letters." in page
    dropped = created.get(events + "?state=dropped").get_data(as_text=True)
    assert 'id="event-1"' in dropped and 'id="filter-error"' not in dropped


def test_replaying_nothing_ticked_says_so(created):
    events = "/admin/connections/shop-hcm/events"
    post_form(created, "/admin/connections/shop-hcm/dead-letters", {"action": "replay"}, events)
    assert "Tick at least one dead letter." in created.get(events).get_data(as_text=True)


# -- no secret anywhere ----------------------------------------------------------------------------


def test_no_page_or_answer_ever_holds_a_secret(created, redis, console_settings):
    dead(redis, "freshchat:m1")
    seen = []
    pages = [
        "/admin/",
        "/admin/connections/new",
        "/admin/connections/shop-hcm",
        "/admin/connections/shop-hcm/events",
        "/admin/connections/default",
        "/admin/connections/default/events",
        "/admin/sign-in",
    ]
    seen += [created.get(p) for p in pages]
    with requests_mock.Mocker() as mock:
        mock.get(f"{ZALO_API}/v2.0/oa/getoa", status_code=500)
        mock.get(f"{FC_HCM}/channels", status_code=500)
        seen.append(post_form(created, "/admin/connections/shop-hcm/test", {}, "/admin/connections/shop-hcm"))
    refused = dict(FORM, id="Bad Id")
    seen.append(post_form(created, "/admin/connections/new", refused, "/admin/connections/new"))
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    seen += [created.get(p, headers=bearer) for p in ("/api/connections", "/api/connections/shop-hcm", "/api/status")]
    assert all(r.status_code < 500 for r in seen) and len(seen) == 12
    everything = "".join(r.get_data(as_text=True) + str(r.headers) for r in seen)
    for secret in [*SECRETS.values(), ADMIN, console_settings.zalo_app_secret, console_settings.freshchat_api_key]:
        assert secret not in everything


# -- Vietnamese and English ---------------------------------------------------------------------


def test_the_language_follows_the_browser(web):
    assert "Đăng nhập" in web.get("/admin/sign-in", headers={"Accept-Language": "vi-VN,vi;q=0.9"}).get_data(
        as_text=True
    )
    page = web.get("/admin/sign-in", headers={"Accept-Language": "en-US,en;q=0.8"}).get_data(as_text=True)
    assert "Sign in" in page and "Đăng nhập" not in page
    assert '<html lang="en">' in web.get("/admin/sign-in", headers={"Accept-Language": "fr"}).get_data(as_text=True)


def test_the_switch_remembers_the_language_in_a_cookie(signed_in, redis):
    resp = signed_in.get("/admin/language/vi?next=/admin/")
    cookie = next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith("zfb_lang="))
    assert resp.headers["Location"] == "/admin/" and "zfb_lang=vi" in cookie and "Path=/admin" in cookie
    redis.set(keys.DEFAULT_KEYS.last_webhook("zalo"), time.time() - 120)
    page = signed_in.get("/admin/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Các kết nối" in page and "2 phút trước" in page and '<html lang="vi">' in page
    signed_in.get("/admin/language/en?next=/admin/")
    assert "Connections" in signed_in.get("/admin/", headers={"Accept-Language": "vi"}).get_data(as_text=True)


def test_every_console_text_has_a_vietnamese_translation_with_the_same_placeholders():
    from pathlib import Path

    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    console = Path(__file__).parents[3] / "app" / "web" / "console"
    methods = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "_l": None}
    found = {msg for _, _, msg, _, _ in extract_from_dir(str(console), methods, keywords=keywords)}
    with (console / "translations" / "vi" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalog = {m.id: m.string for m in read_po(po) if m.id}
    assert len(found) > 100 and sorted(found - {k for k, v in catalog.items() if v}) == []
    placeholders = re.compile(r"%\(\w+\)[sd]|\{\w+\}")
    assert [m for m in found if sorted(placeholders.findall(m)) != sorted(placeholders.findall(catalog[m]))] == []


# -- what the console data gives: events, problems, topics, verification files, Zalo's events -----


def test_recent_events_show_their_state_and_filter_by_direction_state_and_party(created, redis):
    journal = Journal(redis, "shop-hcm")
    inbound = Item("zalo:m1", "zalo", {"event_name": "user_send_text"}, now_ms(), connection="shop-hcm")
    journal.record("shop-hcm/in:u-4411", inbound, "delivered")
    journal.record(
        "shop-hcm/out:c-7788", item("freshchat:m9"), "failed", reason="Zalo -213", dead_letter="freshchat:m9"
    )
    events = "/admin/connections/shop-hcm/events"
    page = created.get(events).get_data(as_text=True)
    assert "u-4411" in page and "c-7788" in page and "Zalo -213" in page
    page = created.get(events + "?state=failed").get_data(as_text=True)
    assert "c-7788" in page and "u-4411" not in page and 'href="#dl-freshchat:m9"' in page
    page = created.get(events + "?direction=in&find=u-4411").get_data(as_text=True)
    assert "u-4411" in page and "c-7788" not in page
    resp = created.get(events + "?state=lost")
    assert resp.status_code == 200 and 'id="filter-error"' in resp.get_data(as_text=True)


def test_problems_show_red_with_the_fix_in_the_visitors_language(created, redis):
    redis.hset(Keys("shop-hcm").zalo_token, "dead", "-14014 Invalid refresh token")
    page = created.get("/admin/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    card = page[page.index('id="problems-shop-hcm"') :]
    vi = problem_text("token_dead", "vi", reason="-14014 Invalid refresh token")
    assert vi["what"] in card and vi["fix"] in card and card.index(vi["what"]) < card.index("</ul>")


def test_a_refusal_at_the_workers_connection_test_shows_on_the_card(created, redis):
    detail = "API key refused (401): generate a new one under Admin, APIs for chat"
    record_check(
        redis, "shop-hcm", {"zalo": {"ok": True, "detail": "ok"}, "freshchat": {"ok": False, "detail": detail}}
    )
    page = created.get("/admin/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    card = page[page.index('id="problems-shop-hcm"') :]
    vi = problem_text(
        "freshchat_refused", "vi", detail="khóa API bị từ chối (401): hãy tạo khóa mới trong Admin, mục APIs for chat"
    )
    assert vi["what"] in card and vi["fix"] in card and card.index(vi["what"]) < card.index("</ul>")


def test_load_topics_uses_the_saved_key_without_the_page_holding_it(created):
    token = csrf_of(created.get("/admin/connections/shop-hcm"))
    with requests_mock.Mocker() as mock:
        mock.get(f"{FC_HCM}/channels", json=load_fixture("freshchat", "answers", "channels.json"))
        resp = created.post("/admin/topics", json={"connection_id": "shop-hcm"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 200 and {"id": CHANNEL, "name": "Zalo"} in resp.get_json()["topics"]
    assert mock.request_history[0].headers["Authorization"] == "Bearer " + SECRETS["freshchat.api_key"]
    refused = created.post("/admin/topics", json={"api_url": "nope"}, headers={"X-CSRFToken": token})
    assert refused.status_code == 400 and "api_url" in refused.get_json()["error"]
    assert created.post("/admin/topics", json={"connection_id": "shop-hcm"}).status_code == 400  # no CSRF token


def test_load_groups_uses_the_saved_key_without_the_page_holding_it(created):
    page = created.get("/admin/connections/shop-hcm").get_data(as_text=True)
    assert 'id="load-groups"' in page and 'name="options.freshchat_group_id"' in page
    token = csrf_of(created.get("/admin/connections/shop-hcm"))
    with requests_mock.Mocker() as mock:
        mock.get(f"{FC_HCM}/groups", json=load_fixture("freshchat", "answers", "groups.json"))
        resp = created.post("/admin/groups", json={"connection_id": "shop-hcm"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 200
    assert {"id": "c2937604-0a08-43c2-a09c-e77f5f565a0e", "name": "Shop HCM team"} in resp.get_json()["groups"]
    assert mock.request_history[0].url.split("?")[0] == f"{FC_HCM}/groups"
    assert mock.request_history[0].headers["Authorization"] == "Bearer " + SECRETS["freshchat.api_key"]
    with requests_mock.Mocker() as mock:
        foreign = created.post(
            "/admin/groups", json={"connection_id": "shop-hcm", "api_url": FOREIGN}, headers={"X-CSRFToken": token}
        )
    assert foreign.status_code == 400 and mock.request_history == []
    assert created.post("/admin/groups", json={"connection_id": "shop-hcm"}).status_code == 400  # no CSRF token


@pytest.mark.parametrize("picker", ["topics", "groups"])
@pytest.mark.parametrize("body", [[1], "shop-hcm", {"connection_id": {"id": "shop-hcm"}}, {"api_key": ["k"]}])
def test_a_pickers_body_that_is_no_object_of_texts_is_a_400(created, picker, body):
    token = csrf_of(created.get("/admin/connections/shop-hcm"))
    with requests_mock.Mocker() as mock:
        resp = created.post(f"/admin/{picker}", json=body, headers={"X-CSRFToken": token})
    assert resp.status_code == 400 and resp.get_json()["error"] and mock.request_history == []


FOREIGN = "https://collector.example.net/v2"  # never registered: requests-mock raises on a call to it


@pytest.mark.parametrize(
    "language, words",
    [
        ("en", "api_key: give the API key again: a stored key is only sent to the API URL it was stored with"),
        ("vi", "api_key: hãy nhập lại khóa API: khóa đã lưu chỉ được gửi tới đúng URL API đã lưu cùng nó"),
    ],
)
def test_load_topics_never_sends_the_saved_key_to_a_url_typed_in_the_form(created, language, words):
    token = csrf_of(created.get("/admin/connections/shop-hcm"))
    headers = {"X-CSRFToken": token, "Accept-Language": language}
    with requests_mock.Mocker() as mock:
        resp = created.post("/admin/topics", json={"connection_id": "shop-hcm", "api_url": FOREIGN}, headers=headers)
    assert resp.status_code == 400 and resp.get_json() == {"error": words}
    assert mock.request_history == []


def test_saving_a_new_api_url_without_its_key_is_refused_next_to_the_key(created, console_settings, redis):
    from app.bridge.secrets_at_rest import sealer_for
    from app.connections.store import ConnectionStore

    edit = {k: v for k, v in FORM.items() if k != "id" and k not in SECRETS}
    edit["freshchat.api_url"] = FOREIGN
    resp = post_form(created, "/admin/connections/shop-hcm", edit, "/admin/connections/shop-hcm")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert re.search(r'id="error-freshchat-api_key"[^>]*>give the API key again: a stored key is only sent', page)
    conn = ConnectionStore(redis, console_settings, sealer_for(console_settings)).get("shop-hcm")
    assert (conn.settings.freshchat_api_url, conn.settings.freshchat_api_key) == (FC_HCM, SECRETS["freshchat.api_key"])
    edit["freshchat.api_key"] = "SECRET-new-account-key-Zt5"
    assert post_form(created, "/admin/connections/shop-hcm", edit, "/admin/connections/shop-hcm").status_code == 302
    conn = ConnectionStore(redis, console_settings, sealer_for(console_settings)).get("shop-hcm")
    assert (conn.settings.freshchat_api_url, conn.settings.freshchat_api_key) == (FOREIGN, "SECRET-new-account-key-Zt5")


def test_the_verification_file_uploaded_on_the_page_is_served_at_its_path(created):
    html = b'<html><head><meta property="zalo-platform-site-verification" content="Ab12" /></head></html>'
    token = csrf_of(created.get("/admin/connections/shop-hcm"))
    resp = created.post(
        "/admin/connections/shop-hcm/verification",
        data={"csrf_token": token, "file": (BytesIO(html), "zalo_verifierAb12.html")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 302
    page = created.get("/admin/connections/shop-hcm").get_data(as_text=True)
    assert "Verification file stored" in page and "zalo_verifierAb12.html" in page
    assert created.get("/zalo_verifierAb12.html").data == html
    bad = {"csrf_token": token, "file": (BytesIO(html), "index.html")}
    created.post("/admin/connections/shop-hcm/verification", data=bad, content_type="multipart/form-data")
    assert "Not stored" in created.get("/admin/connections/shop-hcm").get_data(as_text=True)


def test_the_form_lists_zalos_events_and_the_webhook_retry_advice(created):
    page = created.get("/admin/connections/shop-hcm").get_data(as_text=True)
    assert 'id="event-user_send_text"' in page and 'id="event-follow"' in page
    assert str(escape(webhook_retry_advice("en"))) in page
