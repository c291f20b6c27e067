"""What the worker tells the journal: a relayed message is delivered (and counted), one
FreshChat refuses in every form is failed with its dead letter, one that meets an outage is
retrying with its next try."""

from __future__ import annotations

import pytest
import requests_mock

from app.operations.journal import Journal
from sandbox.helpers import FC_API, PNG, load_fixture, partners_answer_probes
from tests.relay.test_inbound import CONV, known_user, refused, run

MESSAGES = f"{FC_API}/conversations/{CONV}/messages"


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.get("https://cdn.zalo-example.vn/img/p1.jpg", content=PNG, headers={"Content-Type": "image/jpeg"})
        yield mock


def test_delivered_and_dead_lettered_items_show_with_their_state(ctx, m):
    known_user(ctx)
    m.post(MESSAGES, [{"json": {"id": "fc-1"}}, refused(), refused(), refused(), {"json": {"id": "note"}}])
    text, image = (load_fixture("zalo", "webhooks", f"user_send_{n}.json") for n in ("text", "image"))
    assert run(ctx, text) == "empty"
    assert run(ctx, image) == "empty"

    found = {e["id"]: e for e in Journal(ctx.redis, "default").recent()}
    delivered, failed = found["zalo:" + text["message"]["msg_id"]], found["zalo:" + image["message"]["msg_id"]]
    assert (delivered["state"], delivered["reason"], delivered["dead_letter"]) == ("delivered", "", None)
    assert delivered["conversation"] == CONV  # named by the mapping, for "find by conversation"
    [dead] = ctx.dead_letters.list()
    assert (failed["state"], failed["dead_letter"], failed["reason"]) == ("failed", dead["id"], dead["reason"])
    assert failed["summary"] == "[image] Ảnh sản phẩm bị lỗi"
    assert Journal(ctx.redis, "default").relayed_today() == {"in": 1, "out": 0}


def test_an_outage_shows_as_retrying_with_its_next_try(ctx, m):
    known_user(ctx)
    m.post(MESSAGES, status_code=503)
    text = load_fixture("zalo", "webhooks", "user_send_text.json")
    assert run(ctx, text) == "deferred"
    [entry] = Journal(ctx.redis, "default").recent()
    assert entry["state"] == "retrying" and "503" in entry["reason"]
    assert entry["next_try"] == ctx.redis.zscore("zfb:due", f"in:{text['sender']['id']}") / 1000
