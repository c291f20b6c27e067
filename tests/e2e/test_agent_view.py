"""What agents see, with real processes: receipts, a reaction, the reply-window note and billed
replies (sent with a note, or held with the option). Zalo's clock is moved through the
simulator's admin route, so a user's message can be 47 or 49 hours old when the bridge sees it."""

from __future__ import annotations

import requests

from app.texts import vn_time
from sandbox.procs import wait_until

HOUR = 3600


def advance(base: str, seconds: float) -> None:
    resp = requests.post(f"{base}/zalo/_sim/clock", json={"advance_seconds": seconds}, timeout=5)
    assert resp.status_code == 200, resp.text


def conversation(fc, zalo_user: str) -> dict:
    users = [u for u in fc.state()["users"] if u["reference_id"].endswith(f":{zalo_user}")]
    found = [c for u in users for c in fc.conversations_of(u["id"])]
    return found[0] if found else {}


def texts(fc, zalo_user: str, message_type: str, actor_type: str | None = None) -> list[str]:
    messages = conversation(fc, zalo_user).get("messages", [])
    wanted = [m for m in messages if m.get("message_type", "normal") == message_type]
    wanted = [m for m in wanted if actor_type in (None, m["actor_type"])]
    return [p["text"]["content"] for m in wanted for p in m["message_parts"] if "text" in p]


def has_note(fc, zalo_user: str, start: str) -> bool:
    return any(t.startswith(start) for t in texts(fc, zalo_user, "private"))


def user_writes(zalo, fc, hook: str, base: str, zalo_user: str, text: str, hours_ago: float = 0) -> str:
    """The user writes now, or with Zalo's clock moved back `hours_ago` (and then forward
    again); the message's id once it is in FreshChat."""
    advance(base, -hours_ago * HOUR)
    try:
        sent = zalo.send_text(hook, zalo_user, text)
    finally:
        advance(base, hours_ago * HOUR)
    wait_until(lambda: text in texts(fc, zalo_user, "normal", "user"), timeout=20, what=f"{text!r} in FreshChat")
    return sent["message"]["msg_id"]


def agent_replies(fc, bridge, zalo_user: str, text: str) -> None:
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversation(fc, zalo_user)["conversation_id"], text)


def test_receipts_reaction_window_note_and_billed_replies(make_bridge, sims):
    base, zalo, fc = sims
    bridge = make_bridge()
    hook = bridge.url + "/webhooks/zalo"

    # A reply, received and seen: one note says it was read, and when.
    reader = "6100000061000001"
    asked = user_writes(zalo, fc, hook, base, reader, "Cho em hỏi giá áo này")
    agent_replies(fc, bridge, reader, "Dạ, 150.000đ ạ")
    wait_until(lambda: zalo.messages_to(reader), timeout=20, what="the reply in Zalo")
    [reply] = zalo.messages_to(reader)
    assert reply["recipient"] == {"message_id": asked}  # sent as a reply to the user's message
    zalo.send_received(hook, reader)
    seen = zalo.send_seen(hook, reader)
    read = f"✓✓ Read by the customer at {vn_time(int(seen['timestamp']))}: “Dạ, 150.000đ ạ”"
    wait_until(lambda: read in texts(fc, reader, "private"), timeout=30, what="the read note")
    assert len(texts(fc, reader, "private")) == 1  # received and seen: one note

    # A reaction reaches the agent as a message from the user.
    zalo.send_reaction(hook, reader, reply["message_id"], "/-heart")
    reacted = "❤️ Reacted to “Dạ, 150.000đ ạ”"
    wait_until(lambda: reacted in texts(fc, reader, "normal", "user"), timeout=20, what="the reaction")

    # Silent for 47 h: the agents hear the free window is closing (due a few seconds from now).
    silent = "6200000062000002"
    user_writes(zalo, fc, hook, base, silent, "Còn size M không ạ?", hours_ago=47 - 3 / HOUR)
    assert not has_note(fc, silent, "⏳")
    wait_until(lambda: has_note(fc, silent, "⏳ The free reply window closes at "), timeout=30, what="window note")

    # A reply 49 h after the user's last message: Zalo bills it, the agent hears so.
    late = "6300000063000003"
    user_writes(zalo, fc, hook, base, late, "Shop ơi", hours_ago=49)
    agent_replies(fc, bridge, late, "Dạ em đây ạ")
    wait_until(lambda: has_note(fc, late, "💰 Zalo billed this reply"), timeout=20, what="billed note")
    assert [m["message"]["text"] for m in zalo.messages_to(late)] == ["Dạ em đây ạ"]
    bridge.stop()

    # With hold_billed_replies the same reply is not sent; the agent gets a note instead.
    holding = make_bridge(HOLD_BILLED_REPLIES="true")
    held = "6400000064000004"
    user_writes(zalo, fc, holding.url + "/webhooks/zalo", base, held, "Shop ơi", hours_ago=49)
    agent_replies(fc, holding, held, "Dạ em đây ạ")
    wait_until(lambda: has_note(fc, held, "⏸ Not sent"), timeout=20, what="held note")
    assert zalo.messages_to(held) == []
