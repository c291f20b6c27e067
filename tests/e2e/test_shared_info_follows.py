"""What a customer shares, and follows, with real processes (issue 26 points 1, 2, 4, 7): the
simulated phone posts signed user_submit_info, unfollow and follow webhooks as Zalo does; the
FreshChat user gets the phone and properties, the agents notes; a reply refused with -213 names
the unfollow; a connection's group assigns its new conversations."""

from __future__ import annotations

from app.texts import vn_time
from sandbox.freshchat_sim import SANDBOX_GROUP
from sandbox.procs import wait_until
from tests.e2e.test_agent_view import conversation, has_note, texts

LAN = "6300000063000003"


def fc_user(fc, zalo_user: str) -> dict:
    found = [u for u in fc.state()["users"] if u["reference_id"].endswith(f":{zalo_user}")]
    return found[0] if found else {}


def props(user: dict) -> dict:
    return {p["name"]: p["value"] for p in user.get("properties") or []}


def test_shared_info_unfollow_follow_and_a_refused_reply(make_bridge, sims):
    base, zalo, fc = sims
    bridge = make_bridge(FRESHCHAT_GROUP_ID=SANDBOX_GROUP)
    hook = bridge.url + "/webhooks/zalo"
    zalo.add_user(LAN, "Lan")

    # A form shared before any message: the user and a conversation are created for it.
    answers = {"name": "Nguyễn Thị Lan", "phone": "84912345678", "address": "12 Lý Thái Tổ", "city": "Hà Nội"}
    assert zalo.send_submit_info(hook, LAN, answers).statuses == [200]
    wait_until(lambda: has_note(fc, LAN, "📇 The customer shared"), timeout=20, what="the shared-info note")
    user = fc_user(fc, LAN)
    assert user["phone"] == "+84912345678"
    assert {k: v for k, v in props(user).items() if k.startswith("shared_") or k == "zalo_oa"} == {
        "shared_name": "Nguyễn Thị Lan",
        "shared_address": "12 Lý Thái Tổ",
        "shared_city": "Hà Nội",
        "zalo_oa": f"OA {zalo.oa_id}",
    }
    assert conversation(fc, LAN)["assigned_group_id"] == SANDBOX_GROUP
    assert texts(fc, LAN, "normal") == []  # never a customer message

    # Unfollow, then a reply Zalo refuses with -213: its note names the unfollow.
    unfollow = zalo.send_follow(hook, LAN, event_name="unfollow")
    at = vn_time(int(unfollow["timestamp"]))
    wait_until(lambda: has_note(fc, LAN, f"🔕 The customer unfollowed the OA at {at}"), timeout=20, what="unfollow")
    zalo.add_user(LAN, "Lan", send_error=-213)
    replied_in = conversation(fc, LAN)["conversation_id"]
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", replied_in, "Dạ em chào chị")
    named = f"The customer unfollowed the OA at {at}."
    wait_until(
        lambda: any("-213" in t and named in t for t in texts(fc, LAN, "private")), timeout=20, what="the -213 note"
    )

    # Following again is a note too, and the record of the unfollow ends.
    zalo.send_follow(hook, LAN)
    wait_until(lambda: has_note(fc, LAN, "🔔 The customer followed the OA"), timeout=20, what="the follow note")
    assert props(fc_user(fc, LAN))["shared_name"] == "Nguyễn Thị Lan"  # later PUTs keep what was shared
