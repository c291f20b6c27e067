"""Catch-up from Zalo's history: what it queues, in which order, once, and what agents see."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock
from rq import Queue

from app.bridge import keys
from app.bridge.keys import DEFAULT_KEYS
from app.bridge.lanes import Item, now_ms
from app.integrations.zalo.errors import ZaloRetryable
from app.integrations.zalo.schemas import history_event
from app.operations.status import connection_status
from app.relay.catchup import MARGIN_MS, catch_up, parse_since
from sandbox.helpers import FC_API, ZALO_API, ZALO_APP_ID, ZALO_OA_ID, load_fixture, partners_answer_probes, post_zalo
from tests.bridge.test_ratelimit import FakeClock
from workers.context import WorkerContext
from workers.drain import Drainer

RECENT = f"{ZALO_API}/v2.0/oa/listrecentchat"
CONVERSATION = f"{ZALO_API}/v2.0/oa/conversation"
HOUR = 3600 * 1000
U1, U2 = "246845883529197922", "3103741396296991610"
FC_USER = {U1: "fc-user-1", U2: "fc-user-2"}
CONV = {U1: "fc-conv-1", U2: "fc-conv-2"}


class History:
    """Zalo's history behind requests-mock: every message of every chat, served as Zalo does
    (recent chats one row per chat, conversations newest first, 10 per page from an offset)."""

    def __init__(self, mock):
        self.items: list[dict] = []
        self.template = load_fixture("zalo", "answers", "conversation.json")["data"][0]
        mock.get(RECENT, json=self._recent)
        mock.get(CONVERSATION, json=self._conversation)

    def user(self, user: str, text: str, at: int, msg_id: str | None = None) -> dict:
        return self._add(1, user, ZALO_OA_ID, text, at, msg_id)

    def oa(self, user: str, text: str, at: int, msg_id: str | None = None) -> dict:
        return self._add(0, ZALO_OA_ID, user, text, at, msg_id)

    def _add(self, src, from_id, to_id, text, at, msg_id) -> dict:
        item = dict(self.template, src=src, from_id=from_id, to_id=to_id, message=text, time=at)
        item["message_id"] = msg_id or f"{len(self.items):020x}"
        self.items.append(item)
        return item

    def _newest_first(self) -> list[dict]:
        return sorted(self.items, key=lambda i: i["time"], reverse=True)

    @staticmethod
    def _page(request) -> dict:
        return json.loads(parse_qs(urlsplit(request.url).query)["data"][0])

    def _recent(self, request, context):
        q, rows = self._page(request), {}
        for item in self._newest_first():
            rows.setdefault(item["from_id"] if item["src"] == 1 else item["to_id"], item)
        return {"error": 0, "message": "Success", "data": list(rows.values())[q["offset"] : q["offset"] + q["count"]]}

    def _conversation(self, request, context):
        q = self._page(request)
        mine = [i for i in self._newest_first() if q["user_id"] in (i["from_id"], i["to_id"])]
        return {"error": 0, "message": "Success", "data": mine[q["offset"] : q["offset"] + q["count"]]}


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        for user in (U1, U2):
            mock.post(f"{FC_API}/conversations/{CONV[user]}/messages", json={"id": f"posted-{user}"})
        yield mock


@pytest.fixture
def history(m):
    return History(m)


def known(ctx, *users):
    for user in users:
        ctx.mapping.set_zalo_user(user, fc_user_id=FC_USER[user])
        ctx.mapping.link_conversation(user, CONV[user])
        ctx.mapping.seen_now(user)


def lane_texts(ctx, user: str) -> list[str]:
    raw = ctx.redis.lrange(keys.lane(f"in:{user}"), 0, -1)
    return [Item.loads(r).payload["message"].get("text", "") for r in raw]


def drain(ctx, *users) -> None:
    for user in users:
        assert Drainer(ctx).drain(f"in:{user}") == "empty"


def posts(m, user: str) -> list[dict]:
    url = f"{FC_API}/conversations/{CONV[user]}/messages"
    return [r.json() for r in m.request_history if r.method == "POST" and r.url == url]


def contents(post: dict) -> list[str]:
    return [p["text"]["content"] for p in post["message_parts"] if "text" in p]


# -- what is queued, and how ---------------------------------------------------------------------


def test_missed_messages_are_queued_oldest_first_per_user_across_pages(ctx, history):
    start = now_ms() - 3 * HOUR
    for i in range(13):  # two conversation pages for U1, interleaved with U2
        history.user(U1, f"u1 #{i}", start + i * 60000)
        if i % 4 == 0:
            history.user(U2, f"u2 #{i}", start + i * 60000 + 1)
    done = catch_up(ctx)
    assert (done["chats"], done["found"], done["queued"], done["missed"]) == (2, 17, 17, 17)
    assert lane_texts(ctx, U1) == [f"u1 #{i}" for i in range(13)]
    assert lane_texts(ctx, U2) == [f"u2 #{i}" for i in (0, 4, 8, 12)]


def test_a_message_a_webhook_brought_is_not_queued_again_nor_is_a_late_webhook_after_catch_up(ctx, history, client, m):
    known(ctx, U1)
    webhook = load_fixture("zalo", "webhooks", "user_send_text.json")
    webhook["timestamp"] = str(now_ms() - HOUR)
    assert post_zalo(client, webhook).get_json() == {"ok": True, "duplicate": False}
    history.user(U1, webhook["message"]["text"], int(webhook["timestamp"]), msg_id=webhook["message"]["msg_id"])
    missed = history.user(U1, "webhook never came", now_ms() - HOUR + 1000)
    done = catch_up(ctx)
    assert (done["found"], done["queued"]) == (2, 1)
    late = dict(webhook, message={"text": missed["message"], "msg_id": missed["message_id"]})
    late["timestamp"] = str(missed["time"])
    assert post_zalo(client, late).get_json() == {"ok": True, "duplicate": True}
    drain(ctx, U1)
    assert [contents(p)[-1] for p in posts(m, U1)] == [webhook["message"]["text"], "webhook never came"]


def test_a_caught_up_message_carries_its_original_time_in_the_agents_language(ctx, history, m):
    known(ctx, U1)
    at = now_ms() - 2 * HOUR
    history.user(U1, "Shop còn size M không ạ?", at)
    catch_up(ctx)
    drain(ctx, U1)
    assert contents(posts(m, U1)[0]) == [
        f"[Delivered late - originally sent {vn(at)} (UTC+7)]",
        "Shop còn size M không ạ?",
    ]
    in_vietnamese = WorkerContext(replace(ctx.settings, agent_language="vi"), ctx.redis)
    history.user(U1, "còn không ạ", at + 60000)
    catch_up(in_vietnamese, since_ms=at + 1)
    drain(in_vietnamese, U1)
    assert contents(posts(m, U1)[1]) == [f"[Đến muộn - gửi lúc {vn(at + 60000)} (UTC+7)]", "còn không ạ"]


def vn(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone(timedelta(hours=7))).strftime("%H:%M %d/%m/%Y")


def test_nothing_before_the_horizon_is_read_or_queued(ctx, history, m):
    ctx = WorkerContext(replace(ctx.settings, catchup_horizon_seconds=2 * 3600), ctx.redis)
    old = [history.user(U1, f"old #{i}", now_ms() - 5 * HOUR + i) for i in range(25)]
    history.user(U1, "recent", now_ms() - HOUR)
    history.user(U2, "too old", now_ms() - 3 * HOUR)
    done = catch_up(ctx)
    assert (done["chats"], done["found"], done["queued"]) == (1, 1, 1)
    assert lane_texts(ctx, U1) == ["recent"] and lane_texts(ctx, U2) == []
    reads = [r for r in m.request_history if r.url.startswith(CONVERSATION)]
    assert len(old) == 25 and len(reads) == 1  # the first page reached the horizon: no second one read


def test_oa_messages_become_private_notes_and_the_bridges_own_sends_are_skipped(ctx, history, m):
    known(ctx, U1)
    ours = history.oa(U1, "reply the bridge sent", now_ms() - 2 * HOUR)
    ctx.mapping.remember_sent(ours["message_id"], text=ours["message"])
    history.oa(U1, "typed in Zalo's console", now_ms() - HOUR)
    done = catch_up(ctx)
    assert (done["found"], done["queued"]) == (2, 1)
    drain(ctx, U1)
    (note,) = posts(m, U1)
    assert note["message_type"] == "private"
    assert contents(note)[-1] == "typed in Zalo's console"


def test_the_next_catch_up_starts_where_the_last_one_did_less_a_margin(ctx, history, m):
    first = catch_up(ctx)
    assert ctx.redis.hget(DEFAULT_KEYS.catchup, "started_at").decode() == str(first["started_at"])
    history.user(U1, "just before", first["started_at"] - MARGIN_MS + 1000)
    history.user(U1, "long before", first["started_at"] - MARGIN_MS - 1000)
    second = catch_up(ctx)
    assert second["since"] == first["started_at"] - MARGIN_MS
    assert lane_texts(ctx, U1) == ["just before"]


def test_a_narrower_window_asked_for_leaves_the_next_catch_up_reading_from_the_last_one(ctx, history, m):
    earlier = now_ms() - HOUR  # the last catch-up before the bridge went down
    ctx.redis.hset(DEFAULT_KEYS.catchup, mapping={"started_at": earlier, "finished_at": earlier})
    history.user(U1, "while down", now_ms() - HOUR // 2)
    assert catch_up(ctx, now_ms() - 60_000, "on_demand")["queued"] == 0  # an operator's --since 60
    again = catch_up(ctx)
    assert again["since"] == earlier - MARGIN_MS
    assert lane_texts(ctx, U1) == ["while down"]


def test_only_one_catch_up_of_a_connection_runs_at_a_time(ctx, history, m):
    entered, leave = threading.Event(), threading.Event()

    def slow(request, context):
        entered.set()
        leave.wait(5)
        return {"error": 0, "message": "Success", "data": []}

    m.get(RECENT, json=slow)
    first = threading.Thread(target=catch_up, args=(ctx,))
    first.start()
    assert entered.wait(5)
    assert catch_up(ctx) is None
    leave.set()
    first.join(5)
    assert catch_up(ctx) is not None


def test_rate_limit_refusals_are_waited_out_not_skipped(ctx, history, m):
    history.user(U1, "hello", now_ms() - HOUR)
    limited = {"json": {"error": -32, "message": "The number of requests exceeds the limit per minute"}}
    m.get(CONVERSATION, [limited, limited, {"json": history._conversation}])
    clock, paused = FakeClock(time.time()), []  # the shared limiter's pauses after each -32, not slept

    def pause(seconds: float) -> None:
        paused.append(seconds)
        clock.sleep(seconds)

    ctx.zalo.limiter.clock, ctx.zalo.limiter.sleep = clock, pause
    waits = []
    done = catch_up(ctx, sleep=waits.append)
    assert len(waits) == 2 and all(w > 0 for w in waits)
    assert done["queued"] == 1
    assert paused  # the limiter paused too


def test_a_failing_read_is_kept_as_the_failure_and_the_next_catch_up_reads_the_same_window(ctx, history, m):
    history.user(U1, "hello", now_ms() - HOUR)
    m.get(RECENT, status_code=503)
    before = now_ms()
    with pytest.raises(ZaloRetryable) as refused:
        catch_up(ctx, reason="quiet")
    assert ctx.redis.hget(DEFAULT_KEYS.catchup, "started_at") is None and lane_texts(ctx, U1) == []
    failed = connection_status(ctx.redis, "default")["catch_up"]["failed"]
    assert failed["reason"] == "quiet" and failed["error"] == str(refused.value) and "503" in failed["error"]
    assert before / 1000 <= failed["at"] <= now_ms() / 1000
    m.get(RECENT, json=history._recent)
    assert catch_up(ctx)["queued"] == 1  # the lock was let go, and the window read again
    state = connection_status(ctx.redis, "default")["catch_up"]
    assert state["failed"] is None and state["queued"] == 1


def test_a_failing_catch_up_job_is_one_log_line_with_the_reason(ctx, history, m, caplog):
    from rq import SimpleWorker

    from workers.catchup import enqueue
    from workers.context import set_worker_context
    from workers.starter import QUEUE_NAME

    m.get(RECENT, status_code=503)
    enqueue(ctx.redis, "default", "quiet")
    caplog.set_level(logging.INFO)
    set_worker_context(ctx)
    try:
        SimpleWorker([Queue(QUEUE_NAME, connection=ctx.redis)], connection=ctx.redis).work(burst=True)
    finally:
        set_worker_context(None)
    [line] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert (line.getMessage(), line.connection, line.reason) == ("catchup.failed", "default", "quiet")
    assert "503" in line.error and not any(r.exc_info or r.exc_text for r in caplog.records)
    assert connection_status(ctx.redis, "default")["catch_up"]["failed"]["error"] == line.error


# -- the converter ------------------------------------------------------------------------------


def test_history_items_become_the_events_their_webhooks_would_have_been():
    photo, location = load_fixture("zalo", "answers", "conversation.json")["data"][1:3]
    event = history_event(photo, ZALO_APP_ID)
    assert (event.kind, event.lane, event.dedupe_id) == ("user_message", f"in:{U2}", photo["message_id"])
    assert event.payload["event_name"] == "user_send_image" and event.payload["timestamp"] == str(photo["time"])
    assert event.payload["message"]["attachments"] == [
        {"type": "image", "payload": {"url": photo["url"], "thumbnail": photo["thumb"]}}
    ]
    coordinates = history_event(location, ZALO_APP_ID).payload["message"]["attachments"][0]["payload"]
    assert coordinates == {"coordinates": {"latitude": "10.7769", "longitude": "106.7009"}}
    reply = load_fixture("zalo", "answers", "conversation.json")["data"][3]
    oa = history_event(reply, ZALO_APP_ID)
    assert (oa.kind, oa.lane, oa.payload["event_name"]) == ("oa_message", f"in:{U2}", "oa_send_text")


def test_a_history_item_a_webhook_could_not_carry_is_skipped_and_the_rest_queued(ctx, history, m):
    history.user(U1, "fine", now_ms() - HOUR)
    odd = history.user(U2, "odd", now_ms() - HOUR)
    odd["message"] = {"html": "<b>not text</b>"}  # a webhook in this shape is refused, so is this
    done = catch_up(ctx)
    assert (done["found"], done["queued"]) == (2, 1)
    assert lane_texts(ctx, U1) == ["fine"] and lane_texts(ctx, U2) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3600", 1_000_000_000_000 - 3_600_000),
        ("2025-12-02T10:42:00+07:00", 1764646920000),
        ("2025-12-02T03:42:00", 1764646920000),
    ],
)
def test_since_is_seconds_back_or_an_iso_time(raw, expected):
    assert parse_since(raw, now=1_000_000_000) == expected


def test_since_refuses_anything_else():
    with pytest.raises(ValueError, match="since"):
        parse_since("yesterday")


# -- webhook health -----------------------------------------------------------------------------


def test_webhooks_stopped_while_catch_up_finds_messages_raises_an_alert_until_a_webhook_comes(ctx, history, m):
    ctx.redis.set(DEFAULT_KEYS.last_webhook("zalo"), (now_ms() - 3 * HOUR) / 1000)
    newest = history.user(U1, "never came", now_ms() - HOUR)
    history.user(U2, "nor this", now_ms() - 2 * HOUR)
    catch_up(ctx, reason="quiet")
    status = connection_status(ctx.redis, "default")
    assert status["catch_up"]["queued"] == 2 and status["catch_up"]["reason"] == "quiet"
    assert status["catch_up"]["newest_missed_at"] == newest["time"] / 1000
    (alert,) = status["alerts"]
    assert "Zalo Developers → your app → Webhook" in alert and "2 message(s)" in alert
    assert (
        "Zalo Developers → ứng dụng của bạn → Webhook"
        in connection_status(ctx.redis, "default", language="vi")["alerts"][0]
    )
    ctx.redis.set(DEFAULT_KEYS.last_webhook("zalo"), now_ms() / 1000)
    assert connection_status(ctx.redis, "default")["alerts"] == []


def test_a_catch_up_that_only_finds_what_webhooks_brought_raises_no_alert(ctx, history, m, client):
    webhook = load_fixture("zalo", "webhooks", "user_send_text.json")
    webhook["timestamp"] = str(now_ms() - HOUR)
    post_zalo(client, webhook)
    history.user(U1, "x", int(webhook["timestamp"]), msg_id=webhook["message"]["msg_id"])
    catch_up(ctx)
    status = connection_status(ctx.redis, "default")
    assert status["catch_up"]["found"] == 1 and status["catch_up"]["queued"] == 0 and status["alerts"] == []


def test_readyz_and_the_status_api_show_the_alert(ctx, history, m, client, app):
    history.user(U1, "never came", now_ms() - HOUR)
    catch_up(ctx)
    ready = client.get("/readyz").get_json()
    assert any("Zalo Developers" in a for a in ready["alerts"])
    assert ready["connections"]["default"]["catch_up"]["missed"] == 1


# -- on demand ----------------------------------------------------------------------------------


def test_the_api_queues_a_catch_up_job_and_calls_no_partner(settings, redis, m):
    from app import create_app

    app = create_app(replace(settings, admin_token="t0ken-for-tests"))
    api = app.test_client()
    auth = {"Authorization": "Bearer t0ken-for-tests"}
    answer = api.post("/api/connections/default/catch-up", json={"since": "3600"}, headers=auth)
    assert answer.status_code == 202 and answer.get_json()["queued"] is True
    (job,) = Queue("lanes", connection=redis).jobs
    assert job.func_name == "workers.catchup.catch_up_job" and job.args[0] == "default"
    assert abs(job.args[1] - (now_ms() - 3_600_000)) < 5000 and job.args[2] == "on_demand"
    assert [r for r in m.request_history if not r.url.endswith(("/getoa", "/channels"))] == []
    assert api.post("/api/connections/nope/catch-up", headers=auth).status_code == 404
    assert api.post("/api/connections/default/catch-up", json={"since": "soon"}, headers=auth).status_code == 400
    for body in (["3600"], {"since": "3600", "until": "now"}):
        assert api.post("/api/connections/default/catch-up", json=body, headers=auth).status_code == 400
    assert len(Queue("lanes", connection=redis).jobs) == 1


def test_the_command_catches_up_here_and_says_what_it_found(app, history, m):
    history.user(U1, "hello", now_ms() - HOUR)
    result = app.test_cli_runner().invoke(args=["bridge", "catch-up", "--connection", "default", "--since", "86400"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "default: 1 chat(s), 1 message(s) read, 1 queued"
