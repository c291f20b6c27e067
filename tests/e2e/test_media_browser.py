"""A copied file never runs as a page on the bridge's origin, in headless Chromium.

A partner serves an HTML page with a script under a Content-Type a browser could take as HTML
(tests/media/hostile.py); it goes through the real flow, gunicorn and the worker and the
simulators, both ways: a Zalo user's image and file (copied from Zalo's CDN) and an agent's
attachment (downloaded from FreshChat). Chromium then opens the /media link the other side got;
the script must not have run, and the answer must say what the bridge chose. One bridge and one
browser for every case, so the whole file takes seconds."""

from __future__ import annotations

import signal
import tempfile

import pytest
import redis
import requests

from sandbox.procs import Bridge, wait_until
from tests.e2e.conftest import CHROMIUM_FLAGS, browser_or_skip
from tests.e2e.test_message_types_e2e import from_user, link_in, only_part, open_conversation
from tests.media.hostile import HOSTILE_TYPES, SCRIPT_PAGE
from tests.sandbox import png_bytes

CSP = "sandbox; default-src 'none'; frame-ancestors 'none'"
AGENT_USER = "8200000000000000001"  # not one of the numbered senders


@pytest.fixture(scope="module")
def world(partners, redis_server, tmp_path_factory):
    """(bridge, zalo, fc, conversation of AGENT_USER) for the whole module."""
    base, zalo, fc = partners
    zalo.reset()
    fc.reset()
    _flush(redis_server.url)  # no `redis` fixture: it would flush under the running bridge
    bridge = Bridge(redis_server.url, base, fc.public_key_pem_rsa_label, tmp_path_factory.mktemp("media"))
    try:
        bridge.start_all()
        fc.webhook_url = bridge.url + "/webhooks/freshchat"
        yield bridge, zalo, fc, open_conversation(bridge, zalo, fc, AGENT_USER)
    finally:
        fc.webhook_url = None
        bridge.stop(signal.SIGKILL)  # nothing is asked of how it stops


def _flush(url: str) -> None:
    redis.Redis.from_url(url).flushall()


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, chromedriver = browser_or_skip()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(dir=tmp_path_factory.mktemp("chromium"))
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": profile + "/downloads"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


# -- the flows ---------------------------------------------------------------------------------


def zalo_user_sends(world, kind: str, number: int, declared: str, data: bytes = SCRIPT_PAGE) -> str:
    """A Zalo user's image or file whose CDN answer says `declared`; the link FreshChat got."""
    bridge, zalo, fc, _ = world
    user, hook = f"81000000000000{number:05d}", bridge.url + "/webhooks/zalo"
    if kind == "image":
        zalo.send_image(hook, user, f"photo-{number}.png", data, declared)
    else:
        zalo.send_file(hook, user, f"page-{number}.html", data, declared)
    wait_until(lambda: from_user(fc, user), timeout=20, what=f"the {kind} in FreshChat")
    _, value = only_part(from_user(fc, user)[0])
    assert "url" in value, value
    return value["url"]


def agent_sends(world, number: int, declared: str) -> str:
    """An agent's attachment whose FreshChat answer says `declared`; the link the Zalo user got."""
    bridge, zalo, fc, conversation = world
    before = len(zalo.messages_to(AGENT_USER))
    url = fc.add_asset(f"page-{number}.html", SCRIPT_PAGE, declared)
    part = {"file": {"name": "page.html", "url": url, "content_type": declared}}
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversation, [part])
    wait_until(lambda: len(zalo.messages_to(AGENT_USER)) > before, timeout=20, what="the link in Zalo")
    return link_in(zalo.messages_to(AGENT_USER)[-1]["message"]["text"])


# -- what the browser does with it ---------------------------------------------------------------


def opened(driver, url: str) -> dict:
    """Open `url` from a blank page; what the page is then, and whether the script ran."""
    driver.get("about:blank")
    driver.get(url)
    return driver.execute_script(
        "return {title: document.title, ran: window.pwned === true, type: document.contentType,"
        " scripts: document.scripts.length}"
    )


def assert_never_a_page(driver, url: str) -> None:
    answer = requests.get(url, timeout=5)
    assert answer.content == SCRIPT_PAGE
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment; ")
    assert answer.headers["Content-Security-Policy"] == CSP
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    page = opened(driver, url)
    assert not page["ran"] and page["title"] != "PWNED" and page["scripts"] == 0, page


CASES = list(enumerate(HOSTILE_TYPES))


@pytest.mark.parametrize("number, declared", CASES, ids=[t for _, t in CASES])
def test_a_zalo_users_image_never_runs(world, chromium, number, declared):
    assert_never_a_page(chromium, zalo_user_sends(world, "image", number, declared))


@pytest.mark.parametrize("number, declared", CASES, ids=[t for _, t in CASES])
def test_a_zalo_users_file_never_runs(world, chromium, number, declared):
    assert_never_a_page(chromium, zalo_user_sends(world, "file", 100 + number, declared))


@pytest.mark.parametrize("number, declared", CASES, ids=[t for _, t in CASES])
def test_an_agents_attachment_never_runs(world, chromium, number, declared):
    assert_never_a_page(chromium, agent_sends(world, number, declared))


def test_a_real_picture_still_shows_in_place(world, chromium):
    """The other direction of the rule: a picture the bytes prove is shown, whatever the header."""
    url = zalo_user_sends(world, "image", 999, "image/png,text/html", png_bytes(200))
    answer = requests.get(url, timeout=5)
    assert answer.headers["Content-Type"] == "image/png" and answer.headers["Content-Security-Policy"] == CSP
    assert answer.headers["Content-Disposition"].startswith("inline; ")
    page = opened(chromium, url)
    assert page["type"] == "image/png" and not page["ran"]
    shown = "const i = document.images[0]; return !!i && i.complete && i.naturalWidth"
    wait_until(lambda: chromium.execute_script(shown) == 1, timeout=5, what="the picture shown")
