"""Both webhooks run the one pipeline (app/webhooks/pipeline.py): the same pieces in the same
order, and nothing past `verify` for a body whose signature does not verify."""

from __future__ import annotations

import json
import time

import pytest
import requests_mock

from app.bridge.keys import DEFAULT, DUE, Keys
from app.web.webhooks import freshchat, zalo
from sandbox.helpers import fc_headers, load_fixture, zalo_body, zalo_headers

THE_ORDER = ["route", "candidates", "verify", "load", "signed_at", "to_event", "owner"]


class Recording:
    """The real partner, with the name of each of its pieces written down as it is called."""

    def __init__(self, partner, calls: list[str]):
        self._partner, self._calls = partner, calls

    def __getattr__(self, name):
        value = getattr(self._partner, name)
        if not callable(value):
            return value

        def piece(*args, **kwargs):
            self._calls.append(name)
            return value(*args, **kwargs)

        return piece


def zalo_request(signed: bool) -> tuple[str, bytes, dict]:
    event = load_fixture("zalo", "webhooks", "user_send_text.json")
    raw = zalo_body(event)
    return "/webhooks/zalo", raw, zalo_headers(raw, event, **({} if signed else {"secret": "another"}))


def freshchat_request(signed: bool) -> tuple[str, bytes, dict]:
    raw = json.dumps(load_fixture("freshchat", "webhooks", "message_create__agent_text.json")).encode()
    headers = fc_headers(raw if signed else raw + b" ")
    return "/webhooks/freshchat", raw, headers


# source: (module, its partner's name there, a request to it, the header its signature travels in)
PARTNERS = {
    "zalo": (zalo, "ZALO", zalo_request, "X-ZEvent-Signature"),
    "freshchat": (freshchat, "FRESHCHAT", freshchat_request, "X-Freshchat-Signature"),
}


@pytest.fixture(autouse=True)
def no_partner_calls():
    with requests_mock.Mocker() as m:
        yield m
        assert m.call_count == 0


@pytest.fixture
def calls(monkeypatch) -> dict[str, list[str]]:
    """Each endpoint's partner, recording."""
    recorded: dict[str, list[str]] = {}
    for source, (module, name, *_) in PARTNERS.items():
        recorded[source] = []
        monkeypatch.setattr(module, name, Recording(getattr(module, name), recorded[source]))
    return recorded


@pytest.mark.parametrize("source", PARTNERS)
def test_a_signed_event_runs_every_piece_in_the_one_order(client, redis, calls, source):
    url, raw, headers = PARTNERS[source][2](signed=True)
    resp = client.post(url, data=raw, headers=headers)
    assert resp.status_code == 200 and resp.get_json() == {"ok": True, "duplicate": False}
    assert calls[source] == THE_ORDER
    assert redis.zcard(DUE) == 1 and redis.exists(Keys(DEFAULT).last_webhook(source))


@pytest.mark.parametrize("source", PARTNERS)
def test_a_body_that_does_not_verify_is_never_loaded_nor_queued(client, redis, calls, source):
    url, raw, headers = PARTNERS[source][2](signed=False)
    resp = client.post(url, data=raw, headers=headers)
    assert resp.status_code == 401
    assert resp.get_json() == {"error": f"invalid or missing {PARTNERS[source][3]}"}
    assert calls[source] == ["route", "candidates", "verify"]
    assert redis.zcard(DUE) == 0 and not redis.exists(Keys(DEFAULT).last_webhook(source))


def zalo_ignored() -> tuple[str, bytes, dict]:
    """The OA's own reaction: recorded, not queued (schemas.RECORDED_EVENTS)."""
    event = dict(load_fixture("zalo", "webhooks", "user_reacted_message.json"), event_name="oa_reacted_message")
    raw = zalo_body(event)
    return "/webhooks/zalo", raw, zalo_headers(raw, event)


def freshchat_ignored() -> tuple[str, bytes, dict]:
    raw = json.dumps(load_fixture("freshchat", "webhooks", "message_create__user_actor.json")).encode()
    return "/webhooks/freshchat", raw, fc_headers(raw)


IGNORED = {"zalo": zalo_ignored, "freshchat": freshchat_ignored}


def another(source: str, raw: bytes) -> tuple[bytes, dict]:
    """The same event as a new message (another id), signed again."""
    body = json.loads(raw)
    if source == "zalo":
        body["message"]["msg_id"] += "2"
        raw = zalo_body(body)
        return raw, zalo_headers(raw, body)
    body["data"]["message"]["id"] += "2"
    raw = json.dumps(body).encode()
    return raw, fc_headers(raw)


@pytest.mark.parametrize("source", PARTNERS)
def test_an_accepted_webhook_costs_one_redis_round_trip(client, redis, round_trips, monkeypatch, source):
    """Steady state (the registry read and the script loaded by a first webhook, within the
    registry's 2 s): the accept script is the only round trip, and it marks the last webhook,
    however long since the connection's last mark."""
    from app.web.webhooks import common

    ticks = iter(range(0, 10**6, 60))
    monkeypatch.setattr(common, "clock", lambda: float(next(ticks)))
    url, raw, headers = PARTNERS[source][2](signed=True)
    assert client.post(url, data=raw, headers=headers).status_code == 200
    redis.delete(Keys(DEFAULT).last_webhook(source))
    raw, headers = another(source, raw)
    round_trips.clear()
    resp = client.post(url, data=raw, headers=headers)
    assert resp.get_json() == {"ok": True, "duplicate": False}
    assert len(round_trips) == 1 and b"EVALSHA" in round_trips[0], round_trips
    assert abs(float(redis.get(Keys(DEFAULT).last_webhook(source))) - time.time()) < 5
    assert redis.zcard(DUE) == 1  # one lane, now holding both messages


@pytest.mark.parametrize("source", PARTNERS)
def test_a_duplicate_still_marks_the_last_webhook_in_its_one_round_trip(client, redis, round_trips, source):
    url, raw, headers = PARTNERS[source][2](signed=True)
    assert client.post(url, data=raw, headers=headers).status_code == 200
    redis.delete(Keys(DEFAULT).last_webhook(source))
    round_trips.clear()
    assert client.post(url, data=raw, headers=headers).get_json() == {"ok": True, "duplicate": True}
    assert len(round_trips) == 1 and redis.exists(Keys(DEFAULT).last_webhook(source))


@pytest.mark.parametrize("source", PARTNERS)
def test_a_stream_of_ignored_events_marks_its_last_webhook_at_most_once_per_mark_every(
    client, redis, monkeypatch, source
):
    """An event that queues nothing has no accept step: the status' "last webhook" costs a busy
    connection one write per MARK_EVERY, not one Redis round trip per webhook."""
    from app.web.webhooks import common

    now = [1000.0]
    monkeypatch.setattr(common, "clock", lambda: now[0])
    url, raw, headers = IGNORED[source]()
    key = Keys(DEFAULT).last_webhook(source)
    resp = client.post(url, data=raw, headers=headers)
    assert resp.status_code == 200 and redis.exists(key)
    assert "duplicate" not in resp.get_json() and redis.zcard(DUE) == 0
    redis.delete(key)
    now[0] += common.MARK_EVERY - 0.01
    assert client.post(url, data=raw, headers=headers).status_code == 200 and not redis.exists(key)
    now[0] += 0.01
    assert client.post(url, data=raw, headers=headers).status_code == 200 and redis.exists(key)
