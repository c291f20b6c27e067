"""Never lose, leak or block a message: real processes against the simulators.

A refused image still reaches the agent, a FreshChat system message never reaches the user, a
dead attachment link tells the agent instead of blocking the conversation, a long Zalo outage
outlives the retry horizon without dead letters, and stray -32s do not stall the bridge.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from sandbox.procs import wait_until
from tests.e2e.test_delivery import END, end_of_run, report, send_until_accepted, zalo_texts
from tests.e2e.test_message_types_e2e import fetched, from_user, open_conversation
from tests.sandbox import png_bytes

ADMIN_TOKEN = "e2e-admin-token-0123456789"
OUTAGE_SECONDS = 180
RECOVERY_SECONDS = 60  # after the outage: a circuit breaker's probe interval plus the backlog
BURST_SECONDS = 90


def uid(n: int) -> str:
    return f"82{n:017d}"


def texts_of(message: dict) -> list[str]:
    return [p["text"]["content"] for p in message["message_parts"] if "text" in p]


def media_links(bridge, message: dict) -> list[str]:
    """Links into the bridge's media store, in file parts or written in text parts."""
    pattern = re.compile(re.escape(bridge.url) + r"/media/[^\s\])]+")
    in_files = [p["file"].get("url", "") for p in message["message_parts"] if "file" in p]
    return [u for u in in_files if pattern.fullmatch(u)] + [u for t in texts_of(message) for u in pattern.findall(t)]


def dead_letters(bridge) -> list[dict]:
    resp = requests.get(
        bridge.url + "/admin/dead-letters", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["dead_letters"]


def describe(letters: list[dict]) -> list[str]:
    return [f"{d['id']} ({d.get('reason', '')})" for d in letters]


def agent_replies(bridge, fc, conversations: dict[str, str], count: int) -> dict[str, list[str]]:
    """`count` replies per conversation, each conversation's in order, conversations in parallel."""
    hook = bridge.url + "/webhooks/freshchat"
    expected = {u: [f"reply {u} #{i:02d}" for i in range(count)] for u in conversations}

    def send(user):
        for text in expected[user]:
            send_until_accepted(fc, hook, lambda: fc.send_agent_message(hook, conversations[user], text))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, conversations))
    return expected


def wait_for_replies(bridge, zalo, fc, conversations, expected: dict[str, list[str]], timeout: float, label: str):
    """Wait until every reply is in Zalo (on a timeout, print what did arrive before failing),
    then until an end-of-run reply sent after them is there too: a late duplicate lands first."""

    def done():
        return all(set(v) <= set(zalo_texts(zalo, u)) for u, v in expected.items())

    try:
        wait_until(done, timeout=round(max(timeout, 0.1), 1), interval=0.5, what=f"{label}: every reply in Zalo")
    except AssertionError:
        report(label, expected, {u: zalo_texts(zalo, u) for u in expected})
        raise
    end_of_run(bridge, zalo, fc, conversations, inbound=False)


def assert_exactly_once_in_order(zalo, expected: dict[str, list[str]], label: str) -> None:
    delivered = {u: [t for t in zalo_texts(zalo, u) if t != END] for u in expected}
    assert report(label, expected, delivered) == (0, 0, 0)
    assert delivered == expected


# -- 1. a Zalo outage longer than the retry horizon (its own bridge; the tests below share one) -----


def test_three_minute_zalo_outage_past_the_retry_horizon_loses_nothing(make_bridge, sims):
    _, zalo, fc = sims
    # a 30 s horizon: only a partner-wide circuit breaker can keep the replies alive for 3 minutes
    bridge = make_bridge(RETRY_HORIZON_SECONDS="30", ADMIN_TOKEN=ADMIN_TOKEN)
    conversations = {uid(40 + n): open_conversation(bridge, zalo, fc, uid(40 + n)) for n in range(5)}
    zalo.faults.fail_fraction("*", 1.0, ["http500"])
    outage_ends = time.monotonic() + OUTAGE_SECONDS
    expected = agent_replies(bridge, fc, conversations, 4)
    while time.monotonic() < outage_ends:  # a dead letter is final, so fail as soon as one appears
        letters = dead_letters(bridge)
        assert letters == [], f"dead letters during the outage: {describe(letters)}"
        time.sleep(min(5.0, max(0.0, outage_ends - time.monotonic())))
    zalo.faults.clear()
    wait_for_replies(bridge, zalo, fc, conversations, expected, RECOVERY_SECONDS, "after the outage")
    assert_exactly_once_in_order(zalo, expected, "after the outage")
    assert describe(dead_letters(bridge)) == []


# -- 2. FreshChat refuses the image part -------------------------------------------------------


def test_image_freshchat_refuses_arrives_once_with_its_caption_and_a_working_link(shared):
    bridge, zalo, fc = shared
    user, caption, image = uid(1), "Hóa đơn tháng 5, chị xem giúp em", png_bytes(600)
    open_conversation(bridge, zalo, fc, user)
    fc.refuse_images(from_user(fc, user)[0]["actor_id"])
    zalo.send_image(bridge.url + "/webhooks/zalo", user, "hoa-don.png", image, "image/png", caption=caption)
    wait_until(lambda: len(from_user(fc, user)) >= 2, timeout=20, what="the image message in FreshChat")
    end_of_run(bridge, zalo, fc, {user: None}, outbound=False)  # a second copy (caption and link apart) lands first
    *later, end = from_user(fc, user)[1:]
    assert texts_of(end) == [END]
    assert len(later) == 1, [m["message_parts"] for m in later]
    message = later[0]
    assert any(caption in t for t in texts_of(message)), message["message_parts"]
    links = media_links(bridge, message)
    assert links, f"no {bridge.url}/media/ link in {message['message_parts']}"
    assert all(fetched(link) == image for link in links)


# -- 3. system messages from an agent actor -----------------------------------------------------


def test_system_message_from_an_agent_is_not_sent_to_zalo(shared):
    bridge, zalo, fc = shared
    user, hook = uid(2), bridge.url + "/webhooks/freshchat"
    conversation = open_conversation(bridge, zalo, fc, user)
    lan = fc.add_agent("agent-lan", "Lan")["id"]
    system = fc.send_agent_message(
        hook, conversation, "Conversation was reopened by Lan", agent_id=lan, message_type="system"
    )
    reply = fc.send_agent_message(hook, conversation, "Chào chị, em là Lan ạ", agent_id=lan)
    assert system.statuses == reply.statuses == [200]
    # one lane keeps order: once the reply is in Zalo, the system message was processed before it
    wait_until(lambda: "Chào chị, em là Lan ạ" in zalo_texts(zalo, user), timeout=20, what="the agent's reply in Zalo")
    assert zalo_texts(zalo, user) == ["Chào chị, em là Lan ạ"]


# -- 4. an agent attachment whose link is dead --------------------------------------------------


def test_dead_attachment_link_becomes_a_note_and_does_not_block_the_next_reply(shared):
    bridge, zalo, fc = shared
    user, hook, name = uid(3), bridge.url + "/webhooks/freshchat", "bao-gia-thang-5.pdf"
    conversation = open_conversation(bridge, zalo, fc, user)
    gone = {
        "name": name,
        "url": fc.base_url + "/assets/media/expired/" + name,
        "file_size_in_bytes": 48213,
        "content_type": "application/pdf",
        "file_extension": "pdf",
    }
    assert requests.get(gone["url"], timeout=5).status_code == 404
    fc.send_agent_message(hook, conversation, [{"file": gone}])

    def note_naming_the_file():
        messages = fc.conversation(conversation)["messages"]
        return [m for m in messages if m["message_type"] == "private" and any(name in t for t in texts_of(m))]

    wait_until(note_naming_the_file, timeout=10, what=f"a private note naming {name}")
    fc.send_agent_message(hook, conversation, "Em gửi lại báo giá sau nhé")
    wait_until(
        lambda: "Em gửi lại báo giá sau nhé" in zalo_texts(zalo, user), timeout=20, what="the next reply in Zalo"
    )
    assert zalo_texts(zalo, user).count("Em gửi lại báo giá sau nhé") == 1


# -- 5. stray -32s at the real rate settings -----------------------------------------------------


def test_seven_percent_rate_limit_answers_do_not_stall_400_replies(shared):
    bridge, zalo, fc = shared
    # the real ZALO_RATE_PER_MINUTE and RATE_WINDOW_SECONDS: the shared bridge's defaults
    conversations = {uid(100 + n): open_conversation(bridge, zalo, fc, uid(100 + n)) for n in range(20)}
    zalo.faults.fail_fraction("message_cs", 0.07, [-32], seed=10)
    started = time.monotonic()
    expected = agent_replies(bridge, fc, conversations, 20)
    left = BURST_SECONDS - (time.monotonic() - started)
    wait_for_replies(bridge, zalo, fc, conversations, expected, left, "7 % -32")
    assert_exactly_once_in_order(zalo, expected, "7 % -32")
