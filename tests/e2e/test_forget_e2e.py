"""Forgetting a person with real processes (CONTRACT §7): a user writes, an agent replies, the
receipt comes; `DELETE /api/connections/default/users/<id>` leaves nothing in Redis that names
them; their next message creates a new FreshChat user with a new conversation."""

from __future__ import annotations

import pytest
import requests

from app.bridge.mapping import Mapping
from sandbox.helpers import redis_dump
from sandbox.procs import wait_until

pytestmark = pytest.mark.e2e
ADMIN = "e2e-forget-admin-token-Pk41"
PERSON, OTHER = "6300000063000003", "6400000064000004"


def users_of(fc, zalo_user: str) -> list[dict]:
    return [u for u in fc.state()["users"] if u["reference_id"].endswith(f":{zalo_user}")]


def texts_of(fc, user_id: str) -> list[str]:
    return [
        p["text"]["content"]
        for c in fc.conversations_of(user_id)
        for m in c.get("messages", [])
        for p in m["message_parts"]
        if "text" in p
    ]


def test_a_forgotten_person_leaves_nothing_and_starts_afresh(make_bridge, sims, redis):
    base, zalo, fc = sims
    bridge = make_bridge(ADMIN_TOKEN=ADMIN)
    hook = bridge.url + "/webhooks/zalo"
    zalo.send_text(hook, OTHER, "Tôi là người khác")
    zalo.send_text(hook, PERSON, "Xin hãy quên tôi sau khi trả lời")
    wait_until(
        lambda: (
            all(fc.conversations_of(u["id"]) for u in users_of(fc, PERSON) + users_of(fc, OTHER))
            and users_of(fc, PERSON)
            and users_of(fc, OTHER)
        ),
        timeout=20,
        what="both conversations",
    )
    [first] = users_of(fc, PERSON)
    [conversation] = fc.conversations_of(first["id"])
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversation["conversation_id"], "Dạ, em ghi nhận ạ")
    wait_until(lambda: zalo.messages_to(PERSON), timeout=20, what="the reply in Zalo")
    zalo.send_received(hook, PERSON)
    wait_until(lambda: not redis.exists(f"zfb:lane:in:{PERSON}"), timeout=20, what="the receipt drained")

    answer = requests.delete(
        f"{bridge.url}/api/connections/default/users/{PERSON}", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["deleted"]["zalo_user"] == 1 and body["deleted"]["conversation"] == 1
    assert body["freshchat"]["user"] == first["id"]
    names = (PERSON.encode(), first["id"].encode(), conversation["conversation_id"].encode())
    left = [
        v for v in redis_dump(redis) if v != b"zfb:forgotten" and isinstance(v, bytes) and any(n in v for n in names)
    ]
    assert left == [first["id"].encode()]  # only in the forgotten set: the old user is never linked again
    assert (
        requests.delete(
            f"{bridge.url}/api/connections/default/users/{PERSON}",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=10,
        ).status_code
        == 404
    )

    zalo.send_text(hook, PERSON, "Tôi quay lại rồi")
    wait_until(lambda: len(users_of(fc, PERSON)) == 2, timeout=20, what="a new FreshChat user")
    [again] = [u for u in users_of(fc, PERSON) if u["id"] != first["id"]]
    wait_until(
        lambda: "Tôi quay lại rồi" in texts_of(fc, again["id"]), timeout=20, what="the message in a new conversation"
    )
    assert "Tôi quay lại rồi" not in texts_of(fc, first["id"])
    assert Mapping(redis).zalo_user(OTHER)["fc_user_id"]  # the other person is still known


def test_the_events_page_forgets_a_person_after_the_box_and_the_browsers_question(make_bridge, sims, redis, browser):
    base, zalo, fc = sims
    bridge = make_bridge(ADMIN_TOKEN=ADMIN)
    zalo.send_text(bridge.url + "/webhooks/zalo", PERSON, "Xin hãy quên tôi")
    relayed = lambda: Mapping(redis).zalo_user(PERSON).get("fc_conversation_id")  # noqa: E731
    wait_until(relayed, timeout=20, what="the person relayed")
    [user] = users_of(fc, PERSON)

    browser.get(bridge.url + "/admin/sign-in")
    browser.find_element("id", "token").send_keys(ADMIN)
    browser.find_element("id", "sign-in").click()
    wait_until(lambda: browser.find_elements("id", "add-connection"), what="the dashboard")
    browser.get(bridge.url + "/admin/connections/default/events")
    browser.find_element("id", "forget-user").send_keys(PERSON)
    browser.find_element("id", "forget-submit").click()
    wait_until(lambda: _alert(browser), what="the browser's question")
    browser.switch_to.alert.accept()  # yes, but the box is not ticked: the browser holds the form
    assert browser.find_element("id", "forget-confirm").get_property("validity")["valueMissing"]
    assert browser.current_url.endswith("/admin/connections/default/events") and redis.exists(f"zfb:zu:{PERSON}")

    browser.find_element("id", "forget-confirm").click()
    browser.find_element("id", "forget-submit").click()
    wait_until(lambda: _alert(browser), what="the browser's question")
    assert browser.switch_to.alert.text == "Forget this person for good?"
    browser.switch_to.alert.accept()
    wait_until(lambda: browser.find_elements("css selector", "p.flash"), what="the answer")
    said = [p.text for p in browser.find_elements("css selector", "p.flash")]
    assert said[0].startswith(f"Zalo user {PERSON} forgotten: ") and said[0].endswith(" records deleted.")
    assert said[1] == f"FreshChat keeps its own copy (user {user['id']}): delete it in FreshChat."
    assert not redis.exists(f"zfb:zu:{PERSON}")


def _alert(browser) -> bool:
    from selenium.common.exceptions import NoAlertPresentException

    try:
        return bool(browser.switch_to.alert.text)
    except NoAlertPresentException:
        return False
