"""Sandbox mode in a real headless Chromium: an operator adds a connection with nothing but what
the pages show. The simulators as `python -m sandbox` builds them (the default OA, the second
connection's, and a spare OA of the same app with its own FreshChat account), the Procfile's web
and worker in sandbox mode with ADMIN_TOKEN set.

Its path: sign in; the new-connection form shows the spare OA's values, pasted into the form;
save; "Connect with Zalo" opens the simulated consent page, which lists the app's OAs with the
spare one picked; Allow; back on the console the token pair is stored and alive; Activate; the
spare OA's Zalo user writes and the message arrives in the spare FreshChat account; the sandbox
page's OA picker now offers the spare OA, whose phone and inbox talk both ways."""

from __future__ import annotations

import pytest

from config.sandbox import sandbox_keypair
from sandbox.connections import (
    SECOND_OA,
    SECOND_PREFIX,
    SPARE_NAME,
    SPARE_OA,
    SPARE_PREFIX,
    add_second_oa,
    add_spare_oa,
    second_freshchat,
    spare_freshchat,
)
from sandbox.procs import wait_until
from sandbox.server import start_in_thread
from tests.e2e.test_browser import sandbox_bridge, shown, type_into
from tests.e2e.test_connections import user_messages
from tests.e2e.test_console_browser import ADMIN_TOKEN, click_then_see, fill, present, text_of, value_of
from tests.e2e.test_delivery import send_until_accepted

CONNECTION_ID = "shop-3"
USER = "5550000000000000077"
TEXT = "Chào shop, mình muốn hỏi về đơn hàng"
PASTED = (  # the form's fields, in the order the spare card lists them
    "zalo-app_id",
    "zalo-app_secret",
    "zalo-oa_secret_key",
    "zalo-oa_id",
    "freshchat-api_url",
    "freshchat-api_key",
    "freshchat-channel_id",
    "freshchat-webhook_public_key",
)


@pytest.fixture
def world(redis_server, redis, tmp_path):
    """(bridge, the spare Zalo OA, its FreshChat account), everything running."""
    private_pem, _ = sandbox_keypair(tmp_path)
    spare_fc = spare_freshchat(tmp_path)
    accounts = {SECOND_PREFIX: second_freshchat(tmp_path), SPARE_PREFIX: spare_fc}
    base, zalo, _, stop = start_in_thread(settings={"freshchat_private_key": private_pem}, freshchat_accounts=accounts)
    add_second_oa(zalo)
    spare = add_spare_oa(zalo)
    spare.add_user(USER, "Bảo Ngọc")
    bridge = sandbox_bridge(tmp_path, redis_server.url, base)
    bridge.env["ADMIN_TOKEN"] = ADMIN_TOKEN
    try:
        yield bridge.start_all(), spare, spare_fc
    finally:
        bridge.stop()
        stop()


def paste_the_shown_values(driver) -> None:
    click_then_see(driver, "add-connection", "sandbox-spare")
    fill(driver, "f-id", CONNECTION_ID)
    fill(driver, "f-name", SPARE_NAME)
    for field in PASTED:
        fill(driver, f"f-{field}", value_of(driver, f"sandbox-{field}"))
    click_then_see(driver, "save", "connect-zalo")


def allow_on_the_consent_page(driver, spare) -> None:
    """The simulated Zalo page lists the app's three OAs; the one that has not allowed it is picked."""
    click_then_see(driver, "connect-zalo", "allow")
    for oa_id in (SECOND_OA["oa_id"], spare.oa_id):
        assert present(driver, f"oa-{oa_id}")
    assert driver.find_element("id", f"oa-{spare.oa_id}").is_selected()
    assert not driver.find_element("id", f"oa-{SECOND_OA['oa_id']}").is_selected()
    click_then_see(driver, "allow", "zalo-outcome")


def test_an_operator_adds_the_spare_oa_with_the_values_the_form_shows(browser, world):
    bridge, spare, spare_fc = world
    browser.get(bridge.url + "/admin/")
    wait_until(lambda: present(browser, "token"), what="the sign-in page")
    fill(browser, "token", ADMIN_TOKEN)
    click_then_see(browser, "sign-in", "add-connection")
    paste_the_shown_values(browser)
    assert value_of(browser, "f-zalo-oa_id") == SPARE_OA["oa_id"]
    allow_on_the_consent_page(browser, spare)
    assert text_of(browser, "zalo-outcome") == "Zalo OA connected: the token pair is stored."
    assert spare.code_exchanges == 1 and text_of(browser, "token-pair").startswith("alive")
    click_then_see(browser, "activate", "deactivate")
    hook = bridge.url + "/webhooks/zalo"
    send_until_accepted(spare, hook, lambda: spare.send_text(hook, USER, TEXT))
    wait_until(lambda: user_messages(spare_fc, TEXT), what="the message in the spare FreshChat account")
    chat_on_the_sandbox_page(browser, bridge.url, spare)


def chat_on_the_sandbox_page(driver, url: str, spare) -> None:
    """The sandbox page's OA selector offers the new connection's OA; its phone and its
    FreshChat inbox talk both ways through the bridge."""
    from selenium.webdriver.support.select import Select

    driver.get(url + "/sandbox")
    # the page polls its state; a web process learns of the activation within a few seconds
    option = f"#oa option[value='{spare.oa_id}']"
    wait_until(lambda: driver.find_elements("css selector", option), timeout=15, what="the spare OA in the picker")
    Select(driver.find_element("id", "oa")).select_by_value(spare.oa_id)
    wait_until(
        lambda: shown(driver, "oa-name", SPARE_NAME) and shown(driver, "zalo-who", "Minh Khánh"), what="its phone"
    )
    type_into(driver, "zalo-text", "Gửi từ điện thoại cho OA mới")
    wait_until(
        lambda: shown(driver, "fc-messages", "Gửi từ điện thoại cho OA mới"), what="the phone's message in its inbox"
    )
    type_into(driver, "fc-text", "Dạ, OA mới đã nhận")
    wait_until(lambda: shown(driver, "zalo-messages", "Dạ, OA mới đã nhận"), what="the agent's reply on the phone")
