"""`python -m bench.trace`: the numbers of docs/architecture.md come from two messages really delivered."""

from __future__ import annotations

from bench.trace import FC_MESSAGES, ZALO_CS, trace


def test_the_trace_follows_both_messages_to_their_partner():
    zalo_text, agent_reply = trace()

    assert zalo_text.sent == [f"POST {FC_MESSAGES}"]
    assert agent_reply.sent == [f"POST {ZALO_CS}"]
    for message, webhook in ((zalo_text, "zalo"), (agent_reply, "freshchat")):
        assert message.cross_file_calls > 0 and message.steps and message.lua
        assert {"accept", "take", "pop"} <= set(message.lua)  # queued, claimed, done
        assert message.steps[0][0] == f"app/web/webhooks/{webhook}.py"  # the route is the first step
        assert "workers/drain.py" in message.files


def test_a_plain_text_and_a_plain_reply_do_not_run_the_features_they_do_not_use():
    """Off the plain path (docs/architecture.md "What a newcomer needs to know"): each feature's
    call is made only when the message's data needs it."""
    zalo_text, agent_reply = trace()
    ran = set(zalo_text.functions) | set(agent_reply.functions)

    # anonymous web-chat visitors: the `anon:` namespace, their Zalo conversation
    assert "app/integrations/zalo/schemas.py:anonymous_id" not in ran
    assert "app/relay/inbound.py:_remember_anonymous_conversation" not in ran
    assert "app/integrations/zalo/schemas.py" not in agent_reply.files

    # the late mark: a redelivered or caught-up message says when it was sent
    assert "app/relay/inbound.py:_late_mark" not in ran

    # plainness: a message refused as built is sent again plainer (its plainer forms are built then)
    assert "app/relay/inbound.py:Outgoing.forms" not in ran

    # one FreshChat user per person across a Zalo app's OAs: an option the traced connection lacks
    assert "app/relay/people.py" not in zalo_text.files
