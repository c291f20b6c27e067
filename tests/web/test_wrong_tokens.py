"""Wrong tokens: one throttle per real client for the console's sign-in and every bearer route
(app/web/wrong_tokens.py), the real client behind TRUSTED_PROXIES (app/web/proxies.py), one audit line
per event (with the client's address, never a token), sign-out on the server, and a `next=`
that cannot split a header."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from app import create_app
from app.bridge import keys
from app.web.wrong_tokens import FREE_FAILURES

ADMIN = "admin-token-for-the-throttle-Qx81Lm"
METRICS = "metrics-token-for-the-throttle-Vb27Kd"
WRONG = "a-wrong-guess-of-the-token-Hj5Df6"
PROXY = "10.9.0.2"  # the reverse proxy in front, in TRUSTED_PROXIES
ALICE, BOB = "203.0.113.5", "198.51.100.7"
# Every bearer route: its answer to a wrong token, and the token that opens it.
BEARER_ROUTES = [
    ("/api/connections", 401, ADMIN),
    ("/admin/status", 404, ADMIN),
    ("/oauth/zalo/start", 404, ADMIN),
    ("/metrics", 401, METRICS),
]


@pytest.fixture
def guarded(settings):
    return replace(settings, admin_token=ADMIN, metrics_token=METRICS, trusted_proxies="10.9.0.0/24")


@pytest.fixture
def web(guarded):
    return create_app(guarded).test_client()


@pytest.fixture
def direct(guarded):
    """No proxy in front: TRUSTED_PROXIES unset."""
    return create_app(replace(guarded, trusted_proxies="")).test_client()


def through(client: str | None, peer: str = PROXY, **headers) -> dict:
    """The WSGI environ of a request from `peer`, forwarding for `client`."""
    environ = {"REMOTE_ADDR": peer}
    if client:
        environ["HTTP_X_FORWARDED_FOR"] = client
    return environ | {f"HTTP_{k.upper()}": v for k, v in headers.items()}


def bearer(web, path: str, token: str, environ: dict):
    return web.get(path, headers={"Authorization": f"Bearer {token}"}, environ_base=environ)


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def sign_in(web, token: str, environ: dict, **form):
    page = web.get("/admin/sign-in", environ_base=environ)
    data = {"csrf_token": csrf_of(page), "token": token, **form}
    return web.post("/admin/sign-in", data=data, environ_base=environ)


def audit_lines(caplog) -> list[dict]:
    return [
        {k: v for k, v in r.__dict__.items() if k in ("msg", "client", "route", "door", "wait_seconds")}
        for r in caplog.records
        if r.name == "bridge.audit"
    ]


def assert_no_token_logged(caplog, *tokens: str) -> None:
    for record in caplog.records:
        text = record.getMessage() + " " + " ".join(str(v) for v in record.__dict__.values())
        assert not any(t in text for t in tokens), record


# -- the real client behind a trusted proxy ---------------------------------------------------------


def test_behind_a_trusted_proxy_five_wrong_tokens_from_one_client_never_lock_out_another(web):
    for _ in range(FREE_FAILURES - 1):
        assert sign_in(web, WRONG, through(ALICE)).status_code == 401
    assert sign_in(web, WRONG, through(ALICE)).status_code == 429
    assert sign_in(web, ADMIN, through(ALICE)).status_code == 429
    assert sign_in(web, ADMIN, through(BOB)).status_code == 302  # same proxy, another client
    assert bearer(web, "/api/connections", ADMIN, through(BOB)).status_code == 200


def test_the_client_is_the_first_untrusted_address_from_the_right(web, redis):
    # nginx appends what it saw; what the client wrote itself stands to the left and is not read.
    forged = f"192.0.2.1, {ALICE}, 10.9.0.7"  # 10.9.0.7: a second trusted proxy
    for _ in range(FREE_FAILURES):
        sign_in(web, WRONG, through(forged))
    assert redis.exists(keys.signin_wait(ALICE)) and not redis.exists(keys.signin_wait("192.0.2.1"))
    assert redis.exists(keys.signin_failures("10.9.0.7")) == 0


def test_without_trusted_proxies_a_forged_forwarded_for_does_not_dodge_the_throttle(direct, redis):
    for n in range(FREE_FAILURES):
        resp = bearer(direct, "/api/connections", WRONG, through(f"192.0.2.{n}", peer=ALICE))
    assert resp.status_code == 429
    assert bearer(direct, "/api/connections", ADMIN, through("192.0.2.99", peer=ALICE)).status_code == 429
    assert redis.exists(keys.signin_wait(ALICE)) == 1


def test_an_untrusted_peer_is_not_believed_either(web, redis):
    for n in range(FREE_FAILURES):
        resp = sign_in(web, WRONG, through(f"192.0.2.{n}", peer=ALICE))
    assert resp.status_code == 429 and redis.exists(keys.signin_wait(ALICE)) == 1
    assert sign_in(web, ADMIN, through(BOB)).status_code == 302


def test_the_scheme_a_trusted_proxy_saw_makes_the_cookie_secure_and_only_then(guarded):
    app = create_app(replace(guarded, public_base_url="http://bridge.internal:8000"))

    def first_page(environ):  # a new browser each time: its first page sets the cookie
        return app.test_client().get("/admin/sign-in", environ_base=environ)

    forged = first_page(through(ALICE, peer=BOB, x_forwarded_proto="https"))
    assert "Secure" not in forged.headers["Set-Cookie"] and "Strict-Transport-Security" not in forged.headers
    resp = first_page(through(ALICE, x_forwarded_proto="https"))
    assert "Secure" in resp.headers["Set-Cookie"] and "Strict-Transport-Security" in resp.headers
    assert "Secure" not in first_page(through(ALICE, x_forwarded_proto="http")).headers["Set-Cookie"]


# -- every bearer route shares the throttle ----------------------------------------------------------


@pytest.mark.parametrize(("path", "refused", "right"), BEARER_ROUTES)
def test_each_bearer_route_is_throttled_after_five_wrong_tokens(web, caplog, path, refused, right):
    for _ in range(FREE_FAILURES - 1):
        assert bearer(web, path, WRONG, through(ALICE)).status_code == refused
    resp = bearer(web, path, WRONG, through(ALICE))
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "2"
    assert resp.get_json() == {"error": "too many wrong tokens; try again in 2 seconds"}
    assert resp.headers["Cache-Control"] == "no-store"
    assert bearer(web, path, right, through(ALICE)).status_code == 429  # the wait is no oracle
    assert bearer(web, path, right, through(BOB)).status_code in (200, 302)
    wrong = {"msg": "bearer_wrong_token", "client": ALICE, "route": path}
    throttled = {"msg": "throttled", "client": ALICE, "door": path, "wait_seconds": 2}
    assert audit_lines(caplog) == [wrong] * FREE_FAILURES + [throttled]
    assert_no_token_logged(caplog, WRONG, right)


def test_one_throttle_for_every_door(web):
    for path, _, _ in BEARER_ROUTES + [("/api/status", 0, 0)]:
        bearer(web, path, WRONG, through(ALICE))
    assert sign_in(web, ADMIN, through(ALICE)).status_code == 429


def test_a_request_without_a_token_is_refused_but_not_counted(web, redis):
    for _ in range(2 * FREE_FAILURES):
        assert web.get("/api/connections", environ_base=through(ALICE)).status_code == 401
        assert web.get("/metrics", headers={"Authorization": f"Basic {WRONG}"}).status_code == 401
    assert redis.keys("zfb:console:signin:*") == []
    assert sign_in(web, ADMIN, through(ALICE)).status_code == 302


# -- the console: audit lines, sign-out on the server, next= -----------------------------------------


def test_sign_in_wrong_token_throttled_and_sign_out_each_leave_one_line(web, caplog):
    for _ in range(FREE_FAILURES):
        sign_in(web, WRONG, through(BOB))
    assert sign_in(web, ADMIN, through(ALICE)).status_code == 302
    page = web.get("/admin/", environ_base=through(ALICE))
    web.post("/admin/sign-out", data={"csrf_token": csrf_of(page)}, environ_base=through(ALICE))
    assert audit_lines(caplog) == [{"msg": "sign_in_failed", "client": BOB}] * FREE_FAILURES + [
        {"msg": "throttled", "client": BOB, "door": "sign_in", "wait_seconds": 2},
        {"msg": "sign_in", "client": ALICE},
        {"msg": "sign_out", "client": ALICE},
    ]
    assert_no_token_logged(caplog, WRONG, ADMIN)


def test_a_cookie_copied_before_sign_out_stops_working(guarded, web, redis):
    assert sign_in(web, ADMIN, through(ALICE)).status_code == 302
    copied = web.get_cookie("zfb_admin", path="/admin").value
    thief = create_app(guarded).test_client()
    thief.set_cookie("zfb_admin", copied, path="/admin")
    assert thief.get("/admin/").status_code == 200  # a valid session, until…
    web.post("/admin/sign-out", data={"csrf_token": csrf_of(web.get("/admin/"))})
    resp = thief.get("/admin/")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/admin/sign-in")
    assert redis.keys("zfb:console:session:*") == []


def test_a_session_lives_in_redis_as_long_as_the_cookie(web, redis):
    sign_in(web, ADMIN, through(ALICE))
    (key,) = redis.keys("zfb:console:session:*")
    assert 12 * 3600 - 60 < redis.ttl(key) <= 12 * 3600


@pytest.mark.parametrize("path", ["/admin/sign-in", "/admin/language/vi"])
def test_a_line_break_in_next_is_a_400_not_a_500(web, caplog, path):
    target = "/admin/%0d%0aSet-Cookie:%20zfb_admin=forged"
    resp = web.get(f"{path}?next={target}")
    assert resp.status_code == 400 and "forged" not in str(resp.headers)
    page = web.get("/admin/sign-in")
    resp = web.post(f"/admin/sign-in?next={target}", data={"csrf_token": csrf_of(page), "token": ADMIN})
    assert resp.status_code == 400
    assert not [r for r in caplog.records if r.name == "web"]  # no traceback


def test_a_hop_that_is_no_address_ends_the_walk_and_ipv6_proxies_are_trusted_too():
    from ipaddress import ip_address

    from app.web.proxies import TrustedProxies
    from config.formats import parse_networks

    proxies = TrustedProxies(None, parse_networks("10.9.0.0/24,fd00::/8"))
    peer = ip_address("fd00::1")
    assert str(proxies.client(peer, f"{ALICE}, unknown")) == "fd00::1"  # the proxy wrote nonsense
    assert str(proxies.client(peer, "unknown, 2001:db8::7")) == "2001:db8::7"
    assert str(proxies.client(peer, "")) == "fd00::1"


def test_the_shipped_compose_trusts_its_caddy_and_no_other_address():
    from ipaddress import ip_address
    from pathlib import Path

    from app.web.proxies import TrustedProxies
    from config.formats import parse_networks

    compose = (Path(__file__).parents[2] / "docker-compose.yml").read_text()
    value = re.search(r"TRUSTED_PROXIES: \$\{CADDY_ADDRESS:-([^}]+)\}", compose).group(1)
    proxies = TrustedProxies(None, parse_networks(value))
    assert proxies.trusted(ip_address("172.31.240.10"))  # Caddy's fixed address on the compose network
    assert not proxies.trusted(ip_address("172.31.240.11"))  # another container of the stack
    assert not proxies.trusted(ip_address(ALICE)) and not proxies.trusted(ip_address("8.8.8.8"))
