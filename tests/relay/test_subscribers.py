"""After-delivery subscribers (app/relay/subscribers.py): one registration line is all a new
feature needs to see every outcome, and a subscriber that raises costs no message and repeats
no delivery. Real Redis, the real relay path, partners mocked (requests-mock)."""

from __future__ import annotations

import logging

import pytest
import requests_mock

from app.bridge.outcome import DELIVERED, FAILED, RETRYING, Outcome, Relayed
from app.operations.journal import Journal
from app.relay import subscribers
from sandbox.helpers import FC_API, PNG, load_fixture, partners_answer_probes
from tests.relay.test_inbound import CONV, USER, known_user, refused, run

MESSAGES = f"{FC_API}/conversations/{CONV}/messages"


@pytest.fixture
def m(public_dns):
    with requests_mock.Mocker() as mock:
        partners_answer_probes(mock)
        mock.get("https://cdn.zalo-example.vn/img/p1.jpg", content=PNG, headers={"Content-Type": "image/jpeg"})
        yield mock


@pytest.fixture
def seen(monkeypatch) -> list[Outcome]:
    """A new subscriber, registered the way a feature would be: one more entry in the list."""
    got: list[Outcome] = []
    monkeypatch.setattr(
        subscribers, "SUBSCRIBERS", (*subscribers.SUBSCRIBERS, lambda outcome, pipe: got.append(outcome))
    )
    return got


def fixture(name: str, msg_id: str, timestamp: int) -> dict:
    event = load_fixture("zalo", "webhooks", f"user_send_{name}.json")
    return {**event, "message": {**event["message"], "msg_id": msg_id}, "timestamp": str(timestamp)}


def test_a_registered_subscriber_sees_every_outcome_with_its_fields(ctx, m, seen):
    known_user(ctx)
    answers = [
        {"json": {"id": "fc-1"}},
        refused(),
        refused(),
        refused(),
        {"json": {"id": "note"}},
        {"status_code": 503},
    ]
    m.post(MESSAGES, answers)
    now = 1_700_000_000_000
    text, image, later = fixture("text", "z-1", now), fixture("image", "z-2", now + 1), fixture("text", "z-3", now + 2)

    assert run(ctx, text) == "empty"
    assert run(ctx, image) == "empty"  # refused in every form: a dead letter
    assert run(ctx, later) == "deferred"  # FreshChat 503: retried later

    delivered, failed, retrying = seen
    assert (delivered.state, delivered.lane, delivered.item.id, delivered.direction) == (
        DELIVERED,
        f"in:{USER}",
        "zalo:z-1",
        "in",
    )
    assert delivered.relayed and delivered.latency_ms >= 0 and delivered.ctx.connection == "default"
    assert delivered.learned == Relayed(zalo_user=USER, user_wrote_at=now)
    assert (delivered.reason, delivered.error, delivered.dead_letter) == ("", "", None)

    assert (retrying.state, retrying.item.id, retrying.relayed, retrying.learned) == (RETRYING, "zalo:z-3", False, None)
    assert "503" in retrying.error and retrying.reason == retrying.error
    assert retrying.next_try == ctx.redis.zscore("zfb:due", f"in:{USER}") / 1000

    [dead] = ctx.dead_letters.list()
    assert (failed.state, failed.item.id, failed.dead_letter, failed.reason) == (
        FAILED,
        "zalo:z-2",
        dead["id"],
        dead["reason"],
    )
    assert failed.learned is None and not failed.relayed and not failed.removed


def test_a_raising_subscriber_neither_loses_nor_repeats_the_message(ctx, m, monkeypatch, caplog):
    def broken(outcome, pipe):
        raise RuntimeError("a bug in a feature")

    monkeypatch.setattr(subscribers, "SUBSCRIBERS", (broken, *subscribers.SUBSCRIBERS))
    known_user(ctx)
    m.post(MESSAGES, json={"id": "fc-1"})
    text = load_fixture("zalo", "webhooks", "user_send_text.json")
    caplog.set_level(logging.ERROR, logger="worker.subscribers")

    assert run(ctx, text) == "empty"  # popped: the lane is empty, nothing left to redo
    assert [r.url for r in m.request_history if r.method == "POST"] == [MESSAGES]  # delivered once
    assert ctx.lanes.head(f"in:{USER}") is None and ctx.dead_letters.count() == 0
    [line] = [r for r in caplog.records if r.getMessage() == "worker.subscriber_failed"]
    assert line.subscriber.endswith("broken") and line.exc_info[0] is RuntimeError
    # the subscribers after it still ran: the journal shows the message delivered
    [entry] = Journal(ctx.redis, "default").recent()
    assert (entry["id"], entry["state"]) == ("zalo:" + text["message"]["msg_id"], "delivered")
