"""Issue 14 points 4-6 through real processes (gunicorn, the worker, Redis, the simulators): an
anonymous visitor and the agent's answer both arrive, the answer is signed with the agent's
first name, and quotes travel both ways."""

from __future__ import annotations

from sandbox.procs import wait_until

USER = "8100000000000000014"
SIGNATURE = "{text}\n— {agent}"


def conversation_messages(fc, reference_end: str) -> list[dict]:
    users = [u["id"] for u in fc.state()["users"] if u["reference_id"].endswith(reference_end)]
    return [m for u in users for c in fc.conversations_of(u) for m in c["messages"]]


def texts(messages: list[dict]) -> list[str]:
    return [p["text"]["content"] for m in messages for p in m["message_parts"] if "text" in p]


def test_anonymous_visitor_signed_answers_and_quotes_both_ways(make_bridge, sims):
    _, zalo, fc = sims
    bridge = make_bridge(AGENT_SIGNATURE=SIGNATURE)
    hook = bridge.url + "/webhooks/zalo"
    agent = fc.add_agent("5c1e7a2b-0000-4000-8000-0000000000aa", "Lan", "Nguyễn")["id"]
    zalo.echo_url = hook  # Zalo echoes every send; the bridge must recognise its own

    # an anonymous visitor of the web chat widget writes, and becomes a FreshChat user
    anonymous_id, zalo_conversation = zalo.visitor_of(USER)
    zalo.send_anonymous_event(hook, "anonymous_send_text", anonymous_id, zalo_conversation, {"text": "Còn hàng không?"})
    visitor = f":anon:{anonymous_id}"
    wait_until(lambda: conversation_messages(fc, visitor), timeout=20, what="the visitor's message in FreshChat")
    [fc_user] = [u for u in fc.state()["users"] if u["reference_id"].endswith(visitor)]
    assert fc_user["first_name"] == f"{anonymous_id[-6:]} Zalo"
    conversation = conversation_messages(fc, visitor)[0]["conversation_id"]

    # the agent's answer goes back through the anonymous-conversation API, signed
    fc.send_agent_message(bridge.url + "/webhooks/freshchat", conversation, "Dạ còn ạ.", agent_id=agent)
    wait_until(lambda: zalo.messages_to_visitor(anonymous_id), timeout=20, what="the answer to the visitor")
    [answer] = zalo.messages_to_visitor(anonymous_id)
    assert answer["recipient"] == {"anonymous_id": anonymous_id, "conversation_id": zalo_conversation}
    assert answer["message"] == {"text": "Dạ còn ạ.\n— Lan"}

    # its oa_send_anonymous_* echo is dropped: a later message on the same lane arrives, no note before it
    wait_until(
        lambda: any(w["event_name"] == "oa_send_anonymous_text" for w in zalo.state()["webhooks"]),
        timeout=10,
        what="the echo",
    )
    zalo.send_anonymous_event(hook, "anonymous_send_text", anonymous_id, zalo_conversation, {"text": "Cảm ơn"})
    wait_until(lambda: "Cảm ơn" in texts(conversation_messages(fc, visitor)), timeout=20, what="the second message")
    assert not [m for m in conversation_messages(fc, visitor) if m["message_type"] == "private"]

    # a Zalo user quotes their own relayed message: FreshChat links the reply (in_reply_to)
    first = zalo.send_text(hook, USER, "Áo size M còn không?")["message"]["msg_id"]
    user_messages = lambda: [m for m in conversation_messages(fc, ":" + USER) if m["actor_type"] == "user"]  # noqa: E731
    wait_until(user_messages, timeout=20, what="the user's message in FreshChat")
    zalo.send_user_event(hook, "user_send_text", USER, {"text": "Màu đỏ nhé", "quote_msg_id": first})
    wait_until(lambda: len(user_messages()) == 2, timeout=20, what="the user's quote in FreshChat")
    relayed, quote = user_messages()
    assert quote["in_reply_to"] == {"message_id": relayed["id"]}

    # an agent answering that relayed message: Zalo gets a quote of the user's message
    fc.send_agent_message(
        bridge.url + "/webhooks/freshchat",
        relayed["conversation_id"],
        "Dạ còn ạ.",
        agent_id=agent,
        in_reply_to=relayed["id"],
    )
    wait_until(lambda: zalo.messages_to(USER), timeout=20, what="the quoted answer in Zalo")
    assert [m["message"] for m in zalo.messages_to(USER)] == [{"text": "Dạ còn ạ.\n— Lan", "quote_message_id": first}]
