"""The drain's rules that mutation testing (`make mutants`) found no test holding: a lane drains
to its end in one claim and is let go, a retry and an outcome reach the journal as they are, a
dead letter keeps its lane and replays at its end, a partner-wide wait is never shorter than
the partner asked, the retry budget's edge, counters for delivered messages only, and items
queued before they carried their kind. Real Redis; partner HTTP mocked with requests-mock."""

from __future__ import annotations

import json

import pytest
import requests_mock

from app.bridge.keys import DUE, lease
from app.bridge.keys import lane as lane_key
from app.bridge.lanes import Item, NotDue, now_ms
from app.errors import PermanentError
from app.integrations import events
from app.integrations.zalo.errors import ZaloRateLimited, ZaloRetryable
from app.operations import counters
from app.relay import notes
from app.relay.subscribers import SUBSCRIBERS
from sandbox.helpers import load_fixture
from tests.workers.test_drain_rules import CHANNELS, CONV, GETOA, NOTES, outbound_item, raising
from workers import drain
from workers.drain import UNEXPECTED_MAX_ATTEMPTS, Drainer, by_event, handlers

NO_NOTES = tuple(s for s in SUBSCRIBERS if s is not notes.on_outcome)  # no note to agents: no FreshChat mock

LANE = "out:" + CONV


@pytest.fixture
def m():
    with requests_mock.Mocker() as mock:
        mock.get(GETOA, json=load_fixture("zalo", "answers", "getoa.json"))
        mock.get(CHANNELS, json=load_fixture("freshchat", "answers", "channels.json"))
        mock.post(NOTES, json={"id": "note-1"})
        yield mock


def numbered(n: int, **extra) -> Item:
    item = outbound_item(**extra)
    item.id = f"freshchat:fc-msg-{n}"
    return item


def delivering(seen: list):
    def handler(ctx, item, progress):
        seen.append(item.id)

    return handler


def journaled(ctx, item_id: str) -> dict | None:
    raw = ctx.redis.hget(ctx.keys.journal_items, item_id)
    return None if raw is None else json.loads(raw)


def last_error(ctx) -> dict:
    return json.loads(ctx.redis.lindex(ctx.keys.errors, 0))


def due_at(ctx, lane: str = LANE) -> float:
    return ctx.redis.zscore(DUE, lane)


# -- order and leases ----------------------------------------------------------------------------


def test_one_claim_drains_a_lane_head_first_to_its_end_and_lets_it_go(ctx):
    for n in (1, 2, 3):
        ctx.lanes.accept(LANE, numbered(n))
    seen = []
    assert Drainer(ctx, {"freshchat": delivering(seen)}, subscribers=NO_NOTES).drain(LANE) == "empty"
    assert seen == ["freshchat:fc-msg-1", "freshchat:fc-msg-2", "freshchat:fc-msg-3"]
    assert not ctx.redis.exists(lane_key(LANE)) and not ctx.redis.exists(lease(LANE))
    assert due_at(ctx) is None


def test_a_lane_whose_slice_is_over_is_let_go_and_due_again_at_once(ctx, monkeypatch):
    monkeypatch.setattr(drain, "LANE_SLICE_SECONDS", 0.0)
    ctx.lanes.accept(LANE, numbered(1))
    seen = []
    assert Drainer(ctx, {"freshchat": delivering(seen)}, subscribers=NO_NOTES).drain(LANE) == "yielded"
    assert seen == [] and not ctx.redis.exists(lease(LANE))
    assert due_at(ctx) <= now_ms() and ctx.lanes.acquire(LANE)  # another worker takes it now


def test_a_due_lane_with_nothing_left_is_let_go_empty(ctx):
    ctx.redis.zadd(DUE, {LANE: now_ms()})
    assert Drainer(ctx, {"freshchat": delivering([])}, subscribers=NO_NOTES).drain(LANE) == "empty"
    assert not ctx.redis.exists(lease(LANE))


def test_an_unreadable_next_item_lets_the_lane_go_due_at_once_with_its_head_kept(ctx):
    ctx.lanes.accept(LANE, numbered(1))
    ctx.redis.rpush(lane_key(LANE), "{not json")  # e.g. written by a broken tool
    seen = []
    with pytest.raises(ValueError):
        Drainer(ctx, {"freshchat": delivering(seen)}, subscribers=NO_NOTES).drain(LANE)
    assert seen == ["freshchat:fc-msg-1"]
    assert ctx.redis.lrange(lane_key(LANE), 0, -1) == [b"{not json"]
    assert not ctx.redis.exists(lease(LANE)) and due_at(ctx) <= now_ms()


# -- what the journal and the status show --------------------------------------------------------


def test_a_retry_is_journaled_with_its_reason_and_next_try_and_shown_as_the_last_error(ctx, m):
    ctx.lanes.accept(LANE, outbound_item())
    handler = raising(ZaloRetryable("Zalo HTTP 500", status=500))
    assert Drainer(ctx, {"freshchat": handler}, subscribers=NO_NOTES).drain(LANE) == "deferred"
    entry = journaled(ctx, "freshchat:fc-msg-1")
    assert (entry["state"], entry["reason"]) == ("retrying", "Zalo HTTP 500")
    assert entry["next_try"] == pytest.approx(due_at(ctx) / 1000, abs=0.002)
    error = last_error(ctx)
    assert (error["lane"], error["item"], error["error"]) == (LANE, "freshchat:fc-msg-1", "Zalo HTTP 500")


def test_a_timer_reached_early_is_not_an_outcome_and_waits_only_until_its_time(ctx):
    due = now_ms() + 300

    def early(ctx_, item, progress):
        raise NotDue(due)

    ctx.lanes.accept(LANE, outbound_item())
    assert Drainer(ctx, {"freshchat": early}, subscribers=NO_NOTES).drain(LANE) == "deferred"
    assert journaled(ctx, "freshchat:fc-msg-1") is None
    assert abs(due_at(ctx) - due) < 100  # 300 ms, not rounded up to a second


def test_an_item_delivered_after_a_retry_is_journaled_without_its_old_error(ctx):
    ctx.lanes.accept(LANE, outbound_item(attempts=1, first_failed_at=now_ms(), last_error="Zalo HTTP 500"))
    assert Drainer(ctx, {"freshchat": delivering([])}, subscribers=NO_NOTES).drain(LANE) == "empty"
    entry = journaled(ctx, "freshchat:fc-msg-1")
    assert (entry["state"], entry["reason"], entry["dead_letter"]) == ("delivered", "", None)


# -- dead letters --------------------------------------------------------------------------------

HORIZON_PASSED = {"attempts": 9, "first_failed_at": 1}
FAILURES = {
    "permanent": ({}, PermanentError("Zalo error -201"), "permanent: Zalo error -201"),
    "budget spent": (HORIZON_PASSED, ZaloRetryable("Zalo HTTP 500", status=500), "gave up after 10 attempts"),
    "unexpected": ({"attempts": UNEXPECTED_MAX_ATTEMPTS - 1}, KeyError("message"), "unexpected: KeyError"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_a_dead_letter_keeps_its_lane_is_journaled_failed_and_shown_as_the_last_error(ctx, m, case):
    extra, exc, reason = FAILURES[case]
    ctx.lanes.accept(LANE, outbound_item(**extra))
    assert Drainer(ctx, {"freshchat": raising(exc)}, subscribers=NO_NOTES).drain(LANE) == "empty"
    [dead] = ctx.dead_letters.list()
    assert dead["lane"] == LANE and dead["reason"].startswith(reason)
    entry = journaled(ctx, "freshchat:fc-msg-1")
    assert (entry["state"], entry["dead_letter"], entry["reason"]) == ("failed", dead["id"], dead["reason"])
    error = last_error(ctx)
    assert (error["lane"], error["item"], error["error"]) == (LANE, "freshchat:fc-msg-1", dead["reason"])


def test_a_replayed_dead_letter_joins_the_end_of_its_lane_with_a_fresh_budget(ctx, m):
    ctx.lanes.accept(LANE, outbound_item(**HORIZON_PASSED))
    Drainer(ctx, {"freshchat": raising(ZaloRetryable("Zalo HTTP 500", status=500))}, subscribers=NO_NOTES).drain(LANE)
    ctx.lanes.accept(LANE, numbered(2))  # the conversation went on meanwhile
    assert ctx.dead_letters.replay("freshchat:fc-msg-1")
    queued = [Item.loads(raw) for raw in ctx.redis.lrange(lane_key(LANE), 0, -1)]
    assert [i.id for i in queued] == ["freshchat:fc-msg-2", "freshchat:fc-msg-1"]
    assert (queued[1].attempts, queued[1].first_failed_at, queued[1].last_error) == (0, 0, "")
    assert queued[1].payload == outbound_item().payload
    assert ctx.dead_letters.count() == 0 and ctx.dead_letters.get("freshchat:fc-msg-1") is None
    assert not ctx.dead_letters.replay("freshchat:fc-msg-1") and not ctx.dead_letters.drop("freshchat:fc-msg-1")


def test_dead_letters_are_listed_oldest_first_up_to_the_limit_and_dropped_one_by_one(ctx):
    for n in (1, 2, 3):
        ctx.dead_letters.add(LANE, numbered(n), f"reason {n}")
    assert [d["id"] for d in ctx.dead_letters.list(limit=2)] == ["freshchat:fc-msg-1", "freshchat:fc-msg-2"]
    assert ctx.dead_letters.drop("freshchat:fc-msg-1")
    assert [d["id"] for d in ctx.dead_letters.list()] == ["freshchat:fc-msg-2", "freshchat:fc-msg-3"]
    assert ctx.dead_letters.count() == 2 and ctx.dead_letters.get("nope") is None


# -- how long an item waits ----------------------------------------------------------------------


@pytest.fixture
def jitter_at_its_top(monkeypatch):
    """random.uniform(a, b) answers b: the longest wait the rules allow."""
    monkeypatch.setattr(drain.random, "uniform", lambda a, b: b)


@pytest.fixture
def jitter_at_its_bottom(monkeypatch):
    monkeypatch.setattr(drain.random, "uniform", lambda a, b: a)


def test_a_partner_wide_refusal_waits_what_the_partner_asked_plus_at_most_a_second(ctx, m, jitter_at_its_top):
    ctx.lanes.accept(LANE, outbound_item())
    before = now_ms()
    handler = raising(ZaloRateLimited("Zalo error -32", code=-32, retry_after=120))
    assert Drainer(ctx, {"freshchat": handler}, subscribers=NO_NOTES).drain(LANE) == "deferred"
    assert before + 121_000 <= due_at(ctx) <= now_ms() + 121_000


def test_a_partner_wide_refusal_waits_as_long_as_the_breaker_stays_open(ctx, m, jitter_at_its_bottom):
    m.get(GETOA, status_code=503)  # the probe fails: the breaker opens for everyone
    ctx.lanes.accept(LANE, outbound_item())
    before = now_ms()
    handler = raising(ZaloRetryable("Zalo HTTP 503", status=503))
    assert Drainer(ctx, {"freshchat": handler}, subscribers=NO_NOTES).drain(LANE) == "deferred"
    assert due_at(ctx) >= before + 4_900  # OPEN_SECONDS, not the 10 ms retry base of these settings


def test_while_the_breaker_is_open_an_item_waits_it_out_plus_at_most_a_second(ctx, m, jitter_at_its_top):
    ctx.redis.set(ctx.keys.breaker_open("zalo"), "1", px=5000)
    ctx.lanes.accept(LANE, outbound_item())
    before = now_ms()
    assert Drainer(ctx, {"freshchat": delivering([])}, subscribers=NO_NOTES).drain(LANE) == "deferred"
    assert before + 5_900 <= due_at(ctx) <= now_ms() + 6_000


def test_an_item_failure_waits_its_backoff_even_when_the_error_names_no_wait(ctx, m, jitter_at_its_bottom):
    ctx.lanes.accept(LANE, outbound_item())
    before = now_ms()
    assert Drainer(ctx, {"freshchat": raising(ZaloRetryable("HTTP 500", status=500))}, subscribers=NO_NOTES).drain(LANE)
    assert before + 5 <= due_at(ctx) <= now_ms() + 50  # backoff(1, 0.01 s, ...) = 5 to 10 ms, not a second


def test_the_budget_ends_exactly_at_the_horizon(ctx, m, monkeypatch):
    now = now_ms()
    monkeypatch.setattr(drain, "now_ms", lambda: now)
    horizon_ms = ctx.settings.retry_horizon_seconds * 1000
    handler = raising(ZaloRetryable("Zalo HTTP 500", status=500))
    ctx.lanes.accept(LANE, outbound_item(attempts=3, first_failed_at=now - horizon_ms))
    assert Drainer(ctx, {"freshchat": handler}, subscribers=NO_NOTES).drain(LANE) == "deferred"  # on the edge: kept
    assert ctx.dead_letters.count() == 0
    ctx.redis.flushall()
    ctx.lanes.accept(LANE, outbound_item(attempts=3, first_failed_at=now - horizon_ms - 1))
    assert Drainer(ctx, {"freshchat": handler}, subscribers=NO_NOTES).drain(LANE) == "empty"  # one ms past: dead
    assert ctx.dead_letters.count() == 1


# -- counters ------------------------------------------------------------------------------------


def counted(ctx) -> dict[str, int]:
    """The counters as /metrics reads them (counters.read), by field name."""
    return {counters.SEP.join(k): v for k, v in counters.read(ctx.redis, ["default"])["default"].items()}


def test_a_delivered_message_is_counted_once_in_its_direction_with_its_latency(ctx):
    message = outbound_item(event=events.AGENT_MESSAGE)
    message.received_at -= 1500  # accepted by the webhook 1.5 s ago
    ctx.lanes.accept(LANE, message)
    assert Drainer(ctx, {"freshchat": delivering([])}, subscribers=NO_NOTES).drain(LANE) == "empty"
    found = counted(ctx)
    assert found["relayed|out"] == 1 and found["latency|out|2.5"] == 1
    assert 1500 <= found["latency_sum_ms|out"] < 2500


@pytest.mark.parametrize("event, answer", [(events.AGENT_MESSAGE, events.NOT_RELAYED), (events.RECEIPT, None)])
def test_what_was_not_relayed_or_is_no_message_is_not_counted(ctx, event, answer):
    ctx.lanes.accept(LANE, outbound_item(event=event))
    assert Drainer(ctx, {"freshchat": lambda ctx_, item, progress: answer}, subscribers=NO_NOTES).drain(LANE) == "empty"
    assert not any(name.startswith(("relayed", "latency")) for name in counted(ctx))


# -- items queued before items carried their kind ------------------------------------------------


def test_an_item_without_its_kind_is_classified_by_the_webs_own_rules(ctx):
    from app.integrations.zalo.schemas import to_event

    called = []
    handle = by_event({events.USER_MESSAGE: lambda ctx_, item, progress: called.append(item.id)}, to_event)
    text = Item("zalo:1", "zalo", load_fixture("zalo", "webhooks", "user_send_text.json"), now_ms())
    handle(ctx, text, None)
    assert called == ["zalo:1"]


@pytest.mark.parametrize(
    "provider, fixture, changes",
    [
        ("zalo", "follow", {"event_name": "user_click_chatnow"}),  # recorded only
        ("freshchat", "message_create__private_note", {}),
    ],
)
def test_an_old_item_the_web_would_not_relay_is_finished_without_a_partner_call(ctx, provider, fixture, changes):
    payload = {**load_fixture(provider, "webhooks", f"{fixture}.json"), **changes}
    item = Item(f"{provider}:1", provider, payload, now_ms())
    with requests_mock.Mocker() as mock:
        assert handlers()[provider](ctx, item, None) == events.NOT_RELAYED
    assert mock.call_count == 0


def test_an_event_kind_this_version_does_not_know_is_retried_then_kept_not_lost(ctx):
    ctx.lanes.accept(LANE, outbound_item(event="from_a_newer_version"))
    drainer = Drainer(ctx, {"freshchat": by_event({}, lambda payload: None)}, subscribers=NO_NOTES)
    assert drainer.drain(LANE) == "deferred"
    assert ctx.lanes.head(LANE)[1].last_error == "no handler for freshchat event 'from_a_newer_version'"
