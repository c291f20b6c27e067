"""The worker's failure rules on a real Redis: budgets, the partner-wide breaker, dead letters
and the notes agents get for them. Handlers are stand-ins that raise what partners cause;
partner HTTP (the breaker's probes, the notes) is mocked with requests-mock."""

from __future__ import annotations

import pytest
import requests_mock

from app.bridge import breaker as breaker_mod
from app.bridge.keys import DUE
from app.bridge.lanes import Item, now_ms
from app.errors import PermanentError
from app.integrations.freshchat.errors import FreshchatRetryable
from app.integrations.zalo.errors import ZaloPermanent, ZaloRateLimited, ZaloRetryable
from sandbox.helpers import FC_API, ZALO_API, load_fixture
from workers.drain import UNEXPECTED_MAX_ATTEMPTS, Drainer, backoff

USER, CONV, AGENT = "246845883529197922", "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f", "agent-lan"
GETOA, CHANNELS = f"{ZALO_API}/v2.0/oa/getoa", f"{FC_API}/channels"
NOTES = f"{FC_API}/conversations/{CONV}/messages"


@pytest.fixture
def m():
    with requests_mock.Mocker() as mock:
        mock.get(GETOA, json=load_fixture("zalo", "answers", "getoa.json"))
        mock.get(CHANNELS, json=load_fixture("freshchat", "answers", "channels.json"))
        mock.post(NOTES, json={"id": "note-1"})
        yield mock


def outbound_item(**extra) -> Item:
    message = {
        "id": "fc-msg-1",
        "conversation_id": CONV,
        "actor_type": "agent",
        "actor_id": AGENT,
        "message_parts": [{"text": {"content": "Chào anh"}}],
    }
    event = {"action": "message_create", "data": {"message": message}}
    return Item(id="freshchat:fc-msg-1", kind="freshchat", payload=event, received_at=now_ms(), **extra)


def inbound_item(**extra) -> Item:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    return Item(id=f"zalo:{event['message']['msg_id']}", kind="zalo", payload=event, received_at=now_ms(), **extra)


def raising(exc: Exception):
    calls = []

    def handler(ctx, item, progress):
        calls.append(item.attempts)
        raise exc

    handler.calls = calls
    return handler


def drain_once(ctx, item: Item, handler) -> tuple[str, Item | None]:
    lane = "out:" + CONV if item.kind == "freshchat" else "in:" + USER
    ctx.lanes.accept(lane, item)
    outcome = Drainer(ctx, {item.kind: handler}).drain(lane)
    head = ctx.lanes.head(lane)
    return outcome, head[1] if head else None


def notes_posted(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.method == "POST" and r.url == NOTES]


def test_a_failing_item_spends_its_budget_while_the_partner_answers_others(ctx, m):
    outcome, head = drain_once(ctx, outbound_item(), raising(ZaloRetryable("Zalo HTTP 500", status=500)))
    assert outcome == "deferred"
    assert head.attempts == 1 and head.first_failed_at > 0
    assert m.call_count >= 1 and m.request_history[0].url == GETOA  # the probe said Zalo is up


def test_an_item_within_its_budget_is_kept_and_one_past_it_is_dead_lettered_with_a_note(ctx, m):
    horizon = ctx.settings.retry_horizon_seconds
    assert horizon == 900  # 15 minutes by default
    handler = raising(ZaloRetryable("Zalo HTTP 500", status=500))
    outcome, head = drain_once(ctx, outbound_item(attempts=3, first_failed_at=now_ms() - 60_000), handler)
    assert outcome == "deferred" and head is not None and ctx.dead_letters.count() == 0  # seconds, not ms

    ctx.redis.flushall()
    outcome, head = drain_once(ctx, outbound_item(attempts=9, first_failed_at=now_ms() - (horizon + 1) * 1000), handler)
    assert head is None and ctx.dead_letters.count() == 1
    record = ctx.dead_letters.get("freshchat:fc-msg-1")
    assert record["reason"].startswith("gave up after 10 attempts: Zalo HTTP 500")
    assert notes_posted(m) == [
        {
            "message_parts": [
                {
                    "text": {
                        "content": "⚠️ This reply could not be delivered to the Zalo user.\n"
                        "Why: gave up after 10 attempts: Zalo HTTP 500\n"
                        "It is kept as dead letter freshchat:fc-msg-1; an operator can replay it."
                    }
                }
            ],
            "message_type": "private",
            "actor_type": "agent",
            "actor_id": AGENT,
        }
    ]


def test_the_dead_letter_note_follows_agent_language(ctx, m, settings):
    from dataclasses import replace

    ctx.settings = replace(settings, agent_language="vi")
    drain_once(ctx, outbound_item(), raising(ZaloPermanent("Zalo error -201: invalid", code=-201)))
    [note] = notes_posted(m)
    assert note["message_parts"] == [
        {
            "text": {
                "content": "⚠️ Không gửi được trả lời này đến người dùng Zalo.\n"
                "Lý do: không thể thử lại: Zalo báo lỗi -201: “invalid”\n"
                "Zalo từ chối nội dung vì không hợp lệ (sai mã người dùng, quá dài "
                "hoặc tệp đính kèm không được hỗ trợ).\n"
                "Tin nhắn đã được lưu lại (mã freshchat:fc-msg-1); quản trị viên có thể gửi lại."
            }
        }
    ]


def test_a_partner_wide_outage_spends_no_budget_and_opens_the_breaker(ctx, m):
    m.get(GETOA, status_code=503)
    old = now_ms() - 3600_000  # failing for an hour: far past the budget
    handler = raising(ZaloRetryable("Zalo HTTP 503", status=503))
    outcome, head = drain_once(ctx, outbound_item(attempts=4, first_failed_at=old), handler)
    assert outcome == "deferred" and ctx.dead_letters.count() == 0
    assert head.first_failed_at == 0 and head.attempts == 4  # refunded: not this item's fault
    assert ctx.breaker("zalo").open_for() > 0
    # While open, items that deliver to Zalo wait without calling it.
    ctx.redis.zadd(DUE, {"out:" + CONV: now_ms()})
    assert Drainer(ctx, {"freshchat": handler}).drain("out:" + CONV) == "deferred"
    assert handler.calls == [4]


def test_an_item_waits_for_a_breaker_another_process_opened_read_with_its_lanes_lease(ctx, m, monkeypatch):
    """The open mark comes with the lease (take.lua): no cached "closed" lets a first item through."""
    monkeypatch.setattr(breaker_mod, "READ_OPEN_EVERY", 3600.0)  # this process's own reading stays "closed"
    assert ctx.breaker("zalo").open_for() == 0
    ctx.redis.set(ctx.keys.breaker_open("zalo"), "1", px=5000)  # another process's probe failed
    handler = raising(ZaloRetryable("Zalo HTTP 503", status=503))
    outcome, head = drain_once(ctx, outbound_item(), handler)
    assert outcome == "deferred" and handler.calls == [] and head.attempts == 0
    assert 0 < ctx.breaker("zalo").open_for() <= 5


def test_rate_limits_never_spend_the_budget(ctx, m):
    exc = ZaloRateLimited("Zalo error -32", code=-32, retry_after=0.01)
    outcome, head = drain_once(ctx, outbound_item(first_failed_at=now_ms() - 3600_000), raising(exc))
    assert outcome == "deferred" and head.first_failed_at == 0 and ctx.dead_letters.count() == 0
    assert not any(r.url == GETOA for r in m.request_history)  # no probe needed: Zalo said so itself


def test_a_freshchat_outage_keeps_inbound_items_alive_too(ctx, m):
    m.get(CHANNELS, status_code=502)
    handler = raising(FreshchatRetryable("FreshChat HTTP 502", status=502))
    outcome, head = drain_once(ctx, inbound_item(first_failed_at=now_ms() - 3600_000), handler)
    assert outcome == "deferred" and head.first_failed_at == 0 and ctx.dead_letters.count() == 0


def test_a_permanent_error_is_dead_lettered_not_dropped_and_the_agent_is_told(ctx, m):
    ctx.mapping.link_conversation(USER, CONV)
    outcome, head = drain_once(ctx, inbound_item(), raising(PermanentError("FreshChat HTTP 400: INVALID_VALUE")))
    assert outcome == "empty" and head is None
    item_id = "zalo:96d3cdf3af150460909"
    assert ctx.dead_letters.get(item_id)["reason"] == "permanent: FreshChat HTTP 400: INVALID_VALUE"
    assert notes_posted(m) == [
        {
            "message_parts": [
                {
                    "text": {
                        "content": "⚠️ A message from this Zalo user could not be shown here.\n"
                        "Why: permanent: FreshChat HTTP 400: INVALID_VALUE\n"
                        f"It is kept as dead letter {item_id}; an operator can replay it."
                    }
                }
            ],
            "message_type": "private",
            "actor_type": "system",
        }
    ]


def test_the_note_is_posted_once_even_if_the_same_item_dies_again(ctx, m):
    ctx.mapping.link_conversation(USER, CONV)
    for _ in range(2):
        drain_once(ctx, inbound_item(), raising(PermanentError("refused")))
    assert len(notes_posted(m)) == 1 and ctx.dead_letters.count() == 1


def test_an_unexpected_exception_is_dead_lettered_after_a_few_attempts(ctx, m):
    handler = raising(KeyError("message"))
    _, head = drain_once(ctx, outbound_item(attempts=UNEXPECTED_MAX_ATTEMPTS - 2), handler)
    assert head is not None and head.attempts == UNEXPECTED_MAX_ATTEMPTS - 1
    ctx.redis.flushall()
    _, head = drain_once(ctx, outbound_item(attempts=UNEXPECTED_MAX_ATTEMPTS - 1), handler)
    assert head is None and ctx.dead_letters.get("freshchat:fc-msg-1")["reason"].startswith("unexpected: KeyError")
    assert UNEXPECTED_MAX_ATTEMPTS <= 5


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, 2, 300) <= min(300, 2 * 2 ** (n - 1)) for n in range(1, 30)] == [True] * 29
    assert all(backoff(n, 2, 300) >= min(300, 2 * 2 ** (n - 1)) / 2 for n in range(1, 30))
    assert backoff(40, 2, 300) <= 300


def test_a_dead_zalo_token_holds_replies_without_spending_their_budget(ctx, m):
    from app.integrations.zalo.errors import ZaloTokenDead

    handler = raising(ZaloTokenDead("Zalo refresh token is dead: -14014", retry_after=300))
    outcome, head = drain_once(ctx, outbound_item(first_failed_at=now_ms() - 3600_000), handler)
    assert outcome == "deferred" and head.first_failed_at == 0 and ctx.dead_letters.count() == 0


def test_a_worker_that_lost_its_lease_stops_and_pops_nothing(ctx, m, monkeypatch):
    monkeypatch.setattr("app.bridge.lanes.RENEW_AFTER_SHARE", 0)  # the lease is old: progress asks Redis

    def slow(ctx_, item_, progress):
        ctx.redis.set("zfb:lease:out:" + CONV, "someone-else")  # the lease ran out; B took the lane
        progress()
        raise AssertionError("must not go on after the lease is lost")

    outcome, head = drain_once(ctx, outbound_item(), slow)
    assert outcome == "lost-lease" and head is not None and head.attempts == 0
    assert ctx.dead_letters.count() == 0


def test_only_a_partner_answer_marks_it_up(ctx, m):
    m.post(NOTES, status_code=503)
    with pytest.raises(FreshchatRetryable):
        ctx.freshchat.post_message(CONV, {"message_parts": []})
    assert not ctx.redis.exists("zfb:breaker:freshchat:ok")
    m.post(NOTES, status_code=400, json={"message": "bad"})
    with pytest.raises(PermanentError):
        ctx.freshchat.post_message(CONV, {"message_parts": []})
    assert ctx.redis.exists("zfb:breaker:freshchat:ok")  # it answered: reachable


def test_a_timer_reached_early_waits_for_its_time_without_spending_its_budget(ctx):
    from app.bridge.lanes import Item, NotDue, now_ms
    from workers.drain import Drainer

    due = now_ms() + 60000

    def early(ctx, item, progress):
        raise NotDue(due)

    ctx.lanes.schedule("win:u", Item("t:1", "zalo", {}, now_ms(), event="window_closing"), now_ms(), replace=True)
    assert Drainer(ctx, {"zalo": early}).drain("win:u") == "deferred"
    raw, head = ctx.lanes.head("win:u")
    assert (head.attempts, head.first_failed_at) == (0, 0)
    assert abs(ctx.redis.zscore("zfb:due", "win:u") - due) < 50
