"""GET /metrics: the token, the format, and every family's values after a known run through
the real webhooks and the real drain (partners answered by requests-mock)."""

from __future__ import annotations

import time

import pytest
import requests_mock
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from app.bridge import lanes
from app.bridge.keys import DUE, HEARTBEAT
from app.bridge.lanes import now_ms
from app.operations import counters
from sandbox.helpers import (
    FC_API,
    PNG,
    ZALO_API,
    load_fixture,
    make_settings,
    partners_answer_probes,
    post_freshchat,
    zalo_body,
    zalo_headers,
)
from tests.relay.test_agent_view import agent_reply, user_wrote, with_options, zalo_answers
from tests.relay.test_inbound import CONV, USER, known_user, refused
from workers.drain import Drainer

TOKEN = "metrics-token-example"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CS = f"{ZALO_API}/v3.0/oa/message/cs"
POSTS = f"{FC_API}/conversations/{CONV}/messages"
IMAGE = "https://cdn.zalo-example.vn/img/p1.jpg"  # user_send_image.json's
LATE_MS = 3000  # how long before the drain the run's webhooks were accepted


@pytest.fixture
def settings(redis, redis_server, tmp_path):
    return make_settings(redis_server.url, media_dir=str(tmp_path / "media"), metrics_token=TOKEN)


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.get(IMAGE, content=PNG, headers={"Content-Type": "image/jpeg"})
        yield mock


def scrape(client) -> dict[tuple[str, frozenset], float]:
    resp = client.get("/metrics", headers=AUTH)
    assert resp.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name: str, **labels):
    return samples.get((name, frozenset(labels.items())))


def post_zalo(client, event: dict, secret: str | None = None):
    raw = zalo_body(event)
    headers = zalo_headers(raw, event, secret) if secret else zalo_headers(raw, event)
    return client.post("/webhooks/zalo", data=raw, headers=headers)


def drain_all(ctx, lanes: list[str], timeout: float = 10.0) -> None:
    """Run the real drain until the lanes are gone from the due set (retries are due in ms)."""
    deadline = time.monotonic() + timeout
    while any(ctx.redis.zscore(DUE, lane) is not None for lane in lanes):
        assert time.monotonic() < deadline, "lanes did not drain"
        claimed = ctx.lanes.claim()
        if claimed:
            Drainer(ctx).drain_held(*claimed)
        else:
            time.sleep(0.01)


# -- who may read it ------------------------------------------------------------------------------


def test_metrics_answer_404_while_no_token_is_set(redis, redis_server, tmp_path):
    from app import create_app

    client = create_app(make_settings(redis_server.url, media_dir=str(tmp_path))).test_client()
    assert client.get("/metrics", headers=AUTH).status_code == 404


@pytest.mark.parametrize("given", [None, "Bearer wrong-token", TOKEN, f"Basic {TOKEN}"])
def test_metrics_answer_401_without_the_right_bearer_token(client, given):
    resp = client.get("/metrics", headers={"Authorization": given} if given else {})
    assert (resp.status_code, resp.headers["WWW-Authenticate"]) == (401, "Bearer")
    assert resp.headers["Cache-Control"] == "no-store" and b"bridge_" not in resp.data


def test_metrics_are_prometheus_text_and_never_cached(client):
    resp = client.get("/metrics", headers=AUTH)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
    assert resp.headers["Cache-Control"] == "no-store"
    names = {f.name for f in text_string_to_metric_families(resp.get_data(as_text=True))}
    assert {"bridge_redis_up", "bridge_queue_items", "bridge_messages_relayed"} <= names


# -- values after a known run ---------------------------------------------------------------------


def test_each_family_counts_a_known_run(client, ctx, m, monkeypatch):
    """Two Zalo messages (one relayed, one FreshChat refuses in every form: a dead letter), a
    webhook with a bad signature, an agent reply Zalo first answers with a 500 (a retry)."""
    known_user(ctx)
    m.post(POSTS, [{"json": {"id": "fc-1"}}, refused(), refused(), refused(), {"json": {"id": "note"}}])
    m.post(CS, [{"status_code": 500}, {"json": load_fixture("zalo", "answers", "message_cs__reply_quota.json")}])
    text, image = (load_fixture("zalo", "webhooks", f"user_send_{n}.json") for n in ("text", "image"))
    reply = load_fixture("freshchat", "webhooks", "message_create__agent_text.json")

    with monkeypatch.context() as earlier:  # the lanes stamp each item as they accept it
        earlier.setattr(lanes, "now_ms", lambda: now_ms() - LATE_MS)
        assert [post_zalo(client, e).status_code for e in (text, image)] == [200, 200]
        assert post_zalo(client, text, secret="not-the-oa-secret").status_code == 401
        assert post_freshchat(client, reply).status_code == 200
    ctx.redis.set(HEARTBEAT, time.time() - 2)
    drain_all(ctx, [f"in:{USER}", f"out:{CONV}"])

    assert [(r.method, r.url) for r in m.request_history] == [
        ("POST", POSTS),  # the text, accepted
        ("GET", IMAGE),  # the image, copied to the media store
        ("POST", POSTS),  # ... refused as an image, a file and a link
        ("POST", POSTS),
        ("POST", POSTS),
        ("POST", POSTS),  # the note about the dead letter
        ("POST", CS),  # the reply: 500
        ("GET", f"{ZALO_API}/v2.0/oa/getoa"),  # the breaker's probe: Zalo is up, the item retries
        ("POST", CS),  # accepted
    ]
    assert m.request_history[-1].json() == {
        "recipient": {"user_id": USER},
        "message": {"text": "Chào anh, em kiểm tra đơn hàng ngay ạ."},
    }
    got = scrape(client)
    webhooks = {(dict(k)["direction"], dict(k)["code"]): v for (n, k), v in got.items() if n == "bridge_webhooks_total"}
    assert webhooks == {("in", "200"): 2, ("in", "401"): 1, ("out", "200"): 1}
    assert value(got, "bridge_webhooks_total", connection="default", direction="in", code="401") == 1
    for direction in ("in", "out"):
        assert value(got, "bridge_messages_relayed_total", connection="default", direction=direction) == 1
        latency = {"connection": "default", "direction": direction}
        assert value(got, "bridge_relay_latency_seconds_bucket", le="2.5", **latency) == 0
        assert value(got, "bridge_relay_latency_seconds_bucket", le="5.0", **latency) == 1
        assert value(got, "bridge_relay_latency_seconds_bucket", le="+Inf", **latency) == 1
        assert value(got, "bridge_relay_latency_seconds_count", **latency) == 1
        assert LATE_MS / 1000 <= value(got, "bridge_relay_latency_seconds_sum", **latency) < 5
        assert value(got, "bridge_queue_items", **latency) == 0
        assert value(got, "bridge_queue_oldest_due_age_seconds", **latency) == 0
    assert value(got, "bridge_retries_total", connection="default", direction="out") == 1
    assert value(got, "bridge_retries_total", connection="default", direction="in") is None
    assert value(got, "bridge_dead_letters_total", connection="default", direction="in") == 1
    assert value(got, "bridge_dead_letters_kept", connection="default") == 1
    errors = {
        (dict(k)["partner"], dict(k)["code"]): v for (n, k), v in got.items() if n == "bridge_partner_errors_total"
    }
    assert errors == {("freshchat", "400"): 3, ("zalo", "500"): 1}
    assert value(got, "bridge_zalo_token_dead", connection="default") == 0
    assert 89 * 86400 < value(got, "bridge_zalo_refresh_token_expires_in_seconds", connection="default") <= 90 * 86400
    for direction in ("in", "out"):
        at = value(got, "bridge_last_webhook_timestamp_seconds", connection="default", direction=direction)
        assert time.time() - 60 < at <= time.time()
    assert 2 <= value(got, "bridge_worker_heartbeat_age_seconds") < 10
    assert value(got, "bridge_redis_up") == 1


def test_queue_depth_and_the_age_of_the_oldest_due_lane(client, ctx):
    from app.bridge.lanes import Item

    for n in range(3):
        ctx.lanes.accept(f"out:{CONV}", Item(f"freshchat:m-{n}", "freshchat", {}, now_ms(), event="agent_message"))
    ctx.redis.zadd(DUE, {f"out:{CONV}": now_ms() - 42_000})  # due 42 s ago, nobody took it
    got = scrape(client)
    assert value(got, "bridge_queue_items", connection="default", direction="out") == 3
    assert 42 <= value(got, "bridge_queue_oldest_due_age_seconds", connection="default", direction="out") < 45
    assert value(got, "bridge_queue_items", connection="default", direction="in") == 0


def test_billed_replies_held_and_sent_are_counted(client, ctx, m):
    m.post(POSTS, json={"id": "fc-note-1"})
    hold = with_options(ctx, hold_billed_replies=True)
    user_wrote(hold, hours_ago=49)
    assert agent_reply(hold, ["Dạ, em gửi anh báo giá ạ"], msg_id="held-1") == "empty"
    zalo_answers(m, "z-1", quota=False)
    assert agent_reply(ctx, ["Dạ, em gửi anh báo giá ạ"], msg_id="billed-1") == "empty"
    assert [(r.method, r.url) for r in m.request_history] == [("POST", POSTS), ("POST", CS), ("POST", POSTS)]
    got = scrape(client)
    assert value(got, "bridge_billed_replies_total", connection="default", outcome="held") == 1
    assert value(got, "bridge_billed_replies_total", connection="default", outcome="sent") == 1
    # The held reply reached nobody: only the billed one counts as relayed.
    assert value(got, "bridge_messages_relayed_total", connection="default", direction="out") == 1


def test_a_wait_for_the_shared_rate_limiter_is_counted(client, ctx, m):
    m.post(CS, json=load_fixture("zalo", "answers", "message_cs__reply_quota.json"))
    ctx.zalo.limiter.penalise(0.2)  # another worker met a 429: everyone waits
    ctx.zalo.send_text(USER, "Dạ")
    assert [r.json() for r in m.request_history] == [{"recipient": {"user_id": USER}, "message": {"text": "Dạ"}}]
    got = scrape(client)
    assert value(got, "bridge_limiter_waits_total", connection="default", partner="zalo") == 1
    assert 0.1 < value(got, "bridge_limiter_wait_seconds_total", connection="default", partner="zalo") <= 0.2


def test_a_scrape_while_redis_is_away_still_shows_the_webhook_answers(client, redis_server):
    from sandbox.helpers import load_fixture as fixture

    redis_server.stop()
    try:
        assert post_zalo(client, fixture("zalo", "webhooks", "user_send_text.json")).status_code == 503
        got = scrape(client)
    finally:
        redis_server.start()
    assert value(got, "bridge_redis_up") == 0
    assert value(got, "bridge_webhooks_total", connection="_unknown", direction="in", code="503") == 1


def test_messages_relayed_are_the_sum_of_their_latency_buckets_an_older_relayed_field_included(client, ctx):
    """A relayed message costs two HINCRBY (its bucket, the latency sum), not three: the count
    is read from the buckets. A hash an older version wrote kept `relayed|<direction>` beside
    the same messages' buckets; it is not counted twice."""
    key = ctx.keys.metrics
    ctx.redis.hset(key, mapping={"relayed|in": 2, "latency|in|0.1": 1, "latency|in|5.0": 1, "latency_sum_ms|in": 3000})
    counters.Counters(ctx.redis, "default").relayed("in", 0.04)
    counters.Counters(ctx.redis, "default").relayed("out", 0.2)
    assert {f for f in ctx.redis.hkeys(key) if b"|out" in f} == {b"latency|out|0.25", b"latency_sum_ms|out"}
    got = scrape(client)
    assert value(got, "bridge_messages_relayed_total", connection="default", direction="in") == 3
    assert value(got, "bridge_relay_latency_seconds_count", connection="default", direction="in") == 3
    assert value(got, "bridge_relay_latency_seconds_sum", connection="default", direction="in") == 3.04
    assert value(got, "bridge_messages_relayed_total", connection="default", direction="out") == 1
    assert value(got, "bridge_relay_latency_seconds_count", connection="default", direction="out") == 1
