"""Who is who (app/bridge/mapping.py), against a real Redis."""

from __future__ import annotations

from app.bridge import mapping
from app.bridge.mapping import Mapping


def test_a_conversations_user_is_read_once_a_minute_and_an_unknown_one_each_time(redis, monkeypatch):
    users = Mapping(redis)
    assert users.conversation_user("conv-1") == ""  # unknown: not remembered
    users.link_conversation("u-1", "conv-1")
    assert users.conversation_user("conv-1") == "u-1"
    redis.hset(users.keys.conversation("conv-1"), "zalo_user_id", "u-2")
    assert users.conversation_user("conv-1") == "u-1"  # within the minute: no round trip
    monkeypatch.setattr(mapping, "CONVERSATION_USER_SECONDS", 0)
    assert users.conversation_user("conv-1") == "u-2"  # the minute is over: read again


def test_the_memo_of_conversations_users_is_bounded(redis, monkeypatch):
    monkeypatch.setattr(mapping, "CONVERSATION_USERS_KEPT", 2)
    users = Mapping(redis)
    for n in range(5):
        users.link_conversation(f"u-{n}", f"conv-{n}")
        assert users.conversation_user(f"conv-{n}") == f"u-{n}"
    assert len(users._users_of) <= 2
