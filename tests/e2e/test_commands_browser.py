"""Agent commands seen in a real headless Chromium, against the sandbox stack as real
processes: the agent types /template on the /sandbox page, the phone shows the template message
as a card and the inbox the bridge's note; the console's templates page lists the simulated
OA's approved templates."""

from __future__ import annotations

import signal

import pytest

from config.sandbox import sandbox_keypair
from sandbox.procs import answers, free_port, wait_until
from tests.e2e.test_browser import sandbox_bridge, shown, start_partners, type_into

ADMIN = "admin-token-for-the-commands-browser-test"


@pytest.fixture
def stack(redis_server, redis, tmp_path):
    sandbox_keypair(tmp_path)
    port = free_port()
    bridge = sandbox_bridge(tmp_path, redis_server.url, f"http://127.0.0.1:{port}")
    bridge.env["ADMIN_TOKEN"] = ADMIN
    partners = start_partners(tmp_path, port)
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), timeout=20, what="the simulators")
        yield bridge.start_all()
    finally:
        bridge.stop(signal.SIGKILL)
        partners.terminate()
        partners.wait(10)


def cards(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#zalo-messages .bubble.template')].map(b => b.innerText)"
    )


def test_a_template_command_on_the_sandbox_page_and_the_templates_page(browser, stack):
    browser.get(stack.url + "/sandbox")
    wait_until(lambda: shown(browser, "zalo-who", "Minh Khánh"), timeout=10, what="the demo user")
    type_into(browser, "zalo-text", "Shop ơi, đơn của em sao rồi?")
    wait_until(lambda: shown(browser, "fc-messages", "đơn của em sao rồi"), timeout=10, what="the message in the inbox")

    type_into(browser, "fc-text", "/template 412877")
    wait_until(lambda: cards(browser), timeout=15, what="the template card on the phone")
    (card,) = cards(browser)
    assert card.startswith("Cảm ơn khách hàng\nCảm ơn bạn đã tin dùng sản phẩm của chúng tôi!")
    wait_until(lambda: shown(browser, "fc-messages", "✅ Template 412877"), timeout=10, what="the note")
    assert not shown(browser, "zalo-messages", "/template")  # the command never reached the customer

    browser.get(stack.url + "/admin/sign-in")
    browser.find_element("id", "token").send_keys(ADMIN)
    browser.find_element("id", "sign-in").click()
    wait_until(lambda: "/admin/sign-in" not in browser.current_url, timeout=10, what="signed in")
    browser.get(stack.url + "/admin/connections/default/templates")
    rows = browser.execute_script("return [...document.querySelectorAll('#template-list tbody tr')].map(r => r.id)")
    assert rows == ["template-412503", "template-412877", "template-387650"]
    order = browser.find_element("id", "template-412503").text
    assert "customer_name* (≤ 30), order_code* (≤ 10), note (≤ 100)" in order and "200.0" in order
    assert browser.find_element("id", "templates-refreshed").text.startswith("Last refreshed:")
