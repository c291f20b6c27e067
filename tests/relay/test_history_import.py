"""The history import a connection's first activation offers (issue 6 point 6): off unless
chosen; the catch-ups that come anyway read from the activation, not back to the horizon; when
chosen, the last N days come in through the catch-up path with their own times, counted on the
dashboard. Real Redis; Zalo's history behind requests-mock (exact requests)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests_mock
from rq import Queue

from app import create_app
from app.bridge import keys
from app.bridge.keys import Keys
from app.bridge.lanes import QUEUE_NAME, Item, now_ms
from app.relay.catchup import MARGIN_MS, catch_up
from sandbox.helpers import ZALO_API, partners_answer_probes
from tests.relay.test_catchup import CONVERSATION, RECENT, History
from tests.web.console.test_console import FORM, csrf_of
from workers.context import WorkerContext

ADMIN = "history-import-admin-Hs20"
PAGE = "/admin/connections/shop-hcm"
DAY = 86400 * 1000
U1, U2 = "246845883529197922", "3103741396296991610"
TOKEN = FORM["zalo.access_token"]


@pytest.fixture
def web(settings):
    client = create_app(replace(settings, admin_token=ADMIN)).test_client()
    page = client.get("/admin/sign-in")
    client.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN})
    new = client.get("/admin/connections/new")
    assert client.post("/admin/connections/new", data={"csrf_token": csrf_of(new), **FORM}).status_code == 302
    return client


def post(web, path: str, data: dict, headers: dict | None = None):
    return web.post(path, data={"csrf_token": csrf_of(web.get(PAGE)), **data}, headers=headers or {})


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        yield mock


def worker(settings, redis) -> WorkerContext:
    return WorkerContext(settings, redis).for_connection("shop-hcm")


def lane_texts(redis, user: str) -> list[tuple[str, int]]:
    raw = redis.lrange(keys.lane(f"shop-hcm/in:{user}"), 0, -1)
    return [(Item.loads(r).payload["message"]["text"], int(Item.loads(r).payload["timestamp"])) for r in raw]


def reads(m) -> list[tuple[str, dict, str]]:
    """Every history read: the URL, its `data` query, and the token it carried."""
    return [
        (r.url.partition("?")[0], json.loads(r.qs["data"][0]), r.headers["access_token"])
        for r in m.request_history
        if r.url.startswith((RECENT, CONVERSATION))
    ]


def test_the_first_activation_offers_the_history_and_nothing_from_before_comes_unless_chosen(web, settings, redis, m):
    history = History(m)
    history.user(U1, "three days ago", now_ms() - 3 * DAY)
    assert 'id="history-offer"' not in web.get(PAGE).get_data(as_text=True)  # not active yet
    before = now_ms()
    post(web, PAGE + "/enabled", {"enabled": "1"})
    page = web.get(PAGE, headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert 'id="history-offer"' in page and "Đưa các cuộc trò chuyện trước đây vào?" in page
    assert 'max="7"' in page  # CATCHUP_HORIZON_SECONDS, 7 days by default
    activated = int(redis.hget(Keys("shop-hcm").catchup, "started_at"))
    assert before <= activated <= now_ms()

    done = catch_up(worker(settings, redis), reason="start")  # what the worker's start trigger runs
    assert done["since"] == activated - MARGIN_MS and done["queued"] == 0
    assert reads(m) == [(f"{ZALO_API}/v2.0/oa/listrecentchat", {"offset": 0, "count": 10}, TOKEN)]
    post(web, PAGE + "/enabled", {"enabled": "0"})
    post(web, PAGE + "/enabled", {"enabled": "1"})  # activated again: not the first time
    assert int(redis.hget(Keys("shop-hcm").catchup, "started_at")) == done["started_at"]


def test_chosen_the_last_days_come_in_with_their_own_times_and_are_counted(web, settings, redis, m):
    history = History(m)
    two_days, six_days = now_ms() - 2 * DAY, now_ms() - 6 * DAY
    history.user(U1, "hai ngày trước", two_days)
    history.user(U2, "sáu ngày trước", six_days)
    post(web, PAGE + "/enabled", {"enabled": "1"})
    queued = Queue(QUEUE_NAME, connection=redis)

    refused = post(web, PAGE + "/history", {"days": "8"}, {"Accept-Language": "vi"})
    assert refused.status_code == 302 and queued.jobs == []
    assert "một số nguyên từ 1 đến 7" in web.get(PAGE, headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert web.post(PAGE + "/history", data={"csrf_token": "forged", "days": "3"}).status_code == 400

    asked = now_ms()
    post(web, PAGE + "/history", {"days": "3"})
    [job] = queued.jobs
    name, connection, since, reason = job.func_name, *job.args
    assert (name, connection, reason) == ("workers.catchup.catch_up_job", "shop-hcm", "history")
    assert asked - 3 * DAY <= since <= now_ms() - 3 * DAY
    assert 'id="history-offer"' not in web.get(PAGE).get_data(as_text=True)  # chosen: offered no more

    done = catch_up(worker(settings, redis), since, "history")  # the job's own call
    assert (done["chats"], done["queued"]) == (1, 1)  # the six-day-old chat is before the window
    assert lane_texts(redis, U1) == [("hai ngày trước", two_days)] and lane_texts(redis, U2) == []
    assert reads(m) == [
        (f"{ZALO_API}/v2.0/oa/listrecentchat", {"offset": 0, "count": 10}, TOKEN),
        (f"{ZALO_API}/v2.0/oa/conversation", {"user_id": U1, "offset": 0, "count": 10}, TOKEN),
    ]
    catch_up(worker(settings, redis), reason="quiet")  # a later catch-up does not undo the count
    dashboard = web.get("/admin/", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    shown = dashboard.split('id="history-shop-hcm"')[1].split("</dd>")[0]
    assert "Đã đưa vào 1 tin nhắn của 3 ngày gần nhất" in shown


def test_declined_the_offer_goes_and_nothing_is_queued(web, redis):
    post(web, PAGE + "/enabled", {"enabled": "1"})
    post(web, PAGE + "/history", {"decline": "1"})
    assert Queue(QUEUE_NAME, connection=redis).jobs == []
    page = web.get(PAGE).get_data(as_text=True)
    assert 'id="history-offer"' not in page and "The chats from before are left out." in page


def test_without_a_token_pair_the_offer_waits_for_one(settings, redis):
    client = create_app(replace(settings, admin_token=ADMIN)).test_client()
    page = client.get("/admin/sign-in")
    client.post("/admin/sign-in", data={"csrf_token": csrf_of(page), "token": ADMIN})
    form = {k: v for k, v in FORM.items() if k not in ("zalo.access_token", "zalo.refresh_token")}
    new = client.get("/admin/connections/new")
    client.post("/admin/connections/new", data={"csrf_token": csrf_of(new), **form})
    post(client, PAGE + "/enabled", {"enabled": "1"})
    assert 'id="history-offer"' not in client.get(PAGE).get_data(as_text=True)  # nothing could be read yet
    tokens = {"zalo": {"access_token": "access-later", "refresh_token": "refresh-later"}}
    bearer = {"Authorization": f"Bearer {ADMIN}"}
    assert client.patch("/api/connections/shop-hcm", json=tokens, headers=bearer).status_code == 200
    assert 'id="history-offer"' in client.get(PAGE).get_data(as_text=True)
