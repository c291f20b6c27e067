"""Agent commands with real processes: an agent types /templates and /template in FreshChat (the
simulator), the bridge reads Zalo's template API and sends a template by user id (the
simulator), and answers each with a private note; a redelivered command sends nothing twice."""

from __future__ import annotations

from sandbox.procs import wait_until
from tests.e2e.test_agent_view import conversation, has_note, texts


def test_templates_and_a_template_through_the_simulators(make_bridge, sims):
    base, zalo, fc = sims
    bridge = make_bridge()
    user = "6300000063000003"
    zalo.send_text(bridge.url + "/webhooks/zalo", user, "Đơn của em tới đâu rồi ạ?")
    wait_until(lambda: conversation(fc, user), timeout=20, what="the conversation in FreshChat")
    hook, conv = bridge.url + "/webhooks/freshchat", conversation(fc, user)["conversation_id"]

    fc.send_agent_message(hook, conv, "/templates")
    wait_until(lambda: has_note(fc, user, "📋 Approved Zalo templates"), timeout=30, what="the templates note")
    (listed,) = [t for t in texts(fc, user, "private") if t.startswith("📋")]
    assert "• 412503 - Xác nhận đơn hàng - price 200.0" in listed and "398120" not in listed

    order = "/template 412503\ncustomer_name: Nguyễn Văn An\norder_code: DH-1024"
    fc.send_agent_message(hook, conv, order, duplicates=3)  # FreshChat redelivering it
    sent = "✅ Template 412503 (Xác nhận đơn hàng) was sent to the customer on Zalo. Paid from: purchase_quota"
    wait_until(lambda: has_note(fc, user, sent), timeout=30, what="the sent note")

    fc.send_agent_message(hook, conv, "/template 387650\ntime: 10:00 mai")
    refused = "⚠️ Zalo did not send template 387650 (Nhắc lịch hẹn (cũ)): this template cannot be sent by user id"
    wait_until(lambda: has_note(fc, user, refused), timeout=30, what="the -249 note")

    templates = [m["message"]["template"] for m in zalo.messages_to(user)]
    assert templates == [
        {
            "id": "412503",
            "name": "Xác nhận đơn hàng",
            "text": "Chào Nguyễn Văn An, đơn hàng DH-1024 của bạn đã được xác nhận.",
        }
    ]  # once, and no command reached the customer as a text
    assert len([t for t in texts(fc, user, "private") if t.startswith("✅")]) == 1
