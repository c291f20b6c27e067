"""TRUSTED_PROXIES with the real web process (gunicorn, the Procfile's line): the client a
trusted proxy names is the one throttled and logged, and without it gunicorn believes no
forwarding header either."""

from __future__ import annotations

import requests

ADMIN = "e2e-trusted-proxies-admin-token-Pz41"
WRONG = "e2e-a-wrong-guess-of-the-token-Mk83"
ALICE, BOB = "203.0.113.5", "198.51.100.7"


def status(bridge, token: str, forwarded_for: str, **headers):
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": forwarded_for, **headers}
    return requests.get(bridge.url + "/api/status", headers=headers, timeout=5)


def test_behind_a_trusted_proxy_each_client_is_throttled_and_logged_on_its_own(make_bridge):
    bridge = make_bridge(workers=1, ADMIN_TOKEN=ADMIN, TRUSTED_PROXIES="127.0.0.1")
    answers = [status(bridge, WRONG, ALICE).status_code for _ in range(5)]
    assert answers == [401, 401, 401, 401, 429]
    assert status(bridge, ADMIN, ALICE).status_code == 429
    resp = status(bridge, ADMIN, BOB, **{"X-Forwarded-Proto": "https"})
    assert resp.status_code == 200 and "Strict-Transport-Security" in resp.headers
    log = (bridge.logs / "web.log").read_text()
    assert log.count(f"bearer_wrong_token audit=True client={ALICE} route=/api/status") == 5
    assert WRONG not in log and ADMIN not in log


def test_without_trusted_proxies_no_forwarding_header_is_believed(make_bridge):
    bridge = make_bridge(workers=1, ADMIN_TOKEN=ADMIN)
    answers = [status(bridge, WRONG, f"192.0.2.{n}").status_code for n in range(5)]
    assert answers == [401, 401, 401, 401, 429]  # the forged addresses did not dodge the count
    resp = status(bridge, ADMIN, BOB, **{"X-Forwarded-Proto": "https"})
    assert resp.status_code == 429 and "Strict-Transport-Security" not in resp.headers
    assert "client=127.0.0.1 route=/api/status" in (bridge.logs / "web.log").read_text()
