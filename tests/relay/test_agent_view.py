"""What agents see: receipts, reactions, reply windows and billed replies, drained with real
Redis; the exact Zalo and FreshChat requests."""

from __future__ import annotations

import dataclasses

import pytest
import requests_mock

from app.bridge import keys, mapping
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from app.relay import agent_view, windows
from app.relay.windows import HOUR_MS
from app.texts import vn_time
from sandbox.helpers import FC_API, ZALO_API, ZALO_OA_ID, load_fixture, partners_answer_probes
from workers.context import WorkerContext
from workers.drain import Drainer

USER = "246845883529197922"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
AGENT = "1b8d2418-4f6b-4b0e-9d1c-7a5e2f3c4d5e"
CS = f"{ZALO_API}/v3.0/oa/message/cs"
POSTS = f"{FC_API}/conversations/{CONV}/messages"
USER_MSG = "96d3cdf3af150460909"


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        mock.post(POSTS, json={"id": "fc-note-1"})
        partners_answer_probes(mock)
        yield mock


def with_options(ctx, **options) -> WorkerContext:
    return WorkerContext(dataclasses.replace(ctx.settings, **options), ctx.redis)


def user_wrote(ctx, hours_ago: float) -> int:
    """A known user whose last message (USER_MSG) is `hours_ago` old; its time in ms."""
    at = now_ms() - int(hours_ago * HOUR_MS)
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    ctx.mapping.touch(USER, str(at), USER_MSG)
    return at


def zalo_event(ctx, name: str, **changes) -> str:
    """Queue a Zalo webhook fixture as the webhook does and drain its lane once."""
    event = {**load_fixture("zalo", "webhooks", f"{name}.json"), **changes}
    classified = to_event(event, oa_id=ZALO_OA_ID)
    item = Item(f"zalo:{classified.dedupe_id}", "zalo", event, now_ms(), event=classified.kind)
    ctx.lanes.accept(classified.lane, item)
    return Drainer(ctx).drain(classified.lane)


def agent_reply(ctx, texts: list[str], msg_id: str = "a834cd45-0000-4000-8000-000000000001") -> str:
    event = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")
    event["data"]["message"] = {
        **event["data"]["message"],
        "id": msg_id,
        "message_parts": [{"text": {"content": t}} for t in texts],
    }
    lane = f"out:{CONV}"
    ctx.lanes.accept(lane, Item(f"freshchat:{msg_id}", "freshchat", event, now_ms(), event="agent_message"))
    return Drainer(ctx).drain(lane)


def zalo_answers(m, *ids: str, quota: bool = True) -> None:
    fixture = "message_cs__reply_quota" if quota else "message_cs__no_quota"
    answers = []
    for zalo_id in ids:
        answer = load_fixture("zalo", "answers", f"{fixture}.json")
        answer["data"]["message_id"] = zalo_id
        answers.append({"json": answer})
    m.post(CS, answers)


def cs_bodies(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == CS]


def fc_posts(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "POST" and r.url == POSTS]


def note(text: str, **actor) -> dict:
    return {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "private",
        **(actor or {"actor_type": "system"}),
    }


def drain_timer(ctx, lane_id: str) -> str:
    return Drainer(ctx).drain(lane_id)


# -- receipts ------------------------------------------------------------------------------------


def test_replies_go_as_replies_to_the_users_last_message_and_record_their_quota(ctx, m):
    user_wrote(ctx, hours_ago=1)
    zalo_answers(m, "z-1", "z-2")
    assert agent_reply(ctx, ["Dạ, em kiểm tra ngay ạ", "Anh đợi em 5 phút nhé"]) == "empty"
    assert cs_bodies(m) == [
        {"recipient": {"message_id": USER_MSG}, "message": {"text": "Dạ, em kiểm tra ngay ạ"}},
        {"recipient": {"message_id": USER_MSG}, "message": {"text": "Anh đợi em 5 phút nhé"}},
    ]
    assert {**ctx.mapping.receipt(CONV, "z-1"), "sent_at": 0} == {
        "sent_at": 0,
        "state": "sent",
        "at": "",
        "reported": "",
        "quota": "reply",
    }
    assert ctx.mapping.sent_text("z-1") == "Dạ, em kiểm tra ngay ạ"  # what a receipts note quotes
    assert fc_posts(m) == []  # free, inside the window: nothing to tell


def test_received_then_seen_make_one_note_for_the_batch_with_the_time(ctx, m, monkeypatch):
    monkeypatch.setattr(agent_view, "RECEIPTS_NOTE_DELAY_MS", 0)
    user_wrote(ctx, hours_ago=1)
    zalo_answers(m, "41b2c3d4e5f6a7b8c9d0", "z-2")
    agent_reply(ctx, ["Dạ, em kiểm tra ngay ạ", "Anh đợi em 5 phút nhé"])
    zalo_event(ctx, "user_received_message")
    zalo_event(ctx, "user_seen_message", message={"msg_ids": ["41b2c3d4e5f6a7b8c9d0", "z-2"]})
    assert fc_posts(m) == []  # the receipts wait for their note
    assert drain_timer(ctx, keys.receipts_lane(CONV)) == "empty"
    read = "✓✓ Read by the customer at " + vn_time(1700000007000) + ": “Dạ, em kiểm tra ngay ạ” and 1 more"
    assert fc_posts(m) == [note(read)]
    zalo_event(ctx, "user_read_message__deskie")  # Deskie's name for the same event, nothing new
    assert drain_timer(ctx, keys.receipts_lane(CONV)) == "busy-or-not-due" and len(fc_posts(m)) == 1


def test_only_received_replies_get_a_received_line(ctx, m, monkeypatch):
    monkeypatch.setattr(agent_view, "RECEIPTS_NOTE_DELAY_MS", 0)
    user_wrote(ctx, hours_ago=1)
    zalo_answers(m, "41b2c3d4e5f6a7b8c9d0")
    agent_reply(ctx, ["Dạ, em kiểm tra ngay ạ"])
    zalo_event(ctx, "user_recieved_message__deskie")
    drain_timer(ctx, keys.receipts_lane(CONV))
    line = "✓ Received by the customer at " + vn_time(1700000008000) + ": “Dạ, em kiểm tra ngay ạ”"
    assert fc_posts(m) == [note(line)]


def test_a_note_waits_for_its_debounce_and_one_note_covers_what_came_meanwhile(ctx, m):
    user_wrote(ctx, hours_ago=1)
    zalo_answers(m, "41b2c3d4e5f6a7b8c9d0")
    agent_reply(ctx, ["Dạ, em kiểm tra ngay ạ"])
    zalo_event(ctx, "user_received_message")
    zalo_event(ctx, "user_seen_message")
    lane = keys.receipts_lane(CONV)
    assert ctx.redis.llen(keys.lane(lane)) == 1  # one note for both
    due = ctx.redis.zscore(keys.DUE, lane)
    assert now_ms() < due <= now_ms() + agent_view.RECEIPTS_NOTE_DELAY_MS
    assert drain_timer(ctx, lane) == "busy-or-not-due" and fc_posts(m) == []


def test_receipts_off_records_them_and_tells_nobody(ctx, m):
    off = with_options(ctx, receipts="off")
    user_wrote(off, hours_ago=1)
    zalo_answers(m, "41b2c3d4e5f6a7b8c9d0")
    agent_reply(off, ["Dạ, em kiểm tra ngay ạ"])
    zalo_event(off, "user_seen_message")
    assert off.mapping.receipt(CONV, "41b2c3d4e5f6a7b8c9d0")["state"] == "seen"
    assert ctx.redis.zscore(keys.DUE, keys.receipts_lane(CONV)) is None and fc_posts(m) == []


def test_a_receipt_never_moves_a_message_back(ctx, m):
    user_wrote(ctx, hours_ago=1)
    zalo_answers(m, "41b2c3d4e5f6a7b8c9d0")
    agent_reply(ctx, ["Dạ, em kiểm tra ngay ạ"])
    zalo_event(ctx, "user_seen_message")
    zalo_event(ctx, "user_received_message")
    assert ctx.mapping.receipt(CONV, "41b2c3d4e5f6a7b8c9d0")["state"] == "seen"


def test_a_conversations_receipts_are_one_key_keeping_the_latest_replies(ctx, m, monkeypatch):
    """However many replies a conversation gets, its receipts are one hash of the last
    RECEIPTS_KEPT, expiring: no key per reply. A receipt for a reply no longer kept is ignored."""
    monkeypatch.setattr(mapping, "RECEIPTS_KEPT", 3)
    user_wrote(ctx, hours_ago=1)
    ids = [f"z-{n}" for n in range(1, 6)]
    zalo_answers(m, *ids)
    agent_reply(ctx, [f"Dạ, câu trả lời {n}" for n in range(1, 6)])
    assert len(cs_bodies(m)) == 5
    replies = keys.DEFAULT_KEYS.replies(CONV)
    receipt_keys = [k.decode() for k in ctx.redis.scan_iter("*rec*")] + [
        k.decode() for k in ctx.redis.scan_iter("*repl*")
    ]
    assert receipt_keys == [replies]
    assert sorted(k.decode() for k in ctx.redis.hkeys(replies)) == ["z-3", "z-4", "z-5"]
    assert 0 < ctx.redis.ttl(replies) <= mapping.RECEIPT_TTL
    zalo_event(ctx, "user_seen_message", message={"msg_ids": ["z-1", "z-5"]})
    assert ctx.mapping.receipt(CONV, "z-5")["state"] == "seen" and ctx.mapping.receipt(CONV, "z-1") == {}
    assert ctx.redis.hlen(replies) == 3


# -- reactions -----------------------------------------------------------------------------------


def as_user(text: str) -> dict:
    return {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "normal",
        "actor_type": "user",
        "actor_id": FC_USER,
        "user_id": FC_USER,
    }


def test_a_reaction_reaches_the_agent_as_a_user_message_naming_the_reply(ctx, m):
    user_wrote(ctx, hours_ago=1)
    ctx.mapping.seen_now(USER)
    ctx.mapping.remember_sent("41b2c3d4e5f6a7b8c9d0", text="Dạ, em kiểm tra ngay ạ")
    assert zalo_event(ctx, "user_reacted_message") == "empty"
    assert fc_posts(m) == [as_user("❤️ Reacted to “Dạ, em kiểm tra ngay ạ”")]


def test_a_reaction_to_a_message_we_do_not_know_and_an_unknown_icon(ctx, m):
    user_wrote(ctx, hours_ago=1)
    ctx.mapping.seen_now(USER)
    zalo_event(ctx, "user_reacted_message", message={"msg_id": "ffff0000ffff0000ffff", "react_icon": "/-strong"})
    zalo_event(ctx, "user_reacted_message", message={"msg_id": "ffff0000ffff0000ffff", "react_icon": ":-x"})
    assert fc_posts(m) == [as_user("👍 Reacted to a message"), as_user(":-x Reacted to a message")]


def test_a_removed_reaction_is_recorded_not_shown(ctx, m):
    user_wrote(ctx, hours_ago=1)
    assert zalo_event(ctx, "user_reacted_message__removed") == "empty"
    assert fc_posts(m) == []


def test_reactions_read_in_vietnamese_for_vietnamese_agents(ctx, m):
    vi = with_options(ctx, agent_language="vi")
    user_wrote(vi, hours_ago=1)
    ctx.mapping.seen_now(USER)
    vi.mapping.remember_sent("41b2c3d4e5f6a7b8c9d0", text="Dạ, em kiểm tra ngay ạ")
    zalo_event(vi, "user_reacted_message")
    assert fc_posts(m) == [as_user("❤️ Đã thả cảm xúc vào tin nhắn “Dạ, em kiểm tra ngay ạ”")]


# -- reply windows and cost ----------------------------------------------------------------------


def test_a_user_message_sets_the_window_timer_47_hours_after_it(ctx, m):
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    sent_at = now_ms() - HOUR_MS
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    ctx.mapping.seen_now(USER)
    zalo_event(ctx, "user_send_text", timestamp=str(sent_at), message=event["message"])
    assert ctx.redis.zscore(keys.DUE, keys.window_lane(USER)) == sent_at + 47 * HOUR_MS
    assert ctx.mapping.zalo_user(USER)["last_msg_id"] == USER_MSG


def test_an_unanswered_message_gets_one_note_before_its_free_window_closes(ctx, m):
    sent_at = user_wrote(ctx, hours_ago=47.1)
    windows.user_wrote(ctx, USER, sent_at)
    assert drain_timer(ctx, keys.window_lane(USER)) == "empty"
    closes = vn_time(sent_at + 48 * HOUR_MS)
    text = (
        f"⏳ The free reply window closes at {closes} (48 h after the customer's last message). "
        "After that Zalo bills each reply, for up to 7 days; past those, an approved Zalo template can still "
        "reach the customer: type /templates to see them."
    )
    assert fc_posts(m) == [note(text)]


def test_a_reply_cancels_the_window_note(ctx, m):
    sent_at = user_wrote(ctx, hours_ago=1)
    windows.user_wrote(ctx, USER, sent_at)
    zalo_answers(m, "z-1")
    agent_reply(ctx, ["Dạ, em kiểm tra ngay ạ"])
    assert ctx.redis.zscore(keys.DUE, keys.window_lane(USER)) is None
    assert ctx.redis.llen(keys.lane(keys.window_lane(USER))) == 0


def test_a_window_timer_for_an_older_message_says_nothing(ctx, m):
    """A newer message moved the window (its own timer), or an agent answered meanwhile."""
    sent_at = user_wrote(ctx, hours_ago=47.5)
    stale = Item("window:old", "zalo", {"zalo_user": USER, "msg_ts": sent_at - 1000}, now_ms(), event="window_closing")
    ctx.lanes.schedule(keys.window_lane(USER), stale, now_ms(), replace=True)
    assert drain_timer(ctx, keys.window_lane(USER)) == "empty" and fc_posts(m) == []
    ctx.mapping.replied(USER, now_ms())
    windows.user_wrote(ctx, USER, sent_at)
    assert drain_timer(ctx, keys.window_lane(USER)) == "empty" and fc_posts(m) == []


def test_a_reply_zalo_billed_after_48_hours_gets_a_note(ctx, m):
    user_wrote(ctx, hours_ago=49)
    zalo_answers(m, "z-1", quota=False)
    agent_reply(ctx, ["Dạ, em gửi anh báo giá ạ"])
    # Past 48 h the user's message id no longer makes it a reply: it goes to the user.
    assert cs_bodies(m) == [{"recipient": {"user_id": USER}, "message": {"text": "Dạ, em gửi anh báo giá ạ"}}]
    assert ctx.mapping.receipt(CONV, "z-1")["quota"] == "billed"
    text = "💰 Zalo billed this reply: the customer's last message is over 48 h old."
    assert fc_posts(m) == [note(text, actor_type="agent", actor_id=AGENT)]


def test_an_answer_without_quota_inside_the_window_is_no_alarm(ctx, m):
    user_wrote(ctx, hours_ago=2)
    zalo_answers(m, "z-1", quota=False)
    agent_reply(ctx, ["Dạ"])
    assert ctx.mapping.receipt(CONV, "z-1")["quota"] == "billed" and fc_posts(m) == []


def test_hold_billed_replies_keeps_the_reply_and_tells_the_agent(ctx, m):
    hold = with_options(ctx, hold_billed_replies=True)
    user_wrote(hold, hours_ago=49)
    assert agent_reply(hold, ["Dạ, em gửi anh báo giá ạ"]) == "empty"
    assert cs_bodies(m) == []
    text = (
        "⏸ Not sent: the customer's last message is over 48 h old, so Zalo would bill this reply, "
        "and this connection holds billed replies. Send it again once the customer writes (free). "
        "To reach them now, use an approved Zalo template: type /templates to see them.\n"
        "Message: “Dạ, em gửi anh báo giá ạ”"
    )
    assert fc_posts(m) == [note(text, actor_type="agent", actor_id=AGENT)]


def test_hold_billed_replies_sends_inside_the_window(ctx, m):
    hold = with_options(ctx, hold_billed_replies=True)
    user_wrote(hold, hours_ago=47)
    zalo_answers(m, "z-1")
    agent_reply(hold, ["Dạ"])
    assert len(cs_bodies(m)) == 1 and fc_posts(m) == []


def test_a_refused_reply_recipient_goes_once_more_to_the_user_id(ctx, m):
    user_wrote(ctx, hours_ago=1)
    answer = load_fixture("zalo", "answers", "message_cs__reply_quota.json")
    m.post(CS, [{"json": {"error": -201, "message": "Parameters are invalid"}}, {"json": answer}])
    agent_reply(ctx, ["Dạ"])
    assert [b["recipient"] for b in cs_bodies(m)] == [{"message_id": USER_MSG}, {"user_id": USER}]
    m.post(CS, json=answer)
    agent_reply(ctx, ["Anh đợi em chút"], msg_id="a834cd45-0000-4000-8000-000000000002")
    assert cs_bodies(m)[2]["recipient"] == {"user_id": USER}  # that id is not tried again
    ctx.mapping.touch(USER, str(now_ms()), "user-msg-2")
    agent_reply(ctx, ["Dạ vâng"], msg_id="a834cd45-0000-4000-8000-000000000003")
    assert cs_bodies(m)[3]["recipient"] == {"message_id": "user-msg-2"}  # a new message is
