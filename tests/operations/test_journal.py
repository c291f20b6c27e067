"""The event journal on a real Redis: what lanes hold, what the worker recorded, filters, caps."""

from __future__ import annotations

import pytest
import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.bridge.keys import DUE, Keys
from app.bridge.lanes import Item, Lanes, now_ms
from app.bridge.mapping import Mapping
from app.integrations import events
from app.operations import journal
from app.operations.journal import BadQuery, Journal
from sandbox.helpers import load_fixture

USER, CONV = "246845883529197922", "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
TEXT = load_fixture("zalo", "webhooks", "user_send_text.json")
IMAGE = load_fixture("zalo", "webhooks", "user_send_image.json")
AGENT = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
RESOLVED = load_fixture("freshchat", "webhooks", "conversation_resolution.json")


def item(payload: dict, item_id: str, connection: str = "default", **extra) -> Item:
    kind = "zalo" if "event_name" in payload else "freshchat"
    event = events.CONVERSATION_STATE if payload.get("action") == "conversation_resolution" else "user_message"
    return Item(item_id, kind, payload, received_at=1_700_000_000_000, event=event, connection=connection, **extra)


@pytest.fixture
def lanes(redis):
    return Lanes(redis)


def test_a_recorded_outcome_reads_back_with_every_field(redis, monkeypatch):
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_100.0)
    Journal(redis, "default").record(f"in:{USER}", item(TEXT, "zalo:m1"), "delivered")
    assert Journal(redis, "default").recent() == [
        {
            "id": "zalo:m1",
            "direction": "in",
            "kind": "user_send_text",
            "lane": f"in:{USER}",
            "zalo_user": USER,
            "conversation": None,
            "state": "delivered",
            "reason": "",
            "at": 1_700_000_100.0,
            "attempts": 0,
            "next_try": None,
            "dead_letter": None,
            "summary": "Xin chào, tôi cần hỗ trợ đơn hàng #123 🙏",
        }
    ]


def test_a_dead_letter_keeps_its_reason_and_id(redis):
    Journal(redis, "default").record(
        f"out:{CONV}",
        item(AGENT, "freshchat:a1", attempts=3),
        "failed",
        reason="permanent: -213",
        dead_letter="freshchat:a1",
    )
    [entry] = Journal(redis, "default").recent()
    assert (entry["state"], entry["reason"], entry["dead_letter"], entry["attempts"]) == (
        "failed",
        "permanent: -213",
        "freshchat:a1",
        3,
    )
    assert (entry["direction"], entry["kind"], entry["conversation"]) == ("out", "message_create", CONV)


def test_lanes_are_the_queued_received_and_retrying_items(redis, lanes):
    lane = f"in:{USER}"
    lanes.accept(lane, item(TEXT, "zalo:m1"))
    lanes.accept(lane, item(IMAGE, "zalo:m2"))
    states = lambda: {e["id"]: e["state"] for e in Journal(redis, "default").recent()}  # noqa: E731
    assert states() == {"zalo:m1": "queued", "zalo:m2": "queued"}

    token = lanes.acquire(lane)
    assert states() == {"zalo:m1": "received", "zalo:m2": "queued"}

    raw, head = lanes.head(lane)
    head.attempts, head.last_error = 1, "FreshChat answered 503"
    due = now_ms() + 60_000
    lanes.defer(lane, token, raw, head, due_ms=due)
    first = next(e for e in Journal(redis, "default").recent() if e["id"] == "zalo:m1")
    assert (first["state"], first["reason"], first["next_try"], first["attempts"]) == (
        "retrying",
        "FreshChat answered 503",
        due / 1000,
        1,
    )
    assert states()["zalo:m2"] == "queued"  # only the head is ever tried


def test_a_replayed_dead_letter_shows_as_its_lane_says(redis, lanes):
    Journal(redis, "default").record(f"in:{USER}", item(TEXT, "zalo:m1"), "failed", reason="x", dead_letter="zalo:m1")
    lanes.accept(f"in:{USER}", item(TEXT, "zalo:m1"))
    [entry] = Journal(redis, "default").recent()
    assert (entry["state"], entry["dead_letter"]) == ("queued", None)


def test_filters_by_direction_state_and_either_party(redis, lanes):
    Mapping(redis).link_conversation(USER, CONV)
    j = Journal(redis, "default")
    j.record(f"in:{USER}", item(TEXT, "zalo:m1"), "delivered")
    j.record(f"out:{CONV}", item(AGENT, "freshchat:a1"), "failed", reason="r", dead_letter="freshchat:a1")
    j.record("out:other-conv", item(AGENT, "freshchat:a2"), "delivered")
    lanes.accept("in:someone-else", item(IMAGE, "zalo:m2"))
    ids = lambda **kw: sorted(e["id"] for e in j.recent(**kw))  # noqa: E731
    assert ids(direction="in") == ["zalo:m1", "zalo:m2"]
    assert ids(direction="out", state="delivered") == ["freshchat:a2"]
    assert ids(state="queued") == ["zalo:m2"]
    # The mapping names the other side: an inbound event is found by its conversation too.
    assert ids(find=CONV) == ["freshchat:a1", "zalo:m1"]
    assert ids(find=USER) == ["freshchat:a1", "zalo:m1"]
    assert ids(find="freshchat:a2") == ["freshchat:a2"]
    assert ids(find="nobody") == []


def test_either_party_is_found_through_hashes_the_previous_version_wrote(redis):
    """The user's and the conversation's hashes with fc5f0b4's long field names."""
    k = Keys("default")
    redis.hset(k.zalo_user(USER), mapping={"fc_user_id": "fc-1", "fc_conversation_id": CONV})
    redis.hset(k.conversation(CONV), mapping={"zalo_user_id": USER, "status": "open"})
    j = Journal(redis, "default")
    j.record(f"in:{USER}", item(TEXT, "zalo:m1"), "delivered")
    j.record(f"out:{CONV}", item(AGENT, "freshchat:a1"), "delivered")
    assert sorted(e["id"] for e in j.recent(find=CONV)) == ["freshchat:a1", "zalo:m1"]
    assert sorted(e["id"] for e in j.recent(find=USER)) == ["freshchat:a1", "zalo:m1"]


def test_newest_first_and_limited(redis, monkeypatch):
    j = Journal(redis, "default")
    for n in range(5):
        monkeypatch.setattr(journal.time, "time", lambda n=n: 1_700_000_000.0 + n)
        j.record(f"in:{USER}", item(TEXT, f"zalo:m{n}"), "delivered")
    assert [e["id"] for e in j.recent(limit=2)] == ["zalo:m4", "zalo:m3"]


def test_kept_to_the_cap_and_the_age_limit(redis, monkeypatch):
    monkeypatch.setattr(journal, "KEEP", 3)
    monkeypatch.setattr(journal, "TIDY_EVERY", 1)
    j, k = Journal(redis, "default"), Keys("default")
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_000.0)
    j.record(f"in:{USER}", item(TEXT, "zalo:old"), "delivered")
    for n in range(4):
        monkeypatch.setattr(journal.time, "time", lambda n=n: 1_700_000_000.0 + journal.MAX_AGE + 10 + n)
        j.record(f"in:{USER}", item(TEXT, f"zalo:m{n}"), "delivered")
    assert [e["id"] for e in j.recent()] == ["zalo:m3", "zalo:m2", "zalo:m1"]
    assert redis.zcard(k.journal) == redis.hlen(k.journal_items) == 3
    assert 0 < redis.ttl(k.journal) <= journal.JOURNAL_TTL and 0 < redis.ttl(k.journal_items) <= journal.JOURNAL_TTL


def test_tidied_on_the_days_first_message_and_every_nth_so_it_stays_near_the_cap(redis, monkeypatch):
    """Trimming and renewing the TTLs on every message cost 4 of its 7 commands: they run on
    each day's first message, every TIDY_EVERY-th, and on any outcome that is not a message."""
    monkeypatch.setattr(journal, "KEEP", 3)
    monkeypatch.setattr(journal, "TIDY_EVERY", 4)
    j, k = Journal(redis, "default"), Keys("default")
    sizes = []
    for n in range(9):
        monkeypatch.setattr(journal.time, "time", lambda n=n: 1_700_000_000.0 + n)
        j.record(f"in:{USER}", item(TEXT, f"zalo:m{n}"), "delivered")
        sizes.append(redis.zcard(k.journal))
    # the 1st, 5th and 9th messages of the day tidy; in between the journal grows past KEEP
    assert sizes == [1, 2, 3, 4, 3, 4, 5, 6, 3]
    assert redis.hlen(k.journal_items) == 3
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_009.0)
    j.record(f"in:{USER}", item(TEXT, "zalo:m9"), "delivered")
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_010.0)
    j.record(f"in:{USER}", item(TEXT, "zalo:m8"), "retrying", reason="HTTP 503")  # not a message: tidies
    assert redis.zcard(k.journal) == redis.hlen(k.journal_items) == 3
    assert [e["id"] for e in j.recent()] == ["zalo:m8", "zalo:m9", "zalo:m7"]


def test_an_entry_older_than_the_age_limit_is_not_shown_before_it_is_tidied(redis, monkeypatch):
    monkeypatch.setattr(journal, "TIDY_EVERY", 64)
    j = Journal(redis, "default")
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_000.0)
    j.record(f"in:{USER}", item(TEXT, "zalo:old"), "delivered")
    j.record(f"in:{USER}", item(TEXT, "zalo:new"), "delivered")  # the 2nd of the day: no tidying
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_000.5 + journal.MAX_AGE)
    assert [e["id"] for e in j.recent()] == []
    assert redis.hlen(Keys("default").journal_items) == 2  # still there, for the next tidying


def test_messages_relayed_today_count_deliveries_each_way_per_utc_day(redis, monkeypatch):
    j = Journal(redis, "shop")
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_000.0)  # 2023-11-14 UTC
    j.record(f"shop/in:{USER}", item(TEXT, "zalo:m1", "shop"), "delivered")
    j.record(f"shop/in:{USER}", item(IMAGE, "zalo:m2", "shop"), "delivered")
    j.record(f"shop/out:{CONV}", item(AGENT, "freshchat:a1", "shop"), "delivered")
    j.record(f"shop/out:{CONV}", item(RESOLVED, "freshchat:r1", "shop"), "delivered")  # not a message
    j.record(f"shop/out:{CONV}", item(AGENT, "freshchat:a2", "shop"), "failed", dead_letter="freshchat:a2")
    assert j.relayed_today() == {"in": 2, "out": 1}
    assert Journal(redis, "default").relayed_today() == {"in": 0, "out": 0}
    assert 0 < redis.ttl(Keys("shop").relayed("in", "20231114")) <= journal.COUNTER_TTL
    monkeypatch.setattr(journal.time, "time", lambda: 1_700_000_000.0 + 86400)
    assert j.relayed_today() == {"in": 0, "out": 0}


def test_each_connection_sees_its_own_lanes_and_record(redis, lanes):
    lanes.accept(f"shop/in:{USER}", item(TEXT, "zalo:m1", "shop"))
    lanes.accept(f"in:{USER}", item(IMAGE, "zalo:m2"))
    Journal(redis, "shop").record(f"shop/out:{CONV}", item(AGENT, "freshchat:a1", "shop"), "delivered")
    shop = Journal(redis, "shop").recent()
    assert {e["id"]: (e["zalo_user"], e["conversation"]) for e in shop} == {
        "freshchat:a1": (None, CONV),
        "zalo:m1": (USER, None),
    }
    assert [e["id"] for e in Journal(redis, "default").recent()] == ["zalo:m2"]


def test_summaries_are_short_and_name_attachments_not_links(redis):
    long_text = dict(TEXT, message={"msg_id": "m9", "text": "chữ " * 40})
    image_part = {"data": {"message": {"message_parts": [{"image": {"url": "https://x/secret.png"}}]}}}
    assert journal.summary(item(IMAGE, "a")) == "[image] Ảnh sản phẩm bị lỗi"
    assert journal.summary(item(dict(image_part, action="message_create"), "b")) == "[image]"
    assert journal.summary(item(RESOLVED, "c")) == "conversation_resolution"
    short = journal.summary(item(long_text, "d"))
    assert len(short) == journal.SUMMARY_CHARS and short.endswith("…")


@pytest.mark.parametrize(
    "query, field",
    [
        ({"direction": "sideways"}, "direction"),
        ({"state": "lost"}, "state"),
        ({"find": "x" * 201}, "find"),
        ({"limit": 0}, "limit"),
        ({"limit": journal.MAX_LIMIT + 1}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_a_query_that_makes_no_sense_is_refused(redis, query, field):
    with pytest.raises(BadQuery) as refused:
        Journal(redis, "default").recent(**query)
    assert refused.value.field == field


def test_recording_never_fails_the_item():
    away = redis_lib.Redis(port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))  # refused at once
    Journal(away, "default").record(f"in:{USER}", item(TEXT, "zalo:m1"), "delivered")  # no exception


def test_the_webhook_path_writes_nothing_to_the_journal(redis, lanes):
    lanes.accept(f"in:{USER}", item(TEXT, "zalo:m1"), dedupe_key="seen", dedupe_ttl=60)
    k = Keys("default")
    assert not redis.exists(k.journal, k.journal_items) and redis.zcard(DUE) == 1
