"""Who is who (app/bridge/mapping.py), against a real Redis."""

from __future__ import annotations

from app.bridge import mapping
from app.bridge.mapping import Mapping


def test_a_conversations_user_is_read_once_a_minute_and_an_unknown_one_each_time(redis, monkeypatch):
    users = Mapping(redis)
    assert users.conversation_user("conv-1") == ""  # unknown: not remembered
    users.link_conversation("u-1", "conv-1")
    assert users.conversation_user("conv-1") == "u-1"
    users.set_conversation("conv-1", zalo_user_id="u-2")
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


# A user's and a conversation's hash as the bridge wrote them up to fc5f0b4 (long field names).
OLD_USER = {
    "fc_user_id": "9047e655-1e83-463e-b1b6-4a44beb1f07f",
    "created": "2026-11-01T00:00:00Z",
    "prop:zalo_oa": "Shop A; Shop B",
    "user_id_by_app": "552177279717587730",
    "fc_conversation_id": "7e673110-64fc-461f-bcec-cc8e9a47a568",
    "last_ts": "1765156283123",
    "last_msg_id": "96d3cdf3af150460909",
    "last_reply_ts": "1765156283523",
    "zalo_conversation_id": "zc-1",
    "reply_refused": "96d3cdf3af150460909",
}
OLD_CONVERSATION = {"zalo_user_id": "246845883529197922", "status": "resolved", "agent_id": "agent-1"}


def test_a_hash_written_by_the_previous_version_is_read_and_rewritten_short(redis):
    users = Mapping(redis)
    redis.hset(users.keys.zalo_user("246845883529197922"), mapping=OLD_USER)
    redis.hset(users.keys.conversation("7e673110"), mapping=OLD_CONVERSATION)
    assert users.zalo_user("246845883529197922") == OLD_USER
    assert users.conversation("7e673110") == OLD_CONVERSATION
    stored = {k.decode() for k in redis.hkeys(users.keys.zalo_user("246845883529197922"))}
    assert stored == {"u", "n", "p:zalo_oa", "a", "c", "t", "m", "r", "z", "x"}
    assert {k.decode() for k in redis.hkeys(users.keys.conversation("7e673110"))} == {"u", "s", "g"}
    assert users.zalo_user("246845883529197922") == OLD_USER  # and read the same once rewritten
    assert users.conversation_user("7e673110") == "246845883529197922"


def test_a_short_field_wins_over_a_long_one_left_beside_it(redis):
    """A field written after the upgrade is newer than the long one the previous version left;
    the rewrite keeps it (HSETNX) and drops the long one."""
    users = Mapping(redis)
    key = users.keys.zalo_user("u-1")
    redis.hset(key, mapping={"last_ts": "1000", "fc_user_id": "fc-1"})
    users.touch("u-1", last_ts="2000", last_msg_id="m-2")
    assert users.zalo_user("u-1") == {"last_ts": "2000", "last_msg_id": "m-2", "fc_user_id": "fc-1"}
    assert redis.hgetall(key) == {b"t": b"2000", b"m": b"m-2", b"u": b"fc-1"}


def test_new_fields_are_written_short(redis):
    users = Mapping(redis)
    users.set_zalo_user("u-1", fc_user_id="fc-1", created="1765156283", **{"prop:zalo_oa": "Shop"})
    users.link_conversation("u-1", "conv-1")
    users.touch("u-1", last_ts="1765156283123", last_msg_id="m-1")
    users.replied("u-1", 1765156283523)
    users.set_conversation("conv-1", status="resolved", agent_id="agent-1")
    assert redis.hgetall(users.keys.zalo_user("u-1")) == {
        b"u": b"fc-1",
        b"n": b"1765156283",
        b"p:zalo_oa": b"Shop",
        b"c": b"conv-1",
        b"t": b"1765156283123",
        b"m": b"m-1",
        b"r": b"1765156283523",
    }
    assert redis.hgetall(users.keys.conversation("conv-1")) == {b"u": b"u-1", b"s": b"resolved", b"g": b"agent-1"}


def test_a_hash_deleted_before_its_rewrite_stays_deleted(redis):
    """A person forgotten between the read of their old hash and its rewrite is not brought back."""
    users = Mapping(redis)
    key = users.keys.zalo_user("u-1")
    users._rewrite(mapping.USER_FIELDS, key, {"fc_user_id": b"fc-1"})
    assert not redis.exists(key)
