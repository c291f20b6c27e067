"""Both webhooks run the one pipeline (app/webhooks/pipeline.py): the same pieces in the same
order, and nothing past `verify` for a body whose signature does not verify."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("source", PARTNERS)
def test_a_busy_connection_marks_its_last_webhook_at_most_once_per_mark_every(client, redis, monkeypatch, source):
    """The status' "last webhook" costs a busy connection one write per MARK_EVERY, not one
    Redis round trip per webhook (a duplicate delivery is a webhook too)."""
    from app.web.webhooks import common

    now = [1000.0]
    monkeypatch.setattr(common, "clock", lambda: now[0])
    url, raw, headers = PARTNERS[source][2](signed=True)
    key = Keys(DEFAULT).last_webhook(source)
    assert client.post(url, data=raw, headers=headers).status_code == 200 and redis.exists(key)
    redis.delete(key)
    now[0] += common.MARK_EVERY - 0.01
    assert client.post(url, data=raw, headers=headers).status_code == 200 and not redis.exists(key)
    now[0] += 0.01
    assert client.post(url, data=raw, headers=headers).status_code == 200 and redis.exists(key)
