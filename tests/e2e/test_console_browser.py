"""The admin console (/admin/) in a real headless Chromium, against real processes: gunicorn web
and a worker from the Procfile in sandbox mode (no partner credentials; ADMIN_TOKEN set, which
sandbox mode leaves unset), a throw-away Redis, and the simulators as `python -m sandbox` builds
them, plus one more OA (of its own Zalo app) with its own FreshChat account: the shop this test
connects through the console, as an operator would.

Its path: a wrong token, then the right one; add the connection (its topic picked from the
loaded topics), upload Zalo's verification file, "Connect with Zalo" through the simulator's
consent page, "Test connection", Activate; the shop's Zalo user writes and the dashboard shows
it relayed; FreshChat refuses the next message, which becomes a dead letter, replayed from the
events page and delivered; sign out. On the way it saves a screenshot of every page to
test-artifacts/ (`python -m tests.e2e.screenshots` writes them to docs/ instead)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests

from config.sandbox import sandbox_keypair
from sandbox.connections import SECOND_PREFIX, add_second_oa, second_freshchat
from sandbox.freshchat_sim import FreshchatSimulator
from sandbox.procs import ROOT, wait_until
from sandbox.server import start_in_thread
from tests.e2e.test_browser import sandbox_bridge
from tests.e2e.test_connections import user_messages
from tests.e2e.test_delivery import send_until_accepted

ADMIN_TOKEN = "e2e-console-admin-token-Wq72"
SHOP_ID, SHOP_NAME = "shop-hcm", "Shop HCM"
SHOP_OA = {
    "app_id": "3000000000000000013",
    "app_secret": "shop-hcm-app-secret",
    "oa_id": "4000000000000000014",
    "oa_secret_key": "shop-hcm-oa-secret-key",
}
SHOP_PREFIX = "/freshchat-shop"
SHOP_ACCOUNT = {"api_key": "shop-hcm-freshchat-api-key", "channel_id": "shop-hcm-zalo"}
SALES_TOPIC = "shop-hcm-sales"  # another topic of the account: the picker must offer a choice
USER = "5550000000000000055"
FIRST, SECOND = "Chào Shop HCM, áo dài còn size M không?", "Shop gửi mình bảng size nhé"
ANSWER = "Dạ còn ạ, bạn mặc size M vừa đẹp!"
VERIFIER = ROOT / "tests/fixtures/zalo/verification/zalo_verifierQk3Vt9LmZ2xR_shop-hcm.html"
SHOTS = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR") or ROOT / "test-artifacts")
DESKTOP, PHONE = 1280, (390, 844)


@pytest.fixture
def world(redis_server, redis, tmp_path):
    """(bridge, the shop's Zalo OA, the shop's FreshChat account), everything running."""
    private_pem, _ = sandbox_keypair(tmp_path)  # the sandbox's own FreshChat key, shared with the web
    shop_fc = FreshchatSimulator(SHOP_ACCOUNT["channel_id"], SHOP_ACCOUNT["api_key"])
    shop_fc.add_channel(SALES_TOPIC, "Bán hàng")
    accounts = {SECOND_PREFIX: second_freshchat(tmp_path), SHOP_PREFIX: shop_fc}
    base, zalo, _, stop = start_in_thread(settings={"freshchat_private_key": private_pem}, freshchat_accounts=accounts)
    add_second_oa(zalo)
    shop_oa = zalo.add_oa(**SHOP_OA)
    shop_oa.add_user(USER, "Thu Trang")
    bridge = sandbox_bridge(tmp_path, redis_server.url, base)
    bridge.env["ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        yield bridge.start_all(), shop_oa, shop_fc
    finally:
        bridge.stop(signal.SIGKILL)  # nothing is asked of how it stops
        stop()


# -- reading and driving pages ----------------------------------------------------------------------


def present(driver, element_id: str) -> bool:
    return bool(driver.find_elements("id", element_id))


def text_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).text


def value_of(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).get_attribute("value")


def fill(driver, element_id: str, value: str) -> None:
    field = driver.find_element("id", element_id)
    field.clear()
    field.send_keys(value)


def click_then_see(driver, button_id: str, element_id: str, timeout: float = 10) -> None:
    """Click, then wait for an element of the page the click leads to."""
    driver.find_element("id", button_id).click()
    wait_until(lambda: present(driver, element_id), timeout=timeout, what=f"#{element_id} after #{button_id}")


def reloaded_until(driver, check, what: str, timeout: float = 10) -> None:
    """Server-rendered pages show the state they were rendered with: reload until `check` holds."""

    def fresh() -> bool:
        driver.refresh()
        return check()

    wait_until(fresh, timeout=timeout, interval=0.2, what=what)


def shoot(driver, name: str, width: int = DESKTOP, height: int | None = None, mobile: bool = False) -> None:
    """The page at `width` CSS pixels: all of it, or the first `height` pixels (a phone's screen)."""
    metrics = {"width": width, "height": height or 100, "deviceScaleFactor": 1, "mobile": mobile}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    if height is None:  # the content's height at that width (a low screen first: no empty margin)
        metrics["height"] = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    overflow = driver.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
    SHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SHOTS / name))
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert overflow <= 0, f"{name}: the page is {overflow}px wider than the screen"


# -- the operator's path ----------------------------------------------------------------------------


def sign_in(driver, url: str) -> None:
    driver.get(url + "/admin/")
    wait_until(lambda: "/admin/sign-in" in driver.current_url, what="the sign-in page")
    shoot(driver, "console-sign-in.png")
    fill(driver, "token", "not-the-admin-token")
    click_then_see(driver, "sign-in", "sign-in-error")
    assert text_of(driver, "sign-in-error") == "Wrong token."
    fill(driver, "token", ADMIN_TOKEN)
    click_then_see(driver, "sign-in", "add-connection")


def add_connection(driver, url: str, shop_fc) -> None:
    """The form, in the order of Zalo's pages; the topic comes from "Load topics"."""
    from selenium.webdriver.support.select import Select

    click_then_see(driver, "add-connection", "f-id")
    fields = {
        "f-id": SHOP_ID,
        "f-name": SHOP_NAME,
        "f-zalo-app_id": SHOP_OA["app_id"],
        "f-zalo-app_secret": SHOP_OA["app_secret"],
        "f-zalo-oa_secret_key": SHOP_OA["oa_secret_key"],
        "f-zalo-oa_id": SHOP_OA["oa_id"],
        "f-freshchat-api_url": shop_fc.base_url + "/v2",
        "f-freshchat-api_key": SHOP_ACCOUNT["api_key"],
        "f-freshchat-webhook_public_key": shop_fc.public_key_pem_rsa_label,
    }
    for element_id, value in fields.items():
        fill(driver, element_id, value)
    driver.find_element("id", "load-topics").click()
    wait_until(lambda: driver.find_element("id", "topics").is_displayed(), what="the loaded topics")
    Select(driver.find_element("id", "topics")).select_by_value(SALES_TOPIC)
    Select(driver.find_element("id", "topics")).select_by_value(SHOP_ACCOUNT["channel_id"])
    assert value_of(driver, "f-freshchat-channel_id") == SHOP_ACCOUNT["channel_id"]
    click_then_see(driver, "save", "connect-zalo")
    assert driver.current_url == f"{url}/admin/connections/{SHOP_ID}"
    assert value_of(driver, "url-zalo-webhook") == url + "/webhooks/zalo"
    assert value_of(driver, "url-oauth-callback") == url + "/oauth/zalo/callback"
    assert value_of(driver, "url-freshchat-webhook") == f"{url}/webhooks/freshchat/{SHOP_ID}"


def upload_verification(driver, url: str) -> None:
    driver.find_element("id", "verification-file").send_keys(str(VERIFIER))
    click_then_see(driver, "verification-upload", "verifiers")
    served = requests.get(f"{url}/{VERIFIER.name}", timeout=5)
    assert served.status_code == 200 and served.content == VERIFIER.read_bytes()


def connect_test_activate(driver, shop_oa) -> None:
    """Zalo's consent page (the simulator approves at once) sends the browser back with a code."""
    click_then_see(driver, "connect-zalo", "zalo-outcome")
    assert text_of(driver, "zalo-outcome") == "Zalo OA connected: the token pair is stored."
    assert shop_oa.code_exchanges == 1 and text_of(driver, "token-pair").startswith("alive")
    click_then_see(driver, "test-connection", "test-result")
    for side in ("zalo", "freshchat"):
        result = driver.find_element("id", f"test-{side}")
        assert result.get_attribute("class") == "good" and ": works" in result.text, result.text
    shoot(driver, "console-connection.png")
    click_then_see(driver, "activate", "deactivate")
    assert text_of(driver, "connection-state") == "active"


def write(url: str, shop_oa, text: str) -> None:
    """The shop's Zalo user writes, to the webhook URL the form gave to paste into Zalo."""
    hook = url + "/webhooks/zalo"
    # Posted again while refused, as Zalo does: a web process learns of a new connection
    # within a few seconds (Registry.REFRESH_SECONDS), and this one was activated just now.
    send_until_accepted(shop_oa, hook, lambda: shop_oa.send_text(hook, USER, text))


def reply(hook: str, shop_fc, text: str) -> None:
    conversation = user_messages(shop_fc, FIRST)[0]["conversation_id"]
    send_until_accepted(shop_fc, hook, lambda: shop_fc.send_agent_message(hook, conversation, text))


def sent_to_the_user(shop_oa, text: str) -> bool:
    return any(m["message"].get("text") == text for m in shop_oa.messages_to(USER))


def relayed_on_the_dashboard(driver, url: str, shop_oa, shop_fc) -> None:
    """One message each way; the dashboard counts them, and both partners' webhooks arrived."""
    write(url, shop_oa, FIRST)
    wait_until(lambda: user_messages(shop_fc, FIRST), what="the message in the shop's FreshChat")
    reply(value_of(driver, "url-freshchat-webhook"), shop_fc, ANSWER)
    wait_until(lambda: sent_to_the_user(shop_oa, ANSWER), what="the reply on the user's phone")
    driver.get(url + "/admin/")
    reloaded_until(
        driver,
        lambda: text_of(driver, f"relayed-{SHOP_ID}") == "Zalo → FreshChat: 1 · FreshChat → Zalo: 1",
        what="one message relayed each way on the dashboard",
    )
    assert not present(driver, f"problems-{SHOP_ID}"), text_of(driver, f"problems-{SHOP_ID}")
    assert text_of(driver, f"token-{SHOP_ID}").startswith("alive, access token expires in 25 hours")
    # the environment's pair was seeded, never given by Zalo nor tested: not called alive
    assert text_of(driver, "token-default") == "stored, not yet accepted by Zalo: test the connection"
    assert text_of(driver, f"dead-{SHOP_ID}") == "0"
    shoot(driver, "console-dashboard.png")
    shoot(driver, "console-dashboard-phone.png", *PHONE, mobile=True)


def switch_language(driver) -> None:
    driver.find_element("id", "lang-vi").click()
    wait_until(lambda: driver.find_element("tag name", "html").get_attribute("lang") == "vi", what="Vietnamese")
    assert text_of(driver, "add-connection") == "Thêm kết nối"
    driver.find_element("id", "lang-en").click()
    wait_until(lambda: driver.find_element("tag name", "html").get_attribute("lang") == "en", what="English")


def row_of(driver, text: str) -> str:
    """The state class of the events list's row holding `text` ("" when none does)."""
    return driver.execute_script(
        "const row = [...document.querySelectorAll('#event-list tbody tr')]"
        ".find(r => r.innerText.includes(arguments[0])); return row ? row.className : ''",
        text,
    )


def dead_letter_replayed(driver, url: str, shop_oa, shop_fc) -> None:
    """FreshChat refuses the next message for good (HTTP 400): a dead letter, at once."""
    shop_fc.faults.fail_next("message_create", 1, "http400")
    write(url, shop_oa, SECOND)
    reloaded_until(driver, lambda: text_of(driver, f"dead-{SHOP_ID}") == "1", what="the dead letter on the dashboard")
    driver.find_element("css selector", f"#dead-{SHOP_ID} a").click()
    wait_until(lambda: present(driver, "dead-letter-form"), what="the events page")
    assert row_of(driver, SECOND) == "state-failed" and "HTTP 400" in text_of(driver, "event-list")
    shoot(driver, "console-events.png")
    driver.find_element("css selector", "button[name=replay_one]").click()
    wait_until(lambda: present(driver, "no-dead-letters"), what="no dead letter left")
    wait_until(lambda: user_messages(shop_fc, SECOND), what="the replayed message in the shop's FreshChat")
    reloaded_until(driver, lambda: row_of(driver, SECOND) == "state-delivered", what="the replayed event delivered")


def sign_out(driver, url: str) -> None:
    click_then_see(driver, "sign-out", "sign-in")
    driver.get(url + "/admin/")
    wait_until(lambda: "/admin/sign-in" in driver.current_url, what="signed out")


def test_operator_connects_an_oa_and_replays_a_dead_letter_in_headless_chromium(browser, world):
    bridge, shop_oa, shop_fc = world
    started = time.monotonic()
    sign_in(browser, bridge.url)
    add_connection(browser, bridge.url, shop_fc)
    upload_verification(browser, bridge.url)
    connect_test_activate(browser, shop_oa)
    relayed_on_the_dashboard(browser, bridge.url, shop_oa, shop_fc)
    switch_language(browser)
    dead_letter_replayed(browser, bridge.url, shop_oa, shop_fc)
    sign_out(browser, bridge.url)
    print(f"\nconsole walk-through: {time.monotonic() - started:.1f} s; screenshots in {SHOTS}")
