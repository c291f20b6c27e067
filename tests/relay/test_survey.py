"""The satisfaction survey (option satisfaction_survey): the rating question after a resolution
inside the free window, and the digit rule on the answer. Real Redis, the real drain, the exact
Zalo and FreshChat requests."""

from __future__ import annotations

import dataclasses
import time

import pytest
import requests_mock

from app.bridge import keys
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.schemas import to_event
from app.operations import counters
from app.relay import survey
from app.relay.windows import HOUR_MS
from sandbox.helpers import FC_API, ZALO_API, load_fixture, partners_answer_probes
from workers.context import WorkerContext
from workers.drain import Drainer

USER = "246845883529197922"
FC_USER = "9047e655-1e83-463e-b1b6-4a44beb1f07f"
CONV = "35e80ec8-5b4c-4a3d-8e2f-1c0b9a8d7e6f"
CS = f"{ZALO_API}/v3.0/oa/message/cs"
POSTS = f"{FC_API}/conversations/{CONV}/messages"
USER_MSG = "96d3cdf3af150460909"
SURVEY_LANE = keys.survey_lane(CONV)
QUESTION = {
    "vi": "Bạn thấy cuộc trò chuyện vừa rồi thế nào? Vui lòng trả lời bằng một số từ 1 (chưa hài lòng) "
    "đến 5 (rất hài lòng).",
    "en": "How was this conversation? Please reply with one digit from 1 (poor) to 5 (excellent).",
}


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        mock.post(CS, json={"error": 0, "message": "Success", "data": {"message_id": "z-survey-1"}})
        mock.post(POSTS, json={"id": "fc-note-1"})
        partners_answer_probes(mock)
        yield mock


def with_options(ctx, **options) -> WorkerContext:
    return WorkerContext(dataclasses.replace(ctx.settings, **options), ctx.redis)


def user_wrote(ctx, hours_ago: float) -> int:
    at = now_ms() - int(hours_ago * HOUR_MS)
    ctx.mapping.set_zalo_user(USER, fc_user_id=FC_USER)
    ctx.mapping.link_conversation(USER, CONV)
    ctx.mapping.touch(USER, str(at), USER_MSG)
    ctx.mapping.seen_now(USER)
    return at


def resolve(ctx) -> None:
    """The resolution webhook as queued, drained, then the survey lane it may have set drained too."""
    event = load_fixture("freshchat", "webhooks", "conversation_resolution.json")
    item = Item("freshchat:resolve-1", "freshchat", event, now_ms(), event="conversation_state")
    ctx.lanes.accept(f"out:{CONV}", item)
    assert Drainer(ctx).drain(f"out:{CONV}") == "empty"
    drain(ctx, SURVEY_LANE)


def drain(ctx, lane: str, timeout: float = 5.0) -> None:
    """Drain `lane` until it is gone from the due set (a timer due now is claimed at once)."""
    deadline = time.monotonic() + timeout
    while ctx.redis.zscore(keys.DUE, lane) is not None:
        assert time.monotonic() < deadline, f"{lane} did not drain"
        Drainer(ctx).drain(lane)


def customer_writes(ctx, text: str, msg_id: str = "z-answer-1", at_ms: int | None = None) -> str:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["message"] = {"text": text, "msg_id": msg_id}
    event["timestamp"] = str(at_ms or now_ms())
    classified = to_event(event)
    ctx.lanes.accept(classified.lane, Item(f"zalo:{msg_id}", "zalo", event, now_ms(), event=classified.kind))
    return Drainer(ctx).drain(classified.lane)


def cs_bodies(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == CS]


def fc_posts(m) -> list[dict]:
    return [r.json() for r in m.request_history if r.url == POSTS]


def rated_note(text: str) -> dict:
    return {"message_parts": [{"text": {"content": text}}], "message_type": "private", "actor_type": "system"}


def as_customer(text: str) -> dict:
    return {
        "message_parts": [{"text": {"content": text}}],
        "message_type": "normal",
        "actor_type": "user",
        "actor_id": FC_USER,
        "user_id": FC_USER,
    }


def ratings(ctx) -> dict:
    found = counters.read(ctx.redis, ["default"])["default"]
    return {labels[1]: n for labels, n in found.items() if labels[0] == counters.RATINGS}


@pytest.fixture
def asked(ctx, m):
    """A connection with the survey, whose customer was asked after the agent resolved."""
    on = with_options(ctx, satisfaction_survey=True)
    user_wrote(on, hours_ago=2)
    resolve(on)
    assert cs_bodies(m) == [{"recipient": {"message_id": USER_MSG}, "message": {"text": QUESTION["vi"]}}]
    m.reset_mock()
    return on


# -- the question ---------------------------------------------------------------------------


def test_the_survey_is_off_by_default(ctx, m):
    assert ctx.settings.satisfaction_survey is False
    user_wrote(ctx, hours_ago=2)
    resolve(ctx)
    assert cs_bodies(m) == [] and ctx.redis.zscore(keys.DUE, SURVEY_LANE) is None
    assert ctx.redis.get(ctx.keys.survey_asked(CONV)) is None


@pytest.mark.parametrize("language", ["vi", "en"])
def test_a_resolution_inside_the_free_window_asks_once_in_the_customers_language(ctx, m, language):
    on = with_options(ctx, satisfaction_survey=True, customer_language=language)
    user_wrote(on, hours_ago=47.5)
    resolve(on)
    assert cs_bodies(m) == [{"recipient": {"message_id": USER_MSG}, "message": {"text": QUESTION[language]}}]
    assert m.request_history[-1].headers["access_token"] == "access-0"
    assert 86000 < ctx.redis.ttl(ctx.keys.survey_asked(CONV)) <= 86400
    assert ctx.mapping.is_sent_by_us("z-survey-1")  # its echo is not shown to agents as the OA's own
    # The same resolution's item run again (a crash before it left its lane) asks nothing more.
    item = Item("survey:freshchat:resolve-1", "zalo", {"conversation": CONV, "fc_user": FC_USER}, now_ms())
    survey.ask(on, item, lambda: None)
    assert len(cs_bodies(m)) == 1


def test_after_the_thank_you_comes_the_question(ctx, m):
    on = with_options(ctx, satisfaction_survey=True, resolve_notification=True, resolve_notification_text="Cảm ơn!")
    user_wrote(on, hours_ago=1)
    resolve(on)
    assert [b["message"]["text"] for b in cs_bodies(m)] == ["Cảm ơn!", QUESTION["vi"]]


def test_no_question_once_the_free_window_has_closed(ctx, m):
    on = with_options(ctx, satisfaction_survey=True)
    user_wrote(on, hours_ago=49)
    resolve(on)
    assert cs_bodies(m) == [] and ctx.redis.get(ctx.keys.survey_asked(CONV)) is None


def test_a_question_zalo_refuses_is_given_up_without_a_dead_letter(ctx, m):
    m.post(CS, json={"error": -213, "message": "User has not followed OA"})
    on = with_options(ctx, satisfaction_survey=True)
    user_wrote(on, hours_ago=1)
    resolve(on)
    assert len(cs_bodies(m)) == 1 and ctx.redis.get(ctx.keys.survey_asked(CONV)) is None
    assert ctx.redis.zcard(ctx.keys.dead_order) == 0


# -- the answer -----------------------------------------------------------------------------


@pytest.mark.parametrize("text,rating", [("5", 5), ("1", 1), (" 3 \n", 3), ("５", 5)])
def test_a_single_digit_answer_is_the_agents_note_not_a_customer_message(asked, m, text, rating):
    assert customer_writes(asked, text) == "empty"
    assert fc_posts(m) == [rated_note(f"⭐ The customer rated the conversation {rating}/5 (survey after resolution).")]
    assert cs_bodies(m) == []
    assert ratings(asked) == {str(rating): 1}
    assert asked.redis.get(asked.keys.survey_asked(CONV)) is None  # one rating per question
    assert asked.mapping.zalo_user(USER)["last_msg_id"] == "z-answer-1"  # their newest interaction


def test_the_note_is_in_the_agents_language(asked, m):
    vi = with_options(asked, agent_language="vi")
    customer_writes(vi, "4")
    assert fc_posts(m) == [rated_note("⭐ Khách hàng chấm 4/5 cho cuộc trò chuyện (khảo sát sau khi đóng).")]


@pytest.mark.parametrize("text", ["0", "6", "5 sao", "12", "5.", "4/5"])
def test_any_other_answer_is_relayed_as_usual(asked, m, text):
    customer_writes(asked, text)
    assert fc_posts(m) == [as_customer(text)]
    assert ratings(asked) == {}
    assert asked.redis.get(asked.keys.survey_asked(CONV)) is not None  # a rating may still come


def test_a_second_digit_is_a_customer_message(asked, m):
    customer_writes(asked, "5", msg_id="z-answer-1")
    customer_writes(asked, "4", msg_id="z-answer-2")
    assert fc_posts(m)[1:] == [as_customer("4")]
    assert ratings(asked) == {"5": 1}


def test_after_24_hours_a_digit_is_relayed_as_usual(asked, m):
    mark = asked.keys.survey_asked(CONV)
    asked.redis.pexpire(mark, 1)  # the question's 24 h are over
    deadline = time.monotonic() + 5
    while asked.redis.exists(mark):
        assert time.monotonic() < deadline
    customer_writes(asked, "5")
    assert fc_posts(m) == [as_customer("5")] and ratings(asked) == {}


def test_a_digit_written_before_the_question_is_no_answer(asked, m):
    customer_writes(asked, "5", at_ms=now_ms() - 5 * 60 * 1000)  # queued late, written 5 min ago
    assert fc_posts(m) == [as_customer("5")] and ratings(asked) == {}


def test_without_a_question_a_digit_is_relayed_as_usual(ctx, m):
    on = with_options(ctx, satisfaction_survey=True)
    user_wrote(on, hours_ago=1)
    customer_writes(on, "5")
    assert fc_posts(m) == [as_customer("5")]


def test_a_rating_run_again_is_noted_and_counted_once(asked, m):
    """A worker that dies after the note, before the item leaves its lane: the next worker runs
    the same item again. It finds the note's record, posts nothing and relays nothing."""
    customer_writes(asked, "5")
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["message"] = {"text": "5", "msg_id": "z-answer-1"}
    event["timestamp"] = str(now_ms())
    lane = f"in:{USER}"
    asked.lanes.accept(lane, Item("zalo:z-answer-1", "zalo", event, now_ms(), event="user_message"))
    assert Drainer(asked).drain(lane) == "empty"
    assert len(fc_posts(m)) == 1 and ratings(asked) == {"5": 1}


def test_a_rating_redelivered_by_zalo_is_noted_once(asked, m, app, client):
    """The webhook twice (Zalo redelivers after 30 s without a 200): one note, one count."""
    from sandbox.helpers import post_zalo

    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    event["message"], event["timestamp"] = {"text": "5", "msg_id": "z-answer-9"}, str(now_ms())
    for _ in range(2):
        assert post_zalo(client, event).status_code == 200
    drain(asked, f"in:{USER}")
    assert fc_posts(m) == [rated_note("⭐ The customer rated the conversation 5/5 (survey after resolution).")]
    assert ratings(asked) == {"5": 1}


@pytest.mark.parametrize(
    "text,rating",
    [("5", 5), (" 2 ", 2), ("３", 3), ("0", None), ("6", None), ("12", None), ("5 sao", None), ("", None)],
)
def test_the_digit_rule(text, rating):
    event = {"event_name": "user_send_text", "message": {"text": text, "msg_id": "x"}}
    assert survey.rating_in(event) == rating


def test_a_sticker_or_image_is_no_rating():
    assert survey.rating_in({"event_name": "user_send_sticker", "message": {"text": "5"}}) is None
