"""Every message type both ways, through real processes: gunicorn and the worker from the
Procfile, a real Redis and the simulators. Duplicates, order under failures, crashes and the
two-worker refresh race are in test_acceptance_p1.py and test_delivery.py; this file checks
what each type becomes on the other side, byte for byte."""

from __future__ import annotations

import signal

import pytest
import requests

from sandbox import zalo_sim
from sandbox.procs import wait_until
from tests.sandbox import GIF_1X1, PDF, png_bytes

USER = "8100000000000000001"
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x01" * 64
M4A = b"\x00\x00\x00\x1cftypM4A \x00\x00\x00\x00M4A mp42isom" + b"\x02\x03" * 64
ZIP = b"PK\x03\x04" + b"\x14\x00" * 40 + b"PK\x05\x06" + b"\x00" * 18


# -- helpers ------------------------------------------------------------------------------------


def fc_messages(fc, zalo_user: str) -> list[dict]:
    """Every message in the FreshChat conversations of one Zalo user, oldest first."""
    users = [u["id"] for u in fc.state()["users"] if u["reference_id"].endswith(":" + zalo_user)]
    return [m for u in users for c in fc.conversations_of(u) for m in c["messages"]]


def from_user(fc, zalo_user: str) -> list[dict]:
    return [m for m in fc_messages(fc, zalo_user) if m["actor_type"] == "user"]


def fetched(url: str) -> bytes:
    """A link as FreshChat or the Zalo user would open it."""
    resp = requests.get(url, timeout=5)
    assert resp.status_code == 200, url
    return resp.content


def open_conversation(bridge, zalo, fc, user: str = USER) -> str:
    """The user writes first, so there is a FreshChat conversation to reply in."""
    zalo.send_text(bridge.url + "/webhooks/zalo", user, "xin chào")
    wait_until(lambda: from_user(fc, user), timeout=20, what="first message in FreshChat")
    return from_user(fc, user)[0]["conversation_id"]


def zalo_received(zalo, user: str, count: int) -> list[dict]:
    wait_until(lambda: len(zalo.messages_to(user)) >= count, timeout=20, what=f"{count} messages in Zalo")
    return [m["message"] for m in zalo.messages_to(user)]


# -- a bridge of its own (before the tests sharing one, see tests/e2e/conftest.py) ----------------


@pytest.mark.parametrize(
    "env, expected",
    [
        (
            {"RESOLVE_NOTIFICATION": "true", "RESOLVE_NOTIFICATION_TEXT": "Cảm ơn bạn! Đã giải quyết."},
            ["Cảm ơn bạn! Đã giải quyết.", "barrier"],
        ),
        ({}, ["barrier"]),  # off by default: saves Zalo quota
    ],
    ids=["on", "off"],
)
def test_resolve_notification_on_and_off(make_bridge, sims, env, expected):
    _, zalo, fc = sims
    bridge = make_bridge(**env)
    conversation = open_conversation(bridge, zalo, fc)
    hook = bridge.url + "/webhooks/freshchat"
    fc.resolve(hook, conversation)
    # Same conversation, same lane: once the barrier arrives the resolution was handled.
    fc.send_agent_message(hook, conversation, "barrier")
    wait_until(
        lambda: any(m["message"].get("text") == "barrier" for m in zalo.messages_to(USER)),
        timeout=20,
        what="the barrier message",
    )
    assert [m["message"]["text"] for m in zalo.messages_to(USER)] == expected


# -- Zalo -> FreshChat ----------------------------------------------------------------------------


def send_every_type(zalo, hook: str, user: str) -> dict[str, bytes]:
    """One event of each user_send_* type, in this order; returns the media bytes by type."""
    media = {
        "image": png_bytes(300),
        "gif": GIF_1X1,
        "file": PDF,
        "sticker": png_bytes(400),
        "audio": M4A,
        "video": MP4,
    }
    cdn = zalo.add_media
    zalo.send_text(hook, user, "Xin chào 👋")
    zalo.send_image(hook, user, "photo.png", media["image"], "image/png")
    zalo.send_image(hook, user, "anim.gif", media["gif"], "image/gif")
    zalo.send_file(hook, user, "hợp đồng.pdf", media["file"])
    for kind, message in [
        ("sticker", zalo_sim.sticker_message(cdn("s.png", media["sticker"], "image/png"))),
        ("audio", zalo_sim.media_link_message("audio", cdn("v.m4a", M4A, "audio/mp4"))),
        ("video", zalo_sim.media_link_message("video", cdn("c.mp4", MP4, "video/mp4"))),
        ("location", zalo_sim.location_message("21.0285", "105.8542", "Hồ Gươm")),
        ("link", zalo_sim.link_message("https://shop.example/p/1", "Áo dài", "Size M")),
        ("business_card", zalo_sim.business_card_message("Trần Văn A", "0901234567")),
    ]:
        zalo.send_user_event(hook, f"user_send_{kind}", user, message)
    return media


def only_part(message: dict) -> tuple[str, dict]:
    (part,) = message["message_parts"]  # each of these types is exactly one part
    ((kind, value),) = part.items()
    return kind, value


def test_each_zalo_message_type_arrives_in_freshchat_with_exact_media(shared):
    bridge, zalo, fc = shared
    media = send_every_type(zalo, bridge.url + "/webhooks/zalo", USER)
    wait_until(lambda: len(from_user(fc, USER)) == 10, timeout=30, what="10 messages in FreshChat")
    parts = [only_part(m) for m in from_user(fc, USER)]
    assert [kind for kind, _ in parts] == [
        "text",
        "image",
        "image",
        "file",
        "image",
        "file",
        "file",
        "text",
        "text",
        "text",
    ]
    assert parts[0][1]["content"] == "Xin chào 👋"
    for (_, value), name in zip(parts[1:7], media, strict=True):  # same order as sent
        assert fetched(value["url"]) == media[name], name
    assert parts[3][1]["name"] == "hợp đồng.pdf" and parts[3][1]["content_type"] == "application/pdf"
    assert parts[3][1]["file_size_in_bytes"] == len(PDF)
    assert_readable_texts([value["content"] for _, value in parts[7:]])


def assert_readable_texts(texts: list[str]) -> None:
    location, link, card = texts
    assert "Hồ Gươm" in location and "21.0285, 105.8542" in location and "maps" in location
    assert "Áo dài" in link and "https://shop.example/p/1" in link
    assert "Trần Văn A" in card and "0901234567" in card


# -- FreshChat -> Zalo ----------------------------------------------------------------------------


def send_every_reply(fc, hook: str, conversation: str) -> dict[str, bytes]:
    """Agent replies of each kind, in this order; returns the attachments' bytes."""
    files = {"png": png_bytes(500), "gif": GIF_1X1, "pdf": PDF, "zip": ZIP}
    urls = {
        k: fc.add_asset(f"reply.{k}", v, ct)
        for (k, v), ct in zip(
            files.items(), ("image/png", "image/gif", "application/pdf", "application/zip"), strict=True
        )
    }
    reply = lambda parts: fc.send_agent_message(hook, conversation, parts)  # noqa: E731
    for text in ("Dạ, shop xin chào!", "ữ" * 2000, "ữ" * 2001):  # characters, not bytes, count
        reply(text)
    reply([{"image": {"url": urls["png"]}}])
    reply([{"image": {"url": urls["gif"]}}])
    reply([{"file": {"name": "báo giá.pdf", "url": urls["pdf"], "content_type": "application/pdf"}}])
    reply([{"file": {"name": "ảnh.zip", "url": urls["zip"], "content_type": "application/zip"}}])
    return files


def uploaded(zalo, message: dict) -> dict:
    payload = message["attachment"]["payload"]
    return zalo.upload(payload.get("token") or payload["elements"][0]["attachment_id"])


def link_in(text: str) -> str:
    return next(word for word in text.split() if "/media/" in word)


def test_each_agent_reply_type_reaches_zalo(shared):
    bridge, zalo, fc = shared
    user = "8100000000000000002"
    files = send_every_reply(fc, bridge.url + "/webhooks/freshchat", open_conversation(bridge, zalo, fc, user))
    text, exact, longer, png, gif, pdf, zip_link = zalo_received(zalo, user, 7)
    assert text == {"text": "Dạ, shop xin chào!"} and exact == {"text": "ữ" * 2000}
    assert len(longer["text"]) <= 2000 and fetched(link_in(longer["text"])).decode("utf-8") == "ữ" * 2001
    assert (uploaded(zalo, png)["kind"], uploaded(zalo, png)["data"]) == ("image", files["png"])
    assert (uploaded(zalo, gif)["kind"], uploaded(zalo, gif)["data"]) == ("gif", files["gif"])
    assert gif["attachment"]["payload"]["elements"][0]["width"] == 1
    assert (uploaded(zalo, pdf)["kind"], uploaded(zalo, pdf)["data"]) == ("file", files["pdf"])
    assert "attachment" not in zip_link and fetched(link_in(zip_link["text"])) == files["zip"]


# -- failures the agent must see or never notice --------------------------------------------------


def test_zalo_refusal_becomes_a_private_note_and_the_conversation_moves_on(shared):
    bridge, zalo, fc = shared
    user = "8100000000000000003"
    zalo.add_user(user, "Quốc Bảo", send_error=-230)
    conversation = open_conversation(bridge, zalo, fc, user)
    hook = bridge.url + "/webhooks/freshchat"
    fc.send_agent_message(hook, conversation, "Bạn còn cần hỗ trợ không?")
    notes = lambda: [m for m in fc_messages(fc, user) if m["message_type"] == "private"]  # noqa: E731
    wait_until(notes, timeout=20, what="a private note in FreshChat")
    note = notes()[0]["message_parts"][0]["text"]["content"]
    assert "-230" in note and "Bạn còn cần hỗ trợ không?" in note and zalo.messages_to(user) == []
    zalo.add_user(user, "Quốc Bảo")  # the user writes again: Zalo accepts replies
    fc.send_agent_message(hook, conversation, "Dạ, shop đây ạ")
    assert zalo_received(zalo, user, 1) == [{"text": "Dạ, shop đây ạ"}]  # the refused one is not retried


def test_expired_token_is_refreshed_once_and_the_new_pair_survives_a_worker_restart(shared):
    """Refresh tokens are single use: a restarted worker that went back to the configured pair
    would be refused (-216, then -14014) and the second reply would never arrive."""
    bridge, zalo, fc = shared
    user = "8100000000000000004"
    conversation = open_conversation(bridge, zalo, fc, user)
    hook = bridge.url + "/webhooks/freshchat"
    refreshes_before = zalo.state()["refresh_count"]
    zalo.expire_access_token()
    fc.send_agent_message(hook, conversation, "sau khi token hết hạn")
    zalo_received(zalo, user, 1)
    bridge.kill("worker0", signal.SIGTERM)
    bridge.start("worker0", "worker")
    fc.send_agent_message(hook, conversation, "sau khi khởi động lại")
    texts = [m["text"] for m in zalo_received(zalo, user, 2)]
    assert texts == ["sau khi token hết hạn", "sau khi khởi động lại"]
    assert zalo.state()["refresh_count"] - refreshes_before == 1
